"""Baselines as forecaster families: naive, seasonal naive and the local-level Kalman filter.

All three are linear maps from the look-back window to the horizon, so one class serves them:
the forecast is `window [B, L] @ projection [L, H]`, H = max_horizon, rolled forward past it
like any family. The projection of a linear forecaster is its forecast of the unit windows
(row i of `projection` = the forecast of e_i), so the formulas below are written once, as
forecasts, and `training.evaluation.baselines` calls the same functions.

- naive: y_{T+h} = y_T (a random walk's forecast).
- seasonal_naive: y_{T+h} = y_{T+h-m*ceil(h/m)}, m = `season` or the frequency's season length.
- kalman: the local-level model (random walk plus noise)::

      y_t = mu_t + eps_t,        eps_t ~ N(0, sigma2_eps)
      mu_t = mu_{t-1} + eta_t,   eta_t ~ N(0, sigma2_eta)

  whose forecast is the filtered level: a weighted sum of the look-back whose weights depend
  only on q = sigma2_eta / sigma2_eps. fit() estimates one q for the panel by maximum
  likelihood (each series standardised by the std of its differences, sigma2_eps profiled out
  per series) on each training series' last `KALMAN_FIT_STEPS` values.

Intervals are split-conformal on the validation windows, exactly as for the neural families
(models.intervals), so every family's intervals mean the same thing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models import intervals, rollout
from models.base import EpochCallback, EpochStats, FitReport, Forecast, ModelMeta, SeriesData
from models.config import BaselineConfig
from models.errors import ForecastInputError
from models.loop import resolve_device
from models.persist import fresh_meta, load_module, save_module
from models.windows import PanelWindows, Windows, check_series, stack_series_windows

_LOG_2PI = float(np.log(2.0 * np.pi))
KALMAN_FIT_STEPS = 2000  # values per training series the likelihood of q reads
_LOG_Q_RANGE = (float(np.log(1e-8)), float(np.log(1e4)))  # q searched in [1e-8, 1e4]


# ----- the forecasts, as formulas -----------------------------------------------------------


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last value: [B, T] -> [B, H]."""
    return np.repeat(history[:, -1:], horizon, axis=1)  # [B, 1] -> [B, H]


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season: step h takes y_{T+h-m*ceil(h/m)}; [B, T >= m] -> [B, H]."""
    reps = -(-horizon // season)
    return np.tile(history[:, -season:], (1, reps))[:, :horizon]  # [B, m * reps] -> [B, H]


def predicted_variances(sigma2_eps: float, sigma2_eta: float, n: int) -> np.ndarray:
    """[n] predicted state variances P_t, t = 2 .. n + 1, of the filter started at y_1.

    P_2 = sigma2_eps + sigma2_eta and P_{t+1} = P_t sigma2_eps / (P_t + sigma2_eps) + sigma2_eta.
    The recursion does not depend on the data and converges; once it has, the rest is filled.
    """
    p = np.empty(n)
    cur = sigma2_eps + sigma2_eta
    for i in range(n):
        p[i] = cur
        nxt = cur * sigma2_eps / (cur + sigma2_eps) + sigma2_eta
        if abs(nxt - cur) <= 1e-14 * cur:
            p[i + 1 :] = nxt
            break
        cur = nxt
    return p


def local_level_weights(
    sigma2_eps: float, sigma2_eta: float, length: int
) -> tuple[np.ndarray, float]:
    """Weights w [T] with filtered level = history @ w, and the filtered variance P_{T|T}.

    The filter starts from the first observation (a_1 = y_1, P_1 = sigma2_eps); the level after
    T steps is linear in the history with weights K_t prod_{s>t} (1 - K_s), which sum to 1.
    """
    if length == 1:
        return np.ones(1), sigma2_eps
    p = predicted_variances(sigma2_eps, sigma2_eta, length - 1)  # [T-1], t = 2 .. T
    k = p / (p + sigma2_eps)  # [T-1] Kalman gains
    keep = np.concatenate([np.cumprod((1.0 - k)[::-1])[::-1][1:], [1.0]])  # prod_{s>t}(1-K_s)
    w = np.empty(length)
    w[1:] = k * keep  # [T-1]
    w[0] = float(np.prod(1.0 - k))
    return w, float(p[-1] * (1.0 - k[-1]))


def profile_loglik(z: np.ndarray, logq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concentrated log likelihood of series z [S, T] at log q = log(sigma2_eta / sigma2_eps).

    With sigma2_eps profiled out (its MLE is mean v_t^2 / F*_t, F* the innovation variance in
    units of sigma2_eps), the likelihood depends on q only. `logq` is [G, 1] (one grid for all
    series) or [G, S] (one value per series); the filter runs over time for all at once.
    Returns the log likelihood [G, S] and the profiled sigma2_eps [G, S].
    """
    q = np.exp(logq)  # [G, S']
    g = max(q.shape[0], 1)
    n = z.shape[1] - 1
    p = np.broadcast_to(1.0 + q, (g, z.shape[0])).copy()  # [G, S] P*_2
    q = np.broadcast_to(q, p.shape)
    a = np.broadcast_to(z[:, 0], p.shape).copy()  # [G, S] predicted level
    ssq = np.zeros(p.shape)
    logf = np.zeros(p.shape)
    for t in range(1, z.shape[1]):
        f = p + 1.0
        v = z[None, :, t] - a  # [1, S] - [G, S]
        ssq += v * v / f
        logf += np.log(f)
        k = p / f
        a += k * v
        p = p / f + q  # P (1 - K) + q with sigma2_eps = 1
    s2 = ssq / n
    with np.errstate(divide="ignore"):  # a constant series: s2 = 0, log L = +inf; callers skip it
        return -0.5 * n * (_LOG_2PI + 1.0 + np.log(s2)) - 0.5 * logf, s2


def maximise_log_q(loglik: Callable[[np.ndarray], np.ndarray], width: int) -> np.ndarray:
    """[width] argmax over log q in [log 1e-8, log 1e4] of `width` independent likelihoods,
    `loglik`: logq [G, width] -> log likelihood [G, width], maximised side by side.

    A 49-point grid, then 40 golden-section steps inside the best grid cell (the bracket
    shrinks by 0.618 per step), both candidates of a step evaluated in one call.
    """
    grid = np.linspace(*_LOG_Q_RANGE, 49)  # [G]
    ll = loglik(np.repeat(grid[:, None], width, axis=1))  # [G, width]
    best = grid[np.argmax(ll, axis=0)]  # [width]
    step = grid[1] - grid[0]
    lo, hi = best - step, best + step  # [width] each
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        both = loglik(np.stack([x1, x2]))  # [2, width]
        left = both[0] >= both[1]  # [width] the maximum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
    return np.asarray((lo + hi) / 2.0)  # [width]


def standardise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series [S, T] -> (z [S, T] = (y - y_1) / std of differences, scale [S], flat [S]).

    A series without any change (flat) keeps scale 1 and is flagged: its likelihood is
    unbounded and says nothing about q.
    """
    scale = np.diff(y, axis=1).std(axis=1)  # [S]
    flat = scale <= 1e-12 * np.maximum(1.0, np.abs(y).max(axis=1))  # [S]
    z = (y - y[:, :1]) / np.where(flat, 1.0, scale)[:, None]  # [S, T]
    return z, scale, flat


def fit_level_ratio(series: Sequence[np.ndarray]) -> float:
    """One q = sigma2_eta / sigma2_eps for a panel of 1-D series, by maximum likelihood.

    Each series' last KALMAN_FIT_STEPS values are standardised and sigma2_eps is profiled out
    per series, so the summed likelihood depends on q alone. Series of equal length run as one
    batch. With no informative series (all flat or shorter than 3), q = 1.
    """
    groups: dict[int, list[np.ndarray]] = {}
    for s in series:
        y = np.asarray(s, dtype=np.float64)[-KALMAN_FIT_STEPS:]  # [T']
        if y.size >= 3:
            groups.setdefault(y.size, []).append(y)
    panels = []
    for rows in groups.values():
        z, _, flat = standardise(np.stack(rows))  # [S, T']
        if (~flat).any():
            panels.append(z[~flat])
    if not panels:
        return 1.0

    def summed(logq: np.ndarray) -> np.ndarray:  # [G, 1] -> [G, 1]
        return sum((profile_loglik(z, logq)[0].sum(axis=1, keepdims=True) for z in panels),
                   np.zeros_like(logq))  # fmt: skip

    return float(np.exp(maximise_log_q(summed, 1)[0]))


# ----- the family ---------------------------------------------------------------------------


class BaselineForecaster(nn.Module):
    """naive, seasonal naive or local-level Kalman (`config.family`) as a forecaster family.

    The one buffer, `projection` [L, max_horizon] float64, maps a look-back window to the
    forecast; it is fixed by the family (naive, seasonal naive) or by the fitted q (kalman).
    """

    reads_covariates = False  # covariates named in the config are checked, then unused
    reads_calendar = False
    reads_future_covariates = False  # likewise; meta.extra["future_covariates"] says so

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = c = config
        self.register_buffer(
            "projection", torch.zeros(c.lookback, c.max_horizon, dtype=torch.float64)
        )
        if c.family != "kalman":  # fixed by the family; kalman's waits for fit()
            self.projection.copy_(torch.from_numpy(self._projection(1.0)))
        self.meta = fresh_meta(c)

    projection: Tensor
    meta: ModelMeta  # meta.json: family, shapes, versions; fit adds intervals and fit facts

    def _projection(self, q: float) -> np.ndarray:
        """[L, H] the forecast of each unit window e_i (row i), for kalman at ratio q."""
        c = self.config
        eye = np.eye(c.lookback)  # [L, L]: row i is the window e_i
        if c.family == "naive":
            return naive_forecast(eye, c.max_horizon)
        if c.family == "seasonal_naive":
            return seasonal_naive_forecast(eye, c.max_horizon, c.season_steps)
        w, _ = local_level_weights(1.0, q, c.lookback)  # [L], in units of sigma2_eps
        return np.repeat(w[:, None], c.max_horizon, axis=1)  # [L, H]: the level, every step

    def _mean(self, windows: Windows) -> Tensor:
        """[N, L] look-back windows -> [N, H] forecasts in data units."""
        return windows.history.double() @ self.projection.to(windows.device)  # [N, H]

    def fit(
        self,
        train: Sequence[SeriesData],
        val: Sequence[SeriesData],
        *,
        callback: EpochCallback | None = None,
        checkpoint_dir: Path | None = None,
    ) -> FitReport:
        """Estimate q (kalman), then calibrate intervals on every validation window.

        `checkpoint_dir` is accepted for the contract and unused: the fit is closed-form.
        `callback` is called once (one "epoch") with the train and validation MSE.

        Raises:
            ForecastInputError: a series is malformed, or none is long enough for a window.
        """
        del checkpoint_dir
        c = self.config
        started = time.perf_counter()
        self.to(resolve_device(c.device))
        cal = c.frequency if c.calendar else None
        for i, s in enumerate([*train, *val]):
            check_series(s, i, cal, len(c.covariates), len(c.future_covariates))
        extra: dict[str, float | int | str] = {}
        if c.future_covariates:
            extra["future_covariates"] = "ignored: a baseline reads the target only"
        if c.family == "kalman":
            q = fit_level_ratio([np.asarray(s.values) for s in train])
            self.projection.copy_(torch.from_numpy(self._projection(q)))
            extra["level_ratio"] = q
        # windows of the target only: covariates and calendar were checked above, and unused
        windows = self._windows(train)
        val_windows = self._windows(val)
        with torch.inference_mode():
            train_mse = float((self._mean(windows) - windows.future).pow(2).mean())
            mean = self._mean(val_windows)  # [N, H]
            val_mse = float((mean - val_windows.future).pow(2).mean())
            conformal, scale_entry = intervals.calibrate_windows(
                val_windows.history, val_windows.future.double(), mean, c.frequency, c.levels
            )
        seconds = time.perf_counter() - started
        device = str(self.projection.device)
        self.meta = dataclasses.replace(
            self.meta,
            conformal=conformal,
            extra={
                "train_windows": len(windows),
                "val_windows": len(val_windows),
                "train_mse": train_mse,
                "val_mse": val_mse,
                "device": device,
                **extra,
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
            train_windows=len(windows),
            windows_per_second=len(windows) / max(seconds, 1e-9),
            stopped_early=False,
            device=device,
        )

    def _windows(self, series: Sequence[SeriesData]) -> PanelWindows:
        if not series:
            raise ForecastInputError("no series given; pass at least one SeriesData to fit()")
        target_only = [SeriesData(s.values, series_id=s.series_id) for s in series]
        return stack_series_windows(
            target_only, self.config.lookback, self.config.max_horizon,
            device=self.projection.device, calendar_freq=None, covariates=0,
        )  # fmt: skip

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

        Declared covariates and future covariates are checked, then ignored. Horizons beyond
        `max_horizon` roll forward block by block (`rolled=True`).

        Raises:
            ForecastInputError: naming the argument, the value and the fix.
        """
        projection = self.projection.detach().cpu().numpy()  # [L, H]
        lookback = self.config.lookback

        def step(
            h: np.ndarray, st: np.ndarray | None, cv: np.ndarray | None, fu: np.ndarray | None
        ) -> np.ndarray:
            del st, cv, fu  # baselines read the target only
            out: np.ndarray = h[:, -lookback:].astype(np.float64) @ projection  # [B, L] @ [L, H]
            return out

        return rollout.forecast(
            step, self.meta, history, horizon, levels,
            timestamps=timestamps, covariates=covariates, future_covariates=future_covariates,
        )  # fmt: skip

    def save(self, directory: Path) -> None:
        """Write config.json, meta.json and weights.safetensors (the projection)."""
        save_module(Path(directory), self.config, self.meta, self)

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> BaselineForecaster:
        """Rebuild from a saved directory: from_dict -> constructor -> strict state dict."""
        return load_module(Path(directory), BaselineConfig, cls, device)
