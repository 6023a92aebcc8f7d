"""`forecast predict` with a model that reads future covariates: the horizon's values from the
rows after each series' last value in a --data file, or from --future for stored series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from training.cli import app
from training.data.known import holiday_indicator
from training.jobs.batch_predict import load_forecaster, resolve_model
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.registry.tracking import Tracker
from training.settings import TrainSettings
from training.store import SeriesStore

from .test_tracking import fresh_store

METERS = ("m1", "m2", "m3")
HOURS, H = 240, 6  # the last H hours of each meter are the horizon


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """Three hourly meters whose load follows a temperature, 240 hours each."""
    rng = np.random.default_rng(5)
    t = np.arange(HOURS)
    parts = []
    for i, name in enumerate(METERS):
        temp = 10 + 5 * np.sin(2 * np.pi * (t + 5 * i) / 24) + rng.standard_normal(t.size)
        parts.append(
            pd.DataFrame(
                {
                    "meter": name,
                    "time": pd.date_range("2024-06-24", periods=HOURS, freq="h").astype(str),
                    "load": 10.0 * (i + 1) + 0.8 * temp + 0.3 * rng.standard_normal(t.size),
                    "temp": temp,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory, panel: pd.DataFrame) -> str:
    """An MLflow store whose model "meters-temp" (a small ESN reading temp and US holidays
    ahead) has a champion."""
    path = tmp_path_factory.mktemp("predict-future") / "train.csv"
    panel.to_csv(path, index=False)
    uri = fresh_store(tmp_path_factory, "predict-future")
    spec = TrainSpec(
        family="esn", horizon=H, data=str(path), time_col="time", target_col="load",
        id_col="meter", lookback=24, device="cpu", name="meters-temp",
        future_covariates=("temp",), holidays="US", model={"reservoir_size": 16},
    )  # fmt: skip
    assert train(spec, uri, settings=TrainSettings(), allow_worse_than_baseline=True).promoted
    return uri


def _with_horizon(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel with each meter's last H loads emptied: those rows carry only temp."""
    table = panel.copy()
    ahead = table.groupby("meter").cumcount() >= HOURS - H
    table.loc[ahead, "load"] = np.nan
    return table


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, panel: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("predict-future-data") / "meters.csv"
    _with_horizon(panel).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory, panel: pd.DataFrame) -> str:
    """A series store holding each meter's history (load and temp), without the horizon."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store-future') / 'series.db'}"
    with SeriesStore(url) as store:
        for name, rows in panel.groupby("meter"):
            past = rows.iloc[: HOURS - H]
            store.upsert_series(str(name), frequency="h", target="load")
            store.upsert_observations(str(name), past["time"].tolist(), past["load"].to_numpy(),
                                      {"temp": past["temp"].to_numpy()})  # fmt: skip
    return url


def _future_file(panel: pd.DataFrame, path: Path) -> Path:
    """series_id, timestamp, temp: each meter's horizon, plus an older row (ignored)."""
    rows = panel.groupby("meter").tail(H + 1)
    table = rows.rename(columns={"meter": "series_id", "time": "timestamp"})
    table[["series_id", "timestamp", "temp"]].to_csv(path, index=False)
    return path


def _run(*args: str) -> Result:
    # without MLflow's download progress bar, an error is the only line on stderr
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    return CliRunner().invoke(app, ["predict", *args], env=quiet)


def _rows(uri: str, tmp_path: Path, *args: str) -> pd.DataFrame:
    out = tmp_path / "out.parquet"
    result = _run("meters-temp", *args, "--tracking-uri", uri, "--output", str(out))
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


def test_a_file_carries_the_horizons_values_after_each_series(
    uri: str, data: Path, panel: pd.DataFrame, tmp_path: Path
) -> None:
    rows = _rows(uri, tmp_path, "--data", str(data), "--time-col", "time", "--target-col",
                 "load", "--id-col", "meter")  # fmt: skip
    assert len(rows) == len(METERS) * H and sorted(rows["series_id"].unique()) == list(METERS)
    origin = pd.Timestamp("2024-06-24") + pd.Timedelta(hours=HOURS - H - 1)
    assert (rows["origin"] == origin).all()
    assert (rows["timestamp"] == origin + pd.to_timedelta(rows["step"], unit="h")).all()
    # the same forecast as the model's own predict() given history and horizon
    model = load_forecaster(resolve_model(Tracker(uri), "meters-temp").files)
    m1 = panel[panel["meter"] == "m1"].iloc[HOURS - H - 24 :]  # 24 history + H horizon rows
    stamps = pd.to_datetime(m1["time"]).to_numpy(dtype="datetime64[ns]")
    future = np.stack([m1["temp"].to_numpy(), holiday_indicator(stamps, "holiday:US")], 1)
    direct = model.predict(
        m1["load"].to_numpy(np.float32)[None, :24], H, timestamps=stamps[None, :24],
        future_covariates=future[None].astype(np.float32),
    )  # fmt: skip
    got = rows[rows["series_id"] == "m1"].sort_values("step")["mean"].to_numpy()
    assert np.allclose(got, direct.mean[0], rtol=1e-5)


def test_a_parquet_file_with_datetime_stamps_gives_the_same_rows(
    uri: str, data: Path, panel: pd.DataFrame, tmp_path: Path
) -> None:
    table = _with_horizon(panel)
    table["time"] = pd.to_datetime(table["time"])
    table.to_parquet(tmp_path / "meters.parquet", index=False)
    args = ["--time-col", "time", "--target-col", "load", "--id-col", "meter"]
    parquet = _rows(uri, tmp_path, "--data", str(tmp_path / "meters.parquet"), *args)
    csv = _rows(uri, tmp_path, "--data", str(data), *args)
    pd.testing.assert_frame_equal(parquet, csv)


def test_stored_series_read_the_horizon_from_future(
    uri: str, data: Path, store_url: str, panel: pd.DataFrame, tmp_path: Path
) -> None:
    future = _future_file(panel, tmp_path / "weather.csv")
    stored = _rows(uri, tmp_path, "--all", "--database-url", store_url, "--future", str(future),
                   "--to-store")  # fmt: skip
    from_file = _rows(uri, tmp_path, "--data", str(data), "--time-col", "time", "--target-col",
                      "load", "--id-col", "meter")  # fmt: skip
    pd.testing.assert_frame_equal(stored, from_file, check_exact=False, rtol=1e-6)
    with SeriesStore(store_url) as store:
        [logged] = store.forecast_log.forecasts("m2", model="meters-temp")
    assert len(logged.mean) == H


@pytest.mark.slow
def test_the_cluster_gives_the_same_rows_with_future_covariates(
    ray_cluster: str, uri: str, data: Path, tmp_path: Path
) -> None:
    args = ["--data", str(data), "--time-col", "time", "--target-col", "load", "--id-col",
            "meter", "--shard-size", "2"]  # fmt: skip
    local = _rows(uri, tmp_path, *args)
    ray = _rows(uri, tmp_path, *args, "--ray-address", ray_cluster)
    pd.testing.assert_frame_equal(local, ray)


def _bad_data(panel: pd.DataFrame, change: str) -> pd.DataFrame:
    table = _with_horizon(panel)
    last = table.groupby("meter").tail(H).index  # the horizon rows
    if change == "short":
        return table.drop(index=last[H + 3 : 2 * H])  # m2 keeps 3 of its 6
    if change == "nan":
        table.loc[last[1], "temp"] = np.nan  # m1, step 2
        return table
    if change == "gap":
        return table.drop(index=last[2 * H + 2])  # m3 lacks step 3
    return table.drop(columns="temp")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("short", "series 'm2' has 3 row(s) of 'temp' after its last observed value at "
         "2024-07-03 17:00:00; the model reads them at each of the 6 forecast steps"),
        ("nan", "row 236 (line 237): 'temp' of series 'm1' is empty at 2024-07-03 19:00:00, "
         "forecast step 2"),
        ("gap", "series 'm3' has a row at 2024-07-03 21:00:00 where forecast step 3 is at "
         "2024-07-03 20:00:00"),
        ("column", "column 'temp' not found"),
    ],
)  # fmt: skip
def test_a_bad_horizon_in_the_file_is_one_line_and_exit_2(
    uri: str, panel: pd.DataFrame, tmp_path: Path, change: str, message: str
) -> None:
    path = tmp_path / "meters.csv"
    _bad_data(panel, change).to_csv(path, index=False)
    result = _run("meters-temp", "--data", str(path), "--time-col", "time", "--target-col",
                  "load", "--id-col", "meter", "--tracking-uri", uri)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.stderr and str(path) in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def _bad_future(panel: pd.DataFrame, change: str, path: Path) -> list[str]:
    _future_file(panel, path)
    table = pd.read_csv(path)
    if change == "missing":
        table = table[table["series_id"] != "m3"]
    elif change == "nan":
        table.loc[table.index[(H + 1) + 4], "temp"] = np.nan  # m2, step 4
    elif change == "column":
        table = table.drop(columns="temp")
    elif change == "shifted":
        table["timestamp"] = pd.to_datetime(table["timestamp"]) + pd.Timedelta(minutes=30)
    table.to_csv(path, index=False)
    return ["--future", str(path)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("none", "reads the future covariates ['temp', 'holiday:US'] over the horizon, and "
         "the store holds only the past. Fix: pass --future FILE (CSV or Parquet: series_id, "
         "timestamp, temp) with each series' next 6 values"),
        ("missing", "series 'm3' has 0 row(s) of 'temp' after its last observed value"),
        ("nan", "'temp' of series 'm2' is empty at 2024-07-03 21:00:00, forecast step 4"),
        ("column", "column 'temp' not found"),
        ("shifted", "series 'm1' has a row at 2024-07-03 17:30:00 where forecast step 1 is at "
         "2024-07-03 18:00:00"),
    ],
)  # fmt: skip
def test_a_bad_future_file_is_one_line_and_exit_2(
    uri: str, store_url: str, panel: pd.DataFrame, tmp_path: Path, change: str, message: str
) -> None:
    future = [] if change == "none" else _bad_future(panel, change, tmp_path / "w.csv")
    result = _run("meters-temp", "--all", "--database-url", store_url, *future,
                  "--tracking-uri", uri)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_future_goes_with_stored_series_only(uri: str, data: Path, tmp_path: Path) -> None:
    result = _run("meters-temp", "--data", str(data), "--future", str(tmp_path / "w.csv"),
                  "--tracking-uri", uri)  # fmt: skip
    assert result.exit_code == 2
    assert "--future gives the horizon of stored series (--series/--all)" in result.stderr
