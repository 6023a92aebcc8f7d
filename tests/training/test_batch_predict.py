"""`forecast predict`: batch forecasts from the registry, in-process and on a 2-node Ray cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.retraining.schedule import Job, load_schedule
from training.retraining.scheduler import Scheduler
from training.settings import TrainSettings
from training.store import SeriesStore

from .test_tracking import fresh_store

METERS = ("m1", "m2", "m3")


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hourly meters with a daily cycle, 240 hours each."""
    rng = np.random.default_rng(11)
    t = np.arange(240)
    parts = [
        pd.DataFrame(
            {
                "meter": name,
                "time": pd.date_range("2024-03-01", periods=t.size, freq="h").astype(str),
                "load": 10.0 * (i + 1)
                + 3 * np.sin(2 * np.pi * t / 24)
                + rng.standard_normal(t.size),
            }
        )
        for i, name in enumerate(METERS)
    ]
    path = tmp_path_factory.mktemp("predict") / "meters.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory, panel: Path) -> str:
    """An MLflow store whose model "meters" has a champion (v1: a small ESN)."""
    uri = fresh_store(tmp_path_factory, "predict")
    spec = TrainSpec(
        family="esn", horizon=6, data=str(panel), time_col="time", target_col="load",
        id_col="meter", lookback=24, device="cpu", name="meters",
        model={"reservoir_size": 16},
    )  # fmt: skip
    assert train(spec, uri, settings=TrainSettings()).promoted
    return uri


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory, panel: Path) -> str:
    """A series store holding the three meters."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'series.db'}"
    table = pd.read_csv(panel)
    with SeriesStore(url) as store:
        for name, rows in table.groupby("meter"):
            store.upsert_series(str(name), frequency="h", target="load")
            store.upsert_observations(str(name), rows["time"].tolist(), rows["load"].to_numpy())
    return url


def _predict(*args: str, where: str = "in this process") -> pd.DataFrame:
    result = CliRunner().invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    assert where in result.stdout
    out = Path(args[args.index("--output") + 1])
    return pd.read_parquet(out)


@pytest.mark.slow
def test_in_process_and_on_the_cluster_give_identical_rows(
    ray_cluster: str, uri: str, store_url: str, tmp_path: Path
) -> None:
    common = ["meters", "--all", "--database-url", store_url, "--tracking-uri", uri,
              "--shard-size", "2"]  # fmt: skip
    local = _predict(*common, "--output", str(tmp_path / "local.parquet"))
    ray = _predict(
        *common,
        "--ray-address",
        ray_cluster,
        "--output",
        str(tmp_path / "ray.parquet"),
        where="on 2 Ray node(s)",
    )
    pd.testing.assert_frame_equal(local, ray)
    assert list(local.columns[:6]) == ["model_name", "model_version", "series_id", "origin",
                                       "timestamp", "step"]  # fmt: skip
    assert sorted(local["series_id"].unique()) == list(METERS)
    assert len(local) == len(METERS) * 6 and set(local["model_version"]) == {1}
    last = pd.Timestamp("2024-03-01") + pd.Timedelta(hours=239)
    assert (local["origin"] == last).all()
    assert (local["timestamp"] == last + pd.to_timedelta(local["step"], unit="h")).all()
    assert (local["lower_95"] <= local["lower_80"]).all()
    assert (local["lower_80"] <= local["mean"]).all() and (local["mean"] <= local["upper_80"]).all()


def test_a_file_of_many_series_with_a_version_and_a_horizon(
    uri: str, panel: Path, tmp_path: Path
) -> None:
    rows = _predict("meters", "--data", str(panel), "--time-col", "time", "--target-col", "load",
                    "--id-col", "meter", "--version", "1", "--horizon", "3", "--levels", "90",
                    "--tracking-uri", uri, "--output", str(tmp_path / "f.parquet"))  # fmt: skip
    assert len(rows) == len(METERS) * 3
    assert {"lower_90", "upper_90"} <= set(rows.columns) and "lower_80" not in rows.columns
    # Each series is forecast from its own history: the levels (10, 20, 30) carry through.
    means = rows.groupby("series_id")["mean"].mean()
    assert means["m1"] < means["m2"] < means["m3"]


def test_to_store_records_once_per_origin_and_is_scored_on_ingestion(
    uri: str, store_url: str, tmp_path: Path
) -> None:
    args = ["meters", "--series", "m1,m2", "--database-url", store_url, "--tracking-uri", uri,
            "--to-store", "--output", str(tmp_path / "f.parquet")]  # fmt: skip
    rows = _predict(*args)
    _predict(*args)  # the same origin again: replaces, never duplicates
    with SeriesStore(store_url) as store:
        logged = store.forecast_log.forecasts("m1", model="meters")
        assert len(logged) == 1 and store.forecast_log.forecasts("m3") == []
        [m1] = logged
        expected = rows[rows["series_id"] == "m1"].sort_values("step")
        assert m1.version == "1" and m1.mean == pytest.approx(expected["mean"].tolist())
        assert m1.intervals[80][0] == pytest.approx(expected["lower_80"].tolist())
        assert m1.actuals == [None] * 6
        assert store.forecast_log.scores(model="meters") == []
        actual = [11.0, 12.0]
        store.upsert_observations("m1", [str(t) for t in m1.timestamps[:2]], actual)
        [scores] = store.forecast_log.scores(model="meters")
    assert scores.overall.points == 2
    errors = np.abs(np.array(actual) - expected["mean"].to_numpy()[:2])
    assert scores.overall.mae == pytest.approx(errors.mean())


def test_a_scheduled_predict_job_records_the_champions_forecasts(uri: str, store_url: str) -> None:
    job = Job(name="forecast-meters", task="predict", model="meters", cron="* * * * *",
              series=("m2",), horizon=3)  # fmt: skip
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    with Scheduler([job], store_url, uri, clock=lambda: now[0]) as scheduler:
        now[0] += timedelta(minutes=2)
        [cycle] = scheduler.run_pending()
    assert cycle.status == "succeeded", cycle.error
    assert {k: cycle.versions[k] for k in ("model", "version", "series", "recorded")} == {
        "model": "meters", "version": 1, "series": 1, "recorded": 1,
    }  # fmt: skip
    with SeriesStore(store_url) as store:
        [logged] = store.forecast_log.forecasts("m2", model="meters")
    assert len(logged.mean) == 3 and logged.version == "1"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('task = "predict"\ntrigger = "drift"', 'trigger = "drift" retrains; a predict job'),
        ('series = ["a"]', 'model, series and horizon belong to task = "predict" jobs'),
    ],
)
def test_predict_job_settings_are_checked(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(f'[[jobs]]\nname = "p"\ncron = "0 3 * * *"\n{table}\n')
    with pytest.raises(ExperimentError, match="jobs\\[0\\]") as caught:
        load_schedule(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["meters", "--data", "x.csv", "--to-store"], "--to-store records forecasts of stored"),
        (["nobody", "--all"], "registered model 'nobody' has no alias 'champion'"),
        (["meters", "--all", "--alias", "gold"], "has no alias 'gold' (aliases: challenger"),
        (["meters", "--all", "--data", "x.csv"], "--all and --data given: pass exactly one"),
        (["meters"], "no data flag given: pass exactly one"),
        (["meters", "--all", "--output", "x.csv"], "--output 'x.csv': must end in .parquet"),
        (["meters", "--all", "--version", "9"], "registered model 'meters' has no version 9"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(uri: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["predict", *args, "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_future_is_refused_for_a_model_without_future_covariates(uri: str, tmp_path: Path) -> None:
    args = ["predict", "meters", "--all", "--future", str(tmp_path / "w.csv"),
            "--tracking-uri", uri]  # fmt: skip
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # the error is the only line
    result = CliRunner().invoke(app, args, env=quiet)
    assert result.exit_code == 2, result.output
    assert "'meters' version 1 reads no future covariates. Fix: drop --future" in result.stderr
    assert result.stderr.count("\n") == 1
