"""Training windows built once, on the target device, as tensors batches are drawn from by index.

A window is `lookback` steps of history followed by `horizon` steps to forecast. Every family
trains on the same `WindowSet`: all series' windows concatenated once (global training), so an
epoch is a `torch.randperm` over rows, never a per-sample Python `Dataset.__getitem__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models import intervals
from models.base import SeriesData
from models.errors import ForecastInputError
from models.features import calendar_features


@dataclass(frozen=True)
class WindowSet:
    """Windows of one or many series, stacked along the first axis.

    Attributes:
        target: [N, L+H] target values: history then the values to forecast.
        covariates: [N, L, C] past covariates over the history, or None.
        calendar: [N, L+H, K] calendar features of history and future, or None.
        lookback: L.
        horizon: H.
        known: [N, L+H, K'] future covariates over history and horizon (raw units), or None.
    """

    target: Tensor
    covariates: Tensor | None
    calendar: Tensor | None
    lookback: int
    horizon: int
    known: Tensor | None = None

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def history(self) -> Tensor:
        """[N, L] the look-back part of `target`."""
        return self.target[:, : self.lookback]

    @property
    def future(self) -> Tensor:
        """[N, H] the values to forecast."""
        return self.target[:, self.lookback :]

    def take(self, index: Tensor) -> WindowSet:
        """The windows at `index` ([B] long, on the same device): one gather per tensor."""
        return WindowSet(
            target=self.target[index],  # [B, L+H]
            covariates=None if self.covariates is None else self.covariates[index],  # [B, L, C]
            calendar=None if self.calendar is None else self.calendar[index],  # [B, L+H, K]
            lookback=self.lookback,
            horizon=self.horizon,
            known=None if self.known is None else self.known[index],  # [B, L+H, K']
        )


def make_windows(series: Tensor, lookback: int, horizon: int) -> Tensor:
    """All windows of one series as a view (no copy).

    Args:
        series: [T, F] one series with F channels.
        lookback: L steps of history.
        horizon: H steps to forecast.

    Returns:
        [N, L+H, F] with N = T - L - H + 1 (0 rows when the series is too short).
    """
    size = lookback + horizon
    if series.shape[0] < size:
        return series.new_empty((0, size, series.shape[1]))
    # unfold over time gives [N, F, L+H]; move the window axis before the channels.
    return series.unfold(0, size, 1).transpose(1, 2)  # [N, L+H, F]


def check_series(
    s: SeriesData, i: int, calendar_freq: str | None, covariates: int, future: int = 0
) -> None:
    """Validate one training series: 1-D finite values, timestamps, covariate widths.

    Raises:
        ForecastInputError: naming the series (its id, else its position `i`).
    """
    name = s.series_id or f"#{i}"
    values = np.asarray(s.values)
    if values.ndim != 1:
        raise ForecastInputError(
            f"series {name}: values must be 1-D [T], got shape {values.shape}; "
            "pass one SeriesData per series"
        )
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ForecastInputError(
            f"series {name}: values hold NaN or inf (first at index {bad}); "
            "fill or drop missing values before training"
        )
    if calendar_freq is not None and (s.timestamps is None or len(s.timestamps) != len(values)):
        raise ForecastInputError(
            f"series {name}: timestamps are required with calendar=True and must have one "
            f"stamp per value; pass SeriesData(timestamps=...) of length {len(values)}"
        )
    width = 0 if s.covariates is None else np.asarray(s.covariates).shape[-1]
    if width != covariates:
        raise ForecastInputError(
            f"series {name}: covariates have {width} columns, the model expects {covariates}; "
            "pass the covariates named in the config, in order"
        )
    if covariates:
        cov = np.asarray(s.covariates)
        if cov.shape != (len(values), covariates):
            raise ForecastInputError(
                f"series {name}: covariates shape {cov.shape} must be [T, C] = "
                f"[{len(values)}, {covariates}]"
            )
        if not np.isfinite(cov).all():
            raise ForecastInputError(
                f"series {name}: covariates hold NaN or inf; fill them before training"
            )
    _check_future_columns(s, name, len(values), future)


def _check_future_columns(s: SeriesData, name: str, length: int, future: int) -> None:
    """The future-covariate columns of one training series: [T, K] finite values."""
    width = 0 if s.future_covariates is None else np.asarray(s.future_covariates).shape[-1]
    if width != future:
        raise ForecastInputError(
            f"series {name}: future_covariates have {width} columns, the model expects "
            f"{future}; pass the future_covariates named in the config, in order"
        )
    if not future:
        return
    fut = np.asarray(s.future_covariates)
    if fut.shape != (length, future):
        raise ForecastInputError(
            f"series {name}: future_covariates shape {fut.shape} must be [T, K] = "
            f"[{length}, {future}]"
        )
    if not np.isfinite(fut).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(fut)))
        raise ForecastInputError(
            f"series {name}: future_covariates hold NaN or inf (row {row}, column {col}); "
            "fill them before training"
        )


def stack_series_windows(
    series: Sequence[SeriesData],
    lookback: int,
    horizon: int,
    *,
    device: torch.device | str,
    calendar_freq: str | None,
    covariates: int,
    future_covariates: int = 0,
) -> WindowSet:
    """Every window of every series, concatenated once on `device`.

    Series shorter than `lookback + horizon` contribute no windows; if none has a window the
    call fails, since there is nothing to train on.

    Args:
        series: the series (values [T], optional timestamps [T], covariates [T, C]).
        lookback: L.
        horizon: H.
        device: where the tensors live for the whole fit.
        calendar_freq: frequency for calendar features, or None for no calendar inputs.
        covariates: C, the number of past covariate columns each series must carry.
        future_covariates: K', the number of future covariate columns each series must carry.

    Raises:
        ForecastInputError: non-finite values, wrong covariate width, missing timestamps,
            or no series long enough.
    """
    targets: list[Tensor] = []
    covs: list[Tensor] = []
    cals: list[Tensor] = []
    knowns: list[Tensor] = []
    for i, s in enumerate(series):
        check_series(s, i, calendar_freq, covariates, future_covariates)
        values = torch.as_tensor(np.asarray(s.values, dtype=np.float32), device=device)  # [T]
        if values.shape[0] < lookback + horizon:
            continue
        targets.append(make_windows(values[:, None], lookback, horizon)[..., 0])  # [N, L+H]
        if covariates:
            cov = torch.as_tensor(np.asarray(s.covariates, dtype=np.float32), device=device)
            covs.append(make_windows(cov, lookback, horizon)[:, :lookback])  # [N, L, C]
        if calendar_freq is not None:
            feats = calendar_features(np.asarray(s.timestamps), calendar_freq)  # [T, K]
            cal = torch.as_tensor(feats, device=device)
            cals.append(make_windows(cal, lookback, horizon))  # [N, L+H, K]
        if future_covariates:
            fut = torch.as_tensor(np.asarray(s.future_covariates, dtype=np.float32), device=device)
            knowns.append(make_windows(fut, lookback, horizon))  # [N, L+H, K']
    if not targets:
        longest = max((len(s.values) for s in series), default=0)
        raise ForecastInputError(
            f"no series has lookback + horizon = {lookback + horizon} values (longest has "
            f"{longest}); pass longer series or lower lookback / max_horizon"
        )

    def cat(parts: list[Tensor]) -> Tensor:
        # one series keeps the unfold view; several are copied once into one tensor.
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    return WindowSet(
        target=cat(targets),
        covariates=cat(covs) if covs else None,
        calendar=cat(cals) if cals else None,
        lookback=lookback,
        horizon=horizon,
        known=cat(knowns) if knowns else None,
    )


def check_predict_inputs(
    history: np.ndarray,
    horizon: int,
    levels: Sequence[int],
    timestamps: np.ndarray | None,
    covariates: np.ndarray | None,
    *,
    lookback: int,
    calendar: bool,
    covariate_names: Sequence[str],
    calibrated: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate the arguments of any family's predict(); one wording for every family.

    Args:
        history: [B, T] (or [T] for one series) past values, T >= lookback.
        horizon: steps to forecast, >= 1.
        levels: interval levels in (0, 100).
        timestamps: [B, T] datetime64, required when `calendar`.
        covariates: [B, T, C] (or [T, C] for one series), required when C > 0.
        lookback: the model's look-back.
        calendar: whether the model reads calendar features.
        covariate_names: the model's past covariates, in order.
        calibrated: whether the model has conformal quantiles (needed when levels are asked).

    Returns:
        (history [B, T] float32, timestamps [B, T] or None, covariates [B, T, C] float32 or None).

    Raises:
        ForecastInputError: naming the argument, the value and the fix.
    """
    hist = np.asarray(history, dtype=np.float32)
    if hist.ndim == 1:
        hist = hist[None, :]  # one series
    if hist.ndim != 2:
        raise ForecastInputError(
            f"history must be [batch, time], got shape {hist.shape}; pass a 2-D array"
        )
    if hist.shape[1] < lookback:
        raise ForecastInputError(
            f"history has {hist.shape[1]} steps but the model reads lookback={lookback}; "
            f"pass at least {lookback} past values"
        )
    if not np.isfinite(hist).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(hist)))
        raise ForecastInputError(
            f"history holds NaN or inf (row {row}, step {col}); fill missing values first"
        )
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ForecastInputError(f"horizon {horizon!r} must be an integer >= 1")
    intervals.check_levels(levels)
    if levels and not calibrated:
        raise ForecastInputError(
            f"levels {list(levels)} asked for but the model has no calibrated intervals; "
            "fit it first or pass levels=()"
        )
    stamps = None
    if timestamps is not None:
        stamps = np.asarray(timestamps)
        if stamps.ndim == 1:
            stamps = stamps[None, :]
        if stamps.shape != hist.shape or not np.issubdtype(stamps.dtype, np.datetime64):
            raise ForecastInputError(
                f"timestamps must be datetime64 [batch, time] = {list(hist.shape)}, got "
                f"{stamps.dtype} {list(stamps.shape)}; pass one stamp per history value"
            )
    elif calendar:
        raise ForecastInputError(
            "timestamps are required: the model uses calendar features (calendar=True); "
            "pass timestamps=[batch, time] datetime64 stamps of the history"
        )
    return hist, stamps, _check_covariates(covariates, hist.shape, list(covariate_names))


def _check_covariates(
    covariates: np.ndarray | None, shape: tuple[int, ...], names: list[str]
) -> np.ndarray | None:
    want = len(names)
    if covariates is None:
        if want:
            raise ForecastInputError(
                f"covariates are required: the model was trained with {names}; "
                f"pass covariates=[batch, time, {want}]"
            )
        return None
    cov = np.asarray(covariates, dtype=np.float32)
    if cov.ndim == 2 and shape[0] == 1:
        cov = cov[None]  # one series
    if cov.ndim != 3 or cov.shape[:2] != shape or cov.shape[2] != want:
        raise ForecastInputError(
            f"covariates shape {list(cov.shape)} does not match [batch, time, C] = "
            f"[{shape[0]}, {shape[1]}, {want}]; pass the columns {names} in order"
        )
    if not np.isfinite(cov).all():
        raise ForecastInputError("covariates hold NaN or inf; fill missing values first")
    return cov
