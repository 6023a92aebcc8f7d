"""Future-known covariates: columns whose values are known over the horizon too.

A weather forecast, a holiday calendar or a planned promotion is known ahead, so a model may
read its value at the very step it forecasts. Families take them as `[B, T + H, K]` at predict
time (history then horizon) and as columns of each training series (`SeriesData.
future_covariates` [T, K]) at fit time. They are z-scored with one (mean, std) per column
measured on the training series (kept in `ModelMeta.future_stats` and in the weights), not per
window: a temperature of 30 degrees means the same in every window.

NumPy only here (validation and statistics); the families do the tensor work.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.base import SeriesData
from models.errors import ForecastInputError

_MIN_STD = 1e-6  # a constant column (e.g. no holiday in the training span) divides by 1e-6


def fit_stats(series: Sequence[SeriesData], width: int) -> tuple[tuple[float, float], ...]:
    """(mean, std) of each of the `width` (K) future covariates of the (checked) training
    series, pooled; a std below 1e-6 (a constant column) is 1.0, so it scales nothing."""
    if not width:
        return ()
    table = np.concatenate(
        [np.asarray(s.future_covariates, np.float64).reshape(-1, width) for s in series]
    )  # [sum T, K]
    mean, std = table.mean(axis=0), table.std(axis=0)  # [K], [K]
    return tuple(
        (float(m), float(sd) if sd >= _MIN_STD else 1.0) for m, sd in zip(mean, std, strict=True)
    )


def check_future(
    future_covariates: np.ndarray | None,
    batch: int,
    length: int,
    horizon: int,
    names: Sequence[str],
) -> np.ndarray | None:
    """Validate predict()'s `future_covariates`: [B, T + H, K] (or [T + H, K] for one series)
    finite values, K = len(names); B = `batch`, T = `length`, H = `horizon`.

    Returns:
        [B, T + H, K] float32, or None when the model declares none.

    Raises:
        ForecastInputError: naming the argument, the column and the index, and the fix.
    """
    want = list(names)
    if future_covariates is None:
        if want:
            raise ForecastInputError(
                f"future_covariates are required: the model was trained with {want}; pass "
                f"future_covariates=[batch, time + horizon, {len(want)}] (history and horizon)"
            )
        return None
    fut = np.asarray(future_covariates, dtype=np.float32)
    if fut.ndim == 2 and batch == 1:
        fut = fut[None]  # one series
    shape = [batch, length + horizon, len(want)]
    if fut.ndim != 3 or list(fut.shape) != shape:
        raise ForecastInputError(
            f"future_covariates shape {list(fut.shape)} does not match [batch, time + horizon, "
            f"K] = {shape}; pass the columns {want} in order, for the history's {length} "
            f"steps and the {horizon} steps ahead"
        )
    if not np.isfinite(fut).all():
        row, step, col = (int(i[0]) for i in np.nonzero(~np.isfinite(fut)))
        where = "history" if step < length else "horizon"
        index = step if step < length else step - length
        raise ForecastInputError(
            f"future_covariates[{want[col]!r}] holds NaN or inf (row {row}, {where} index "
            f"{index}); fill the value or drop the row"
        )
    return fut


def hold_rows(fut: np.ndarray, steps: int) -> np.ndarray:
    """The first `steps` rows of `fut` [B, T', K] along time; rows past its end hold its last
    row (a rolled block that runs past the requested horizon forecasts steps nobody asked for).
    """
    if fut.shape[1] >= steps:
        return fut[:, :steps]  # [B, steps, K]
    pad = np.repeat(fut[:, -1:], steps - fut.shape[1], axis=1)  # [B, steps - T', K]
    return np.concatenate([fut, pad], axis=1)  # [B, steps, K]
