"""`forecast predict`: batch forecasts from the registry, in-process and on a 2-node Ray cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
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
