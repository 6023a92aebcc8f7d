"""The contract every forecaster family implements; the rest of the system talks only to it.

Arrays are NumPy at this boundary (float32 values, datetime64 timestamps); tensors stay
inside the families. Shapes: B = series in a batch, T = history length, H = horizon,
C = past covariates, K = future covariates.

Past covariates are known only up to the forecast origin; future covariates (a weather
forecast, a holiday calendar, a planned promotion) are known over the horizon as well, so
`predict` takes them for history and horizon, `[B, T + H, K]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class SeriesData:
    """One series as models/ sees it.

    Attributes:
        values: [T] float target values (already on whatever scale the caller chose).
        timestamps: [T] datetime64 stamps, needed when the model uses calendar features.
        covariates: [T, C] past covariates, in the order of the model's `covariates`.
        series_id: label used in error messages.
        future_covariates: [T, K] future-known covariates, in the order of the model's
            `future_covariates` (their recorded values; training reads the horizon's from here).
    """

    values: np.ndarray
    timestamps: np.ndarray | None = None
    covariates: np.ndarray | None = None
    series_id: str = ""
    future_covariates: np.ndarray | None = None


@dataclass(frozen=True)
class Forecast:
    """A multi-step forecast with central prediction intervals.

    Attributes:
        mean: [B, H] point forecast.
        lower: level (e.g. 80) -> [B, H] lower bound.
        upper: level -> [B, H] upper bound.
        timestamps: [B, H] future datetime64 stamps, when history timestamps were given.
        rolled: True when H > max_horizon and the forecast was rolled forward in blocks.
    """

    mean: np.ndarray
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]
    timestamps: np.ndarray | None = None
    rolled: bool = False


@dataclass(frozen=True)
class EpochStats:
    """What the training loop reports after each epoch (fed to progress bars, MLflow)."""

    epoch: int
    train_loss: float
    val_loss: float
    seconds: float
    best: bool


EpochCallback = Callable[[EpochStats], None]


@dataclass(frozen=True)
class FitReport:
    """Summary of one fit: per-epoch losses, the restored epoch, time and throughput.

    `seconds` is the whole fit; `windows_per_second` counts the training passes alone
    (forward, backward, optimizer step), not validation or checkpoint writes.

    A family that chooses something on the validation windows (an epoch, a ridge) also reports
    its cross-fitted validation forecasts (models.intervals): `val_forecasts` [N, H] and the
    values they forecast, `val_actual` [N, H], every window of every validation series in
    order, in data units. Scoring those instead of the kept model's forecasts keeps the choice
    out of the score. None for families that choose nothing there.
    """

    epochs: int
    best_epoch: int
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    seconds: float
    train_windows: int
    windows_per_second: float
    stopped_early: bool
    device: str
    val_forecasts: np.ndarray | None = None
    val_actual: np.ndarray | None = None


@dataclass(frozen=True)
class ModelMeta:
    """Metadata saved next to the weights (meta.json) and shown by the service.

    Attributes:
        family: a registered family (models.registry.FAMILIES).
        lookback: history steps the model reads.
        max_horizon: steps the model emits per forward pass; longer horizons roll.
        frequency: "h", "D", "B", "W" or "<n>min"/"<n>h" (see models.features).
        target: name of the target column.
        covariates: names of past covariates, in input order.
        calendar: whether calendar features of the timestamps are inputs.
        future_covariates: names of future-known covariates, in input order ("holiday:US"
            style names are holiday indicators computed from timestamps, see training.data).
        future_stats: (mean, std) of each future covariate on the training series, in the
            order of `future_covariates`; the model feeds (value - mean) / std. Empty when the
            family ignores future covariates (the baselines; `extra` says so) or before fit.
        conformal: level -> per-step absolute-residual quantiles [H] (from validation).
        versions: library versions at training time.
        extra: free-form JSON-safe facts (training windows, seed, ...).
    """

    family: str
    lookback: int
    max_horizon: int
    frequency: str
    target: str
    covariates: tuple[str, ...] = ()
    calendar: bool = False
    future_covariates: tuple[str, ...] = ()
    future_stats: tuple[tuple[float, float], ...] = ()
    conformal: dict[int, tuple[float, ...]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Forecaster(Protocol):
    """What every family implements. Families inherit at most nn.Module.

    Capability flags (class attributes): `reads_covariates` / `reads_calendar` /
    `reads_future_covariates` say whether the forecast depends on past covariates / calendar
    features / future covariates. A family that does not read them (the baselines) still
    checks the ones its config declares, so every family of one config takes the same inputs.
    """

    @property
    def reads_covariates(self) -> bool: ...

    @property
    def reads_future_covariates(self) -> bool: ...

    @property
    def reads_calendar(self) -> bool: ...

    @property
    def meta(self) -> ModelMeta: ...

    def fit(
        self,
        train: Sequence[SeriesData],
        val: Sequence[SeriesData],
        *,
        callback: EpochCallback | None = None,
        checkpoint_dir: Path | None = None,
    ) -> FitReport:
        """Train on every window of `train`, early-stop and calibrate on `val`.

        `val` series carry their own look-back context: each val series starts
        `lookback` steps before its first forecast target. Future covariates are columns of
        each series (`SeriesData.future_covariates` [T, K]); a window reads their values over
        its look-back and its horizon.
        """
        ...

    def predict(
        self,
        history: np.ndarray,
        horizon: int,
        levels: Sequence[int] = (80, 95),
        *,
        timestamps: np.ndarray | None = None,
        covariates: np.ndarray | None = None,
        future_covariates: np.ndarray | None = None,
    ) -> Forecast:
        """Forecast `horizon` steps after each row of `history` [B, T] (T >= lookback).

        `timestamps` [B, T] are required when the model uses calendar features;
        `covariates` [B, T, C] when it declares past covariates; `future_covariates`
        [B, T + H, K] (history then horizon, in the order of `meta.future_covariates`) when it
        declares future covariates.
        """
        ...

    def save(self, directory: Path) -> None:
        """Write config.json, meta.json and weights.safetensors; never a pickle."""
        ...
