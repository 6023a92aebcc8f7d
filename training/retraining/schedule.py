"""The schedule file: which registered models `forecast schedule` retrains, and when.

`configs/schedule.toml` (or `--config FILE`) holds one table per model:

    timezone = "UTC"             # optional default for every job
    [[jobs]]
    name = "load-etth1"          # a registered model
    cron = "0 3 * * *"           # minute hour day-of-month month day-of-week (0 or 7 = Sunday)
    timezone = "Europe/Berlin"   # optional

APScheduler's `CronTrigger` computes the fire times; weekday numbers are read as cron reads
them. Every mistake is an ExperimentError naming the file, the job and the field.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger

from training.errors import ExperimentError

DEFAULT_CONFIG = Path("configs/schedule.toml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_JOB_KEYS = ("name", "cron", "timezone")
_TOP_KEYS = ("timezone", "jobs")


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


@dataclass(frozen=True)
class Job:
    """One scheduled retraining of a registered model.

    Attributes:
        name: the registered model to retrain.
        cron: five fields "minute hour day month day-of-week" (day-of-week 0 or 7 = Sunday).
        timezone: IANA zone the cron is read in (e.g. "UTC", "Europe/Berlin").

    Raises:
        ExperimentError: naming the job and the field, for a bad name, cron or timezone.
    """

    name: str
    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ExperimentError(
                f"schedule job name={self.name!r}: must be a registered model name (letters, "
                "digits, '.', '_', '-'). Fix: e.g. name = \"load-etth1\""
            )
        where = f"schedule job {self.name!r}"
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, TypeError, ValueError) as exc:
            raise ExperimentError(
                f"{where}: timezone={self.timezone!r} is unknown ({exc}). Fix: use an IANA "
                'zone, e.g. timezone = "UTC" or "Europe/Berlin"'
            ) from None
        try:
            self.trigger()
        except (TypeError, ValueError) as exc:
            raise ExperimentError(
                f"{where}: cron={self.cron!r} is invalid ({exc}). Fix: use five fields "
                '"minute hour day month day-of-week", e.g. cron = "0 3 * * *"'
            ) from None
        if self.next_fire(datetime(2000, 1, 1)) is None:
            raise ExperimentError(
                f"{where}: cron={self.cron!r} never fires (e.g. February 31st). Fix: pick a "
                "date that exists"
            )

    def trigger(self) -> CronTrigger:
        """The APScheduler trigger of `cron` in `timezone` (weekday numbers read as in cron)."""
        if not isinstance(self.cron, str):
            raise ValueError(f"cron must be a string, got {type(self.cron).__name__}")
        fields = self.cron.split()
        if len(fields) != 5:
            raise ValueError(f"got {len(fields)} fields, expected 5")
        fields[4] = _cron_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=self.timezone)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (naive UTC in and out); None: never."""
        start = after.replace(tzinfo=UTC) + timedelta(microseconds=1)
        fire = self.trigger().get_next_fire_time(None, start)
        return None if fire is None else fire.astimezone(UTC).replace(tzinfo=None)


def load_schedule(path: str | Path = DEFAULT_CONFIG) -> list[Job]:
    """Read the [[jobs]] of a schedule file (see the module docstring).

    Raises:
        ExperimentError: missing file, TOML syntax, unknown keys, duplicate or invalid jobs;
            the message names the file, the job and the field.
    """
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(
            f"--config {str(file)!r}: file not found. Fix: pass an existing schedule file, "
            "e.g. configs/schedule.toml"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(
            f"--config {str(file)!r}: invalid TOML ({exc}). Fix the syntax"
        ) from None
    unknown = sorted(set(doc) - set(_TOP_KEYS))
    if unknown:
        raise ExperimentError(
            f"{file}: unknown key(s) {', '.join(unknown)}. Fix: use only {', '.join(_TOP_KEYS)}"
        )
    tables = doc.get("jobs", [])
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ExperimentError(
            f"{file}: no [[jobs]] tables. Fix: add one per model, e.g. [[jobs]] name = "
            '"load-etth1", cron = "0 3 * * *"'
        )
    default_tz = doc.get("timezone", "UTC")
    jobs: list[Job] = []
    for i, table in enumerate(tables):
        where = f"{file}: jobs[{i}]" + (f" (name {table['name']!r})" if "name" in table else "")
        unknown = sorted(set(table) - set(_JOB_KEYS))
        if unknown:
            raise ExperimentError(
                f"{where}: unknown key(s) {', '.join(unknown)}. Fix: use only "
                f"{', '.join(_JOB_KEYS)}"
            )
        for key in ("name", "cron"):
            if key not in table:
                raise ExperimentError(f"{where}: missing field {key!r}. Fix: add {key} = ...")
        try:
            job = Job(table["name"], table["cron"], table.get("timezone", default_tz))
        except ExperimentError as exc:
            raise ExperimentError(f"{file}: jobs[{i}]: {exc}") from None
        if any(other.name == job.name for other in jobs):
            raise ExperimentError(
                f"{where}: job {job.name!r} is listed twice. Fix: one [[jobs]] per model (use "
                'a cron list such as "0 3,15 * * *" for several times a day)'
            )
        jobs.append(job)
    return jobs
