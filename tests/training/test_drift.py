"""Drift-triggered retraining: a `trigger = "drift"` job reads the champion's live scores from
the forecast log, skips with its figures while they hold, and retrains (tagging the run with
the figures) once live MASE passes the threshold. Real SQLite store, real MLflow, real cycle."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.jobs.preparation import load_frame
from training.registry.tracking import Tracker
from training.retraining.schedule import Job, load_schedule
from training.retraining.scheduler import Scheduler
from training.retraining.triggers import reference_mase
from training.store import SeriesStore
from training.store.forecast_log import ForecastRecord

T0 = datetime(2024, 1, 1)
SERIES = "meter-1"


_T = np.arange(500)
_VALUES = 20 + 3 * np.sin(2 * np.pi * _T / 24) + 0.1 * np.random.default_rng(0).standard_normal(500)


def _signal(start: int, n: int) -> np.ndarray:
    return _VALUES[start : start + n]


def _stamps(start: int, n: int) -> list[datetime]:
    return [T0 + timedelta(hours=start + i) for i in range(n)]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1)

    def __call__(self) -> datetime:
        return self.now


def _record(store: SeriesStore, name: str, origins: range, error: float) -> None:
    """Log a 3-step forecast at each origin: the truth of `_signal` plus `error`, with a
    seasonal-naive reference that is off by 1.0."""
    records = []
    for origin in origins:
        truth = _signal(origin + 1, 3)
        records.append(
            ForecastRecord(
                model=name,
                version="1",
                series_id=SERIES,
                origin=T0 + timedelta(hours=origin),
                timestamps=_stamps(origin + 1, 3),
                mean=(truth + error).tolist(),
                intervals={80: ((truth - 1).tolist(), (truth + 1).tolist())},
                naive=(truth + 1.0).tolist(),
            )
        )
    store.forecast_log.record(records)


def test_a_drift_job_skips_while_live_accuracy_holds_and_retrains_once_it_falls(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/series.db"
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    with SeriesStore(url) as store:
        store.upsert_series(SERIES, frequency="h", target="load")
        store.upsert_observations(SERIES, _stamps(0, 400), _signal(0, 400))
    name = f"drift-{uuid.uuid4().hex[:6]}"
    spec = TrainSpec(
        family="esn", horizon=3, series=(SERIES,), lookback=48, model={"reservoir_size": 40},
        device="cpu", name=name,
    )  # fmt: skip
    first = train(spec, uri, frame=load_frame(spec, url), allow_worse_than_baseline=True)
    assert first.champion_version == 1
    tracker = Tracker(uri)
    reference = reference_mase(tracker.run_data(first.run_id).metrics)
    assert reference is not None and reference > 0

    job = Job(name=name, cron="* * * * *", trigger="drift", drift_ratio=2.0, drift_window=5,
              drift_min_forecasts=3)  # fmt: skip
    clock = Clock()
    with Scheduler([job], url, uri, clock=clock) as scheduler:
        clock.now += timedelta(minutes=2)
        [undecided] = scheduler.run_pending()
        assert undecided.status == "skipped"
        assert "0 scored forecasts of v1, fewer than drift_min_forecasts = 3" in undecided.error

        # Accurate forecasts, scored as their actuals arrive: live MASE 0.1 / 1.0.
        _record(scheduler._store, name, range(399, 405), error=0.1)
        scheduler._store.upsert_observations(SERIES, _stamps(400, 8), _signal(400, 8))
        clock.now += timedelta(minutes=2)
        [holding] = scheduler.run_pending()
        assert holding.status == "skipped" and holding.error.startswith("no drift: live MASE")
        figures = holding.versions["drift"]
        assert figures["fired"] is False and figures["live_mase"] == pytest.approx(0.1)
        assert figures["reference_mase"] == pytest.approx(reference)

        # Then the forecasts go wrong (MASE 40 over the latest 5): the job retrains.
        _record(scheduler._store, name, range(407, 412), error=40.0)
        scheduler._store.upsert_observations(SERIES, _stamps(408, 8), _signal(408, 8))
        clock.now += timedelta(minutes=2)
        [fired] = scheduler.run_pending()
        assert fired.status == "succeeded", fired.error
        drift = fired.versions["drift"]
        assert drift["fired"] is True and drift["live_mase"] == pytest.approx(40.0)
        assert drift["forecasts"] == 5
        assert fired.versions["challenger"] == 2

    challenger = tracker.version(name, 2)
    tags = tracker.run_data(challenger.run_id).tags
    assert tags["retrain_trigger"] == "drift" and tags["drift_version"] == "1"
    assert float(tags["drift_live_mase"]) == pytest.approx(40.0, rel=1e-4)
    assert tags["drift_reason"].startswith("drift: live MASE 40.000 over 5 forecasts is above")

    result = CliRunner().invoke(
        app,
        ["schedule", "--status", "--json", "--database-url", url, "--tracking-uri", uri,
         "--config", str(_schedule(tmp_path, name))],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["jobs"][0]["trigger"] == "drift"
    assert [c["status"] for c in status["cycles"]] == ["succeeded", "skipped", "skipped"]

    # `forecast compare` puts each version's live figures next to its test scores.
    compare = ["compare", name, "--database-url", url, "--tracking-uri", uri]
    shown = CliRunner().invoke(app, [*compare, "--json"])
    assert shown.exit_code == 0, shown.output
    rows = {row["version"]: row for row in json.loads(shown.stdout)["versions"]}
    assert rows[1]["live_forecasts"] == 11 and rows[2]["live_forecasts"] == 0
    assert rows[1]["live_mase"] == pytest.approx((6 * 3 * 0.1 + 5 * 3 * 40.0) / 33)
    table = CliRunner().invoke(app, compare)
    assert table.exit_code == 0 and "live: the forecast log" in table.stdout  # live columns


def _schedule(folder: Path, name: str) -> Path:
    path = folder / "schedule.toml"
    path.write_text(
        f'[[jobs]]\nname = "{name}"\ncron = "* * * * *"\ntrigger = "drift"\n'
        "drift_window = 5\ndrift_min_forecasts = 3\n"
    )
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('trigger = "sometimes"', "trigger"),
        ("coverage_band = [0.9, 0.7]", "coverage_band = [0.9, 0.7]: must be [low, high]"),
        ("drift_window = 5\ndrift_min_forecasts = 6", "drift_min_forecasts = 6 is above"),
        ("drift_ratio = 0", "drift_ratio"),
    ],
)
def test_bad_drift_settings_name_the_field(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(f'[[jobs]]\nname = "m"\ncron = "0 3 * * *"\n{extra}\n')
    with pytest.raises(ExperimentError, match="jobs\\[0\\]") as caught:
        load_schedule(path)
    assert message in str(caught.value)
