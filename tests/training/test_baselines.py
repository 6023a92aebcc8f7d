"""Naive, seasonal naive, their empirical intervals, and the local-level Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ForecastInputError
from training.errors import DataError
from training.evaluation.baselines import (
    LocalLevelKalman,
    fit_local_level_panel,
    local_level_loglik,
    naive,
    residual_quantiles,
    seasonal_naive,
)


def _local_level(seed: int, n: int, s_eps: float, s_eta: float, batch: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = np.cumsum(rng.normal(scale=np.sqrt(s_eta), size=(batch, n)), axis=1)
    return 5.0 + level + rng.normal(scale=np.sqrt(s_eps), size=(batch, n))  # [B, T]


def _reference_filter(y: np.ndarray, s_eps: float, s_eta: float) -> tuple[float, float, float]:
    """Textbook scalar Kalman filter (first observation start): log L, level a_T|T, P_T|T."""
    a, p, loglik = y[0], s_eps, 0.0
    for t in range(1, len(y)):
        pred = p + s_eta
        f = pred + s_eps
        v = y[t] - a
        loglik += -0.5 * (np.log(2 * np.pi) + np.log(f) + v * v / f)
        a, p = a + pred / f * v, pred * s_eps / f
    return loglik, a, p


def test_naive_repeats_the_last_value() -> None:
    hist = np.array([[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]])
    np.testing.assert_array_equal(naive(hist, 2), [[3, 3], [9, 9]])


def test_seasonal_naive_repeats_the_last_season() -> None:
    hist = np.arange(10.0)[None, :]  # season 4: last season [6, 7, 8, 9]
    np.testing.assert_array_equal(seasonal_naive(hist, 6, 4), [[6, 7, 8, 9, 6, 7]])
    np.testing.assert_array_equal(seasonal_naive(hist, 3, 1), [[9, 9, 9]])


def test_seasonal_naive_needs_a_full_season() -> None:
    with pytest.raises(ForecastInputError, match=r"history has shape \(1, 3\); expected \[B, T\]"):
        seasonal_naive(np.ones((1, 3)), 2, 5)


def test_nan_history_is_refused() -> None:
    with pytest.raises(ForecastInputError, match="naive: history contains NaN or inf"):
        naive(np.array([[1.0, np.nan]]), 2)


def test_residual_quantiles_match_numpy_quantiles_per_lag() -> None:
    y = _local_level(0, 80, 1.0, 0.5)[0]
    got = residual_quantiles(y, 9, (80, 95), season=4)
    for h in range(1, 10):
        lag = 4 * -(-h // 4)
        err = np.abs(y[lag:] - y[:-lag])
        assert got[80][h - 1] == pytest.approx(np.quantile(err, 0.8))
        assert got[95][h - 1] == pytest.approx(np.quantile(err, 0.95))


def test_residual_quantiles_need_enough_training_rows() -> None:
    with pytest.raises(DataError, match=r"5 training values cannot give 8-step errors"):
        residual_quantiles(np.arange(5.0), 5, (80,), season=4)


@pytest.mark.parametrize(("s_eps", "s_eta"), [(1.0, 0.25), (1.0, 1e-6), (0.01, 2.0)])
def test_loglik_matches_the_textbook_filter(s_eps: float, s_eta: float) -> None:
    y = _local_level(1, 600, 1.0, 0.25)[0]
    expected, _, _ = _reference_filter(y, s_eps, s_eta)
    assert local_level_loglik(y, s_eps, s_eta) == pytest.approx(expected, rel=1e-10)


def test_fit_recovers_the_variances() -> None:
    y = _local_level(2, 3000, 1.0, 0.25)[0]
    fit = LocalLevelKalman().fit(y).fit_result
    assert fit is not None and fit.converged
    assert fit.sigma2_eps == pytest.approx(1.0, rel=0.2)
    assert fit.sigma2_eta == pytest.approx(0.25, rel=0.3)
    # the optimum: nudging either variance lowers the likelihood
    assert fit.loglik == pytest.approx(local_level_loglik(y, fit.sigma2_eps, fit.sigma2_eta))
    assert fit.loglik > local_level_loglik(y, fit.sigma2_eps * 1.1, fit.sigma2_eta)
    assert fit.loglik > local_level_loglik(y, fit.sigma2_eps, fit.sigma2_eta * 0.9)


def test_panel_fit_agrees_with_the_scipy_fit() -> None:
    panel = _local_level(3, 60, 2.0, 0.5, batch=10)
    fits = fit_local_level_panel(panel)
    for row, fit in zip(panel, fits, strict=True):
        single = LocalLevelKalman().fit(row).fit_result
        assert single is not None
        assert fit.loglik >= single.loglik - 1e-5
        assert fit.loglik == pytest.approx(local_level_loglik(row, fit.sigma2_eps, fit.sigma2_eta))


def test_constant_training_part_gives_tiny_variances() -> None:
    fit = LocalLevelKalman().fit(np.full(20, 3.0)).fit_result
    assert fit is not None and not fit.converged
    assert fit.sigma2_eps < 1e-10 and fit.sigma2_eta < 1e-10
    panel_fit = fit_local_level_panel(np.vstack([np.full(20, 3.0), np.arange(20.0) ** 1.5]))[0]
    assert panel_fit.sigma2_eps == fit.sigma2_eps


def test_forecast_equals_the_textbook_filter_over_each_window() -> None:
    y = _local_level(4, 400, 1.0, 0.25)[0]
    model = LocalLevelKalman().fit(y[:300])
    fit = model.fit_result
    assert fit is not None
    windows = np.stack([y[100:200], y[150:250], y[300:400]])  # [3, 100]
    fc = model.forecast(windows, 4, (80, 95))
    assert fc.mean.shape == (3, 4)
    for i, w in enumerate(windows):
        _, level, p = _reference_filter(w, fit.sigma2_eps, fit.sigma2_eta)
        np.testing.assert_allclose(fc.mean[i], level, rtol=1e-10)
        sd = np.sqrt(p + np.arange(1, 5) * fit.sigma2_eta + fit.sigma2_eps)
        np.testing.assert_allclose(fc.upper[95][i] - fc.mean[i], 1.959964 * sd, rtol=1e-5)
    assert np.all(np.diff(fc.upper[80][0] - fc.lower[80][0]) > 0)  # widths grow with h


def test_kalman_intervals_are_calibrated_on_simulated_data() -> None:
    y = _local_level(5, 4000, 1.0, 0.1)[0]
    model = LocalLevelKalman().fit(y[:2000])
    origins = np.arange(2200, 3990)
    hist = y[origins[:, None] + np.arange(-200, 0)]  # [N, 200]
    actual = y[origins[:, None] + np.arange(5)]  # [N, 5]
    fc = model.forecast(hist, 5, (80, 95))
    inside80 = np.mean((actual >= fc.lower[80]) & (actual <= fc.upper[80]))
    inside95 = np.mean((actual >= fc.lower[95]) & (actual <= fc.upper[95]))
    assert inside80 == pytest.approx(0.80, abs=0.05)
    assert inside95 == pytest.approx(0.95, abs=0.03)


def test_unfitted_kalman_says_how_to_fit() -> None:
    with pytest.raises(ForecastInputError, match=r"not fitted. Fix: call fit\(train_values\)"):
        LocalLevelKalman().forecast(np.ones((1, 5)), 2)


def test_fit_needs_three_finite_values() -> None:
    with pytest.raises(DataError, match="got 2 values, all finite: True; need at least 3"):
        LocalLevelKalman().fit(np.array([1.0, 2.0]))
