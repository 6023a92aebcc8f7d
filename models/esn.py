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
split-conformal (models.intervals) on the validation windows' residuals, scaled per window and
cross-fitted: each half of a series' windows is forecast with the ridge the other half chose.

Prediction context. predict() warms the reservoir from zero over the last `washout` inputs of
each history row (so washout <= lookback and any history the contract accepts is enough; with
a history of exactly `washout` values the first input is a zero difference). By the echo-state
property the state forgets its start: the linearised bound contracts by 1 - a(1 - rho) per
step, 0.97 at the defaults, so 96 steps leave at most ~5% of the start (tanh saturation
contracts faster in practice). The test pins how closely warmed states match the whole-series
states the readout was trained on at small sizes; a reservoir with a longer memory (leak near
0, radius near 1) needs a longer washout.

Layout. This file holds the forecaster (fit, predict, persistence); the reservoir inputs, the
readout rows z_t and the windows' design matrices are built in models.esn_design.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models import esn_design, intervals, rollout
from models.base import EpochCallback, EpochStats, FitReport, Forecast, ModelMeta, SeriesData
from models.config import ESNConfig
from models.features import calendar_features, calendar_width, season_length
from models.future import fit_stats
from models.loop import resolve_device
from models.persist import fresh_meta, load_module, save_module
from models.reservoir import normal_equations, reservoir_weights, run_reservoir, solve_ridge

_PREDICT_BATCH = 1024  # history rows per reservoir pass at inference (bounds memory)


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
        self.meta = fresh_meta(c)

    w_in: Tensor
    w: Tensor
    bias: Tensor
    input_scale: Tensor
    readout_weight: Tensor
    readout_bias: Tensor
    future_mean: Tensor
    future_std: Tensor
    meta: ModelMeta  # meta.json: family, shapes, versions; fit adds intervals and fit facts

    def _device(self) -> torch.device:
        return self.w.device

    # ----- design (models.esn_design builds it) -----------------------------------------

    def _spec(self) -> esn_design.DesignSpec:
        """This module's config, layout and current scale buffers, for models.esn_design."""
        return esn_design.DesignSpec(
            config=self.config,
            season_lag=self.season_lag,
            interactions=self.interactions,
            input_scale=self.input_scale,
            future_mean=self.future_mean if self.n_future else None,
            future_std=self.future_std if self.n_future else None,
        )

    def _designs(
        self, train: Sequence[SeriesData], val: Sequence[SeriesData]
    ) -> tuple[esn_design.Design, esn_design.Design]:
        """Readout designs of the training and validation windows (models.esn_design)."""
        reservoir = (self.w_in, self.w, self.bias)
        return esn_design.designs(self._spec(), reservoir, train, val, self._device())

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
            readouts = [solve_ridge(gram, cross, mean_z, mean_y, std_z, ridge) for ridge in c.ridge]
            errors = torch.stack([self._squared_errors(val_design, *r) for r in readouts])  # [R, n]
            pick = int(errors.mean(dim=1).argmin())  # the first of equal minima
            ridge, (weight, bias) = c.ridge[pick], readouts[pick]
            val_mse = float(errors[pick].mean())
            self.readout_weight.copy_(weight.float())
            self.readout_bias.copy_(bias.float())
            train_mse = float(self._squared_errors(design, weight, bias).mean())
            mean, picks = self._cross_fit_forecasts(val_design, readouts, errors, pick)
            actual = self._denormalise(val_design, val_design.targets.float())
            conformal, scale_entry = intervals.calibrate_windows(
                val_design.history, actual, mean, c.frequency, c.levels
            )
        seconds = time.perf_counter() - started
        n_train = int(design.features.shape[0])
        self.meta = dataclasses.replace(
            self.meta,
            future_stats=stats,
            conformal=conformal,
            extra={
                "train_windows": n_train,
                "val_windows": int(val_design.features.shape[0]),
                "ridge": ridge,
                "cross_fit_ridges": [c.ridge[i] for i in picks],
                "train_mse": train_mse,
                "val_mse": val_mse,
                "device": str(self._device()),
                "seed": c.seed,
                **scale_entry,
            },
        )
        if callback is not None:
            callback(EpochStats(1, train_mse, val_mse, seconds, True))
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
            val_forecasts=mean.cpu().numpy(),
            val_actual=actual.cpu().numpy(),
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

    def _denormalise(self, design: esn_design.Design, y: Tensor) -> Tensor:
        """Normalised [n, H] -> data units."""
        return y * design.scale + design.last

    def _squared_errors(self, design: esn_design.Design, weight: Tensor, bias: Tensor) -> Tensor:
        """[n] mean squared error in data units of readout (weight, bias), per window."""
        err = (design.features @ weight + bias - design.targets) * design.scale.double()
        return err.pow(2).mean(dim=1)

    def _cross_fit_forecasts(
        self,
        design: esn_design.Design,
        readouts: list[tuple[Tensor, Tensor]],
        errors: Tensor,
        overall: int,
    ) -> tuple[Tensor, tuple[int, int]]:
        """Validation forecasts [n, H] in data units, each half's from the ridge that the
        other half chose (models.intervals: cross-fitting); also the two choices.

        `errors` [R, n] are the squared errors of each readout per window. A half with no
        windows chooses as all the windows did (`overall`).
        """
        first, second = intervals.cross_fit_halves(design.counts, errors.device)
        picks = tuple(
            int(errors[:, half].mean(dim=1).argmin()) if half.numel() else overall
            for half in (first, second)
        )
        out = torch.empty_like(design.targets)  # [n, H] normalised
        for own, chooser in ((first, picks[1]), (second, picks[0])):
            weight, bias = readouts[chooser]
            out[own] = design.features[own] @ weight + bias
        return self._denormalise(design, out.float()), (picks[0], picks[1])

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
                step, self.meta, history, horizon, levels,
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
        spec = self._spec()
        s = spec.series_scale(torch.from_numpy(hist).to(device))  # [b, 1] over all of T'
        u = spec.inputs(values, cov_t, cal_t, s, fut_t)[:, ctx - c.washout :]  # [b, washout, D]
        state = run_reservoir(u, self.w_in, self.w, self.bias, c.leak_rate, keep_all=False)
        window = torch.from_numpy(np.ascontiguousarray(hist[:, -c.lookback :])).to(device)
        cal_now = None if cal_t is None else cal_t[:, -1]  # [b, K]
        z, loc = spec.readout_rows(state, window, cal_now, s, ahead)  # [b, F], [b, 1]
        y = (z @ self.readout_weight + self.readout_bias) * s + loc  # [b, H]
        return y.cpu().numpy()

    # ----- persistence ------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write config.json, meta.json and weights.safetensors (reservoir matrices included)."""
        save_module(Path(directory), self.config, self.meta, self)

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> ESNForecaster:
        """Rebuild from a saved directory: from_dict -> constructor -> strict state dict."""
        return load_module(Path(directory), ESNConfig, cls, device)
