"""The ESN readout's design matrices: reservoir inputs, readout feature rows, and the
training / validation windows built from one reservoir run over whole series.

`esn.py`'s module docstring gives the equations (inputs u_t, features z_t, seasonal profile
p_t, scale s). The forecaster owns the weights and fits them; this module only turns series
and the forecaster's fitted scales into tensors, through a `DesignSpec` it is handed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.base import SeriesData
from models.config import ESNConfig
from models.errors import ForecastInputError
from models.features import calendar_features
from models.reservoir import run_reservoir
from models.windows import check_series

Run = tuple[Tensor, Tensor | None, Tensor, Tensor, list[int], Tensor | None]
"""One reservoir run over a padded batch: values [B, T], calendar [B, T, K], s [B, 1],
states [B, T, N], true lengths, z-scored future covariates [B, T, K']."""


@dataclass(frozen=True)
class Design:
    """Readout design of some windows: features [n, F], targets [n, H] (normalised), and what
    maps back to data units: last value [n, 1], scale s [n, 1], look-back window [n, L];
    `counts` is how many consecutive windows each series gave."""

    features: Tensor
    targets: Tensor
    last: Tensor
    scale: Tensor
    history: Tensor
    counts: tuple[int, ...]


@dataclass(frozen=True)
class DesignSpec:
    """What building inputs and readout rows needs from an ESN: its config, the seasonal lag
    m and whether interactions are read, and its current (fitted) scale buffers.

    Built afresh by the forecaster for each call, since `.to(device)` replaces its buffers.
    """

    config: ESNConfig
    season_lag: int  # m: whole seasons, >= H steps
    interactions: bool
    input_scale: Tensor  # [1 + C]
    future_mean: Tensor | None  # [K'], None without future covariates
    future_std: Tensor | None  # [K']

    def inputs(
        self,
        values: Tensor,
        cov: Tensor | None,
        cal: Tensor | None,
        s: Tensor,
        fut: Tensor | None = None,
    ) -> Tensor:
        """Reservoir inputs u [B, T, D] from values [B, T], cov [B, T, C], cal [B, T, K] and
        z-scored future covariates fut [B, T, K'].

        The first step's difference is 0 (nothing before it); s [B, 1] divides the target's.
        """
        parts = [self.differences(values[..., None]) / s[..., None]]  # [B, T, 1]
        if cov is not None:
            parts.append(self.differences(cov) / self.input_scale[1:])  # [B, T, C]
        if cal is not None:
            parts.append(cal)  # [B, T, K]
        if fut is not None:
            parts.append(fut)  # [B, T, K']
        return torch.cat(parts, dim=-1)  # [B, T, D]

    def scale_future(self, fut: Tensor | None) -> Tensor | None:
        """[B, T, K'] raw -> z-scored with the training mean / std (None stays None)."""
        if fut is None or self.future_mean is None or self.future_std is None:
            return None
        return (fut - self.future_mean) / self.future_std  # [B, T, K']

    def differences(self, x: Tensor) -> Tensor:
        """[B, T, F] -> [B, T, F] first differences (0 at t=0), or x itself for norm="none"."""
        if self.config.norm == "none":
            return x
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)

    def series_scale(self, values: Tensor) -> Tensor:
        """[B, T] -> [B, 1] the s of esn.py's module docstring."""
        if self.config.norm == "revin":
            step = values[:, 1:] - values[:, :-1]  # [B, T-1]
            return step.std(dim=1, correction=0, keepdim=True).clamp_min(1e-6)  # [B, 1]
        return self.input_scale[:1].expand(values.shape[0], 1)  # [B, 1]

    def series_scale_padded(self, values: Tensor, lengths: list[int]) -> Tensor:
        """Per-series s over each series' first `lengths[i]` values: [B, T] -> [B, 1]."""
        if self.config.norm != "revin":
            return self.series_scale(values)
        return torch.cat([self.series_scale(values[i : i + 1, :n]) for i, n in enumerate(lengths)])

    def readout_rows(
        self,
        states: Tensor,
        window: Tensor,
        cal_now: Tensor | None,
        s: Tensor,
        ahead: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Features [n, F] from states [n, N], look-back windows [n, L], cal [n, K] and the
        z-scored future covariates from origin to horizon end, ahead [n, K', H+1]; and the
        per-row (location [n, 1]) the targets are relative to."""
        loc = window[:, -1:] if self.config.norm != "none" else torch.zeros_like(window[:, :1])
        parts = [states, (window - loc) / s]  # [n, N], [n, L]
        if cal_now is not None:
            parts.append(cal_now)  # [n, K]
        if ahead is not None:
            parts.append(ahead.reshape(ahead.shape[0], -1))  # [n, K' * (H+1)]
            if self.interactions:
                profile = self.seasonal_profile(window, loc, s)  # [n, H]
                cross = profile[:, None, :] * ahead[:, :, 1:]  # [n, 1, H] * [n, K', H]
                parts.append(cross.reshape(cross.shape[0], -1))  # [n, K' * H]
        return torch.cat(parts, dim=1), loc  # [n, F], [n, 1]

    def seasonal_profile(self, window: Tensor, loc: Tensor, s: Tensor) -> Tensor:
        """(mean_j y_{t+h-j m} - y_t) / s over the whole seasons j of the look-back: [n, H]."""
        m, h, length = self.season_lag, self.config.max_horizon, window.shape[1]
        # each [n, H]: the horizon's positions j seasons back (m >= H keeps them in the window)
        lagged = [window[:, length - j * m : length - j * m + h] for j in range(1, length // m + 1)]
        return (torch.stack(lagged).mean(dim=0) - loc) / s  # [J, n, H] -> [n, H]


def designs(
    spec: DesignSpec,
    reservoir: tuple[Tensor, Tensor, Tensor],
    train: Sequence[SeriesData],
    val: Sequence[SeriesData],
    device: torch.device,
) -> tuple[Design, Design]:
    """Readout rows of every training window (origins past the washout) and every
    validation window (origins from lookback - 1 on: a val series starts lookback steps
    before its first target, as the Forecaster contract says).

    The reservoir (w_in [N, D], w [N, N], bias [N]) runs once over all series together (one
    zero-padded batch).
    """
    c = spec.config
    w_in, w, bias = reservoir
    values, cov, cal, fut, lengths = stack([*train, *val], c, device)
    # revin: a training series' s over all of it, a validation series' over its context only
    history = [*lengths[: len(train)], *[c.lookback] * len(val)]
    s = spec.series_scale_padded(values, history)  # [B, 1]
    fut = spec.scale_future(fut)  # [B, T, K'] z-scored, or None
    u = spec.inputs(values, cov, cal, s, fut)  # [B, T, D]
    states = run_reservoir(u, w_in, w, bias, c.leak_rate, keep_all=True)
    run = (values, cal, s, states, lengths, fut)  # states [B, T, N]
    n_train = len(train)
    return (
        collect(spec, run, range(n_train), c.washout - 1, "train"),
        collect(spec, run, range(n_train, len(lengths)), 0, "val"),
    )


def collect(spec: DesignSpec, run: Run, rows: range, first: int, name: str) -> Design:
    """The design of series `rows` of a reservoir run, origins t >= first.

    Raises:
        ForecastInputError: no series in `rows` is long enough for one window.
    """
    c = spec.config
    h = c.max_horizon
    values, cal, s, states, lengths, fut = run
    feats, targets, lasts, scales, hists = [], [], [], [], []
    counts: list[int] = []
    for i in rows:
        start = max(first, c.lookback - 1)
        if lengths[i] - h <= start:
            continue  # too short for one window
        origins = torch.arange(start, lengths[i] - h, device=values.device)  # [n]
        win = values[i].unfold(0, c.lookback, 1)[origins - c.lookback + 1]  # [n, L]
        ahead = values[i].unfold(0, h, 1)[origins + 1]  # [n, H]
        si = s[i].expand(origins.numel(), 1)  # [n, 1]
        cal_now = None if cal is None else cal[i, origins]  # [n, K]
        # [T, K'] -> [T-H, K', H+1] windows of origin .. origin + H, one per origin
        known = None if fut is None else fut[i].unfold(0, h + 1, 1)[origins]
        z, loc = spec.readout_rows(states[i, origins], win, cal_now, si, known)
        feats.append(z)
        targets.append((ahead - loc) / si)  # [n, H]
        lasts.append(loc)
        scales.append(si)
        hists.append(win)
        counts.append(int(origins.numel()))
    if not feats:
        need = max(first + 1, c.lookback) + h
        longest = max((lengths[i] for i in rows), default=0)
        raise ForecastInputError(
            f"no {name} series has the {need} values one window needs "
            f"(max(washout, lookback) + max_horizon; longest has {longest}); pass "
            "longer series or lower lookback / washout / max_horizon"
        )
    return Design(
        features=torch.cat(feats).double(),  # [n, F]
        targets=torch.cat(targets).double(),  # [n, H]
        last=torch.cat(lasts),  # [n, 1]
        scale=torch.cat(scales),  # [n, 1]
        history=torch.cat(hists),  # [n, L]
        counts=tuple(counts),
    )


def stack(
    series: Sequence[SeriesData], config: ESNConfig, device: torch.device
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, list[int]]:
    """Series as one batch padded at the end by repeating the last row (zero differences):
    values [B, T], covariates [B, T, C], calendar [B, T, K], future covariates [B, T, K']
    (raw units), and the true lengths.

    Raises:
        ForecastInputError: no series, or a malformed one.
    """
    c = config
    if not series:
        raise ForecastInputError("no series given; pass at least one SeriesData to fit()")
    cal_freq = c.frequency if c.calendar else None
    for i, s in enumerate(series):
        check_series(s, i, cal_freq, len(c.covariates), len(c.future_covariates))
    lengths = [len(s.values) for s in series]
    t_max = max(lengths)

    def batch(arrays: list[np.ndarray]) -> Tensor:  # [T_i, ...] each -> [B, T_max, ...]
        padded = [np.concatenate([a, np.repeat(a[-1:], t_max - len(a), axis=0)]) for a in arrays]
        return torch.as_tensor(np.stack(padded), device=device)

    values = batch([np.asarray(s.values, np.float32) for s in series])  # [B, T]
    cov = cal = fut = None
    if c.covariates:
        cov = batch([np.asarray(s.covariates, np.float32) for s in series])  # [B, T, C]
    if c.calendar:  # [B, T, K]
        cal = batch([calendar_features(np.asarray(s.timestamps), c.frequency) for s in series])
    if c.future_covariates:
        fut = batch([np.asarray(s.future_covariates, np.float32) for s in series])  # [B, T, K']
    return values, cov, cal, fut, lengths
