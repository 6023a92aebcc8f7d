"""Rolling-origin backtests: every test window scored by one code path, models and baselines alike.

`evaluate_forecaster` runs any batched predict function (a Forecaster's `predict`, a baseline)
over a `Windows` stack (built by `training.evaluation.windows`) in chunks and scores it with
`metrics.evaluate`; `run_baselines` builds the test windows of a frame under the "ratio" or
"ett" protocol, fits the three baselines per series (or per ETT channel) on training rows only,
and returns the JSON that `forecast baseline --json` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.base import Forecast
from models.features import season_length
from training.data.frame import SeriesFrame
from training.errors import ExperimentError
from training.evaluation import splits
from training.evaluation.baselines import (
    KalmanFit,
    LocalLevelKalman,
    error_lags,
    fit_local_level_panel,
    naive,
    residual_quantiles,
    seasonal_naive,
    symmetric_forecast,
)
from training.evaluation.metrics import Scores, evaluate, seasonal_naive_scale
from training.evaluation.protocols import PROTOCOLS, ett_problem
from training.evaluation.splits import window_stack
from training.evaluation.windows import Windows

BASELINE_LOOKBACK = 512  # Kalman history per window; the filter forgets its start long before
PredictFn = Callable[..., Forecast]


def predict_windows(
    predict_fn: PredictFn, windows: Windows, levels: Sequence[int], *, chunk_size: int = 4096
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Call `predict_fn(history, horizon, levels, timestamps=, covariates=)` chunk by chunk
    (and `future_covariates=` [b, L+H, K] when the windows carry them).

    Returns:
        mean [N, H], lower and upper level -> [N, H], as float64.
    """
    if chunk_size < 1:
        raise ExperimentError(f"chunk_size={chunk_size}: must be >= 1. Fix: use e.g. 4096")
    chunks = []
    for lo in range(0, len(windows), chunk_size):
        hi = lo + chunk_size
        known: dict[str, np.ndarray] = {}
        if windows.future_covariates is not None:
            known["future_covariates"] = windows.future_covariates[lo:hi]  # [b, L+H, K]
        chunks.append(
            predict_fn(
                windows.history[lo:hi],  # [b, L]
                windows.horizon,
                tuple(levels),
                timestamps=None if windows.timestamps is None else windows.timestamps[lo:hi],
                covariates=None if windows.covariates is None else windows.covariates[lo:hi],
                **known,
            )
        )
    return _pooled(chunks, levels)


def _pooled(
    fcs: Sequence[Forecast], levels: Sequence[int]
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Forecasts of consecutive windows stacked as float64: mean [N, H], level -> [N, H] bounds."""
    mean = np.concatenate([f.mean for f in fcs], dtype=np.float64)  # [N, H]
    lower = {lv: np.concatenate([f.lower[lv] for f in fcs], dtype=np.float64) for lv in levels}
    upper = {lv: np.concatenate([f.upper[lv] for f in fcs], dtype=np.float64) for lv in levels}
    return mean, lower, upper


def evaluate_forecaster(
    predict_fn: PredictFn,
    windows: Windows,
    *,
    levels: Sequence[int] = (80, 95),
    chunk_size: int = 4096,
) -> Scores:
    """Score a batched predict function (e.g. `model.predict`, called as by `predict_windows`,
    `chunk_size` windows at a time) on every window: Scores overall and per step."""
    mean, lower, upper = predict_windows(predict_fn, windows, levels, chunk_size=chunk_size)
    return evaluate(windows.actual, mean, lower, upper, mase_scale=windows.mase_scale)


@dataclass(frozen=True)
class _Unit:
    """One series (or ETT channel): its training rows and its test windows."""

    train: np.ndarray  # [T_train]
    history: np.ndarray  # [N, L]
    actual: np.ndarray  # [N, H]


def _units_ratio(
    frame: SeriesFrame, horizon: int, val_fraction: float, test_fraction: float
) -> list[_Unit]:
    values = frame.table["value"].to_numpy(dtype=np.float64)  # [rows]
    units = []
    for sid, lo, hi in frame.bounds:
        y = values[lo:hi]  # [T]
        sp = splits.ratio_split(y.size, val_fraction, test_fraction, horizon=horizon, series_id=sid)
        origins = splits.test_origins(sp, horizon)  # [N]
        hist, act = window_stack(y, origins, min(sp.val_end, BASELINE_LOOKBACK), horizon)
        units.append(_Unit(y[: sp.train_end], hist, act))
    return units


def _pick_season(units: Sequence[_Unit], season: int, horizon: int) -> tuple[int, list[str]]:
    """The frequency's season, or 1 when some series is too short to use it (noted)."""
    shortest_train = min(u.train.size for u in units)
    shortest_hist = min(u.history.shape[1] for u in units)
    need = int(error_lags(horizon, season)[-1]) + 1
    if season > 1 and (shortest_train <= need or shortest_hist < season):
        return 1, [
            f"season {season} needs more than {need} training rows and {season} history rows "
            f"per series; the shortest series has {shortest_train} and {shortest_hist}, so "
            "seasonal naive and the MASE scale use season 1"
        ]
    return season, []


def run_baselines(
    frame: SeriesFrame,
    horizon: int,
    protocol: str = "ratio",
    levels: Sequence[int] = (80, 95),
    *,
    mode: str = "S",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    dataset: str | None = None,
    per_step: bool = False,
) -> dict[str, Any]:
    """Evaluate naive, seasonal naive and the local-level Kalman filter on every test window.

    Args:
        frame: the data; panels pool the test windows of every series.
        protocol: "ratio" (per-series time split by fractions) or "ett" (the fixed ETT split,
            z-scored; the frame must be one series of at least 14400 rows).
        levels: interval levels for coverage, width and pinball.
        mode: ETT mode, "S" (target) or "M" (the frame's covariates as further channels).
        val_fraction, test_fraction: the ratio protocol's validation and test shares.
        dataset: name shown in the result (default: the frame's source).
        per_step: add per-horizon-step lists to each baseline.

    Returns:
        {"dataset", "horizon", "protocol", "windows", "series", "levels", "lookback", "notes",
        "baselines": {"naive": {...}, "seasonal_naive": {..., "season"}, "kalman": {...}}}.
    """
    if protocol not in PROTOCOLS:
        raise ExperimentError(
            f"protocol={protocol!r}: must be one of {PROTOCOLS}. Fix: use 'ratio' or 'ett'"
        )
    if protocol == "ett":
        problem = ett_problem(frame, horizon, mode=mode, target=frame.target)
        hist, act = problem.windows(BASELINE_LOOKBACK)  # [C' * W, L], [C' * W, H]
        w = len(problem.origins)
        units = [
            _Unit(problem.train_values[:, i], hist[i * w : (i + 1) * w], act[i * w : (i + 1) * w])
            for i in range(len(problem.channels))
        ]
    else:
        units = _units_ratio(frame, horizon, val_fraction, test_fraction)
    season, notes = _pick_season(units, season_length(frame.frequency), horizon)
    result = _score_units(units, horizon, season, levels, per_step)
    out: dict[str, Any] = {
        "dataset": dataset if dataset is not None else frame.source,
        "horizon": horizon,
        "protocol": protocol,
        "windows": sum(len(u.history) for u in units),
        "series": frame.n_series,
        "levels": list(levels),
        "lookback": max(u.history.shape[1] for u in units),
        "notes": notes,
        "baselines": result,
    }
    if protocol == "ett":
        out["mode"] = mode
        out["windows"] = len(problem.origins)
        out["channels"] = len(problem.channels)
    return out


PANEL_FIT_MIN_SERIES = 8  # from here on one vectorised fit beats a scipy call per series


def _fit_kalman(units: Sequence[_Unit]) -> list[KalmanFit]:
    """Kalman variances per unit: scipy per series, or one vectorised fit per equal-length group."""
    fits: list[KalmanFit | None] = [None] * len(units)
    groups: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        groups.setdefault(u.train.size, []).append(i)
    for members in groups.values():
        if len(members) >= PANEL_FIT_MIN_SERIES:
            panel = np.stack([units[i].train for i in members])  # [S, T]
            for i, fit in zip(members, fit_local_level_panel(panel), strict=True):
                fits[i] = fit
        else:
            for i in members:
                fits[i] = LocalLevelKalman().fit(units[i].train).fit_result
    return [f for f in fits if f is not None]


def _score_units(
    units: Sequence[_Unit], horizon: int, season: int, levels: Sequence[int], per_step: bool
) -> dict[str, dict[str, Any]]:
    """Fit every baseline per unit on its training rows, pool the windows, score once."""
    names = ("naive", "seasonal_naive", "kalman")
    preds: dict[str, list[Forecast]] = {n: [] for n in names}
    scales = []
    fits = _fit_kalman(units)
    for u, fit in zip(units, fits, strict=True):
        scale = seasonal_naive_scale(u.train, season)
        scales.append(np.full(len(u.history), scale))  # [N_u]
        q_naive = residual_quantiles(u.train, horizon, levels, 1)
        q_season = residual_quantiles(u.train, horizon, levels, season)
        preds["naive"].append(symmetric_forecast(naive(u.history, horizon), q_naive))
        preds["seasonal_naive"].append(
            symmetric_forecast(seasonal_naive(u.history, horizon, season), q_season)
        )
        preds["kalman"].append(LocalLevelKalman(fit).forecast(u.history, horizon, levels))
    actual = np.concatenate([u.actual for u in units])  # [N, H]
    mase_scale = np.concatenate(scales)  # [N]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mean, lower, upper = _pooled(preds[name], levels)
        scores = evaluate(actual, mean, lower, upper, mase_scale=mase_scale)
        out[name] = scores.to_dict(per_step=per_step)
    out["seasonal_naive"]["season"] = season
    out["naive"]["season"] = 1
    if len(fits) == 1:
        out["kalman"]["sigma2_eps"] = fits[0].sigma2_eps
        out["kalman"]["sigma2_eta"] = fits[0].sigma2_eta
    return out
