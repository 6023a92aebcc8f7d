"""Split-conformal prediction intervals, per horizon step, for any family.

After training, each model forecasts its validation windows; the absolute errors divided by
the window's scale (`models.scaling.interval_scale`: the mean absolute seasonal change, named in
`ModelMeta.extra["interval_scale"]`) are the nonconformity scores. For level q,
step h's interval half-width is the finite-sample-corrected quantile of those scores times the
new window's scale. Quantiles are stored in `ModelMeta.conformal` (level -> [H]).

Cross-fitting. The validation windows also choose things (the epoch early stopping keeps, the
ESN ridge), and residuals of the model chosen on the same windows are optimistic. So each
series' validation windows are cut in two halves (`cross_fit_halves`: earlier, later); the
choice is made once on each half, and each half's residuals come from the model chosen on the
other half. Every window still calibrates, and none calibrates a choice it made. The model
that is kept (and forecasts) is the one chosen on all validation windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from models.base import Forecast, ModelMeta
from models.errors import ForecastInputError, ModelFileError
from models.features import future_timestamps, season_length
from models.scaling import interval_scale

# Levels always calibrated, so predict() can serve any level in between by interpolation.
STANDARD_LEVELS = (50, 60, 70, 80, 90, 95, 98, 99)
# The scale fit() calibrates in today, recorded in ModelMeta.extra["interval_scale"].
CALIBRATION_SCALE = "seasonal"


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """Validate interval levels (percent, strictly between 0 and 100).

    Raises:
        ForecastInputError: naming the first bad level.
    """
    out = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 100:
            raise ForecastInputError(
                f"levels: {level!r} is not a percentage strictly between 0 and 100; "
                "pass e.g. levels=(80, 95)"
            )
        out.append(int(level) if float(level).is_integer() else level)
    return tuple(out)  # type: ignore[arg-type]


def cross_fit_halves(counts: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Indices of the earlier and the later half of each series' validation windows.

    `counts`: windows per series, in layout order (consecutive). Returns (first, second):
    [n1], [n2] long indices on `device`; a series' odd middle window goes to the second half,
    so a series with one window has none in the first.
    """
    first: list[int] = []
    second: list[int] = []
    offset = 0
    for n in counts:
        first.extend(range(offset, offset + n // 2))
        second.extend(range(offset + n // 2, offset + n))
        offset += n
    return (
        torch.tensor(first, dtype=torch.long, device=device),
        torch.tensor(second, dtype=torch.long, device=device),
    )


def calibrate(residuals: np.ndarray, levels: Sequence[int]) -> dict[int, tuple[float, ...]]:
    """Per-step conformal quantiles of `residuals` [N, H] = |actual - mean| / window scale.

    Returns level -> H quantiles for `levels` and STANDARD_LEVELS, each the ceil((n+1) q) / n
    empirical quantile (capped at the largest residual when n is too small for the level).

    Raises:
        ForecastInputError: when there are no residuals or some are not finite.
    """
    res = np.asarray(residuals, dtype=np.float64)
    if res.ndim != 2 or res.shape[0] == 0:
        raise ForecastInputError(
            f"residuals must be [N, H] with N >= 1, got shape {res.shape}; "
            "give fit() validation series at least lookback + max_horizon long"
        )
    if not np.isfinite(res).all():
        raise ForecastInputError("residuals hold NaN or inf; check the validation series")
    n = res.shape[0]
    out: dict[int, tuple[float, ...]] = {}
    for level in sorted(set(check_levels(levels)) | set(STANDARD_LEVELS)):
        q = min(math.ceil((n + 1) * level / 100.0) / n, 1.0)
        # inverted_cdf at k/n is exactly the k-th smallest residual, k = ceil((n+1) q).
        per_step = np.quantile(res, q, axis=0, method="inverted_cdf")  # [H]
        out[int(level)] = tuple(float(v) for v in per_step)
    return out


def _quantiles(conformal: dict[int, tuple[float, ...]], level: float, horizon: int) -> np.ndarray:
    """[H] half-widths for `level`, interpolated between stored levels, extended past H."""
    stored = sorted(conformal)
    if level in conformal:
        q = np.asarray(conformal[int(level)], dtype=np.float64)
    elif stored and stored[0] < level < stored[-1]:
        hi = next(k for k in stored if k > level)
        lo = max(k for k in stored if k < level)
        w = (level - lo) / (hi - lo)
        q = (1 - w) * np.asarray(conformal[lo]) + w * np.asarray(conformal[hi])
    else:
        raise ForecastInputError(
            f"levels: {level!r} is outside the calibrated levels {stored}; "
            f"pass levels between {stored[0] if stored else '-'} and "
            f"{stored[-1] if stored else '-'}, or fit the model first"
        )
    if horizon <= q.size:
        return q[:horizon]
    # Rolled forecasts: beyond the calibrated steps, widen like a random walk (sqrt of steps).
    steps = np.arange(q.size + 1, horizon + 1)
    tail = q[-1] * np.sqrt(steps / q.size)
    return np.concatenate([q, tail])  # [H]


def apply(
    mean: np.ndarray,
    scale: np.ndarray,
    conformal: dict[int, tuple[float, ...]],
    levels: Sequence[int],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Intervals around `mean` [B, H]: (lower, upper), level -> [B, H], wider for higher levels.

    `scale` [B, 1] are the window scales (the `interval_scale` used in calibration);
    `conformal` level -> [H'] quantiles (H' may be < H for rolled forecasts).
    """
    lower: dict[int, np.ndarray] = {}
    upper: dict[int, np.ndarray] = {}
    horizon = mean.shape[1]
    for level in check_levels(levels):
        half = _quantiles(conformal, level, horizon)[None, :] * scale  # [B, H]
        lower[level] = (mean - half).astype(mean.dtype)
        upper[level] = (mean + half).astype(mean.dtype)
    return lower, upper


def calibrate_windows(
    history: Tensor, actual: Tensor, mean: Tensor, frequency: str, levels: Sequence[int]
) -> tuple[dict[int, tuple[float, ...]], dict[str, str]]:
    """Calibrate on validation windows, in CALIBRATION_SCALE (season from `frequency`).

    `history` [N, L]; `actual`, `mean` [N, H] in data units. Returns (quantiles for
    ModelMeta.conformal, the ModelMeta.extra entry that records their scale).
    """
    scale = interval_scale(history, CALIBRATION_SCALE, season_length(frequency))  # [N, 1]
    residuals = ((actual - mean).abs() / scale).cpu().numpy()  # [N, H]
    return calibrate(residuals, levels), {"interval_scale": CALIBRATION_SCALE}


def forecast(
    mean: np.ndarray,
    history: np.ndarray,
    meta: ModelMeta,
    levels: Sequence[int],
    *,
    stamps: np.ndarray | None,
    rolled: bool,
) -> Forecast:
    """Wrap a point forecast `mean` [B, H] of the checked `history` [B, T] with its intervals
    and, given history `stamps` [B, T], future timestamps.

    Raises:
        ModelFileError: levels are asked for but meta.extra does not name the scale the
            quantiles were calibrated in (fit() always records it).
    """
    mean = mean.astype(np.float32)
    lower: dict[int, np.ndarray] = {}
    upper: dict[int, np.ndarray] = {}
    if levels:
        kind = meta.extra.get("interval_scale")
        if kind is None:
            raise ModelFileError(
                "meta.extra has no 'interval_scale' next to the conformal quantiles; "
                "fit the model again (fit() records the scale it calibrated in)"
            )
        window = torch.from_numpy(np.ascontiguousarray(history[:, -meta.lookback :]))  # [B, L]
        scale = interval_scale(window, str(kind), season_length(meta.frequency)).numpy()  # [B, 1]
        lower, upper = apply(mean, scale, meta.conformal, levels)
    future = None
    if stamps is not None:
        future = future_timestamps(stamps[:, -1], meta.frequency, mean.shape[1])  # [B, H]
    return Forecast(mean=mean, lower=lower, upper=upper, timestamps=future, rolled=rolled)
