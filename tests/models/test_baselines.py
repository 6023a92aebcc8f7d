"""The baseline families: their formulas, the Kalman fit, calibrated intervals, config rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models import io
from models.base import SeriesData
from models.baselines import (
    BaselineForecaster,
    fit_level_ratio,
    naive_forecast,
    seasonal_naive_forecast,
)
from models.config import BaselineConfig
from models.errors import ConfigError


def _local_level(seed: int, n: int, s_eps: float, s_eta: float, batch: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = np.cumsum(rng.normal(scale=np.sqrt(s_eta), size=(batch, n)), axis=1)
    return 5.0 + level + rng.normal(scale=np.sqrt(s_eps), size=(batch, n))  # [B, T]


def _textbook_level(y: np.ndarray, s_eps: float, s_eta: float) -> float:
    """Scalar Kalman filter started at the first observation: the filtered level a_T|T."""
    a, p = y[0], s_eps
    for t in range(1, len(y)):
        pred = p + s_eta
        f = pred + s_eps
        a, p = a + pred / f * (y[t] - a), pred * s_eps / f
    return float(a)


def _fitted(family: str, values: np.ndarray, **extra: Any) -> BaselineForecaster:
    config = BaselineConfig.from_dict(
        {"family": family, "lookback": 48, "max_horizon": 8, "device": "cpu", **extra}
    )
    model = BaselineForecaster(config)
    model.fit([SeriesData(values[:600])], [SeriesData(values[600 - 48 : 800])])
    return model


def test_naive_and_seasonal_naive_forecast_their_formulas() -> None:
    hist = np.arange(10.0)[None, :]  # season 4: last season [6, 7, 8, 9]
    np.testing.assert_array_equal(naive_forecast(hist, 3), [[9, 9, 9]])
    np.testing.assert_array_equal(seasonal_naive_forecast(hist, 6, 4), [[6, 7, 8, 9, 6, 7]])
    values = _local_level(0, 1000, 1.0, 0.3)[0].astype(np.float32)
    windows = np.stack([values[i : i + 60] for i in range(800, 900, 7)])  # [15, 60]
    naive = _fitted("naive", values).predict(windows, 8, levels=()).mean
    np.testing.assert_allclose(naive, naive_forecast(windows, 8))
    seasonal = _fitted("seasonal_naive", values, season=5).predict(windows, 8, levels=()).mean
    np.testing.assert_allclose(seasonal, seasonal_naive_forecast(windows, 8, 5))


def test_seasonal_naive_takes_its_season_from_the_frequency() -> None:
    assert BaselineConfig(family="seasonal_naive", frequency="h").season_steps == 24
    assert BaselineConfig(family="seasonal_naive", frequency="D", season=3).season_steps == 3
    values = np.tile(np.arange(24.0), 40).astype(np.float32) + np.arange(960) * 1e-3
    model = _fitted("seasonal_naive", values)
    out = model.predict(values[None, -48:], 30, levels=()).mean[0]
    np.testing.assert_allclose(out, np.tile(values[-24:], 2)[:30], rtol=1e-6)


def test_kalman_forecast_is_the_textbook_filtered_level() -> None:
    values = _local_level(1, 1000, 1.0, 0.25)[0].astype(np.float32)
    model = _fitted("kalman", values)
    q = model.meta.extra["level_ratio"]
    windows = np.stack([values[i : i + 70] for i in range(800, 900, 9)])  # [12, 70]
    mean = model.predict(windows, 8, levels=()).mean
    for row, w in zip(mean, windows, strict=True):
        level = _textbook_level(w[-48:].astype(np.float64), 1.0, q)  # the last lookback values
        np.testing.assert_allclose(row, level, rtol=1e-5)


def test_kalman_ratio_is_the_maximum_likelihood_estimate() -> None:
    panel = _local_level(2, 1500, 1.0, 0.25, batch=4)
    q = fit_level_ratio([*panel, np.full(50, 3.0)])  # a flat series says nothing
    assert q == pytest.approx(0.25, rel=0.3)
    assert fit_level_ratio([np.full(50, 3.0)]) == 1.0


@pytest.mark.parametrize("family", ["naive", "seasonal_naive", "kalman"])
def test_conformal_intervals_cover_new_windows(family: str) -> None:
    values = _local_level(3, 3000, 1.0, 0.1)[0].astype(np.float32)
    config = BaselineConfig.from_dict(
        {"family": family, "lookback": 48, "max_horizon": 5, "device": "cpu"}
    )
    model = io.create(config)
    model.fit([SeriesData(values[:1000])], [SeriesData(values[1000 - 48 : 2000])])
    origins = np.arange(2000, 2990)
    hist = values[origins[:, None] + np.arange(-48, 0)]  # [N, 48]
    actual = values[origins[:, None] + np.arange(5)]  # [N, 5]
    f = model.predict(hist, 5, (80, 95))
    inside80 = np.mean((actual >= f.lower[80]) & (actual <= f.upper[80]))
    inside95 = np.mean((actual >= f.lower[95]) & (actual <= f.upper[95]))
    assert inside80 == pytest.approx(0.80, abs=0.06) and inside95 == pytest.approx(0.95, abs=0.04)
    assert model.meta.extra["val_windows"] == 1000 - 5 + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"family": "naive", "season": 7}, r"season 7 applies only to family 'seasonal_naive'"),
        (
            {"family": "seasonal_naive", "lookback": 12},
            r"lookback 12 is shorter than the season 24; .* set lookback >= 24",
        ),
        ({"family": "arima"}, r"family 'arima' is not a baseline; use one of \('naive'"),
        ({"family": "kalman", "seed": 1}, r"unknown config key\(s\) \['seed'\]"),
    ],
)
def test_config_errors_name_the_field_and_value(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BaselineConfig.from_dict({"frequency": "h", **change})


def test_registry_creates_every_baseline_by_name() -> None:
    for family in ("naive", "seasonal_naive", "kalman"):
        config = io.config_from_dict({"family": family})
        assert isinstance(config, BaselineConfig) and config.to_dict()["family"] == family
        assert isinstance(io.create(config), BaselineForecaster)
