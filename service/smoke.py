"""The smoke test every freshly loaded model version passes before it is served."""

from __future__ import annotations

import numpy as np

from models.base import Forecaster
from models.features import future_timestamps, season_length


class SmokeTestError(ValueError):
    """A freshly loaded model did not produce a sane forecast on synthetic input."""


def smoke_forecast(forecaster: Forecaster) -> None:
    """Forecast a synthetic seasonal series and check shapes, finiteness and interval order.

    Raises:
        SmokeTestError: naming what was wrong with the output.
    """
    meta = forecaster.meta
    lookback, horizon = meta.lookback, meta.max_horizon
    start = np.array(["2024-01-01T00:00:00"], dtype="datetime64[s]")  # a Monday
    stamps = future_timestamps(start, meta.frequency, lookback)  # [1, L]
    season = season_length(meta.frequency)
    t = np.arange(lookback, dtype=np.float32)  # [L]
    history = (100.0 + 10.0 * np.sin(2.0 * np.pi * t / season))[None, :].astype(np.float32)
    covariates = None
    if meta.covariates:
        covariates = np.zeros((1, lookback, len(meta.covariates)), dtype=np.float32)  # [1, L, C]
    future = None
    if meta.future_covariates:  # each at its training mean (0 when the family keeps none)
        means = [m for m, _ in meta.future_stats] or [0.0] * len(meta.future_covariates)
        future = np.tile(np.asarray(means, np.float32), (1, lookback + horizon, 1))  # [1, L+H, K]
    levels = sorted(meta.conformal) or [80, 95]
    out = forecaster.predict(
        history, horizon, levels, timestamps=stamps, covariates=covariates,
        future_covariates=future,
    )  # fmt: skip
    mean = np.asarray(out.mean)
    if mean.shape != (1, horizon):
        raise SmokeTestError(f"smoke forecast mean has shape {mean.shape}, expected (1, {horizon})")
    if not np.isfinite(mean).all():
        raise SmokeTestError("smoke forecast mean is not finite (NaN or Inf weights?)")
    for level in levels:
        lower, upper = np.asarray(out.lower[level]), np.asarray(out.upper[level])
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise SmokeTestError(f"smoke forecast {level}% interval is not finite")
        if (lower > upper).any():
            raise SmokeTestError(f"smoke forecast {level}% interval has lower > upper")
