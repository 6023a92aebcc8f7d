"""LSTM, GRU and Elman RNN forecasters: one class, the cell is a config value.

The encoder is cuDNN's nn.LSTM / nn.GRU / nn.RNN over the look-back window. Each encoder step
reads one segment of `segment_length` time steps (value, past covariates, calendar features),
embedded by Linear+ReLU, so a 720-step look-back of 24-step segments is 30 recurrent steps
(SegRNN, Lin et al. 2023). Three multi-step heads:

- "direct": a linear layer from the final state to all `max_horizon` steps.
- "segments": the horizon is cut into segments; for each, one decoder step starts from the
  encoder's final state with a learned position embedding (+ the segment's future calendar
  features) as input, and a linear layer emits the segment. All segments run as one batch.
- "seq2seq": a recurrent decoder seeded with the encoder state runs over the horizon, fed
  learned step embeddings and future calendar features, emitting one value per step.

Future covariates (models.future) travel with the calendar features as "known" inputs
[B, L+H, K]: the encoder reads their look-back values, and each head gets the horizon's values
of the step it predicts ("direct": all H steps' values next to the final state; "segments":
each output segment's values; "seq2seq": each decoder step's value). They are z-scored with
the training series' mean and std (buffers `future_mean` / `future_std`, and meta).

Every window is normalised on its own (models.scaling) and mapped back after the forward pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models import intervals, rollout
from models.base import EpochCallback, FitReport, Forecast, ModelMeta, SeriesData
from models.config import RecurrentConfig
from models.features import calendar_features, calendar_width, future_timestamps
from models.future import fit_stats
from models.loop import CrossFit, LoopSettings, resolve_device, train_loop
from models.persist import fresh_meta, load_module, save_module
from models.scaling import denormalise, normalise
from models.windows import PanelWindows, Windows, WindowSet, stack_series_windows

_CELLS: dict[str, Any] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": nn.functional.mse_loss,
    "mae": nn.functional.l1_loss,
    "huber": nn.functional.smooth_l1_loss,
}
_PREDICT_BATCH = 2048  # windows per forward pass at inference (bounds memory)

State = Tensor | tuple[Tensor, Tensor]  # GRU/RNN h_n, or LSTM (h_n, c_n): [layers*dirs, B, hid]


def _map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """`fn` applied to h_n, and to c_n of an LSTM."""
    return (fn(state[0]), fn(state[1])) if isinstance(state, tuple) else fn(state)


class RecurrentForecaster(nn.Module):
    """A recurrent forecaster (`family` "lstm", "gru" or "rnn") built from a RecurrentConfig."""

    reads_covariates = True
    reads_calendar = True
    reads_future_covariates = True

    future_mean: Tensor
    future_std: Tensor
    meta: ModelMeta  # meta.json: family, shapes, versions; fit adds intervals and fit facts

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = c = config
        self.n_future = len(c.future_covariates)
        # "known" inputs: calendar features and future covariates, over look-back and horizon
        self.cal_width = (calendar_width(c.frequency) if c.calendar else 0) + self.n_future
        self.channels = 1 + len(c.covariates) + self.cal_width
        if self.n_future:  # [K'] training mean / std of each future covariate, set by fit
            self.register_buffer("future_mean", torch.zeros(self.n_future))
            self.register_buffer("future_std", torch.ones(self.n_future))
        self.dirs = 2 if c.bidirectional else 1
        seg = c.segment_length
        self.out_segments = math.ceil(c.max_horizon / seg)
        self.meta = fresh_meta(c)
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left untouched
            torch.manual_seed(c.seed)
            self._build()

    def _cell(self, input_size: int, bidirectional: bool) -> nn.RNNBase:
        c = self.config
        extra = {"nonlinearity": c.nonlinearity} if c.family == "rnn" else {}
        rnn = _CELLS[c.family](
            input_size,
            c.hidden_size,
            num_layers=c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            **extra,
        )
        if c.irnn_init:  # Le et al. 2015: identity recurrence, zero bias, small inputs
            for name, p in rnn.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.eye_(p)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
                elif name.startswith("weight_ih"):
                    nn.init.normal_(p, std=0.001)
        return rnn  # type: ignore[no-any-return]

    def _build(self) -> None:
        c = self.config
        seg, hid = c.segment_length, c.hidden_size
        if seg > 1:
            self.embed: nn.Module = nn.Sequential(nn.Linear(seg * self.channels, hid), nn.ReLU())
            enc_in = hid
        else:
            self.embed = nn.Identity()
            enc_in = self.channels
        self.encoder = self._cell(enc_in, c.bidirectional)
        self.drop = nn.Dropout(c.dropout)
        # NLinear-style skip: one linear map from the normalised look-back to the horizon,
        # added to the recurrent forecast (which then learns what the linear map misses).
        self.skip: nn.Module | None = (
            nn.Linear(c.lookback, c.max_horizon) if c.linear_skip else None
        )
        state = hid * self.dirs
        if c.decoder == "direct":
            self.head = nn.Linear(state + c.max_horizon * self.cal_width, c.max_horizon)
            return
        # decoders are unidirectional; a bidirectional encoder's two states are bridged to one.
        self.bridge: nn.Module = nn.Linear(state, hid) if self.dirs == 2 else nn.Identity()
        if c.decoder == "segments":
            self.pos = nn.Parameter(torch.randn(self.out_segments, hid) * 0.1)  # [M, hid]
            self.decoder = self._cell(hid + seg * self.cal_width, False)
            self.head = nn.Linear(hid, seg)
        else:  # seq2seq
            width = min(hid, 16)
            self.pos = nn.Parameter(torch.randn(c.max_horizon, width) * 0.1)  # [H, P]
            self.decoder = self._cell(width + self.cal_width, False)
            self.head = nn.Linear(hid, 1)

    # ---- network -----------------------------------------------------------------------

    def _encode(self, inputs: Tensor) -> State:
        """[B, L, F] -> final state, with truncated BPTT every `tbptt` steps when training."""
        b, length, f = inputs.shape
        seg = self.config.segment_length
        steps = self.embed(inputs.reshape(b, length // seg, seg * f))  # [B, L/S, E]
        k = self.config.tbptt
        if not (self.training and k and steps.shape[1] > k):
            _, state = self.encoder(steps)
            return state  # type: ignore[no-any-return]
        state = None
        for i in range(0, steps.shape[1], k):
            _, state = self.encoder(steps[:, i : i + k], state)  # [B, k, E] chunk
            if i + k < steps.shape[1]:  # cut the gradient path between chunks
                state = _map_state(Tensor.detach, state)
        return state  # type: ignore[return-value,no-any-return]

    def _seed(self, h: Tensor) -> Tensor:
        """Encoder h_n [layers*dirs, B, hid] -> decoder initial state [layers, B, hid]."""
        layers, b = self.config.num_layers, h.shape[1]
        h = h.view(layers, self.dirs, b, -1).permute(0, 2, 1, 3).reshape(layers, b, -1)
        out: Tensor = self.bridge(h)  # [layers, B, hid]
        return out

    def forward(self, x: Tensor, covariates: Tensor | None, calendar: Tensor | None) -> Tensor:
        """Normalised forecasts [B, H] (H = max_horizon) from normalised look-back values x
        [B, L], past covariates [B, L, C] | None and known inputs `calendar` [B, L+H, K] | None
        (calendar features, then z-scored future covariates) of look-back and horizon."""
        out = self._recurrent(x, covariates, calendar)  # [B, H]
        if self.skip is not None:
            out = out + self.skip(x)  # [B, L] -> [B, H]
        return out

    def _recurrent(self, x: Tensor, covariates: Tensor | None, calendar: Tensor | None) -> Tensor:
        """The encoder + decoder part of `forward`: [B, L] (+ [B, L, C], [B, L+H, K]) -> [B, H]."""
        c = self.config
        b, length = x.shape
        parts = [x[:, :, None]]  # [B, L, 1]
        if covariates is not None:
            parts.append(covariates)  # [B, L, C]
        if calendar is not None:
            parts.append(calendar[:, :length].to(x.dtype))  # [B, L, K]
        state = self._encode(torch.cat(parts, dim=2))  # [B, L, F] -> state
        future = None if calendar is None else calendar[:, length:].to(x.dtype)  # [B, H, K]
        h = state[0] if isinstance(state, tuple) else state  # [layers*dirs, B, hid]
        if c.decoder == "direct":
            last = h.view(c.num_layers, self.dirs, b, -1)[-1]  # [dirs, B, hid]
            feats = [last.permute(1, 0, 2).reshape(b, -1)]  # [B, dirs*hid]
            if future is not None:
                feats.append(future.reshape(b, -1))  # [B, H*K]
            out: Tensor = self.head(self.drop(torch.cat(feats, dim=1)))  # [B, H]
            return out
        seed = _map_state(self._seed, state)
        if c.decoder == "segments":
            return self._decode_segments(seed, future, b)
        steps = self.pos.expand(b, -1, -1)  # [B, H, P]
        if future is not None:
            steps = torch.cat([steps, future], dim=2)  # [B, H, P+K]
        dec, _ = self.decoder(steps, seed)  # [B, H, hid]
        return self.head(self.drop(dec))[..., 0]  # type: ignore[no-any-return]

    def _decode_segments(self, seed: State, future: Tensor | None, b: int) -> Tensor:
        """One decoder step per output segment, all segments batched: -> [B, H]."""
        c = self.config
        m, seg = self.out_segments, c.segment_length
        steps = self.pos.expand(b, -1, -1)  # [B, M, hid]
        if future is not None:
            pad = m * seg - future.shape[1]
            future = nn.functional.pad(future, (0, 0, 0, pad))  # [B, M*S, K]
            steps = torch.cat([steps, future.reshape(b, m, -1)], dim=2)  # [B, M, hid+S*K]
        steps = steps.reshape(b * m, 1, -1)  # [B*M, 1, E]: each segment is its own sequence

        # [layers, B, hid] -> [layers, B*M, hid]
        init = _map_state(lambda s: s.repeat_interleave(m, dim=1), seed)
        dec, _ = self.decoder(steps, init)  # [B*M, 1, hid]
        out = self.head(self.drop(dec[:, 0]))  # [B*M, S]
        return out.reshape(b, m * seg)[:, : c.max_horizon]  # type: ignore[no-any-return]

    # ---- windows -> loss / forecasts ---------------------------------------------------------

    def _known(self, batch: WindowSet) -> Tensor | None:
        """Calendar features and z-scored future covariates: [B, L+H, K + K'] or None."""
        parts = [] if batch.calendar is None else [batch.calendar]  # [B, L+H, K]
        if self.n_future and batch.known is not None:
            scaled = (batch.known - self.future_mean) / self.future_std  # [B, L+H, K']
            parts.append(scaled.to(batch.target.dtype))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # [B, L+H, K + K']

    def _norm_inputs(self, batch: WindowSet) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """(x [B, L], covariates [B, L, C] | None, loc [B, 1], scale [B, 1]) of a batch."""
        x, loc, scale = normalise(batch.history, self.config.norm)  # [B, L]
        cov = batch.covariates
        if cov is not None:
            b, length, n = cov.shape
            flat = cov.permute(0, 2, 1).reshape(b * n, length)  # [B*C, L]
            cov = normalise(flat, self.config.norm)[0].reshape(b, n, length).permute(0, 2, 1)
        return x, cov, loc, scale

    def _loss(self, batch: WindowSet) -> Tensor:
        """The config's loss in normalised units (series of every size weigh alike: "revin")."""
        x, cov, loc, scale = self._norm_inputs(batch)
        target = (batch.future - loc) / scale  # [B, H]
        pred = self(x, cov, self._known(batch)).float()  # [B, H]
        return _LOSSES[self.config.loss](pred, target)

    def _forecast(self, batch: Windows) -> Tensor:
        """Denormalised forecasts [N, H] for every window of `batch`, in chunks, no grad."""
        outs = []
        for i in range(0, len(batch), _PREDICT_BATCH):
            part = batch.take(
                torch.arange(i, min(i + _PREDICT_BATCH, len(batch)), device=batch.device)
            )
            x, cov, loc, scale = self._norm_inputs(part)
            outs.append(denormalise(self(x, cov, self._known(part)).float(), loc, scale))
        return torch.cat(outs)  # [N, H]

    def _cross_fit_forecast(self, val: PanelWindows, cross_fit: CrossFit) -> Tensor:
        """Validation forecasts [N, H], each half's from the weights that the other half's
        early stopping kept (models.intervals: cross-fitting). The best weights stay loaded."""
        kept = {k: v.clone() for k, v in self.state_dict().items()}
        out = torch.empty((len(val), val.horizon), device=val.device)  # [N, H]
        first, second = cross_fit.halves
        for own, chooser in ((first, 1), (second, 0)):
            if own.numel():
                self.load_state_dict(cross_fit.best_state[chooser] or kept)
                out[own] = self._forecast(val.subset(own))
        self.load_state_dict(kept)
        return out

    # ---- the Forecaster contract -------------------------------------------------------------

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def fit(
        self,
        train: Sequence[SeriesData],
        val: Sequence[SeriesData],
        *,
        callback: EpochCallback | None = None,
        checkpoint_dir: Path | None = None,
    ) -> FitReport:
        """Train on every window of every `train` series; early-stop and calibrate on `val`.

        Raises:
            ForecastInputError: a series is malformed, or none is long enough for a window.
        """
        c = self.config
        device = resolve_device(c.device)
        self.to(device)
        windows = self._windows(train, device)
        val_windows = self._windows(val, device)
        stats = fit_stats(train, self.n_future)
        if self.n_future:
            self.future_mean.copy_(torch.tensor([m for m, _ in stats]))
            self.future_std.copy_(torch.tensor([sd for _, sd in stats]))
        fingerprint = json.dumps([c.to_dict(), len(windows), len(val_windows)], sort_keys=True)
        settings = LoopSettings(
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            weight_decay=c.weight_decay,
            patience=c.patience,
            grad_clip=c.grad_clip,
            seed=c.seed,
            fingerprint=hashlib.sha256(fingerprint.encode()).hexdigest(),
            schedule=c.lr_schedule,
            max_epochs=c.max_epochs,
            time_budget=c.time_budget,
            epoch_windows=c.epoch_windows,
        )
        cross_fit = CrossFit(intervals.cross_fit_halves(val_windows.counts, device))
        report = train_loop(
            self,
            windows,
            val_windows,
            lambda module, batch: module._loss(batch),  # type: ignore[operator]
            settings,
            callback=callback,
            checkpoint_dir=checkpoint_dir,
            cross_fit=cross_fit,
        )
        with torch.inference_mode():
            mean = self._cross_fit_forecast(val_windows, cross_fit)  # [N, H]
            conformal, scale_entry = intervals.calibrate_windows(
                val_windows.history, val_windows.future, mean, c.frequency, c.levels
            )
        self.meta = dataclasses.replace(
            self.meta,
            future_stats=stats,
            conformal=conformal,
            extra={
                "train_windows": len(windows),
                "val_windows": len(val_windows),
                "best_epoch": report.best_epoch,
                "epochs": report.epochs,
                "best_val_loss": min(report.val_losses),
                "cross_fit_epochs": list(cross_fit.best_epoch),
                "device": report.device,
                "seed": c.seed,
                **scale_entry,
            },
        )
        return dataclasses.replace(
            report, val_forecasts=mean.cpu().numpy(), val_actual=val_windows.future.cpu().numpy()
        )

    def _windows(self, series: Sequence[SeriesData], device: torch.device) -> PanelWindows:
        c = self.config
        return stack_series_windows(
            series,
            c.lookback,
            c.max_horizon,
            device=device,
            calendar_freq=c.frequency if c.calendar else None,
            covariates=len(c.covariates),
            future_covariates=self.n_future,
        )

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

        `future_covariates` [B, T + H, K'] hold the known values of history and horizon.
        Horizons beyond `max_horizon` are rolled forward block by block (`rolled=True`); past
        covariates are then held at their last value, future ones read block by block.

        Raises:
            ForecastInputError: naming the argument, the value and the fix.
        """
        c = self.config
        device = self._device()

        def step(
            h: np.ndarray, st: np.ndarray | None, cv: np.ndarray | None, fu: np.ndarray | None
        ) -> np.ndarray:
            batch = self._predict_window(h[:, -c.lookback :], st, cv, fu, device)
            return self._forecast(batch).cpu().numpy()  # [B, max_horizon]

        was_training = self.training
        if was_training:  # eval()/train() walk every submodule: only when needed (serving)
            self.eval()
        try:
            with torch.inference_mode():
                return rollout.forecast(
                    step, self.meta, history, horizon, levels,
                    timestamps=timestamps, covariates=covariates,
                    future_covariates=future_covariates,
                )  # fmt: skip
        finally:
            if was_training:
                self.train()

    def _predict_window(
        self,
        hist: np.ndarray,
        stamps: np.ndarray | None,
        cov: np.ndarray | None,
        fut: np.ndarray | None,
        device: torch.device,
    ) -> WindowSet:
        """One look-back per row as a WindowSet with an empty-valued horizon.

        hist [B, L]; stamps [B, T'] and cov [B, T', C] end where hist ends; fut
        [B, T' + max_horizon, K'] runs max_horizon steps past it.
        """
        c = self.config
        b = hist.shape[0]
        target = np.concatenate([hist, np.zeros((b, c.max_horizon), np.float32)], axis=1)
        cov_t = None
        if cov is not None:
            cov_t = torch.from_numpy(np.ascontiguousarray(cov[:, -c.lookback :])).to(device)
        cal_t = None
        if stamps is not None and c.calendar:
            ahead = future_timestamps(stamps[:, -1], c.frequency, c.max_horizon)  # [B, H]
            window = np.concatenate([stamps[:, -c.lookback :].astype(ahead.dtype), ahead], 1)
            cal_t = torch.from_numpy(calendar_features(window, c.frequency)).to(device)
        known_t = None
        if fut is not None:
            window_fut = fut[:, -(c.lookback + c.max_horizon) :]  # [B, L+H, K']
            known_t = torch.from_numpy(np.ascontiguousarray(window_fut)).to(device)
        return WindowSet(
            target=torch.from_numpy(target).to(device),  # [B, L+H]
            covariates=cov_t,  # [B, L, C]
            calendar=cal_t,  # [B, L+H, K]
            lookback=c.lookback,
            horizon=c.max_horizon,
            known=known_t,  # [B, L+H, K']
        )

    def save(self, directory: Path) -> None:
        """Write config.json, meta.json and weights.safetensors to `directory`."""
        save_module(Path(directory), self.config, self.meta, self)

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> RecurrentForecaster:
        """Rebuild from a saved directory: from_dict -> constructor -> strict state dict."""
        return load_module(Path(directory), RecurrentConfig, cls, device)
