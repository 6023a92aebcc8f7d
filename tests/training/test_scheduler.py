"""The retraining scheduler: schedule files, cron state in SQL, coalescing, restarts, the CLI.

Cycles are real retrains of a tiny ESN trained on a bundled slice (ETTh1, last 600 rows) in a
SQLite MLflow store; the clock is injected, except for the CLI's `--once`.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.base import EpochStats
from training.cli import app
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.registry.tracking import Tracker
from training.retraining.retrain import retrain
from training.retraining.schedule import Job, load_schedule
from training.retraining.scheduler import Scheduler

runner = CliRunner()
NAME = f"sched-etth1-{uuid.uuid4().hex[:8]}"
T0 = datetime(2026, 3, 2, 10, 0, 30)  # naive UTC


class Clock:
    """A settable clock (naive UTC), the scheduler's only notion of now."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store holding registered model NAME with a champion."""
    root = tmp_path_factory.mktemp("sched-mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    spec = TrainSpec(
        family="esn", horizon=6, dataset="load/etth1", last_rows=600, lookback=24,
        device="cpu", model={"reservoir_size": 40}, name=NAME,
    )  # fmt: skip
    # the scheduler needs a champion, not a good one (the baseline floor: test_gate_baselines)
    assert train(spec, uri, allow_worse_than_baseline=True).promoted
    return uri


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- schedule files ------------------------------------------------------------------------


def test_load_schedule_reads_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path / "schedule.toml",
        'timezone = "Europe/Berlin"\n'
        '[[jobs]]\nname = "load-etth1"\ncron = "0 3 * * *"\n'
        '[[jobs]]\nname = "stock-goog"\ncron = "30 22 * * 1-5"\ntimezone = "America/New_York"\n',
    )
    assert load_schedule(path) == [
        Job("load-etth1", "0 3 * * *", "Europe/Berlin"),
        Job("stock-goog", "30 22 * * 1-5", "America/New_York"),
    ]


def test_the_shipped_schedule_is_valid() -> None:
    jobs = load_schedule(Path(__file__).resolve().parents[2] / "configs" / "schedule.toml")
    # load-etth1 is on the ETT benchmark protocol (a fixed slice): it is served, not retrained.
    # Every scheduled model is store-backed, so each cycle sees the ingested observations.
    assert {job.name: (job.task, job.trigger) for job in jobs} == {
        "live-stock-goog": ("retrain", "cron"),
        "live-bike-hourly": ("retrain", "drift"),
        "forecast-bike-hourly": ("predict", "cron"),
    }
    for job in jobs:
        spec = TrainSpec.from_toml(
            next(Path(__file__).resolve().parents[2].glob(f"configs/{job.model_name}-*.toml"))
        )
        assert spec.source == "store" and spec.last_rows, job.name
        assert set(job.series) <= set(spec.series)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[jobs]]\nname = "load-etth1"\ncron = "61 * * * *"\n',
            "jobs[0] (name 'load-etth1'): cron = '61 * * * *': invalid (Error validating "
            "expression '61': the last value (61) is higher than the maximum value (59)). Fix: "
            'use five fields "minute hour day month day-of-week", e.g. cron = "0 3 * * *"',
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 * *"\n',
            "jobs[0] (name 'a'): cron = '0 3 * *': invalid (got 4 fields, expected 5). Fix",
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 * * 9"\n',
            "cron = '0 3 * * 9': invalid (day-of-week '9' is out of range (0-7, 0 and 7 = Sunday))",
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 31 2 *"\n',
            "jobs[0] (name 'a'): cron = '0 3 31 2 *': never fires (e.g. February 31st). Fix",
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 * * *"\ntimezone = "Mars/Olympus"\n',
            "jobs[0] (name 'a'): timezone = 'Mars/Olympus': unknown (",
        ),
        (
            '[[jobs]]\nname = "a"\n',
            "jobs[0] (name 'a'): cron: missing. Fix: add cron = ...",
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 * * *"\nevery = "day"\n',
            "jobs[0] (name 'a'): every: unknown key; Fix: use one of name, cron, timezone",
        ),
        (
            '[[jobs]]\nname = "a"\ncron = "0 3 * * *"\n[[jobs]]\nname = "a"\ncron = "0 4 * * *"\n',
            "jobs[1] (name 'a'): job 'a' is listed twice.",
        ),
        ('timezone = "UTC"\n', "no [[jobs]] tables. Fix: add one per model"),
        ('timezon = "UTC"\n', "schedule.toml: timezon: unknown key; did you mean timezone?"),
        (
            '[[jobs]]\nname = "a b"\ncron = 5\n',
            "jobs[0] (name 'a b'): name = 'a b': a model name has letters, digits, '.', '_' or",
        ),
        ('[[jobs]]\nname = "a"\ncron = 5\n', "jobs[0] (name 'a'): cron = 5: input should be a"),
    ],
)
def test_bad_schedule_names_the_job_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path / "schedule.toml", body)
    with pytest.raises(ExperimentError) as caught:
        load_schedule(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.fixture(scope="module")
def spec_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store whose versions of "fresh" (ratio) and "frozen" (ETT protocol) carry
    the spec.json a retrain replays (nothing is trained: the schedule reads only the spec)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('spec-mlflow')}/mlflow.db"
    tracker = Tracker(uri)
    for name, protocol in (("fresh", "ratio"), ("frozen", "ett")):
        spec = TrainSpec(family="esn", horizon=6, dataset="load/etth1", protocol=protocol)
        run = tracker.client.create_run(tracker.experiment_id(name)).info
        tracker.client.log_text(run.run_id, json.dumps(spec.to_dict()), "spec.json")
        tracker.client.create_registered_model(name)
        tracker.client.create_model_version(name, run.artifact_uri, run_id=run.run_id)
    return uri


def test_jobs_on_changing_data_or_not_trained_yet_pass_the_spec_check(
    spec_registry: str, tmp_path: Path
) -> None:
    body = (
        '[[jobs]]\nname = "fresh"\ncron = "0 3 * * *"\n[[jobs]]\nname = "new"\ncron = "0 4 * * *"\n'
    )
    path = write(tmp_path / "schedule.toml", body)
    assert [job.name for job in load_schedule(path, Tracker(spec_registry))] == ["fresh", "new"]


def test_a_job_replaying_an_ett_protocol_spec_is_refused(
    spec_registry: str, tmp_path: Path
) -> None:
    """The ETT protocol reads rows 0-14400 of ETTh1 whatever the date: retraining it is moot."""
    path = write(tmp_path / "schedule.toml", '[[jobs]]\nname = "frozen"\ncron = "0 3 * * *"\n')
    assert [job.name for job in load_schedule(path)] == ["frozen"]  # the file alone is valid
    url = f"sqlite:///{tmp_path / 'series.db'}"
    args = ["schedule", "--config", str(path), "--once", "--database-url", url,
            "--tracking-uri", spec_registry]  # fmt: skip

    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert (
        "jobs[0] (name 'frozen'): version 1 (the one it retrains) was trained with protocol = "
        '"ett", which reads rows 0-14400 of ETTh1 only, so every cycle would fit the same data. '
        "Fix: promote a version trained on a store-backed spec"
    ) in " ".join(result.output.split())


def test_missing_schedule_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"file not found. Fix: pass an existing schedule"):
        load_schedule(tmp_path / "nope.toml")


def test_cron_weekdays_mean_what_they_mean_in_cron() -> None:
    monday = datetime(2026, 3, 2, 12)  # a Monday
    assert Job("a", "0 3 * * 0").next_fire(monday) == datetime(2026, 3, 8, 3)  # Sunday
    assert Job("a", "0 3 * * 7").next_fire(monday) == datetime(2026, 3, 8, 3)  # Sunday
    assert Job("a", "0 3 * * 1-5").next_fire(monday) == datetime(2026, 3, 3, 3)  # Tuesday
    assert Job("a", "0 3 * * 6").next_fire(monday) == datetime(2026, 3, 7, 3)  # Saturday
    assert Job("a", "0 3 * * *", "Europe/Berlin").next_fire(monday) == datetime(2026, 3, 3, 2)


# --- running -------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_minute_cron_runs_one_coalesced_cycle_then_stops_on_sigterm(
    registry: str, tmp_path: Path
) -> None:
    clock = Clock(T0)
    url = f"sqlite:///{tmp_path / 'series.db'}"

    def sigterm_mid_cycle(stats: EpochStats) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the cycle is still running

    # force: the registry's data never changes, and a cycle without new data would skip
    cycle = functools.partial(retrain, callback=sigterm_mid_cycle, force=True)
    scheduler = Scheduler(
        [Job(NAME, "* * * * *")], url, registry, clock=clock, run_cycle=cycle, poll_seconds=5
    )
    assert scheduler.job_states()[0].next_run_at == datetime(2026, 3, 2, 10, 1)
    assert scheduler.run_pending() == []  # not due yet

    clock.now = T0 + timedelta(minutes=4)  # 10:04:30: fire times 10:01 .. 10:04 were missed
    previous = signal.getsignal(signal.SIGTERM)
    scheduler.serve_forever()  # returns only because of the SIGTERM, after the cycle
    assert signal.getsignal(signal.SIGTERM) is previous

    [record] = scheduler.runs()
    assert record.status == "succeeded", record.error
    assert record.missed == 4 and record.scheduled_for == datetime(2026, 3, 2, 10, 1)
    assert record.started_at == clock.now and record.finished_at == clock.now
    champion = Tracker(registry).aliases(NAME)["champion"]
    assert record.versions is not None and record.versions["champion_after"] == champion
    assert record.promoted == (record.versions["champion_before"] != champion)
    [state] = scheduler.job_states()
    assert state.next_run_at == datetime(2026, 3, 2, 10, 5)  # the next fire time after now
    assert state.last_run_at == clock.now and state.last_status == "succeeded"
    assert scheduler.run_pending() == []  # coalesced: one catch-up, not four
    scheduler.close()


def test_restart_keeps_jobs_and_their_last_run(registry: str, database_url: str) -> None:
    clock = Clock(T0)
    jobs = [Job("no-such-model", "*/5 * * * *"), Job(NAME, "0 3 * * *")]
    with Scheduler(jobs, database_url, registry, clock=clock) as first:
        clock.now = datetime(2026, 3, 2, 10, 5, 10)
        [record] = first.run_pending()  # only the */5 job is due; its cycle fails for real
    assert record.status == "failed" and record.promoted is None
    assert record.error is not None
    assert record.error.startswith("TrackingError: registered model 'no-such-model' does not")

    clock.now = datetime(2026, 3, 2, 10, 7)
    with Scheduler(jobs, database_url, registry, clock=clock) as second:
        states = {s.name: s for s in second.job_states()}
        assert states["no-such-model"].next_run_at == datetime(2026, 3, 2, 10, 10)
        assert states["no-such-model"].last_run_at == datetime(2026, 3, 2, 10, 5, 10)
        assert states["no-such-model"].last_status == "failed"
        assert states[NAME].next_run_at == datetime(2026, 3, 3, 3)  # kept, not recomputed
        assert [r.id for r in second.runs()] == [record.id]
        assert second.run_pending() == []

    # Down over a fire time: the stored next run is in the past at restart, so it catches up.
    clock.now = datetime(2026, 3, 2, 10, 31)
    changed = [Job("no-such-model", "*/5 * * * *"), Job(NAME, "30 4 * * *")]
    with Scheduler(changed[:1], database_url, registry, clock=clock) as third:
        [catch_up] = third.run_pending()
        assert catch_up.missed == 5  # 10:10, 10:15, 10:20, 10:25, 10:30 in one cycle
        assert {s.name for s in third.job_states()} == {"no-such-model", NAME}  # NAME paused
    with Scheduler(changed, database_url, registry, clock=clock) as fourth:
        states = {s.name: s for s in fourth.job_states()}
        assert states[NAME].cron == "30 4 * * *"
        assert states[NAME].next_run_at == datetime(2026, 3, 3, 4, 30)  # rescheduled from now


def test_two_schedulers_never_run_one_fire_time_twice(registry: str, tmp_path: Path) -> None:
    clock = Clock(T0)
    url = f"sqlite:///{tmp_path / 'series.db'}"
    jobs = [Job("no-such-model", "* * * * *")]
    ran: list[int] = []
    barrier = threading.Barrier(2)
    with (
        Scheduler(jobs, url, registry, clock=clock) as a,
        Scheduler(jobs, url, registry, clock=clock) as b,
    ):
        clock.now = T0 + timedelta(minutes=1)

        def tick(scheduler: Scheduler) -> None:
            barrier.wait()
            ran.append(len(scheduler.run_pending()))

        threads = [threading.Thread(target=tick, args=(s,)) for s in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(ran) == [0, 1]
        assert len(a.runs()) == 1


@pytest.mark.slow
def test_schedule_once_via_the_cli(registry: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'series.db'}"
    config = write(tmp_path / "schedule.toml", f'[[jobs]]\nname = "{NAME}"\ncron = "* * * * *"\n')
    real_now = datetime.now(UTC).replace(tzinfo=None)
    # A scheduler that last looked three minutes ago: the job has been due since then.
    with Scheduler(
        load_schedule(config), url, registry, clock=lambda: real_now - timedelta(minutes=3)
    ):
        pass
    args = ["schedule", "--config", str(config), "--once", "--database-url", url,
            "--tracking-uri", registry, "--json"]  # fmt: skip

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    [cycle] = out["cycles"]
    # The registry's champion was trained on exactly this data: the cycle skips, says why, and
    # the run counts as done (exit 0), not failed.
    assert cycle["name"] == NAME and cycle["status"] == "skipped", cycle
    assert cycle["missed"] >= 3 and "no new observations" in cycle["error"]
    [job] = out["jobs"]
    assert job["last_status"] == "skipped" and job["active"] is True
    assert datetime.fromisoformat(job["next_run_at"]) > real_now

    again = runner.invoke(app, ["schedule", "--config", str(config), "--once",
                                "--database-url", url, "--tracking-uri", registry])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "no job is due" in again.stdout


def test_schedule_cli_rejects_a_bad_cron(tmp_path: Path) -> None:
    config = write(tmp_path / "schedule.toml", '[[jobs]]\nname = "x"\ncron = "every day"\n')
    result = runner.invoke(app, ["schedule", "--config", str(config), "--once"])
    assert result.exit_code == 2
    assert "jobs[0] (name 'x'): cron = 'every day': invalid (got 2 fields" in result.output
