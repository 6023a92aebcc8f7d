"""Future covariates in training/: holidays, frames, specs, windows, noise, pyfunc, the CLI."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models import io as models_io
from tests.training.test_store import hours, store_fixture, store_url_fixture  # noqa: F401
from training.cli import app
from training.data.known import holiday_column, holiday_indicator, with_future_covariates
from training.errors import DataError, ExperimentError
from training.evaluation.windows import frame_windows, with_covariate_noise
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import build_config, fit_series, load_frame
from training.registry.pyfunc_model import forecast_frame
from training.store import SeriesStore

from .test_tracking import fresh_store

# ---- holidays ---------------------------------------------------------------------------------


def test_holiday_indicator_matches_the_holidays_package() -> None:
    stamps = np.array(
        ["2011-07-04T00", "2011-07-04T23", "2011-07-05T12", "2012-12-25T08", "2012-03-31T09"],
        dtype="datetime64[s]",
    )
    flags = holiday_indicator(stamps[None, :], "holiday:US")  # [1, 5]
    us = holidays.country_holidays("US", years=[2011, 2012])
    expected = [float(pd.Timestamp(s).date() in us) for s in stamps]
    assert flags.shape == (1, 5) and flags[0].tolist() == expected == [1, 1, 0, 1, 0]
    assert datetime.date(2011, 7, 4) in us
    # Cesar Chavez Day (March 31) is a California holiday, not a federal one
    assert holiday_indicator(stamps, "holiday:US-CA")[-1] == 1.0
    assert holiday_column("us-ca") == "holiday:US-CA" and holiday_column("US") == "holiday:US"


def test_unknown_holiday_country_or_subdivision_is_named() -> None:
    with pytest.raises(DataError, match=r"holidays='XX': 'XX' is not a country"):
        holiday_column("XX")
    with pytest.raises(DataError, match=r"'ZZ' is not a subdivision of US"):
        holiday_column("US-ZZ")


# ---- frames, specs and windows ----------------------------------------------------------------


def _spec(**extra: object) -> TrainSpec:
    return TrainSpec.from_flags(
        dataset="demand/bike-hourly", horizon=24, family="esn", last_rows=700, **extra
    )


def test_bike_frame_moves_future_columns_and_adds_holidays() -> None:
    spec = _spec(covariates=("windspeed",), future_covariates=("temp", "hum"), holidays="US")
    frame = load_frame(spec)
    assert frame.covariates == ("windspeed",)
    assert frame.future_covariates == ("temp", "hum", "holiday:US")
    assert list(frame.table.columns)[3:] == ["windspeed", "temp", "hum", "holiday:US"]
    christmas = frame.table["timestamp"].dt.strftime("%m-%d") == "12-25"
    assert (frame.table.loc[christmas, "holiday:US"] == 1.0).all() and christmas.any()
    (series,) = frame.to_series()
    assert series.future_covariates is not None and series.future_covariates.shape == (700, 3)
    config = build_config(spec, frame, 48)
    assert config.future_covariates == ("temp", "hum", "holiday:US")
    train, val = fit_series(frame, spec, 48)
    assert train[0].future_covariates is not None and val[0].future_covariates is not None
    assert len(val[0].future_covariates) == len(val[0].values)


def test_unknown_future_column_is_named() -> None:
    frame = load_frame(_spec(covariates=("temp",)))
    with pytest.raises(DataError, match=r"future covariate 'rain' is not a loaded column"):
        with_future_covariates(frame, ["rain"])


def test_a_gap_in_a_future_covariate_names_its_row_and_column(tmp_path: Path) -> None:
    stamps = pd.date_range("2024-01-01", periods=120, freq="h")
    table = pd.DataFrame(
        {"time": stamps, "load": np.arange(120.0), "temp": np.linspace(0, 10, 120)}
    )
    table.loc[57, "temp"] = np.nan
    path = tmp_path / "load.csv"
    table.to_csv(path, index=False)
    spec = TrainSpec.from_flags(
        data=str(path), time_col="time", target_col="load", horizon=6,
        future_covariates=("temp",), fill="reject",
    )  # fmt: skip
    message = r"row 58 \(line 59\): 'temp' of series 'load' at .* is missing"
    with pytest.raises(DataError, match=message):
        load_frame(spec)


def test_spec_reads_future_covariates_from_a_file_and_refuses_bad_combinations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bike.toml"
    path.write_text(
        'family = "gru"\nhorizon = 24\n[data]\ndataset = "demand/bike-hourly"\n'
        'future_covariates = ["temp", "workingday"]\nholidays = "US"\n'
        "[evaluation]\ncovariate_noise = 0.5\n"
    )
    spec = TrainSpec.from_toml(path)
    assert spec.future_covariates == ("temp", "workingday") and spec.holidays == "US"
    assert spec.covariate_noise == 0.5
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ExperimentError, match=r"in both covariates and future_covariates"):
        _spec(covariates=("temp",), future_covariates=("temp",))
    with pytest.raises(ExperimentError, match=r"need protocol 'ratio'"):
        TrainSpec.from_flags(dataset="load/etth1", horizon=24, holidays="US", protocol="ett")
    with pytest.raises(ExperimentError, match=r"covariate_noise=0.5 without future covariates"):
        _spec(covariate_noise=0.5)


def test_windows_carry_recorded_future_values_and_noise_touches_only_the_horizon() -> None:
    spec = _spec(future_covariates=("temp",), holidays="US")
    frame = load_frame(spec)
    stack = frame_windows(frame, 24, 48, part="test")
    fut = stack.future_covariates
    assert fut is not None and fut.shape == (len(stack), 48 + 24, 2)
    temp = frame.table["temp"].to_numpy()
    first = len(temp) - len(stack) - 24 + 1 - 48  # the first test window's first history row
    assert np.allclose(fut[0, :, 0], temp[first : first + 72])
    noisy = with_covariate_noise(stack, 0.5, frame.future_covariates, seed=1)
    assert noisy.future_covariates is not None
    assert np.array_equal(noisy.future_covariates[:, :48], fut[:, :48])  # history: observed
    assert np.array_equal(noisy.future_covariates[..., 1], fut[..., 1])  # holidays: exact
    moved = np.abs(noisy.future_covariates[:, 48:, 0] - fut[:, 48:, 0])
    spread = fut[..., 0].std()  # noise is in stds of the column over the stack
    assert 0.3 * spread < moved.mean() < 0.5 * spread  # E|N(0, 0.5 s)| = 0.4 s
    assert with_covariate_noise(stack, 0.0, frame.future_covariates) is stack


def test_the_store_keeps_covariate_columns_for_future_covariates(
    store: SeriesStore, store_url: str
) -> None:
    stamps = hours(0, 200)
    temp = np.sin(np.arange(200) / 7.0)
    store.upsert_series("bikes", frequency="h", target="rides")
    store.upsert_observations("bikes", stamps, np.arange(200.0), {"temp": temp})
    _, _, kept = store.latest("bikes", 5)
    assert np.allclose(kept["temp"], temp[-5:])
    spec = TrainSpec.from_flags(
        series=("bikes",), horizon=6, future_covariates=("temp",), holidays="US"
    )
    frame = load_frame(spec, store_url)
    assert frame.future_covariates == ("temp", "holiday:US") and frame.covariates == ()
    (series,) = frame.to_series()
    assert series.future_covariates is not None
    assert np.allclose(series.future_covariates[:, 0], temp)


# ---- pyfunc and the CLI -----------------------------------------------------------------------


def test_pyfunc_reads_future_covariates_from_rows_after_the_history() -> None:
    spec = _spec(future_covariates=("temp",), holidays="US")
    frame = load_frame(spec)
    config = build_config(spec, frame, 48)
    model = models_io.create(
        type(config).from_dict({**config.to_dict(), "reservoir_size": 20, "washout": 24})
    )
    model.fit(*fit_series(frame, spec, 48))
    rows = frame.table.iloc[-72:].drop(columns="series_id").copy()
    rows.loc[rows.index[-24:], "value"] = np.nan
    out = forecast_frame(model, rows, {"horizon": 24})
    assert len(out) == 24 and out["mean"].notna().all()
    warmer = rows.copy()
    warmer.loc[warmer.index[-24:], "temp"] += 0.3
    assert not np.allclose(forecast_frame(model, warmer, {"horizon": 24})["mean"], out["mean"])
    with pytest.raises(ValueError, match=r"0 row\(s\) after its last value"):
        forecast_frame(model, frame.table.iloc[-72:], {"horizon": 24})


def test_train_cli_takes_future_covariate_flags(tmp_path_factory: pytest.TempPathFactory) -> None:
    uri = fresh_store(tmp_path_factory, "future")
    args = ["train", "--dataset", "demand/bike-hourly", "--family", "esn", "--horizon", "6",
            "--last-rows", "500", "--lookback", "24", "--future-covariates", "temp,hum",
            "--holidays", "US", "--covariate-noise", "0.3", "--device", "cpu",
            "--tracking-uri", uri, "--json", "--allow-worse-than-baseline"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["version"] == 1 and np.isfinite(out["metrics"]["test_mae"])
    import mlflow

    from training.registry.compare import leaderboard, render
    from training.registry.tracking import Tracker

    with Tracker(uri).active():
        info = mlflow.models.get_model_info("models:/demand-bike-hourly/1")
        pyfunc = mlflow.pyfunc.load_model("models:/demand-bike-hourly/1")
        example = pyfunc.input_example
    assert info.signature is not None
    assert info.signature.inputs.input_names()[-3:] == ["temp", "hum", "holiday:US"]
    assert example["value"].isna().sum() == 6  # the horizon's rows carry only covariates
    assert len(pyfunc.predict(example, params={"horizon": 6})) == 6
    rows = leaderboard(Tracker(uri), "demand-bike-hourly")
    assert rows[0]["future_covariates"] == ["temp", "hum", "holiday:US"]
    assert render(rows, "demand-bike-hourly", "test_mae").row_count == 1
