"""Baseline forecasters every model is compared with: naive, seasonal naive, local-level Kalman.

Naive and seasonal naive get symmetric intervals from empirical quantiles of their own
absolute h-step errors on the training rows; the Kalman filter gets Gaussian intervals
from its fitted variances. So every baseline reports coverage next to its errors.

The formulas and the local-level model live in models.baselines (where the same forecasts are
families that `io.create` builds); this module adds what evaluation needs around them:
per-series variance fits (scipy, or the vectorised panel fit), training-error intervals and
Gaussian intervals. The h-step forecast variance is P_{T|T} + h sigma2_eta + sigma2_eps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import optimize, signal

from models.base import Forecast
from models.baselines import (
    local_level_weights,
    maximise_log_q,
    naive_forecast,
    predicted_variances,
    profile_loglik,
    seasonal_naive_forecast,
    standardise,
)
from models.errors import ForecastInputError
from training.errors import DataError
from training.evaluation.metrics import interval_quantiles

_LOG_2PI = float(np.log(2.0 * np.pi))
_STD_NORMAL = NormalDist()


def _history(history: np.ndarray, need: int, who: str) -> np.ndarray:
    h = np.asarray(history, dtype=np.float64)
    if h.ndim == 1:
        h = h[None, :]  # [T] -> [1, T]
    if h.ndim != 2 or h.shape[1] < need:
        raise ForecastInputError(
            f"{who}: history has shape {h.shape}; expected [B, T] with T >= {need}. "
            "Fix: pass longer windows"
        )
    if not np.all(np.isfinite(h)):
        raise ForecastInputError(f"{who}: history contains NaN or inf. Fix: fill gaps first")
    return h


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last value: [B, T] -> [B, H]."""
    return naive_forecast(_history(history, 1, "naive"), horizon)  # [B, H]


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season: step h takes y_{T + h - m * ceil(h / m)}; [B, T] -> [B, H]."""
    if season < 1:
        raise ForecastInputError(f"seasonal_naive: season={season}; must be >= 1. Fix: use 1+")
    return seasonal_naive_forecast(_history(history, season, "seasonal_naive"), horizon, season)


def error_lags(horizon: int, season: int = 1) -> np.ndarray:
    """[H] how far back each step's (seasonal) naive forecast looks: m * ceil(h / m)."""
    steps = np.arange(1, horizon + 1)
    return season * -(-steps // season)


def residual_quantiles(
    train_values: np.ndarray, horizon: int, levels: Sequence[int], season: int = 1
) -> dict[int, np.ndarray]:
    """Empirical quantiles of the (seasonal) naive |h-step error| on training values.

    The error at step h is y_t - y_{t - lag_h} with lag_h = m * ceil(h / m), over every t
    in the training part; the `level`% quantile of its absolute value is the half-width.

    `train_values` [T] is one series' training part; `season` is 1 for naive, m for seasonal
    naive. Returns level -> [H] half-widths.

    Raises:
        DataError: when T <= the longest lag.
    """
    y = np.asarray(train_values, dtype=np.float64).reshape(-1)  # [T]
    lags = error_lags(horizon, season)  # [H]
    if y.size <= int(lags[-1]):
        raise DataError(
            f"residual_quantiles: {y.size} training values cannot give {int(lags[-1])}-step "
            f"errors (horizon={horizon}, season={season}). Fix: use a shorter horizon or season"
        )
    uniq, which = np.unique(lags, return_inverse=True)  # [K], [H]
    # all lags at once: row k holds |y_t - y_{t - lag_k}|, padded with +inf, sorted
    t = np.arange(1, y.size)  # [T-1]
    src = t[None, :] - uniq[:, None]  # [K, T-1]
    err = np.where(src >= 0, np.abs(y[t][None, :] - y[np.maximum(src, 0)]), np.inf)
    err.sort(axis=1)  # [K, T-1]
    count = y.size - uniq  # [K] valid errors per lag
    out = {}
    for lv in levels:
        # linear interpolation between order statistics (NumPy's default quantile method)
        pos = (lv / 100.0) * (count - 1)  # [K]
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count - 1)
        rows = np.arange(uniq.size)
        frac = pos - lo
        q = err[rows, lo] * (1.0 - frac) + err[rows, hi] * frac  # [K]
        out[int(lv)] = q[which]  # [K] -> [H]
    return out


def symmetric_forecast(mean: np.ndarray, half_widths: dict[int, np.ndarray]) -> Forecast:
    """Forecast with mean [B, H] and bounds mean -/+ half_width[level] ([H] or [B, H])."""
    return Forecast(
        mean=mean,
        lower={lv: mean - w for lv, w in half_widths.items()},
        upper={lv: mean + w for lv, w in half_widths.items()},
    )


@dataclass(frozen=True)
class KalmanFit:
    """Fitted variances of the local-level model and the maximised log likelihood."""

    sigma2_eps: float
    sigma2_eta: float
    loglik: float
    converged: bool


def _flat_fit(y: np.ndarray) -> KalmanFit:
    """Tiny equal variances for a training part without any change (its likelihood is unbounded)."""
    tiny = (1e-6 * max(1.0, float(np.abs(y).max()))) ** 2
    return KalmanFit(tiny, tiny, float("nan"), False)


def _innovations(y: np.ndarray, s_eps: float, s_eta: float) -> tuple[np.ndarray, np.ndarray]:
    """One-step prediction errors v_t and their variances F_t for t = 2 .. T ([T-1] each)."""
    n = y.size - 1
    p = predicted_variances(s_eps, s_eta, n)  # [n]
    f = p + s_eps  # [n]
    k = p / f  # [n] Kalman gains
    # where the gain has stopped changing, the level recursion is a first-order linear filter
    steady = int(np.argmax(k == k[-1]))
    level = np.empty(n)  # a_t, predicted level for y[1:]
    a = y[0]
    for i in range(steady):
        level[i] = a
        a = a + k[i] * (y[i + 1] - a)
    level[steady] = a
    if steady + 1 < n:
        gain = k[-1]
        # a_{t+1} = (1 - K) a_t + K y_t  ==  lfilter([K], [1, -(1 - K)]) with a_t as state
        tail, _ = signal.lfilter([gain], [1.0, gain - 1.0], y[steady + 1 : n], zi=[(1 - gain) * a])
        level[steady + 1 :] = tail
    return y[1:] - level, f


def local_level_loglik(y: np.ndarray, sigma2_eps: float, sigma2_eta: float) -> float:
    """Exact Gaussian log likelihood of the local-level model, first observation as diffuse start.

    log L = -1/2 sum_{t=2..T} (log 2 pi + log F_t + v_t^2 / F_t).
    """
    v, f = _innovations(np.asarray(y, dtype=np.float64), sigma2_eps, sigma2_eta)
    return float(-0.5 * np.sum(_LOG_2PI + np.log(f) + v * v / f))


def fit_local_level_panel(train: np.ndarray) -> list[KalmanFit]:
    """Maximum-likelihood variances for every row of a panel [S, T] at once.

    Each series is scaled by the std of its differences, then its profile likelihood in
    log q is maximised (models.baselines.maximise_log_q: a grid over q in [1e-8, 1e4], then a
    golden-section search inside the best grid cell), vectorised over series. It maximises the
    same exact likelihood as `LocalLevelKalman.fit` (which calls scipy per series) in one pass, so
    panels of hundreds of short series fit in milliseconds rather than a minute.
    """
    y = np.asarray(train, dtype=np.float64)  # [S, T]
    if y.ndim != 2 or y.shape[1] < 3 or not np.all(np.isfinite(y)):
        raise DataError(
            f"fit_local_level_panel: train has shape {y.shape}; need finite [S, T] with T >= 3. "
            "Fix: pass filled training parts of equal length"
        )
    z, scale, flat = standardise(y)  # [S, T], [S], [S]
    logq = maximise_log_q(lambda lq: profile_loglik(z, lq)[0], y.shape[0])  # [S]
    ll_best, s2 = profile_loglik(z, logq[None, :])  # [1, S]
    fits = []
    for i in range(y.shape[0]):
        if flat[i]:
            fits.append(_flat_fit(y[i]))
            continue
        s_eps = float(s2[0, i]) * scale[i] ** 2
        loglik = float(ll_best[0, i]) - (y.shape[1] - 1) * float(np.log(scale[i]))
        fits.append(KalmanFit(s_eps, s_eps * float(np.exp(logq[i])), loglik, converged=True))
    return fits


class LocalLevelKalman:
    """Random walk plus noise, variances by maximum likelihood, forecasts by the Kalman filter."""

    def __init__(self, fit_result: KalmanFit | None = None) -> None:
        self.fit_result = fit_result

    def fit(self, train_values: np.ndarray) -> LocalLevelKalman:
        """Fit sigma2_eps and sigma2_eta by maximising the exact likelihood of `train_values` [T].

        The series is divided by the std of its first differences so the optimiser (L-BFGS-B
        on the log variances) works at unit scale; the variances are scaled back after.
        A training part without any change (constant) gets tiny equal variances.
        """
        y = np.asarray(train_values, dtype=np.float64).reshape(-1)  # [T]
        if y.size < 3 or not np.all(np.isfinite(y)):
            raise DataError(
                f"LocalLevelKalman.fit: got {y.size} values, all finite: "
                f"{bool(np.isfinite(y).all())}; need at least 3 finite values. "
                "Fix: pass a longer, filled training part"
            )
        scale = float(np.diff(y).std())
        if scale <= 1e-12 * max(1.0, float(np.abs(y).max())):
            self.fit_result = _flat_fit(y)
            return self
        z = (y - y[0]) / scale
        # moment start: var(diff) = 2 s_eps + s_eta, lag-1 autocovariance of diffs = -s_eps
        dz = np.diff(z)
        acov = float(np.mean((dz[1:] - dz.mean()) * (dz[:-1] - dz.mean()))) if dz.size > 2 else 0.0
        s_eps0 = min(max(-acov, 0.05), 0.45)
        start = np.log([s_eps0, max(1.0 - 2.0 * s_eps0, 0.05)])

        def nll(theta: np.ndarray) -> float:
            s_eps, s_eta = np.exp(theta)
            return float(-local_level_loglik(z, float(s_eps), float(s_eta)) / z.size)

        bounds = [(np.log(1e-8), np.log(1e2))] * 2
        res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds)
        s_eps, s_eta = np.exp(res.x) * scale**2
        loglik = -float(res.fun) * z.size - (y.size - 1) * np.log(scale)
        self.fit_result = KalmanFit(float(s_eps), float(s_eta), float(loglik), bool(res.success))
        return self

    def forecast(
        self,
        history: np.ndarray,
        horizon: int,
        levels: Sequence[int] = (80, 95),
        *,
        timestamps: np.ndarray | None = None,
        covariates: np.ndarray | None = None,
    ) -> Forecast:
        """Run the filter over each window's history, all windows at once; [B, T] -> [B, H].

        `timestamps` and `covariates` are accepted for the Forecaster-style call and unused.
        The filter starts from the first observation (a_1 = y_1, P_1 = sigma2_eps); the level
        after T steps is linear in the history with weights K_t prod_{s>t} (1 - K_s).
        """
        fit = self.fit_result
        if fit is None:
            raise ForecastInputError(
                "LocalLevelKalman.forecast: the model is not fitted. Fix: call fit(train_values)"
            )
        h = _history(history, 1, "LocalLevelKalman.forecast")  # [B, T]
        # weights w [T] with filtered level = history @ w, and the filtered variance P_{T|T}
        w, p_filt = local_level_weights(fit.sigma2_eps, fit.sigma2_eta, h.shape[1])
        level = h @ w  # [B, T] @ [T] -> [B]
        mean = np.repeat(level[:, None], horizon, axis=1)  # [B, H]
        steps = np.arange(1, horizon + 1)
        sd = np.sqrt(p_filt + steps * fit.sigma2_eta + fit.sigma2_eps)  # [H]
        half = {int(lv): _STD_NORMAL.inv_cdf(interval_quantiles(lv)[1]) * sd for lv in levels}
        return symmetric_forecast(mean, half)
