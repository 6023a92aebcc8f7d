"""Retraining cycles end to end on a real MLflow registry (SQLite in a temp folder).

One tiny ESN is trained from an experiment file on a CSV; the tests then change the CSV (fresh
data), retrain through the CLI, make training fail, and start two cycles at once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.base import EpochStats
from training.cli import app
from training.errors import TrackingError
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.jobs.preparation import load_frame
from training.registry.tracking import Tracker
from training.retraining.retrain import FAILED_RUN_NAME, RetrainResult, retrain

pytestmark = pytest.mark.slow  # real training (tiny ESNs), about 30 s of CPU in all
runner = CliRunner()
NAME = f"retrain-{uuid.uuid4().hex[:8]}"

TOML = """
name = "{name}"
family = "esn"
horizon = 6

[data]
file = "series.csv"
time_col = "timestamp"
target_col = "load"
freq = "h"
last_rows = 600

[model]
lookback = 48
reservoir_size = 60
device = "cpu"

[gate]
metric = "mae"
margin = 0.01
"""


def hourly(start: int, n: int, period: float, amplitude: float) -> pd.DataFrame:
    """n hourly rows from 2024-01-01 + start hours of a noisy sine with this period."""
    rng = np.random.default_rng(start)
    t = np.arange(start, start + n)
    load = 20 + amplitude * np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal(n)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(t, unit="h")
    return pd.DataFrame({"timestamp": stamps, "load": load})


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A registry whose model NAME has a champion (v1) trained on a daily-period CSV."""
    root = tmp_path_factory.mktemp("retrain")
    csv = root / "series.csv"
    hourly(0, 400, period=24, amplitude=3).to_csv(csv, index=False)
    config = root / "experiment.toml"
    config.write_text(TOML.format(name=NAME))
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    first = train(TrainSpec.from_toml(config), uri)
    assert first.version == 1 and first.promoted
    config.unlink()  # the replay must not need the experiment file
    return uri, csv


def test_retrain_on_fresh_data_promotes_a_new_champion(seeded: tuple[str, Path]) -> None:
    uri, csv = seeded
    tracker = Tracker(uri)
    before = tracker.aliases(NAME)["champion"]
    # period 10: not a divisor of the day, so the challenger must (and can) beat seasonal naive
    fresh = pd.concat([pd.read_csv(csv), hourly(400, 500, period=10, amplitude=6)])
    fresh.to_csv(csv, index=False)  # new observations with a different pattern arrive

    result = runner.invoke(app, ["retrain", NAME, "--json", "--tracking-uri", uri])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= {
        "model_name", "challenger_version", "champion_version_before",
        "champion_version_after", "promoted", "scores", "data",
    }  # fmt: skip
    assert out["model_name"] == NAME
    assert out["champion_version_before"] == before
    assert out["challenger_version"] == max(v.version for v in tracker.versions(NAME))
    assert set(out["scores"]) == {"metric", "challenger", "champion", "margin"}
    assert out["scores"]["metric"] == "mae" and out["scores"]["margin"] == 0.01
    # The old champion (daily pattern) is scored on the same new windows and loses.
    assert out["scores"]["challenger"] < out["scores"]["champion"] * (1 - 0.01)
    assert out["promoted"] is True
    assert out["champion_version_after"] == out["challenger_version"]
    assert tracker.aliases(NAME)["champion"] == out["challenger_version"]
    assert out["data"]["rows"] == 600  # last_rows of the 900 fresh rows
    assert out["data"]["end"] == "2024-02-07T11:00:00"  # hour 899
    run = tracker.run_data(out["run_id"])
    assert run.tags["retrain"] == "true"
    assert run.tags["data_end"] == "2024-02-07T11:00:00"
    assert run.tags["data_start"] == "2024-01-13T12:00:00"  # hour 300
    assert run.tags["champion_version_before"] == str(before)
    assert run.tags["gate_decision"] == "promoted"
    assert run.params["data_rows"] == "600"


def test_failed_cycle_leaves_the_champion_and_is_recorded(
    seeded: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, _ = seeded
    tracker = Tracker(uri)
    champion = tracker.aliases(NAME)["champion"]
    versions = [v.version for v in tracker.versions(NAME)]

    def crash(stats: EpochStats) -> None:
        raise RuntimeError(f"simulated crash after epoch {stats.epoch}")

    with (
        caplog.at_level(logging.ERROR, logger="training.retraining.retrain"),
        pytest.raises(RuntimeError, match="simulated crash after epoch"),
    ):
        retrain(NAME, tracking_uri=uri, callback=crash, lock_dir=tmp_path, force=True)

    assert tracker.aliases(NAME)["champion"] == champion
    assert [v.version for v in tracker.versions(NAME)] == versions  # nothing registered
    newest, pipeline_run = tracker.runs(NAME)[:2]
    assert newest.status == "FAILED"
    assert newest.tags["mlflow.runName"] == FAILED_RUN_NAME
    assert newest.tags["retrain_status"] == "failed"
    assert newest.tags["retrain_error"].startswith("RuntimeError: simulated crash after epoch")
    assert newest.tags["champion_version_before"] == str(champion)
    assert pipeline_run.status == "FAILED"  # the training run itself ended FAILED
    assert any(
        f"retrain {NAME} failed; champion v{champion} unchanged" in r.getMessage()
        for r in caplog.records
    )


def test_two_cycles_started_at_once_run_one_after_the_other(
    seeded: tuple[str, Path], tmp_path: Path
) -> None:
    uri, _ = seeded
    results: list[RetrainResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def cycle() -> None:
        barrier.wait()
        try:
            # force: the second cycle sees no new data and would otherwise skip
            results.append(retrain(NAME, tracking_uri=uri, lock_dir=tmp_path, force=True))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=cycle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    first, second = sorted(results, key=lambda r: r.challenger_version)
    assert second.challenger_version == first.challenger_version + 1
    # The second cycle began after the first had finished: it saw the first's decision ...
    assert second.champion_version_before == first.champion_version_after
    # ... and the training runs do not overlap in time.
    tracker = Tracker(uri)
    a, b = tracker.run_data(first.run_id), tracker.run_data(second.run_id)
    assert a.end_ms is not None and a.end_ms <= b.start_ms


def test_a_cycle_without_new_data_skips_and_records_why(seeded: tuple[str, Path]) -> None:
    uri, _ = seeded
    tracker = Tracker(uri)
    before = [v.version for v in tracker.versions(NAME)]
    trained = retrain(NAME, tracking_uri=uri, force=True)  # the champion now saw this data
    assert trained.skipped is None and trained.challenger_version == before[-1] + 1
    champion = trained.champion_version_after
    assert champion is not None
    skipped = retrain(NAME, tracking_uri=uri)
    assert skipped.skipped is not None and "no new observations" in skipped.skipped
    assert skipped.challenger_version is None and skipped.champion_version_after == champion
    assert [v.version for v in tracker.versions(NAME)] == [*before, trained.challenger_version]
    assert "no new observations" in tracker.version(NAME, champion).tags["retrain_skipped"]
    result = runner.invoke(app, ["retrain", NAME, "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    assert "no new observations" in json.loads(result.stdout)["skipped"]


def test_unknown_model_is_a_clear_error(seeded: tuple[str, Path]) -> None:
    uri, _ = seeded
    with pytest.raises(TrackingError) as caught:
        retrain("no-such-model", tracking_uri=uri)
    assert str(caught.value).startswith("registered model 'no-such-model' does not exist in ")
    assert f"(registered: {NAME}). Fix: train it first" in str(caught.value)
    result = runner.invoke(app, ["retrain", "no-such-model", "--tracking-uri", uri])
    assert result.exit_code == 2
    assert "error: registered model 'no-such-model' does not exist" in result.output


def test_load_frame_reads_the_spec_source_again(seeded: tuple[str, Path]) -> None:
    _, csv = seeded
    spec = TrainSpec(
        family="esn", horizon=6, data=str(csv), time_col="timestamp", target_col="load",
        freq="h", last_rows=50,
    )  # fmt: skip
    frame = load_frame(spec)
    assert frame.rows == 50
    assert frame.end == pd.read_csv(csv, parse_dates=["timestamp"])["timestamp"].iloc[-1]


def test_store_backed_spec_retrains_on_what_was_ingested(tmp_path: Path) -> None:
    """A `series` spec reads the series store; new observations reach the next cycle."""
    from training.store import SeriesStore

    url = f"sqlite:///{tmp_path}/series.db"
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    first = hourly(0, 400, period=24, amplitude=3)
    with SeriesStore(url) as store:
        store.upsert_series("meter-1", frequency="h", target="load")
        store.upsert_observations("meter-1", first["timestamp"].tolist(), first["load"].tolist())
    spec = TrainSpec(
        family="esn", horizon=6, series=("meter-1",), lookback=48,
        model={"reservoir_size": 60}, device="cpu", name=f"store-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    assert spec.source == "store" and spec.data_label == "store:meter-1"
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    result = train(spec, uri, frame=load_frame(spec, url))
    assert result.version == 1 and result.data["rows"] == 400
    fresh = hourly(400, 100, period=12, amplitude=5)
    with SeriesStore(url) as store:
        store.upsert_observations("meter-1", fresh["timestamp"].tolist(), fresh["load"].tolist())
    cycle = retrain(spec.model_name, tracking_uri=uri, database_url=url, lock_dir=tmp_path)
    assert cycle.rows == 500 and cycle.source == "store:meter-1"
    assert cycle.end == fresh["timestamp"].iloc[-1].isoformat()
