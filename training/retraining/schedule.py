"""The schedule file: which registered models `forecast schedule` retrains, and when.

`configs/schedule.toml` (or `--config FILE`) holds one table per model:

    timezone = "UTC"             # optional default for every job
    [[jobs]]
    name = "load-etth1"          # a registered model
    cron = "0 3 * * *"           # minute hour day-of-month month day-of-week (0 or 7 = Sunday)
    timezone = "Europe/Berlin"   # optional
    trigger = "drift"            # optional: each fire checks live accuracy, retrains on drift
    drift_ratio = 1.5            # live MASE above 1.5 x validation MASE fires
    drift_window = 100           # over the latest 100 scored forecasts
    drift_min_forecasts = 10     # fewer decide nothing
    coverage_band = [0.7, 0.9]   # optional: 80% coverage outside it fires too

    [[jobs]]
    name = "forecast-meters"     # a batch forecast: every stored series (or `series = [...]`)
    task = "predict"             # with the champion of `model`, recorded in the forecast log
    model = "load-meters"
    cron = "5 * * * *"

APScheduler's `CronTrigger` computes the fire times; weekday numbers are read as cron reads
them. Every mistake is an ExperimentError naming the file, the job and the field.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from training.config_files import ModelName, invalid, read_toml
from training.errors import ExperimentError, TrackingError

if TYPE_CHECKING:
    from training.registry.tracking import Tracker

DEFAULT_CONFIG = Path("configs/schedule.toml")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """Cron day-of-week numbers (0 or 7 = Sunday) as the names APScheduler 3 reads unambiguously.

    APScheduler 3 numbers weekdays from Monday = 0, unlike cron; names mean the same to both.
    Parts with names ("mon-fri") pass through; numeric parts ("1-5", "0,6", "*/2") are expanded.
    """
    if not any(ch.isdigit() for ch in field):
        return field
    names: list[str] = []
    for part in field.split(","):
        if any(ch.isalpha() for ch in part):
            names.append(part)
            continue
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            lo_text, hi_text = base.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = int(base)
            hi = 6 if step_text else lo  # "1/2" means 1, 3, 5 as in cron
        if not 0 <= lo <= hi <= 7 or step < 1:
            raise ValueError(f"day-of-week {part!r} is out of range (0-7, 0 and 7 = Sunday)")
        names += [_WEEKDAYS[day % 7] for day in range(lo, hi + 1, step)]
    return ",".join(dict.fromkeys(names))


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Job:
    """One scheduled retraining of a registered model (a `[[jobs]]` table).

    `load_schedule` turns a ValidationError into an ExperimentError naming the file and the job.
    """

    name: ModelName  # the registered model to retrain
    cron: StrictStr  # "minute hour day month day-of-week" (day-of-week 0 or 7 = Sunday)
    timezone: StrictStr = "UTC"  # IANA zone the cron is read in, e.g. "Europe/Berlin"
    # "retrain" the model `name`, or "predict": forecast stored series with the champion of
    # `model` (default: `name`) and record them in the forecast log (live accuracy).
    task: Literal["retrain", "predict"] = "retrain"
    model: ModelName | None = None  # predict: the registered model (name is the job's own)
    series: tuple[StrictStr, ...] = ()  # predict: stored series ids (empty: every one)
    horizon: Annotated[int, Field(ge=1)] | None = None  # predict: steps (None: the model's)
    # "cron": run at every fire; "drift" (retrain only): each fire checks live accuracy and
    # retrains only when it has drifted (training.retraining.triggers).
    trigger: Literal["cron", "drift"] = "cron"
    drift_ratio: Annotated[float, Field(gt=0)] = 1.5  # live MASE > ratio x validation MASE
    drift_window: Annotated[int, Field(ge=1)] = 100  # the latest N scored forecasts
    drift_min_forecasts: Annotated[int, Field(ge=1)] = 10  # fewer decide nothing
    coverage_band: tuple[float, float] | None = None  # e.g. [0.7, 0.9] for the 80% interval

    @property
    def model_name(self) -> str:
        """The registered model the job retrains or forecasts with."""
        return self.model or self.name

    @model_validator(mode="after")
    def _task_settings(self) -> Self:
        if self.task == "retrain" and (self.model or self.series or self.horizon):
            raise ValueError(
                'model, series and horizon belong to task = "predict" jobs; a retrain job '
                "retrains the model it is named after. Fix: remove them, or set task = "
                '"predict"'
            )
        if self.task == "predict" and self.trigger == "drift":
            raise ValueError(
                'trigger = "drift" retrains; a predict job runs on its cron. Fix: remove '
                "trigger, or use a retrain job"
            )
        return self

    @model_validator(mode="after")
    def _drift_settings(self) -> Self:
        band = self.coverage_band
        if band is not None and not 0 <= band[0] < band[1] <= 1:
            raise ValueError(
                f"coverage_band = {list(band)}: must be [low, high] with 0 <= low < high <= 1, "
                "e.g. coverage_band = [0.7, 0.9]"
            )
        if self.drift_min_forecasts > self.drift_window:
            raise ValueError(
                f"drift_min_forecasts = {self.drift_min_forecasts} is above drift_window = "
                f"{self.drift_window}: the check could never decide. Fix: lower it"
            )
        return self

    @model_validator(mode="after")
    def _fires(self) -> Self:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"timezone = {self.timezone!r}: unknown ({exc}). Fix: use an IANA zone, e.g. "
                'timezone = "UTC" or "Europe/Berlin"'
            ) from None
        try:
            fires = self.next_fire(datetime(2000, 1, 1)) is not None
        except ValueError as exc:
            raise ValueError(
                f"cron = {self.cron!r}: invalid ({exc}). Fix: use five fields "
                '"minute hour day month day-of-week", e.g. cron = "0 3 * * *"'
            ) from None
        if not fires:
            raise ValueError(
                f"cron = {self.cron!r}: never fires (e.g. February 31st). Fix: pick a date "
                "that exists"
            )
        return self

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (naive UTC in and out); None: never.

        The cron is read in `timezone`, its weekday numbers as cron reads them.
        """
        fields = self.cron.split()
        if len(fields) != 5:
            raise ValueError(f"got {len(fields)} fields, expected 5")
        fields[4] = _cron_weekdays(fields[4])
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=self.timezone)
        start = after.replace(tzinfo=UTC) + timedelta(microseconds=1)
        fire = trigger.get_next_fire_time(None, start)
        return None if fire is None else fire.astimezone(UTC).replace(tzinfo=None)


class ScheduleFile(BaseModel):
    """The layout of a schedule file; each `[[jobs]]` table is then read as a `Job`."""

    model_config = ConfigDict(extra="forbid")
    timezone: StrictStr = "UTC"
    jobs: list[dict[str, Any]] = []


def load_schedule(path: str | Path = DEFAULT_CONFIG, tracker: Tracker | None = None) -> list[Job]:
    """Read the [[jobs]] of a schedule file (see the module docstring).

    Args:
        tracker: the registry the jobs retrain in; when given, each job's replayed spec is
            read now, and a spec whose data never changes (the ETT protocol) is refused.

    Raises:
        ExperimentError: missing file, TOML syntax, unknown keys, duplicate or invalid jobs,
            a job replaying an ETT-protocol spec; naming the file, the job and the field.
    """
    file = Path(path)
    try:
        doc = ScheduleFile.model_validate(read_toml(file, "schedule file", "configs/schedule.toml"))
    except ValidationError as exc:
        raise invalid(exc, str(file), ScheduleFile) from None
    if not doc.jobs:
        raise ExperimentError(
            f"{file}: no [[jobs]] tables. Fix: add one per model, e.g. [[jobs]] name = "
            '"load-etth1", cron = "0 3 * * *"'
        )
    jobs: list[Job] = []
    for i, table in enumerate(doc.jobs):
        where = f"{file}: jobs[{i}]" + (f" (name {table['name']!r})" if "name" in table else "")
        try:
            job = TypeAdapter(Job).validate_python({"timezone": doc.timezone, **table})
        except ValidationError as exc:
            raise invalid(exc, where, Job) from None
        if any(other.name == job.name for other in jobs):
            raise ExperimentError(
                f"{where}: job {job.name!r} is listed twice. Fix: one [[jobs]] per model (use "
                'a cron list such as "0 3,15 * * *" for several times a day)'
            )
        if tracker is not None and job.task == "retrain":
            _refuse_frozen_data(job, tracker, where)
        jobs.append(job)
    return jobs


def _refuse_frozen_data(job: Job, tracker: Tracker, where: str) -> None:
    """Refuse a job whose cycles would all fit the same rows: its spec is on the ETT protocol.

    A model not registered yet, or without a readable spec, passes: its cycles fail and say why.
    """
    from training.retraining.retrain import load_spec, replay_version

    try:
        version = replay_version(tracker, job.name)
        spec = load_spec(tracker, version)
    except (TrackingError, ExperimentError):
        return
    if spec.protocol == "ett":
        raise ExperimentError(
            f"{where}: version {version.version} (the one it retrains) was trained with "
            'protocol = "ett", which reads rows 0-14400 of ETTh1 only, so every cycle would '
            "fit the same data. Fix: promote a version trained on a store-backed spec (forecast "
            'train --source store --series ID, with protocol = "ratio" and last_rows for a '
            "rolling split), or remove this job"
        )
