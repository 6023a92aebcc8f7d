"""Metrics against hand-computed values, per-step shapes, edge cases and pinned messages."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import DataError
from training.evaluation import metrics

A = np.array([[1.0, 2.0, 4.0], [2.0, 0.0, -2.0]])  # [N=2, H=3]
P = np.array([[2.0, 2.0, 2.0], [2.0, 1.0, -1.0]])
# errors a - p: [[-1, 0, 2], [0, -1, -1]]


def test_point_metrics_by_hand() -> None:
    assert metrics.mse(A, P) == pytest.approx(7 / 6)
    assert metrics.rmse(A, P) == pytest.approx(np.sqrt(7 / 6))
    assert metrics.mae(A, P) == pytest.approx(5 / 6)
    np.testing.assert_allclose(metrics.mse(A, P, per_step=True), [0.5, 0.5, 2.5])
    np.testing.assert_allclose(metrics.rmse(A, P, per_step=True), np.sqrt([0.5, 0.5, 2.5]))
    np.testing.assert_allclose(metrics.mae(A, P, per_step=True), [0.5, 0.5, 1.5])


def test_mape_skips_zero_actuals() -> None:
    # entries with a != 0: |1-2|/1, 0/2, 2/4, 0/2, 1/2 -> mean 2/5 -> 40 percent
    assert metrics.mape(A, P) == pytest.approx(40.0)
    np.testing.assert_allclose(metrics.mape(A, P, per_step=True), [50.0, 0.0, 50.0])
    assert np.isnan(metrics.mape(np.zeros((2, 2)), np.ones((2, 2))))


def test_smape_is_in_percent_and_bounded() -> None:
    assert metrics.smape(np.array([[1.0]]), np.array([[3.0]])) == pytest.approx(100.0)
    assert metrics.smape(np.array([[1.0]]), np.array([[-1.0]])) == pytest.approx(200.0)
    assert metrics.smape(np.zeros((1, 2)), np.zeros((1, 2))) == 0.0
    rng = np.random.default_rng(0)
    a, p = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    per = metrics.smape(a, p, per_step=True)
    assert per.shape == (4,) and np.all((per >= 0) & (per <= 200))


def test_mase_scalar_and_per_window_scale() -> None:
    assert metrics.mase(A, P, 0.5) == pytest.approx((5 / 6) / 0.5)
    scaled = metrics.mase(A, P, np.array([1.0, 2.0]))
    assert scaled == pytest.approx((3 / 1 + 2 / 2) / 6)


def test_mase_leaves_out_windows_with_zero_scale() -> None:
    assert metrics.mase(A, P, np.array([1.0, 0.0])) == pytest.approx(3 / 3)
    assert np.isnan(metrics.mase(A, P, 0.0))


def test_seasonal_naive_scale() -> None:
    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    assert metrics.seasonal_naive_scale(y, 1) == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert metrics.seasonal_naive_scale(y, 2) == pytest.approx((3 + 5 + 7) / 3)
    with pytest.raises(DataError, match=r"5 training values with season=5; need more values"):
        metrics.seasonal_naive_scale(y, 5)


def test_coverage_width_and_pinball() -> None:
    actual = np.array([[0.0, 1.0, 5.0, -3.0]])
    lower, upper = np.full((1, 4), -1.0), np.full((1, 4), 1.0)
    assert metrics.coverage(actual, lower, upper) == pytest.approx(0.5)  # bounds inclusive
    np.testing.assert_array_equal(
        metrics.coverage(actual, lower, upper, per_step=True), [1, 1, 0, 0]
    )
    assert metrics.mean_width(lower, upper) == pytest.approx(2.0)
    # q = 0.9, pred 1: d = a - p = [-1, 0, 4, -4] -> [0.1, 0, 3.6, 0.4]
    assert metrics.pinball(actual, upper, 0.9) == pytest.approx((0.1 + 3.6 + 0.4) / 4)
    with pytest.raises(DataError, match=r"pinball: q=1.0 must lie in \(0, 1\)"):
        metrics.pinball(actual, upper, 1.0)


def test_interval_quantiles() -> None:
    assert metrics.interval_quantiles(80) == pytest.approx((0.1, 0.9))
    assert metrics.interval_quantiles(95) == pytest.approx((0.025, 0.975))
    with pytest.raises(DataError, match=r"level=100: must lie in \(0, 100\)"):
        metrics.interval_quantiles(100)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(DataError, match=r"actual shape \(2, 3\) and prediction shape \(2, 2\)"):
        metrics.mse(A, P[:, :2])


def test_evaluate_collects_every_metric_consistently() -> None:
    rng = np.random.default_rng(1)
    actual = rng.normal(size=(40, 5))
    mean = actual + rng.normal(scale=0.5, size=(40, 5))
    lower = {80: mean - 0.6, 95: mean - 1.0}
    upper = {80: mean + 0.6, 95: mean + 1.0}
    scores = metrics.evaluate(actual, mean, lower, upper, mase_scale=2.0)
    expected = {"mse", "rmse", "mae", "mape", "smape", "mase", "pinball"}
    expected |= {"coverage_80", "width_80", "coverage_95", "width_95"}
    assert set(scores.overall) == expected
    assert set(scores.per_step) == expected
    assert scores.windows == 40
    assert all(v.shape == (5,) for v in scores.per_step.values())
    assert scores.overall["mse"] == pytest.approx(scores.per_step["mse"].mean())
    assert scores.overall["mase"] == pytest.approx(scores.overall["mae"] / 2.0)
    assert scores.overall["width_95"] == pytest.approx(2.0)
    assert 0.0 < scores.overall["coverage_80"] < scores.overall["coverage_95"] <= 1.0
    pins = [
        metrics.pinball(actual, lower[80], 0.1),
        metrics.pinball(actual, upper[80], 0.9),
        metrics.pinball(actual, lower[95], 0.025),
        metrics.pinball(actual, upper[95], 0.975),
    ]
    assert scores.overall["pinball"] == pytest.approx(np.mean(pins))


def test_scores_to_dict_is_json_safe() -> None:
    zeros = np.zeros((3, 2))
    scores = metrics.evaluate(zeros, zeros + 1, {80: zeros}, {80: zeros + 2}, mase_scale=1.0)
    out = scores.to_dict(per_step=True)
    assert out["mape"] is None  # every actual is zero
    assert out["per_step"]["mape"] == [None, None]
    assert out["mse"] == 1.0 and out["coverage_80"] == 1.0


def test_evaluate_refuses_unmatched_levels() -> None:
    with pytest.raises(DataError, match=r"lower levels \[80\] differ from upper levels \[95\]"):
        metrics.evaluate(A, P, {80: P}, {95: P}, mase_scale=1.0)
