"""Echo state network: a fixed random leaky-integrator reservoir with a closed-form ridge readout.

The reservoir is a pure state update over the inputs u_t (no training, fixed random weights)::

    x_t = (1 - a) * x_{t-1} + a * tanh(W_in u_t + W x_{t-1} + b),   x_{-1} = 0

with leak rate `a`, W sparse (`density`) and rescaled so its spectral radius (the largest
|eigenvalue|, computed once with torch.linalg.eigvals) is `spectral_radius`, and W_in, b uniform
in [-input_scaling, input_scaling]. Each matrix has its own seeded torch.Generator stream.

Level-free inputs. ETTh1's test level sits 1.3 training stds below the training level, so the
reservoir never sees levels: u_t holds the first differences d_t = y_t - y_{t-1} of the target
(and of each past covariate) divided by a scale s, plus calendar features when configured. A
level shift changes no input. The readout reads the state at the forecast origin t next to the
look-back lags relative to the last value and emits all `max_horizon` steps at once::

    z_t = [x_t, (y_{t-L+1} - y_t) / s, ..., (y_t - y_t) / s, calendar(t)]      [N + L + K]
    (y_{t+h} - y_t) / s = z_t . w_h + c_h,   h = 1 .. max_horizon

Future covariates f (models.future), z-scored with the training series' mean and std, are
reservoir inputs too (their value at each step), and the readout sees their values from the
origin to the end of the horizon next to the state, so the step t+h reads f_{t+h}::

    z_t = [x_t, lags, calendar(t), f_t, f_{t+1}, ..., f_{t+max_horizon}, p_t]

A linear readout can only add a covariate's effect, but weather scales demand (rain empties
the rush hour, not the night), so p_t holds one interaction per step and covariate: the
step's seasonal profile relative to the last value times the covariate there,

    p_{t,h,k} = (mean_j y_{t+h-j m} - y_t) / s * f_{t+h,k},   j = 1 .. floor(L / m)

with m the season (`features.season_length`) times ceil(max_horizon / season): the mean of
the value at the step's position in every whole season of the look-back (the same hour on
each of the last 7 days for hourly data and a week of look-back). They are left out when the
look-back is shorter than m. (On bike hourly, H = 24, they take the test-MAE gain of weather
and holidays from 11% to 16%; BENCHMARKS.md.)

(subtract-last normalisation, so the lag part alone is NLinear; calendar(t) fixes the calendar
of every future step linearly, since sin/cos of t + h are rotations of those of t). s is one
number fitted on the training series (the pooled std of their differences, `norm="last"`), each
series' own std of differences over its history (`norm="revin"`, for panels whose series differ
in size: forecasts then scale with the series), or 1 with raw values in place of differences
and no shift (`norm="none"`, for data already on a unit scale). "History" never includes a
value being forecast: predict() takes the std over the history it is given, a validation
series over its first `lookback` values (the context before its first target: what predict()
would be given for that origin), and a training series over all of it (the fit scores nothing
on training windows).

Speed. Training runs the reservoir ONCE over each whole training series and reads the state at
every time step (a 96-step window re-run from zero per origin costs ~60x the FLOPs); the
states before the `washout`-th input, still marked by the zero start, are dropped, so the
first state read has seen `washout` inputs, as many as predict()'s warm-up. The readout is
ridge regression on standardised, centred features (the bias comes from centring) solved from
the normal equations with torch.linalg.solve in float64; `ridge` values are tried on the
validation windows and the best is kept (each solve is a few milliseconds). Intervals are
split-conformal (models.intervals) on the validation windows' residuals, scaled per window.

Prediction context. predict() warms the reservoir from zero over the last `washout` inputs of
each history row (so washout <= lookback and any history the contract accepts is enough; with
a history of exactly `washout` values the first input is a zero difference). By the echo-state
property the state forgets its start: the linearised bound contracts by 1 - a(1 - rho) per
step, 0.97 at the defaults, so 96 steps leave at most ~5% of the start (tanh saturation
contracts faster in practice). The test pins how closely warmed states match the whole-series
states the readout was trained on at small sizes; a reservoir with a longer memory (leak near
0, radius near 1) needs a longer washout.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models import intervals, rollout
from models.base import EpochCallback, EpochStats, FitReport, Forecast, ModelMeta, SeriesData
from models.config import ESNConfig
from models.errors import ForecastInputError
from models.features import calendar_features, calendar_width, season_length
from models.future import fit_stats
from models.loop import resolve_device
from models.persist import fresh_meta, load_module, save_module
from models.reservoir import normal_equations, reservoir_weights, run_reservoir, solve_ridge
from models.windows import check_series

_PREDICT_BATCH = 1024  # history rows per reservoir pass at inference (bounds memory)


@dataclass(frozen=True)
class _Design:
    """Readout design of some windows: features [n, F], targets [n, H] (normalised), and what
    maps back to data units: last value [n, 1], scale s [n, 1], look-back window [n, L]."""

    features: Tensor
    targets: Tensor
    last: Tensor
    scale: Tensor
    history: Tensor


class ESNForecaster(nn.Module):
    """An echo state network forecaster built from an ESNConfig (all weights are buffers)."""

    reads_covariates = True
    reads_calendar = True
    reads_future_covariates = True

    def __init__(self, config: ESNConfig) -> None:
        super().__init__()
        self.config = c = config
        self.cal_width = calendar_width(c.frequency) if c.calendar else 0
        self.n_future = k = len(c.future_covariates)  # K'
        self.inputs = 1 + len(c.covariates) + self.cal_width + k  # D
        season = season_length(c.frequency)
        self.season_lag = season * -(-c.max_horizon // season)  # m: whole seasons, >= H steps
        self.interactions = bool(k) and c.lookback >= self.season_lag
        # F: state, lags, calendar at the origin, future covariates from origin to horizon
        # end, and their interactions with the seasonal-naive values of the horizon
        self.n_features = (
            c.reservoir_size + c.lookback + self.cal_width + (c.max_horizon + 1) * k
            + (c.max_horizon * k if self.interactions else 0)
        )  # fmt: skip
        w_in, w, bias = reservoir_weights(c, self.inputs)
        self.register_buffer("w_in", w_in)  # [N, D]
        self.register_buffer("w", w)  # [N, N]
        self.register_buffer("bias", bias)  # [N]
        # [1 + C] divisors of the target's and covariates' differences, fitted in fit().
        self.register_buffer("input_scale", torch.ones(1 + len(c.covariates)))
        self.register_buffer("readout_weight", torch.zeros(self.n_features, c.max_horizon))
        self.register_buffer("readout_bias", torch.zeros(c.max_horizon))
        if k:  # [K'] training mean / std of each future covariate, set by fit
            self.register_buffer("future_mean", torch.zeros(k))
            self.register_buffer("future_std", torch.ones(k))
        self._meta = fresh_meta(c)

    w_in: Tensor
    w: Tensor
    bias: Tensor
    input_scale: Tensor
    readout_weight: Tensor
    readout_bias: Tensor
    future_mean: Tensor
    future_std: Tensor

    @property
    def meta(self) -> ModelMeta:
        """Metadata: family, shapes, conformal quantiles (after fit), versions, fit facts."""
        return self._meta

    def _device(self) -> torch.device:
        return self.w.device

    # ----- inputs and design ------------------------------------------------------------

    def _inputs(
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
        parts = [self._differences(values[..., None]) / s[..., None]]  # [B, T, 1]
        if cov is not None:
            parts.append(self._differences(cov) / self.input_scale[1:])  # [B, T, C]
        if cal is not None:
            parts.append(cal)  # [B, T, K]
        if fut is not None:
            parts.append(fut)  # [B, T, K']
        return torch.cat(parts, dim=-1)  # [B, T, D]

    def _scale_future(self, fut: Tensor | None) -> Tensor | None:
        """[B, T, K'] raw -> z-scored with the training mean / std (None stays None)."""
        if fut is None or not self.n_future:
            return None
        return (fut - self.future_mean) / self.future_std  # [B, T, K']

    def _differences(self, x: Tensor) -> Tensor:
        """[B, T, F] -> [B, T, F] first differences (0 at t=0), or x itself for norm="none"."""
        if self.config.norm == "none":
            return x
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)

    def _series_scale(self, values: Tensor) -> Tensor:
        """[B, T] -> [B, 1] the s of the module docstring."""
        c = self.config
        if c.norm == "revin":
            step = values[:, 1:] - values[:, :-1]  # [B, T-1]
            return step.std(dim=1, correction=0, keepdim=True).clamp_min(1e-6)  # [B, 1]
        return self.input_scale[:1].expand(values.shape[0], 1)  # [B, 1]

    def _readout_rows(
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
                profile = self._seasonal_profile(window, loc, s)  # [n, H]
                cross = profile[:, None, :] * ahead[:, :, 1:]  # [n, 1, H] * [n, K', H]
                parts.append(cross.reshape(cross.shape[0], -1))  # [n, K' * H]
        return torch.cat(parts, dim=1), loc  # [n, F], [n, 1]

    def _seasonal_profile(self, window: Tensor, loc: Tensor, s: Tensor) -> Tensor:
        """(mean_j y_{t+h-j m} - y_t) / s over the whole seasons j of the look-back: [n, H]."""
        m, h, length = self.season_lag, self.config.max_horizon, window.shape[1]
        # each [n, H]: the horizon's positions j seasons back (m >= H keeps them in the window)
        lagged = [window[:, length - j * m : length - j * m + h] for j in range(1, length // m + 1)]
        return (torch.stack(lagged).mean(dim=0) - loc) / s  # [J, n, H] -> [n, H]

    def _designs(
        self, train: Sequence[SeriesData], val: Sequence[SeriesData]
    ) -> tuple[_Design, _Design]:
        """Readout rows of every training window (origins past the washout) and every
        validation window (origins from lookback - 1 on: a val series starts lookback steps
        before its first target, as the Forecaster contract says).

        The reservoir runs once over all series together (one zero-padded batch).
        """
        c = self.config
        values, cov, cal, fut, lengths = self._stack([*train, *val], self._device())
        # revin: a training series' s over all of it, a validation series' over its context only
        history = [*lengths[: len(train)], *[c.lookback] * len(val)]
        s = self._series_scale_padded(values, history)  # [B, 1]
        fut = self._scale_future(fut)  # [B, T, K'] z-scored, or None
        u = self._inputs(values, cov, cal, s, fut)  # [B, T, D]
        states = run_reservoir(u, self.w_in, self.w, self.bias, c.leak_rate, keep_all=True)
        run = (values, cal, s, states, lengths, fut)  # states [B, T, N]
        n_train = len(train)
        return (
            self._collect(run, range(n_train), c.washout - 1, "train"),
            self._collect(run, range(n_train, len(lengths)), 0, "val"),
        )

    def _collect(
        self,
        run: tuple[Tensor, Tensor | None, Tensor, Tensor, list[int], Tensor | None],
        rows: range,
        first: int,
        name: str,
    ) -> _Design:
        """The design of series `rows` of a reservoir run, origins t >= first."""
        c = self.config
        h = c.max_horizon
        values, cal, s, states, lengths, fut = run
        feats, targets, lasts, scales, hists = [], [], [], [], []
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
            z, loc = self._readout_rows(states[i, origins], win, cal_now, si, known)
            feats.append(z)
            targets.append((ahead - loc) / si)  # [n, H]
            lasts.append(loc)
            scales.append(si)
            hists.append(win)
        if not feats:
            need = max(first + 1, c.lookback) + h
            longest = max((lengths[i] for i in rows), default=0)
            raise ForecastInputError(
                f"no {name} series has the {need} values one window needs "
                f"(max(washout, lookback) + max_horizon; longest has {longest}); pass "
                "longer series or lower lookback / washout / max_horizon"
            )
        return _Design(
            features=torch.cat(feats).double(),  # [n, F]
            targets=torch.cat(targets).double(),  # [n, H]
            last=torch.cat(lasts),  # [n, 1]
            scale=torch.cat(scales),  # [n, 1]
            history=torch.cat(hists),  # [n, L]
        )

    def _series_scale_padded(self, values: Tensor, lengths: list[int]) -> Tensor:
        """Per-series s over each series' first `lengths[i]` values: [B, T] -> [B, 1]."""
        if self.config.norm != "revin":
            return self._series_scale(values)
        return torch.cat([self._series_scale(values[i : i + 1, :n]) for i, n in enumerate(lengths)])

    def _stack(
        self, series: Sequence[SeriesData], device: torch.device
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, list[int]]:
        """Series as one batch padded at the end by repeating the last row (zero differences):
        values [B, T], covariates [B, T, C], calendar [B, T, K], future covariates [B, T, K']
        (raw units), and the true lengths."""
        c = self.config
        _check_series_list(series, c)
        lengths = [len(s.values) for s in series]
        t_max = max(lengths)

        def pad(a: np.ndarray) -> np.ndarray:  # [T, ...] -> [T_max, ...]
            return np.concatenate([a, np.repeat(a[-1:], t_max - len(a), axis=0)])

        values = torch.as_tensor(
            np.stack([pad(np.asarray(s.values, np.float32)) for s in series]), device=device
        )  # [B, T]
        cov = None
        if c.covariates:
            cov = torch.as_tensor(
                np.stack([pad(np.asarray(s.covariates, np.float32)) for s in series]),
                device=device,
            )  # [B, T, C]
        cal = None
        if c.calendar:
            feats = [pad(calendar_features(np.asarray(s.timestamps), c.frequency)) for s in series]
            cal = torch.as_tensor(np.stack(feats), device=device)  # [B, T, K]
        fut = None
        if self.n_future:
            fut = torch.as_tensor(
                np.stack([pad(np.asarray(s.future_covariates, np.float32)) for s in series]),
                device=device,
            )  # [B, T, K']
        return values, cov, cal, fut, lengths

    # ----- fit --------------------------------------------------------------------------

    def fit(
        self,
        train: Sequence[SeriesData],
        val: Sequence[SeriesData],
        *,
        callback: EpochCallback | None = None,
        checkpoint_dir: Path | None = None,
    ) -> FitReport:
        """Run the reservoir over each series, solve the readout, pick ridge, calibrate.

        `checkpoint_dir` is accepted for the contract and unused: a closed-form fit has no
        intermediate state worth resuming. `callback` is called once (one "epoch").

        Raises:
            ForecastInputError: a series is malformed, or none is long enough for a window.
        """
        del checkpoint_dir
        c = self.config
        started = time.perf_counter()
        self.to(resolve_device(c.device))
        with torch.inference_mode():
            self._fit_input_scale(train)
            stats = fit_stats(train, self.n_future)
            if self.n_future:
                self.future_mean.copy_(torch.tensor([m for m, _ in stats]))
                self.future_std.copy_(torch.tensor([sd for _, sd in stats]))
            design, val_design = self._designs(train, val)
            gram, cross, mean_z, mean_y, std_z = normal_equations(design.features, design.targets)
            best: tuple[float, float, Tensor, Tensor] | None = None
            for ridge in c.ridge:
                weight, bias = solve_ridge(gram, cross, mean_z, mean_y, std_z, ridge)
                err = self._mse(val_design, weight, bias)
                if best is None or err < best[0]:
                    best = (err, ridge, weight, bias)
            assert best is not None  # config guarantees one ridge value at least
            val_mse, ridge, weight, bias = best
            self.readout_weight.copy_(weight.float())
            self.readout_bias.copy_(bias.float())
            train_mse = self._mse(design, weight, bias)
            mean = self._denormalise(
                val_design, val_design.features.float() @ self.readout_weight + self.readout_bias
            )  # [n, H]
            actual = self._denormalise(val_design, val_design.targets.float())
            conformal, scale_entry = intervals.calibrate_windows(
                val_design.history, actual, mean, c.frequency, c.levels
            )
        seconds = time.perf_counter() - started
        n_train = int(design.features.shape[0])
        self._meta = dataclasses.replace(
            self._meta,
            future_stats=stats,
            conformal=conformal,
            extra={
                "train_windows": n_train,
                "val_windows": int(val_design.features.shape[0]),
                "ridge": ridge,
                "train_mse": train_mse,
                "val_mse": val_mse,
                "device": str(self._device()),
                "seed": c.seed,
                **scale_entry,
            },
        )
        if callback is not None:
            callback(
                EpochStats(
                    epoch=1, train_loss=train_mse, val_loss=val_mse, seconds=seconds, best=True
                )
            )
        return FitReport(
            epochs=1,
            best_epoch=1,
            train_losses=(train_mse,),
            val_losses=(val_mse,),
            seconds=seconds,
            train_windows=n_train,
            windows_per_second=n_train / max(seconds, 1e-9),
            stopped_early=False,
            device=str(self._device()),
        )

    def _fit_input_scale(self, train: Sequence[SeriesData]) -> None:
        """input_scale = pooled std of the training series' differences (target, covariates)."""
        if self.config.norm == "none":
            return
        diffs = []
        for s in train:
            cols = [np.asarray(s.values, np.float64)[:, None]]  # [T, 1]
            if self.config.covariates and s.covariates is not None:
                cols.append(np.asarray(s.covariates, np.float64))  # [T, C]
            table = np.concatenate(cols, axis=1)  # [T, 1 + C]
            if len(table) > 1:
                diffs.append(np.diff(table, axis=0))
        if diffs:
            std = np.concatenate(diffs).std(axis=0)  # [1 + C]
            self.input_scale.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def _denormalise(self, design: _Design, y: Tensor) -> Tensor:
        """Normalised [n, H] -> data units."""
        return y * design.scale + design.last

    def _mse(self, design: _Design, weight: Tensor, bias: Tensor) -> float:
        """Mean squared error in data units of readout (weight, bias) on a design."""
        err = (design.features @ weight + bias - design.targets) * design.scale.double()
        return float(err.pow(2).mean())

    # ----- predict ----------------------------------------------------------------------

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

        `future_covariates` [B, T + H, K'] hold the known values of history and horizon. The
        reservoir is warmed from zero over each row's last `washout` steps, the readout
        reads the last `lookback` values. Horizons beyond `max_horizon` roll forward block by
        block (`rolled=True`) with past covariates held at their last row.

        Raises:
            ForecastInputError: naming the argument, the value and the fix.
        """

        def step(
            h: np.ndarray, st: np.ndarray | None, cv: np.ndarray | None, fu: np.ndarray | None
        ) -> np.ndarray:
            rows = [
                self._forecast_block(
                    h[i : i + _PREDICT_BATCH],
                    None if st is None else st[i : i + _PREDICT_BATCH],
                    None if cv is None else cv[i : i + _PREDICT_BATCH],
                    None if fu is None else fu[i : i + _PREDICT_BATCH],
                )
                for i in range(0, h.shape[0], _PREDICT_BATCH)
            ]
            return np.concatenate(rows)  # [B, max_horizon]

        with torch.inference_mode():
            return rollout.forecast(
                step, self._meta, history, horizon, levels,
                timestamps=timestamps, covariates=covariates,
                future_covariates=future_covariates,
            )  # fmt: skip

    def _forecast_block(
        self,
        hist: np.ndarray,
        stamps: np.ndarray | None,
        cov: np.ndarray | None,
        fut: np.ndarray | None = None,
    ) -> np.ndarray:
        """One readout pass: history [b, T'], stamps [b, T'], covariates [b, T', C], future
        covariates [b, T' + H, K'] -> [b, H]."""
        c, device = self.config, self._device()
        t_len = hist.shape[1]
        ctx = min(c.washout + 1, hist.shape[1])  # +1: the first difference needs a value before
        values = torch.from_numpy(np.ascontiguousarray(hist[:, -ctx:])).to(device)  # [b, ctx]
        cov_t = cal_t = None
        if cov is not None:
            cov_t = torch.from_numpy(np.ascontiguousarray(cov[:, -ctx:])).to(device)
        if c.calendar and stamps is not None:
            feats = calendar_features(stamps[:, -ctx:], c.frequency)  # [b, ctx, K]
            cal_t = torch.from_numpy(feats).to(device)
        fut_t = ahead = None
        if fut is not None and self.n_future:
            raw = torch.from_numpy(np.ascontiguousarray(fut)).to(device)  # [b, T' + H, K']
            scaled = (raw - self.future_mean) / self.future_std  # z-scored, as in fit
            fut_t = scaled[:, t_len - ctx : t_len]  # [b, ctx, K']
            ahead = scaled[:, t_len - 1 : t_len + c.max_horizon].transpose(1, 2)  # [b, K', H+1]
        s = self._series_scale(torch.from_numpy(hist).to(device))  # [b, 1] over all of T'
        u = self._inputs(values, cov_t, cal_t, s, fut_t)[:, ctx - c.washout :]  # [b, washout, D]
        state = run_reservoir(u, self.w_in, self.w, self.bias, c.leak_rate, keep_all=False)
        window = torch.from_numpy(np.ascontiguousarray(hist[:, -c.lookback :])).to(device)
        cal_now = None if cal_t is None else cal_t[:, -1]  # [b, K]
        z, loc = self._readout_rows(state, window, cal_now, s, ahead)  # [b, F], [b, 1]
        y = (z @ self.readout_weight + self.readout_bias) * s + loc  # [b, H]
        return y.cpu().numpy()

    # ----- persistence ------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write config.json, meta.json and weights.safetensors (reservoir matrices included)."""
        save_module(Path(directory), self.config, self._meta, self)

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> ESNForecaster:
        """Rebuild from a saved directory: from_dict -> constructor -> strict state dict."""
        model, meta = load_module(Path(directory), ESNConfig, cls, device)
        model._meta = meta
        return model


# ----- input checks (the same rules and messages as the recurrent family) -----------------


def _check_series_list(series: Sequence[SeriesData], config: ESNConfig) -> None:
    """Validate fit() series: 1-D finite values, timestamps with calendar, covariate width."""
    if not series:
        raise ForecastInputError("no series given; pass at least one SeriesData to fit()")
    for i, s in enumerate(series):
        check_series(
            s,
            i,
            config.frequency if config.calendar else None,
            len(config.covariates),
            len(config.future_covariates),
        )
