"""The one contract every registered family passes: lstm, gru, rnn, esn and the baselines.

Configs are built through models.io from a shared dict plus a small per-family dict, so the
test treats every family the same way. Data: three hourly series at very different levels
(global training, per-window normalisation), two past covariates, calendar features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from models import io
from models.base import Forecast, Forecaster, SeriesData
from models.errors import ForecastInputError, ModelFileError

LOOKBACK, MAX_H, T = 24, 6, 240
LEVELS = (10.0, 100.0, -5.0)

SHARED: dict[str, Any] = {
    "lookback": LOOKBACK,
    "max_horizon": MAX_H,
    "frequency": "h",
    "target": "load",
    "covariates": ["temp", "price"],
    "calendar": True,
    "device": "cpu",
}
TINY: dict[str, dict[str, Any]] = {
    "lstm": {"hidden_size": 8, "epochs": 2, "segment_length": 4, "batch_size": 32, "seed": 3},
    "gru": {"hidden_size": 8, "epochs": 2, "segment_length": 4, "batch_size": 32, "seed": 3},
    "rnn": {"hidden_size": 8, "epochs": 2, "segment_length": 1, "decoder": "direct", "seed": 3},
    "esn": {"reservoir_size": 16, "washout": 12, "seed": 3},
    "naive": {},
    "seasonal_naive": {},
    "kalman": {},
}
FAMILIES = list(io.FAMILIES)


def test_every_registered_family_is_in_the_contract() -> None:
    assert set(TINY) == set(FAMILIES)


def _panel() -> list[SeriesData]:
    rng = np.random.default_rng(0)
    t = np.arange(T)
    stamps = np.datetime64("2021-03-01T00", "s") + t * np.timedelta64(1, "h")
    out = []
    for i, level in enumerate(LEVELS):
        cov = rng.standard_normal((T, 2)).astype(np.float32)  # [T, 2]
        daily = np.sin(2 * np.pi * (t + 3 * i) / 24)
        values = (
            level + (1 + abs(level) / 20) * daily + 0.3 * cov[:, 0] + 0.1 * rng.standard_normal(T)
        )
        out.append(SeriesData(values.astype(np.float32), stamps, cov, series_id=f"s{i}"))
    return out


def _split(panel: list[SeriesData], start: int, stop: int) -> list[SeriesData]:
    return [
        SeriesData(
            s.values[start:stop], s.timestamps[start:stop], s.covariates[start:stop], s.series_id
        )  # type: ignore[index]
        for s in panel
    ]


def _fit(family: str) -> Forecaster:
    model = io.create(io.config_from_dict({"family": family, **SHARED, **TINY[family]}))
    panel = _panel()
    model.fit(_split(panel, 0, 180), _split(panel, 180 - LOOKBACK, T))
    return model


def _inputs(panel: list[SeriesData], end: int = T) -> dict[str, np.ndarray]:
    return {
        "history": np.stack([s.values[:end] for s in panel]),  # [3, T]
        "timestamps": np.stack([s.timestamps[:end] for s in panel]),  # type: ignore[index]
        "covariates": np.stack([s.covariates[:end] for s in panel]),  # type: ignore[index]
    }


@pytest.fixture(scope="module")
def fitted() -> dict[str, Forecaster]:
    return {}


@pytest.fixture(params=FAMILIES)
def model(request: pytest.FixtureRequest, fitted: dict[str, Forecaster]) -> Forecaster:
    family: str = request.param
    if family not in fitted:
        fitted[family] = _fit(family)
    return fitted[family]


def _predict(model: Forecaster, horizon: int, **override: Any) -> Forecast:
    args = {**_inputs(_panel()), **override}
    history = args.pop("history")
    return model.predict(history, horizon, (80, 95), **args)


def test_meta_describes_the_model(model: Forecaster) -> None:
    meta = model.meta
    assert (meta.lookback, meta.max_horizon, meta.frequency) == (LOOKBACK, MAX_H, "h")
    assert meta.covariates == ("temp", "price") and meta.calendar and meta.target == "load"
    assert {80, 95} <= set(meta.conformal) and len(meta.conformal[80]) == MAX_H
    assert "torch" in meta.versions


def test_forecast_shapes_finite_and_ordered_intervals(model: Forecaster) -> None:
    f = _predict(model, MAX_H)
    assert f.mean.shape == (3, MAX_H) and not f.rolled
    for level in (80, 95):
        assert f.lower[level].shape == f.upper[level].shape == (3, MAX_H)
        assert np.isfinite(f.lower[level]).all() and np.isfinite(f.upper[level]).all()
        assert (f.lower[level] <= f.mean).all() and (f.mean <= f.upper[level]).all()
    assert np.isfinite(f.mean).all()
    width80, width95 = f.upper[80] - f.lower[80], f.upper[95] - f.lower[95]
    assert (width95 >= width80).all() and (width95 > width80).any()
    last = _inputs(_panel())["timestamps"][:, -1]
    assert f.timestamps is not None and f.timestamps.shape == (3, MAX_H)
    assert (f.timestamps[:, 0] == last + np.timedelta64(1, "h")).all()


def test_each_series_is_forecast_at_its_own_level(model: Forecaster) -> None:
    f = _predict(model, MAX_H)
    last = _inputs(_panel())["history"][:, -1]
    # one global model, series 10, 100 and -5: normalisation keeps each near its own level
    assert (np.abs(f.mean.mean(axis=1) - last) < 0.2 * np.abs(last) + 5).all()


def test_rolls_forward_past_max_horizon(model: Forecaster) -> None:
    short = _predict(model, MAX_H)
    long = _predict(model, 2 * MAX_H + 3)
    assert long.rolled and long.mean.shape == (3, 2 * MAX_H + 3)
    assert np.isfinite(long.mean).all() and np.allclose(long.mean[:, :MAX_H], short.mean)
    assert (long.upper[95] - long.lower[95])[:, -1].min() > 0


def test_save_load_gives_identical_forecasts(model: Forecaster, tmp_path: Path) -> None:
    io.save(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(io.FILES)
    loaded = io.load(tmp_path / "m")
    a, b = _predict(model, MAX_H + 2), _predict(loaded, MAX_H + 2)
    np.testing.assert_array_equal(a.mean, b.mean)
    for level in (80, 95):
        np.testing.assert_array_equal(a.lower[level], b.lower[level])
        np.testing.assert_array_equal(a.upper[level], b.upper[level])
    assert loaded.meta == model.meta


def test_covariates_and_calendar_are_read_as_the_flags_say(model: Forecaster) -> None:
    base = _predict(model, MAX_H).mean
    cov = _inputs(_panel())["covariates"]
    swapped = _predict(model, MAX_H, covariates=np.ascontiguousarray(cov[..., ::-1])).mean
    stamps = _inputs(_panel())["timestamps"] + np.timedelta64(7, "h")
    shifted = _predict(model, MAX_H, timestamps=stamps).mean
    assert np.allclose(base, swapped) != model.reads_covariates
    assert np.allclose(base, shifted) != model.reads_calendar


def test_weights_that_do_not_fit_the_config_are_refused(model: Forecaster, tmp_path: Path) -> None:
    io.save(model, tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    tensors = load_file(str(weights))
    save_file({**tensors, "stray": torch.zeros(2)}, str(weights))
    with pytest.raises(ModelFileError, match=r"weights.safetensors does not fit config.json"):
        io.load(tmp_path / "m")
    if tensors:  # a tensor of the wrong shape is refused too
        name = sorted(tensors)[0]
        save_file({**tensors, name: torch.zeros(1, dtype=tensors[name].dtype)}, str(weights))
        with pytest.raises(ModelFileError, match=r"weights.safetensors does not fit config.json"):
            io.load(tmp_path / "m")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_forecasts(family: str, fitted: dict[str, Forecaster]) -> None:
    first = fitted.get(family) or _fit(family)
    np.testing.assert_array_equal(_predict(first, MAX_H).mean, _predict(_fit(family), MAX_H).mean)


BAD_INPUTS = [
    (
        {"history": np.zeros((3, 10), np.float32)},
        MAX_H,
        r"history has 10 steps but the model reads lookback=24; pass at least 24 past values",
    ),
    (
        {"history": np.full((3, T), np.nan, np.float32)},
        MAX_H,
        r"history holds NaN or inf \(row 0, step 0\); fill missing values first",
    ),
    (
        {"covariates": np.zeros((3, T, 3), np.float32)},
        MAX_H,
        r"covariates shape \[3, 240, 3\] does not match \[batch, time, C\] = \[3, 240, 2\]; "
        r"pass the columns \['temp', 'price'\] in order",
    ),
    (
        {"covariates": None},
        MAX_H,
        r"covariates are required: the model was trained with \['temp', 'price'\]",
    ),
    (
        {"timestamps": None},
        MAX_H,
        r"timestamps are required: the model uses calendar features \(calendar=True\)",
    ),
    ({}, 0, r"horizon 0 must be an integer >= 1"),
]


@pytest.mark.parametrize(("override", "horizon", "message"), BAD_INPUTS)
def test_bad_input_is_refused_with_a_fix(
    model: Forecaster, override: dict[str, Any], horizon: int, message: str
) -> None:
    args = {**_inputs(_panel()), **override}
    history = args.pop("history")
    with pytest.raises(ForecastInputError, match=message):
        model.predict(history, horizon, **args)


def test_bad_levels_are_refused(model: Forecaster) -> None:
    with pytest.raises(ForecastInputError, match=r"levels: 100 is not a percentage strictly"):
        _predict_levels(model, (80, 100))


def _predict_levels(model: Forecaster, levels: tuple[int, ...]) -> Forecast:
    args = _inputs(_panel())
    history = args.pop("history")
    return model.predict(history, MAX_H, levels, **args)


def test_training_series_with_nan_are_refused(model: Forecaster) -> None:
    fresh = io.create(
        io.config_from_dict({"family": model.meta.family, **SHARED, **TINY[model.meta.family]})
    )
    panel = _panel()
    bad = panel[1].values.copy()
    bad[50] = np.nan
    panel[1] = SeriesData(bad, panel[1].timestamps, panel[1].covariates, "s1")
    with pytest.raises(
        ForecastInputError, match=r"series s1: values hold NaN or inf \(first at index 50\)"
    ):
        fresh.fit(_split(panel, 0, 180), _split(panel, 180 - LOOKBACK, T))
