"""Training windows as start offsets into the series, gathered by index one batch at a time.

A window is `lookback` steps of history followed by `horizon` steps to forecast. Every family
trains on the same `PanelWindows`: the series laid end to end in one tensor per input (target,
past covariates, calendar features, future covariates) on the target device, and the start row
of every window. An epoch is a `torch.randperm` over windows, and each batch gathers its
[B, L+H] rows from the series with one index per tensor (`PanelWindows.take` -> `WindowSet`),
so memory grows with the panel's length (T values per series), not with T x (L+H): a panel of
30,000 series x 1,000 hourly steps is 120 MB of values and 190 MB of starts instead of ~19 GB
of materialised windows (benchmarks/large_panel.py). Never a per-sample Python `Dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
import torch
from torch import Tensor

from models import intervals
from models.base import SeriesData
from models.errors import ForecastInputError
from models.features import calendar_features


@dataclass(frozen=True)
class WindowSet:
    """A batch of windows, materialised: what a loss or a forward pass reads.

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
    def device(self) -> torch.device:
        return self.target.device

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


@dataclass(frozen=True)
class PanelWindows:
    """Every window of one or many series, as start rows into the series laid end to end.

    Attributes:
        values: [S] the target values of every series, concatenated (S = sum of lengths).
        starts: [N] long, the row in `values` of each window's first step; a window never
            crosses from one series into the next.
        covariates: [S, C] past covariates, row-aligned with `values`, or None.
        calendar: [S, K] calendar features, row-aligned with `values`, or None.
        known: [S, K'] future covariates (raw units), row-aligned with `values`, or None.
        lookback: L.
        horizon: H.
    """

    values: Tensor
    starts: Tensor
    covariates: Tensor | None
    calendar: Tensor | None
    known: Tensor | None
    lookback: int
    horizon: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def device(self) -> torch.device:
        return self.values.device

    def rows(self, index: Tensor) -> Tensor:
        """[B, L+H] rows in the series tensors of the windows at `index` ([B] long)."""
        steps = torch.arange(self.lookback + self.horizon, device=self.starts.device)
        return self.starts[index][:, None] + steps  # [B, L+H]

    def take(self, index: Tensor) -> WindowSet:
        """The windows at `index` ([B] long, on the same device), gathered into a batch."""
        rows = self.rows(index)  # [B, L+H]
        return WindowSet(
            target=self.values[rows],  # [B, L+H]
            covariates=None
            if self.covariates is None
            else self.covariates[rows[:, : self.lookback]],
            calendar=None if self.calendar is None else self.calendar[rows],  # [B, L+H, K]
            lookback=self.lookback,
            horizon=self.horizon,
            known=None if self.known is None else self.known[rows],  # [B, L+H, K']
        )

    def subset(self, index: Tensor) -> PanelWindows:
        """The windows at `index` ([M] long), still as start rows (nothing gathered)."""
        return replace(self, starts=self.starts[index])

    @property
    def counts(self) -> tuple[int, ...]:
        """Windows per series, in order: a series' windows have consecutive start rows, and
        the next series starts at least L + H rows later."""
        if len(self) == 0:
            return ()
        breaks = (torch.nonzero(self.starts.diff() != 1).flatten() + 1).tolist()
        edges = [0, *breaks, len(self)]
        return tuple(hi - lo for lo, hi in pairwise(edges))

    def materialise(self) -> WindowSet:
        """Every window at once ([N, L+H] and friends): for small sets and comparisons only."""
        return self.take(torch.arange(len(self), device=self.starts.device))

    @property
    def history(self) -> Tensor:
        """[N, L] the look-back of every window (gathered; the target only)."""
        return self._gather(0, self.lookback)

    @property
    def future(self) -> Tensor:
        """[N, H] the values every window forecasts (gathered; the target only)."""
        return self._gather(self.lookback, self.lookback + self.horizon)

    def _gather(self, lo: int, hi: int) -> Tensor:
        """[N, hi - lo] steps lo..hi-1 of every window, gathered in slices of windows so the
        int64 row index never outgrows one slice."""
        out = self.values.new_empty((len(self), hi - lo))
        steps = torch.arange(lo, hi, device=self.starts.device)
        for i in range(0, len(self), _GATHER_SLICE):
            out[i : i + _GATHER_SLICE] = self.values[
                self.starts[i : i + _GATHER_SLICE, None] + steps
            ]
        return out


_GATHER_SLICE = 65_536
"""Windows gathered per slice when a whole set's history or future is read."""

Windows = WindowSet | PanelWindows
"""What a training loop or a batched forecast walks: `len`, `device`, `take(index)`."""


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
    _check_columns(s.covariates, name, "covariates", len(values), covariates)
    _check_columns(s.future_covariates, name, "future_covariates", len(values), future)


def _check_columns(table: np.ndarray | None, name: str, what: str, length: int, want: int) -> None:
    """One training series' `what` ("covariates" or "future_covariates"): [T, want] finite."""
    width = 0 if table is None else np.asarray(table).shape[-1]
    if width != want:
        raise ForecastInputError(
            f"series {name}: {what} have {width} columns, the model expects {want}; "
            f"pass the {what} named in the config, in order"
        )
    if not want:
        return
    cols = np.asarray(table)
    if cols.shape != (length, want):
        letter = "C" if what == "covariates" else "K"
        raise ForecastInputError(
            f"series {name}: {what} shape {cols.shape} must be [T, {letter}] = [{length}, {want}]"
        )
    if not np.isfinite(cols).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(cols)))
        raise ForecastInputError(
            f"series {name}: {what} hold NaN or inf (row {row}, column {col}); "
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
) -> PanelWindows:
    """Every window of every series: the series laid end to end on `device`, plus start rows.

    Series shorter than `lookback + horizon` contribute no windows (and no rows); if none has a
    window the call fails, since there is nothing to train on. `calendar_freq` is the frequency
    of the calendar features (None: no calendar inputs); `covariates` (C) and
    `future_covariates` (K') are the column counts each series must carry.

    Raises:
        ForecastInputError: non-finite values, wrong covariate width, missing timestamps,
            or no series long enough.
    """
    size = lookback + horizon
    kept: list[SeriesData] = []
    starts: list[np.ndarray] = []
    offset = 0
    for i, s in enumerate(series):
        check_series(s, i, calendar_freq, covariates, future_covariates)
        length = len(s.values)
        if length < size:
            continue
        kept.append(s)
        starts.append(np.arange(offset, offset + length - size + 1, dtype=np.int64))
        offset += length
    if not kept:
        longest = max((len(s.values) for s in series), default=0)
        raise ForecastInputError(
            f"no series has lookback + horizon = {size} values (longest has "
            f"{longest}); pass longer series or lower lookback / max_horizon"
        )

    def laid(parts: list[np.ndarray]) -> Tensor:
        # one float32 copy of the series, end to end, moved to the device once.
        return torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False)).to(device)

    return PanelWindows(
        values=laid([np.asarray(s.values, dtype=np.float32) for s in kept]),  # [S]
        starts=torch.from_numpy(np.concatenate(starts)).to(device),  # [N]
        covariates=laid([np.asarray(s.covariates, np.float32) for s in kept])
        if covariates
        else None,  # [S, C]
        calendar=laid([calendar_features(np.asarray(s.timestamps), calendar_freq) for s in kept])
        if calendar_freq is not None
        else None,  # [S, K]
        known=laid([np.asarray(s.future_covariates, np.float32) for s in kept])
        if future_covariates
        else None,  # [S, K']
        lookback=lookback,
        horizon=horizon,
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

    `history` [B, T] (or [T]: one series), T >= lookback; `timestamps` [B, T] datetime64,
    required with `calendar`; `covariates` [B, T, C] (or [T, C]), required when
    `covariate_names` are given; `calibrated`: the model has conformal quantiles (needed for
    `levels`). Returns (history [B, T] float32, timestamps [B, T] | None, covariates
    [B, T, C] float32 | None).

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
