"""Scheduled retraining: cron expressions per registered model, state in our own SQL tables.

`forecast schedule --config configs/schedule.toml` reads the jobs of a schedule file (its
layout is in `training.retraining.schedule`) and runs a retraining cycle
(`training.retraining.retrain.retrain`) for each when it falls due. APScheduler's
`CronTrigger` only computes fire times; the job state lives in our own tables in the database
of the series store (`training.retraining.tables`, never pickled), so a restarted scheduler
keeps its jobs and their last runs.

Policies:
- a new job first fires at its next fire time after the scheduler starts; a changed cron is
  rescheduled from now; an unchanged one keeps its stored next run (so a run missed while the
  scheduler was down is caught up);
- missed runs are coalesced: however many fire times passed, one catch-up cycle runs, records
  how many it stood for, and the next run is the first fire time after now;
- a due job is claimed by moving its next_run_at in one transaction first, so two schedulers on
  one database never run the same fire time twice (the model lock serialises the cycles too);
- `serve_forever` stops on SIGTERM/SIGINT after the running cycle (a second signal aborts);
- a job with `task = "predict"` forecasts stored series with its model's champion and records
  them in the forecast log (batch forecasts, scored as the actuals arrive);
- a job with `trigger = "drift"` checks the champion's live accuracy at each fire and runs a
  cycle only when it has drifted; a check that does not fire is recorded as "skipped" with its
  figures (training.retraining.triggers);
- one log line per cycle.

Times are stored as naive UTC, like the series store's.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from training.errors import ExperimentError
from training.registry.tracking import Tracker
from training.retraining.retrain import RetrainResult, resolve_database_url, retrain
from training.retraining.schedule import Job
from training.retraining.tables import SCHEDULER, scheduler_jobs, scheduler_runs
from training.retraining.triggers import DriftCheck, check_drift
from training.store.engine import transaction
from training.store.migrations import migrate
from training.store.schema import utc_now

logger = logging.getLogger(__name__)
MISSED_CAP = 10_000
"""Most missed fire times counted for one catch-up (counting is a loop over fire times)."""


# --- the scheduler -------------------------------------------------------------------------


class RunCycle(Protocol):
    """What the scheduler calls for a due job (`training.retraining.retrain.retrain` by default)."""

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


class Scheduler:
    """Runs due retraining cycles; its state lives in the series store's database.

    Args:
        jobs: the configured jobs (`load_schedule`).
        database_url: series store database (SQLite or PostgreSQL); None:
            $FORECAST_DATABASE_URL, else sqlite:///./data/series.db. Also passed to each cycle
            (its lock and a store-backed spec use it).
        tracking_uri: MLflow URI passed to each cycle (None: the cycle's default).
        clock: returns the current time (aware, or naive UTC); injected by tests.
        poll_seconds: the longest `serve_forever` sleeps before looking again.

    Raises:
        ExperimentError: duplicate job names.
        StoreError: the database cannot be opened, or its scheduler tables are at a newer
            schema version than this code.
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
        with transaction(self._engine, write=True) as conn:
            applied = migrate(conn, SCHEDULER)
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
        """The clock's time as naive UTC (an aware time converted; a naive one is UTC already)."""
        moment = self.clock()
        return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)

    def _sync_jobs(self) -> None:
        """Insert new jobs, reschedule changed ones, keep the state of unchanged ones."""
        now = self.now()
        t = scheduler_jobs.c
        with transaction(self._engine, write=True) as conn:
            stored = {row.name: row for row in conn.execute(sa.select(scheduler_jobs))}
            for job in self.jobs.values():
                row = stored.get(job.name)
                fresh = {"cron": job.cron, "timezone": job.timezone,
                         "next_run_at": job.next_fire(now), "updated_at": now}  # fmt: skip
                if row is None:
                    conn.execute(scheduler_jobs.insert().values(name=job.name, **fresh))
                elif (row.cron, row.timezone) != (job.cron, job.timezone):
                    conn.execute(scheduler_jobs.update().where(t.name == job.name).values(**fresh))
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
        with transaction(self._engine, write=True) as conn:
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
        values: dict[str, Any]
        check: DriftCheck | None = None
        try:
            if job.task == "predict":
                from training.jobs.batch_predict import predict_to_store

                outcome = predict_to_store(
                    job.model_name, tracking_uri=self.tracking_uri, database_url=self.database_url,
                    series_ids=job.series, horizon=job.horizon,
                )  # fmt: skip
                done = {"status": "succeeded", "versions": json.dumps(outcome)}
                self._finish(job, run_id, started, done)
                logger.info(
                    "schedule %s: %d series forecast with %s v%s, %d recorded in %.1fs",
                    job.name, outcome["series"], outcome["model"], outcome["version"],
                    outcome["recorded"], time.monotonic() - tick,
                )  # fmt: skip
                return self.runs(job.name, limit=1)[0]
            if job.trigger == "drift":
                check = check_drift(job, Tracker(self.tracking_uri), self._store)
                if not check.fired:
                    quiet = {"status": "skipped", "error": check.reason,
                             "versions": json.dumps({"drift": check.to_json()})}  # fmt: skip
                    self._finish(job, run_id, started, quiet)
                    logger.info("schedule %s: %s", job.name, check.reason)
                    return self.runs(job.name, limit=1)[0]
                logger.info("schedule %s: retraining on %s", job.name, check.reason)
            result = self.run_cycle(
                job.name, tracking_uri=self.tracking_uri, database_url=self.database_url
            )
            if check is not None and result.run_id:
                Tracker(self.tracking_uri).set_run_tags(result.run_id, check.tags())
        except BaseException as exc:
            values = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:10_000]}
            self._finish(job, run_id, started, values)
            logger.error(
                "schedule %s: cycle for %s failed after %.1fs, champion unchanged: %s",
                job.name, due.isoformat(), time.monotonic() - tick, values["error"],
            )  # fmt: skip
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt / SystemExit: recorded, then honoured
        else:
            if result.skipped is not None:
                self._finish(job, run_id, started, {"status": "skipped", "error": result.skipped})
                logger.info("schedule %s: cycle for %s skipped: %s", job.name,
                            due.isoformat(), result.skipped)  # fmt: skip
                return self.runs(job.name, limit=1)[0]
            versions: dict[str, Any] = {
                "challenger": result.challenger_version,
                "champion_before": result.champion_version_before,
                "champion_after": result.champion_version_after,
            }
            if check is not None:
                versions["drift"] = check.to_json()
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
        with transaction(self._engine, write=True) as conn:
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
            "trigger": configured[s.name].trigger if s.name in configured else None,
            "active": s.name in configured,
        }
        for s in states
    ]
