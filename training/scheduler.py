"""Scheduled retraining: cron expressions per registered model, state in our own SQL tables.

`forecast schedule --config configs/schedule.toml` reads jobs such as

    [[jobs]]
    name = "load-etth1"          # a registered model
    cron = "0 3 * * *"           # minute hour day-of-month month day-of-week (0 or 7 = Sunday)
    timezone = "UTC"             # optional; the file may also set a top-level default

and runs a retraining cycle (`training.retrain.retrain`) for each when it falls due. APScheduler's
`CronTrigger` only computes fire times; the job state lives in two tables in the database of
the series store (never pickled), so a restarted scheduler keeps its jobs and their last runs:

- `scheduler_jobs`: name, cron, timezone, next_run_at, last_run_at, last_status;
- `scheduler_runs`: one row per cycle (scheduled_for, missed, started_at, finished_at, status,
  promoted, versions JSON, error);
- `scheduler_schema_version`: the versioned create-if-missing DDL applied so far.

Policies:
- a new job first fires at its next fire time after the scheduler starts; a changed cron is
  rescheduled from now; an unchanged one keeps its stored next run (so a run missed while the
  scheduler was down is caught up);
- missed runs are coalesced: however many fire times passed, one catch-up cycle runs, records
  how many it stood for, and the next run is the first fire time after now;
- a due job is claimed by moving its next_run_at in one transaction first, so two schedulers on
  one database never run the same fire time twice (the model lock serialises the cycles too);
- `serve_forever` stops on SIGTERM/SIGINT after the running cycle (a second signal aborts);
- one log line per cycle.

Times are stored as naive UTC, like the series store's.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
import tomllib
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Connection

from training.errors import ExperimentError
from training.retrain import RetrainResult, resolve_database_url, retrain

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("configs/schedule.toml")
MISSED_CAP = 10_000
"""Most missed fire times counted for one catch-up (counting is a loop over fire times)."""
MIGRATION_LOCK_KEY = 0x5C_4ED0_0001
"""PostgreSQL advisory lock key held while creating the scheduler tables."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_JOB_KEYS = ("name", "cron", "timezone")
_TOP_KEYS = ("timezone", "jobs")


# --- jobs ----------------------------------------------------------------------------------


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


# --- tables --------------------------------------------------------------------------------

metadata = sa.MetaData()

scheduler_jobs = sa.Table(
    "scheduler_jobs",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("cron", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_run_at", sa.DateTime, nullable=True),  # naive UTC; NULL: never again
    sa.Column("last_run_at", sa.DateTime, nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),  # succeeded | failed
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

scheduler_runs = sa.Table(
    "scheduler_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("scheduled_for", sa.DateTime, nullable=False),  # the (first) fire time it ran for
    sa.Column("missed", sa.Integer, nullable=False),  # fire times coalesced into this cycle
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | failed
    sa.Column("promoted", sa.Boolean, nullable=True),
    sa.Column("versions", sa.Text, nullable=True),  # JSON: challenger, champion_before/after
    sa.Column("error", sa.Text, nullable=True),
)

scheduler_schema_version = sa.Table(
    "scheduler_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)


def _v1_create_tables(conn: Connection) -> None:
    """Version 1: scheduler_jobs and scheduler_runs as first shipped (frozen; never edit)."""
    frozen = sa.MetaData()
    sa.Table(
        "scheduler_jobs",
        frozen,
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("next_run_at", sa.DateTime, nullable=True),
        sa.Column("last_run_at", sa.DateTime, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    runs = sa.Table(
        "scheduler_runs",
        frozen,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scheduled_for", sa.DateTime, nullable=False),
        sa.Column("missed", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=True),
        sa.Column("versions", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    sa.Index("ix_scheduler_runs_name_started", runs.c.name, runs.c.started_at)
    frozen.create_all(conn, checkfirst=False)


MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "create scheduler_jobs and scheduler_runs", _v1_create_tables),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(conn: Connection) -> list[int]:
    """Apply the missing scheduler DDL steps inside the caller's (locked) transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    scheduler_schema_version.create(conn, checkfirst=True)
    current = conn.execute(sa.select(sa.func.max(scheduler_schema_version.c.version))).scalar()
    current = int(current or 0)
    if current > SCHEMA_VERSION:
        raise ExperimentError(
            f"the scheduler tables are at schema version {current}, newer than this code's "
            f"{SCHEMA_VERSION}. Fix: upgrade rnn-forecast"
        )
    applied = []
    for version, description, apply in MIGRATIONS:
        if version > current:
            apply(conn)
            conn.execute(
                scheduler_schema_version.insert().values(
                    version=version, description=description, applied_at=_naive(datetime.now(UTC))
                )
            )
            applied.append(version)
    return applied


# --- the scheduler -------------------------------------------------------------------------


class RunCycle(Protocol):
    """What the scheduler calls for a due job (`training.retrain.retrain` by default)."""

    def __call__(
        self, name: str, *, tracking_uri: str | None, database_url: str | None
    ) -> RetrainResult: ...


@dataclass(frozen=True)
class JobState:
    """A job's row in `scheduler_jobs` (naive UTC times)."""

    name: str
    cron: str
    timezone: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None


@dataclass(frozen=True)
class CycleRecord:
    """A row of `scheduler_runs`: one cycle the scheduler ran (naive UTC times)."""

    id: int
    name: str
    scheduled_for: datetime
    missed: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    promoted: bool | None
    versions: dict[str, Any] | None
    error: str | None


def _naive(moment: datetime) -> datetime:
    """Naive UTC (aware times converted; naive ones are taken as UTC already)."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    """The default clock: now, aware UTC."""
    return datetime.now(UTC)


class Scheduler:
    """Runs due retraining cycles; its state lives in the series store's database.

    Args:
        jobs: the configured jobs (`load_schedule`).
        database_url: series store database (SQLite or PostgreSQL); None:
            $FORECAST_DATABASE_URL, else sqlite:///./data/series.db. Also passed to each cycle
            (its lock and a store-backed spec use it).
        tracking_uri: MLflow URI passed to each cycle (None: the cycle's default).
        clock: returns the current time (aware, or naive UTC); injected by tests.
        run_cycle: runs one cycle; `retrain` by default.
        poll_seconds: the longest `serve_forever` sleeps before looking again.

    Raises:
        ExperimentError: duplicate job names.
        StoreError: the database cannot be opened.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        database_url: str | None = None,
        tracking_uri: str | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        run_cycle: RunCycle = retrain,
        poll_seconds: float = 60.0,
    ) -> None:
        from training.store import DEFAULT_DATABASE_URL, SeriesStore

        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ExperimentError(
                f"schedule jobs {names}: a name is listed twice. Fix: list each once"
            )
        self.jobs = {job.name: job for job in jobs}
        self.database_url = resolve_database_url(database_url) or DEFAULT_DATABASE_URL
        self.tracking_uri = tracking_uri
        self.clock = clock
        self.run_cycle = run_cycle
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        # The store's engine carries the SQLite policies (WAL, busy timeout, BEGIN IMMEDIATE).
        self._store = SeriesStore(self.database_url)
        self._engine = self._store.engine
        with self._transaction() as conn:
            applied = migrate(conn)
        if applied:
            logger.info("scheduler: created its tables (schema version %d)", applied[-1])
        self._sync_jobs()

    def close(self) -> None:
        """Release the database connections."""
        self._store.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        """The clock's time as naive UTC."""
        return _naive(self.clock())

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _sync_jobs(self) -> None:
        """Insert new jobs, reschedule changed ones, keep the state of unchanged ones."""
        now = self.now()
        t = scheduler_jobs.c
        with self._transaction() as conn:
            stored = {row.name: row for row in conn.execute(sa.select(scheduler_jobs))}
            for job in self.jobs.values():
                row = stored.get(job.name)
                if row is None:
                    conn.execute(scheduler_jobs.insert().values(
                        name=job.name, cron=job.cron, timezone=job.timezone,
                        next_run_at=job.next_fire(now), updated_at=now,
                    ))  # fmt: skip
                elif (row.cron, row.timezone) != (job.cron, job.timezone):
                    conn.execute(scheduler_jobs.update().where(t.name == job.name).values(
                        cron=job.cron, timezone=job.timezone, next_run_at=job.next_fire(now),
                        updated_at=now,
                    ))  # fmt: skip
                    logger.info("scheduler: job %s rescheduled to %r", job.name, job.cron)
        for name in sorted(set(stored) - set(self.jobs)):
            logger.info("scheduler: stored job %s is not in the config; paused", name)

    # --- reading state --------------------------------------------------------------------

    def job_states(self) -> list[JobState]:
        """Every row of scheduler_jobs (configured or paused), by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(scheduler_jobs).order_by(scheduler_jobs.c.name)).all()
        return [
            JobState(r.name, r.cron, r.timezone, r.next_run_at, r.last_run_at, r.last_status)
            for r in rows
        ]

    def runs(self, name: str | None = None, limit: int = 100) -> list[CycleRecord]:
        """Recorded cycles, newest first (of job `name` when given)."""
        query = sa.select(scheduler_runs).order_by(scheduler_runs.c.id.desc()).limit(limit)
        if name is not None:
            query = query.where(scheduler_runs.c.name == name)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]

    # --- running --------------------------------------------------------------------------

    def run_pending(self) -> list[CycleRecord]:
        """Run every configured job that is due now, once each (`forecast schedule --once`).

        Returns:
            The cycles run, in order (failed ones included; a failure never stops the rest).
        """
        done = []
        for job in sorted(self.jobs.values(), key=lambda j: j.name):
            if self._stop.is_set():
                break
            claimed = self._claim(job)
            if claimed is not None:
                done.append(self._run(job, *claimed))
        return done

    def _claim(self, job: Job) -> tuple[int, datetime, int, datetime] | None:
        """Move a due job's next run past now and open its run row, in one transaction."""
        now = self.now()
        t = scheduler_jobs.c
        with self._transaction() as conn:
            due = conn.execute(sa.select(t.next_run_at).where(t.name == job.name)).scalar()
            if due is None or due > now:
                return None
            missed = _count_fires(job, due, now)
            moved = conn.execute(
                scheduler_jobs.update()
                .where(t.name == job.name, t.next_run_at == due)
                .values(next_run_at=job.next_fire(now), updated_at=now)
            ).rowcount
            if moved != 1:  # another scheduler claimed it first
                return None
            run_id = conn.execute(
                scheduler_runs.insert().values(
                    name=job.name, scheduled_for=due, missed=missed, started_at=now,
                    status="running",
                )
            ).inserted_primary_key[0]  # type: ignore[index]  # fmt: skip
        return int(run_id), due, missed, now

    def _run(
        self, job: Job, run_id: int, due: datetime, missed: int, started: datetime
    ) -> CycleRecord:
        """Run one claimed cycle, record it, and log one line."""
        tick = time.monotonic()
        try:
            result = self.run_cycle(
                job.name, tracking_uri=self.tracking_uri, database_url=self.database_url
            )
        except BaseException as exc:
            values: dict[str, Any] = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}"[:10_000],
            }
            self._finish(job, run_id, started, values)
            logger.error(
                "schedule %s: cycle for %s failed after %.1fs, champion unchanged: %s",
                job.name, due.isoformat(), time.monotonic() - tick, values["error"],
            )  # fmt: skip
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt / SystemExit: recorded, then honoured
        else:
            versions = {
                "challenger": result.challenger_version,
                "champion_before": result.champion_version_before,
                "champion_after": result.champion_version_after,
            }
            values = {"status": "succeeded", "promoted": bool(result.promoted),
                      "versions": json.dumps(versions)}  # fmt: skip
            self._finish(job, run_id, started, values)
            logger.info(
                "schedule %s: cycle for %s%s succeeded in %.1fs: challenger v%d %s (%s %s vs "
                "%s), champion v%s -> v%s, data to %s",
                job.name, due.isoformat(), f" ({missed} fire times coalesced)" if missed > 1
                else "", time.monotonic() - tick, result.challenger_version,
                "promoted" if result.promoted else "rejected", result.metric,
                _fmt(result.challenger_score), _fmt(result.champion_score),
                result.champion_version_before, result.champion_version_after, result.end,
            )  # fmt: skip
        return self.runs(job.name, limit=1)[0]

    def _finish(self, job: Job, run_id: int, started: datetime, values: dict[str, Any]) -> None:
        finished = self.now()
        t = scheduler_jobs.c
        with self._transaction() as conn:
            conn.execute(
                scheduler_runs.update()
                .where(scheduler_runs.c.id == run_id)
                .values(finished_at=finished, **values)
            )
            current = conn.execute(sa.select(t.next_run_at).where(t.name == job.name)).scalar()
            after = job.next_fire(finished)  # a cycle longer than the interval: no back-to-back
            later = after if current is None or (after is not None and after > current) else current
            conn.execute(
                scheduler_jobs.update()
                .where(t.name == job.name)
                .values(last_run_at=started, last_status=values["status"], next_run_at=later,
                        updated_at=finished)
            )  # fmt: skip

    def stop(self) -> None:
        """Ask `serve_forever` to exit after the running cycle (what SIGTERM/SIGINT do)."""
        self._stop.set()

    def seconds_to_next(self) -> float:
        """Seconds from now to the earliest next run of a configured job (inf: none)."""
        now = self.now()
        pending = [
            (s.next_run_at - now).total_seconds()
            for s in self.job_states()
            if s.name in self.jobs and s.next_run_at is not None
        ]
        return min(pending, default=float("inf"))

    def serve_forever(self) -> None:
        """Run due cycles until stopped; sleep until the next fire time in between.

        SIGTERM and SIGINT (when called from the main thread) stop it after the running cycle;
        a second signal aborts that cycle (it is recorded as failed).
        """
        self._stop.clear()
        previous = self._install_signal_handlers()
        logger.info(
            "scheduler: serving %d job(s) from %s: %s", len(self.jobs), self._store.url,
            ", ".join(f"{j.name} [{j.cron}]" for j in self.jobs.values()),
        )  # fmt: skip
        try:
            while not self._stop.is_set():
                self.run_pending()
                wait = min(max(self.seconds_to_next(), 0.01), self.poll_seconds)
                self._stop.wait(wait)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            logger.info("scheduler: stopped")

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: object) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            logger.info(
                "scheduler: %s received; finishing the running cycle, then stopping "
                "(send it again to abort)", signal.Signals(signum).name,
            )  # fmt: skip
            self._stop.set()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, on_signal)
        return previous


def _count_fires(job: Job, first: datetime, now: datetime) -> int:
    """How many fire times lie in [first, now] (capped at MISSED_CAP)."""
    count = 0
    fire: datetime | None = first
    while fire is not None and fire <= now and count < MISSED_CAP:
        count += 1
        fire = job.next_fire(fire)
    return count


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def _record(row: Any) -> CycleRecord:
    versions = json.loads(row.versions) if row.versions else None
    return CycleRecord(
        id=int(row.id), name=row.name, scheduled_for=row.scheduled_for, missed=int(row.missed),
        started_at=row.started_at, finished_at=row.finished_at, status=row.status,
        promoted=row.promoted, versions=versions, error=row.error,
    )  # fmt: skip


def job_table(states: Sequence[JobState], configured: Mapping[str, Job]) -> list[dict[str, Any]]:
    """JSON-ready rows of the job states (for the CLI), paused ones marked."""
    return [
        {
            "name": s.name,
            "cron": s.cron,
            "timezone": s.timezone,
            "next_run_at": None if s.next_run_at is None else s.next_run_at.isoformat(),
            "last_run_at": None if s.last_run_at is None else s.last_run_at.isoformat(),
            "last_status": s.last_status,
            "active": s.name in configured,
        }
        for s in states
    ]
