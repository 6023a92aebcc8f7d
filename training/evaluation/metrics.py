"""Forecast accuracy and interval metrics, vectorised NumPy.

Every metric takes `actual` and predictions shaped [N, H] (N windows, H steps) and returns
a float over all entries, or with `per_step=True` an [H] array (one value per horizon step,
averaged over windows). Percent metrics (MAPE, sMAPE) are in percent; coverage is a
fraction in [0, 1]. A metric with no defined value (MAPE on all-zero actuals) is NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.errors import DataError


def _reduce(x: np.ndarray, per_step: bool) -> Any:
    # [N, H] -> float, or [H] averaged over windows
    if per_step:
        return x.reshape(-1, x.shape[-1]).mean(axis=0)
    return float(x.mean())


def _pair(actual: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if a.shape != p.shape or a.ndim == 0 or a.size == 0:
        raise DataError(
            f"metrics: actual shape {a.shape} and prediction shape {p.shape} must be equal and "
            "non-empty. Fix: pass [N, H] arrays of the same windows"
        )
    return a, p


def mse(actual: np.ndarray, mean: np.ndarray, *, per_step: bool = False) -> Any:
    """Mean squared error."""
    a, p = _pair(actual, mean)
    return _reduce((a - p) ** 2, per_step)


def rmse(actual: np.ndarray, mean: np.ndarray, *, per_step: bool = False) -> Any:
    """Root of the mean squared error (per step: root of each step's MSE)."""
    return np.sqrt(mse(actual, mean, per_step=per_step))


def mae(actual: np.ndarray, mean: np.ndarray, *, per_step: bool = False) -> Any:
    """Mean absolute error."""
    a, p = _pair(actual, mean)
    return _reduce(np.abs(a - p), per_step)


def mape(actual: np.ndarray, mean: np.ndarray, *, per_step: bool = False) -> Any:
    """Mean absolute percentage error in percent, 100 * |a - p| / |a|.

    Entries whose actual value is exactly zero are skipped (the ratio is undefined);
    the mean is over the remaining entries, NaN where none remain.
    """
    a, p = _pair(actual, mean)
    keep = a != 0
    ratio = np.where(keep, np.abs(a - p) / np.where(keep, np.abs(a), 1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if per_step:
            k = keep.reshape(-1, a.shape[-1])
            return 100.0 * ratio.reshape(-1, a.shape[-1]).sum(axis=0) / k.sum(axis=0)
        count = int(keep.sum())
        return 100.0 * float(ratio.sum()) / count if count else float("nan")


def smape(actual: np.ndarray, mean: np.ndarray, *, per_step: bool = False) -> Any:
    """Symmetric MAPE in percent, 200 * |a - p| / (|a| + |p|), in [0, 200].

    An entry where both the actual and the prediction are zero counts as 0 (a perfect forecast).
    """
    a, p = _pair(actual, mean)
    denom = np.abs(a) + np.abs(p)
    ratio = np.where(denom > 0, np.abs(a - p) / np.where(denom > 0, denom, 1.0), 0.0)
    return _reduce(200.0 * ratio, per_step)


def mase(
    actual: np.ndarray, mean: np.ndarray, scale: float | np.ndarray, *, per_step: bool = False
) -> Any:
    """Mean absolute scaled error: |a - p| / scale, averaged.

    `scale` is the in-sample seasonal-naive MAE of the training part (`seasonal_naive_scale`):
    a float, or [N] per window when windows come from series of different scales (panels).
    Windows whose scale is zero or not finite (a constant training part) are left out.
    """
    a, p = _pair(actual, mean)
    s = np.asarray(scale, dtype=np.float64)
    if s.ndim == 1:
        s = s.reshape((-1,) + (1,) * (a.ndim - 1))  # [N] -> [N, 1]
    bad = ~np.isfinite(s) | (s <= 0)
    if not np.any(bad):
        return _reduce(np.abs(a - p) / s, per_step)
    # a constant training part has no seasonal-naive error to scale by: leave its windows out
    ratio = np.abs(a - p) / np.where(bad, np.nan, s)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN -> NaN is the answer
        if per_step:
            return np.nanmean(ratio.reshape(-1, a.shape[-1]), axis=0)
        return float(np.nanmean(ratio))


def coverage(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, per_step: bool = False
) -> Any:
    """Share of actual values inside [lower, upper] (a fraction in [0, 1])."""
    a, lo = _pair(actual, lower)
    _, hi = _pair(actual, upper)
    return _reduce(((a >= lo) & (a <= hi)).astype(np.float64), per_step)


def mean_width(lower: np.ndarray, upper: np.ndarray, *, per_step: bool = False) -> Any:
    """Mean interval width, upper - lower."""
    lo, hi = _pair(lower, upper)
    return _reduce(hi - lo, per_step)


def pinball(
    actual: np.ndarray, quantile_pred: np.ndarray, q: float, *, per_step: bool = False
) -> Any:
    """Pinball (quantile) loss of a q-quantile forecast: max(q (a - p), (q - 1)(a - p))."""
    if not 0.0 < q < 1.0:
        raise DataError(f"pinball: q={q!r} must lie in (0, 1). Fix: pass e.g. 0.1 or 0.9")
    a, p = _pair(actual, quantile_pred)
    d = a - p
    return _reduce(np.maximum(q * d, (q - 1.0) * d), per_step)


def interval_quantiles(level: int) -> tuple[float, float]:
    """The quantiles (lower, upper) of a central `level`% interval, e.g. 80 -> (0.1, 0.9)."""
    if not 0 < level < 100:
        raise DataError(f"level={level!r}: must lie in (0, 100). Fix: use e.g. 80 or 95")
    tail = (1.0 - level / 100.0) / 2.0
    return tail, 1.0 - tail


def seasonal_naive_scale(train_values: np.ndarray, season: int) -> float:
    """In-sample seasonal-naive MAE, mean |y_t - y_{t-m}| over the training part (MASE scale).

    Args:
        train_values: [T] training values of one series.
        season: m; 1 gives the naive scale.

    Raises:
        DataError: when T <= season (no seasonal difference exists).
    """
    y = np.asarray(train_values, dtype=np.float64).reshape(-1)  # [T]
    if season < 1 or y.size <= season:
        raise DataError(
            f"seasonal_naive_scale: {y.size} training values with season={season}; need more "
            "values than the season. Fix: use a longer training part or season=1"
        )
    return float(np.abs(y[season:] - y[:-season]).mean())


@dataclass(frozen=True)
class Scores:
    """Metrics of one forecaster over one set of windows.

    Attributes:
        overall: name -> value over all windows and steps ("mse", "rmse", "mae", "mape",
            "smape", "mase", "coverage_80", "width_80", ..., "pinball").
        per_step: name -> [H] values, one per horizon step (same names).
        windows: number of windows scored (rows of `actual`).
    """

    overall: dict[str, float]
    per_step: dict[str, np.ndarray] = field(default_factory=dict)
    windows: int = 0

    def to_dict(self, *, per_step: bool = False) -> dict[str, Any]:
        """JSON-safe copy: NaN/inf become None; `per_step` adds lists under "per_step"."""
        out: dict[str, Any] = {k: _json_float(v) for k, v in self.overall.items()}
        if per_step:
            out["per_step"] = {
                k: [_json_float(x) for x in np.asarray(v).tolist()]
                for k, v in self.per_step.items()
            }
        return out


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def evaluate(
    actual: np.ndarray,
    mean: np.ndarray,
    lower: Mapping[int, np.ndarray],
    upper: Mapping[int, np.ndarray],
    *,
    mase_scale: float | np.ndarray,
) -> Scores:
    """Every metric, overall and per horizon step.

    Args:
        actual: [N, H] actual values.
        mean: [N, H] point forecasts.
        lower: level -> [N, H] lower bounds of the central interval.
        upper: level -> [N, H] upper bounds (same levels as `lower`).
        mase_scale: float, or [N] per-window scale (see `mase`).

    Returns:
        Scores; "pinball" is averaged over the two quantiles of every level's bounds.
    """
    if set(lower) != set(upper):
        raise DataError(
            f"evaluate: lower levels {sorted(lower)} differ from upper levels {sorted(upper)}. "
            "Fix: give both bounds for every level"
        )
    a, m = _pair(actual, mean)
    if a.ndim != 2:
        raise DataError(
            f"evaluate: actual has shape {a.shape}; expected [N, H]. Fix: stack windows"
        )
    overall: dict[str, float] = {}
    steps: dict[str, np.ndarray] = {}
    point = {"mse": mse, "rmse": rmse, "mae": mae, "mape": mape, "smape": smape}
    for name, fn in point.items():
        overall[name] = fn(a, m)
        steps[name] = fn(a, m, per_step=True)
    overall["mase"] = mase(a, m, mase_scale)
    steps["mase"] = mase(a, m, mase_scale, per_step=True)
    pin_steps = []
    for level in sorted(lower):
        lo, hi = lower[level], upper[level]
        overall[f"coverage_{level}"] = coverage(a, lo, hi)
        steps[f"coverage_{level}"] = coverage(a, lo, hi, per_step=True)
        overall[f"width_{level}"] = mean_width(lo, hi)
        steps[f"width_{level}"] = mean_width(lo, hi, per_step=True)
        q_lo, q_hi = interval_quantiles(level)
        pin_steps.append(pinball(a, lo, q_lo, per_step=True))  # [H]
        pin_steps.append(pinball(a, hi, q_hi, per_step=True))  # [H]
    if pin_steps:
        stacked = np.stack(pin_steps)  # [2 * levels, H]
        overall["pinball"] = float(stacked.mean())
        steps["pinball"] = stacked.mean(axis=0)
    return Scores(overall={k: float(v) for k, v in overall.items()}, per_step=steps, windows=len(a))
