"""The evaluation windows every model and baseline is scored on, built in one place: under the
ratio protocol (`frame_windows`) or the ETT protocol (`ett_windows`), each with a MASE scale
per window from its series' training rows and the season of the data's frequency.

Future covariates over the horizon are the *recorded* values: a backtest with them measures
the model given perfect foresight of the covariate (an "oracle weather" evaluation, as the
literature reports it). `with_covariate_noise` perturbs the horizon's values to show how
accuracy degrades when the covariate's forecast is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from models.features import season_length
from training.data.frame import SeriesFrame
from training.data.known import HOLIDAY_PREFIX
from training.errors import DataError, ExperimentError
from training.evaluation import splits
from training.evaluation.metrics import seasonal_naive_scale
from training.evaluation.protocols import EttProblem
from training.evaluation.splits import window_stack


@dataclass(frozen=True)
class Windows:
    """A stack of forecast windows, the unit every evaluation scores.

    Attributes:
        history: [N, L] values before each origin.
        actual: [N, H] values from each origin.
        mase_scale: float, or [N] in-sample seasonal-naive MAE of each window's series.
        timestamps: [N, L] datetime64 stamps of the history (for calendar features), or None.
        covariates: [N, L, C] past covariates, or None.
        future_covariates: [N, L+H, K] future covariates over history and horizon, or None.
    """

    history: np.ndarray
    actual: np.ndarray
    mase_scale: float | np.ndarray
    timestamps: np.ndarray | None = None
    covariates: np.ndarray | None = None
    future_covariates: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        """H."""
        return int(self.actual.shape[1])

    def __len__(self) -> int:
        return int(self.history.shape[0])


def _check_part(part: str) -> None:
    if part not in ("val", "test"):
        raise ExperimentError(f"part={part!r}: must be 'val' or 'test'. Fix: pick one")


def frame_windows(
    frame: SeriesFrame,
    horizon: int,
    lookback: int,
    *,
    part: str = "test",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Windows:
    """Validation or test windows of every series under the ratio protocol, pooled.

    The same split and origins as `run_baselines(frame, horizon, "ratio")`, so a model
    scored on these windows is comparable with the baselines there. Histories carry
    their timestamps and (when the frame has them) covariates.

    Raises:
        DataError: when a series' first origin has fewer than `lookback` rows before it.
    """
    _check_part(part)
    season = season_length(frame.frequency)
    hists, acts, stamps, covs, futs, scales = [], [], [], [], [], []
    for s in frame.to_series():
        y = s.values.astype(np.float64)  # [T]
        sp = splits.ratio_split(
            y.size, val_fraction, test_fraction, horizon=horizon, series_id=s.series_id
        )
        origins = (splits.test_origins if part == "test" else splits.val_origins)(sp, horizon)
        if int(origins[0]) < lookback:
            raise DataError(
                f"series {s.series_id!r}: lookback={lookback} but its first {part} window starts "
                f"at row {int(origins[0])}. Fix: use lookback <= {int(origins[0])}"
            )
        h, a = window_stack(y, origins, lookback, horizon)  # [N, L], [N, H]
        hists.append(h)
        acts.append(a)
        if s.timestamps is not None:
            stamps.append(window_stack(s.timestamps, origins, lookback, horizon)[0])  # [N, L]
        if s.covariates is not None:
            c, _ = window_stack(s.covariates, origins, lookback, horizon)  # [N, C, L]
            covs.append(c.transpose(0, 2, 1))  # [N, C, L] -> [N, L, C]
        if s.future_covariates is not None:
            f_hist, f_ahead = window_stack(s.future_covariates, origins, lookback, horizon)
            whole = np.concatenate([f_hist, f_ahead], axis=2)  # [N, K, L+H]
            futs.append(whole.transpose(0, 2, 1))  # [N, K, L+H] -> [N, L+H, K]
        m = season if sp.train_end > season else 1
        scales.append(np.full(len(origins), seasonal_naive_scale(y[: sp.train_end], m)))
    return Windows(
        history=np.concatenate(hists),
        actual=np.concatenate(acts),
        mase_scale=np.concatenate(scales),
        timestamps=np.concatenate(stamps) if len(stamps) == len(hists) else None,
        covariates=np.concatenate(covs) if covs and len(covs) == len(hists) else None,
        future_covariates=np.concatenate(futs) if futs and len(futs) == len(hists) else None,
    )


def with_covariate_noise(
    windows: Windows, noise: float, names: Sequence[str], *, seed: int = 0
) -> Windows:
    """`windows` with Gaussian noise added to the future covariates' horizon values.

    Each column gets noise of `noise` times its std over the stack (0.5: errors half as large
    as the column's spread, a poor weather forecast). Holiday indicators ("holiday:..." columns)
    are calendar facts and stay exact; the history's values are observed and stay exact.

    Args:
        windows: a stack with future covariates [N, L+H, K].
        noise: >= 0, in column stds; 0 returns `windows` unchanged.
        names: the K column names (to leave holiday indicators alone).
        seed: the noise stream (fixed: a backtest is reproducible).
    """
    fut = windows.future_covariates
    if fut is None or noise <= 0:
        return windows
    lookback = windows.history.shape[1]
    rng = np.random.default_rng(seed)
    noisy = fut.astype(np.float64, copy=True)  # [N, L+H, K]
    std = fut.reshape(-1, fut.shape[2]).std(axis=0)  # [K]
    exact = np.array([n.startswith(HOLIDAY_PREFIX) for n in names])  # [K]
    scale = np.where(exact, 0.0, noise * std)  # [K]
    ahead = noisy[:, lookback:]  # [N, H, K] view
    ahead += rng.standard_normal(ahead.shape) * scale  # [N, H, K] + [K]
    return replace(windows, future_covariates=noisy.astype(fut.dtype))


def ett_windows(
    problem: EttProblem, lookback: int, *, part: str = "test", covariates: Sequence[str] = ()
) -> Windows:
    """The ETT validation or test windows of every evaluated channel, channel-major.

    Args:
        lookback: L history steps per window.
        part: "test" (origins 11520 .. 14400 - H) or "val" (within the validation rows).
        covariates: columns of `problem` carried as past covariates [N, L, C]; mode "S" only,
            since mode "M" evaluates every column as a channel of its own.

    Returns:
        Windows with history [C' * W, L], actual [C' * W, H], timestamps [C' * W, L] and a
        per-window MASE scale: the seasonal-naive MAE of its channel's z-scored training rows,
        season from `problem.frequency` (24 for hourly data).

    Raises:
        ExperimentError: a bad `part`, or covariates in mode "M".
        DataError: an unknown covariate column, or `lookback` reaching before the first row.
    """
    _check_part(part)
    if covariates and problem.mode != "S":
        raise ExperimentError(
            f"covariates={list(covariates)} with ETT mode {problem.mode!r}: mode 'M' already "
            "evaluates every column as a channel. Fix: use mode 'S' for covariates"
        )
    unknown = [c for c in covariates if c not in problem.columns]
    if unknown:
        raise DataError(
            f"ETT covariate {unknown[0]!r} is not a column of the problem "
            f"({', '.join(problem.columns)}). Fix: load the data with that covariate"
        )
    origins = (
        problem.origins if part == "test" else splits.val_origins(problem.split, problem.horizon)
    )
    history, actual = problem.windows(lookback, origins)  # [C' * W, L], [C' * W, H]
    c = len(problem.channels)
    stamps, _ = window_stack(problem.timestamps, origins, lookback, problem.horizon)  # [W, L]
    covs = None
    if covariates:
        idx = [problem.columns.index(name) for name in covariates]
        x, _ = window_stack(problem.values[:, idx], origins, lookback, problem.horizon)
        covs = x.transpose(0, 2, 1)  # [W, C, L] -> [W, L, C]
    season = season_length(problem.frequency)
    train = problem.train_values  # [8640, C']
    scale = np.repeat([seasonal_naive_scale(train[:, i], season) for i in range(c)], len(origins))
    return Windows(
        history=history,
        actual=actual,
        mase_scale=scale,  # [C' * W]
        timestamps=np.tile(stamps, (c, 1)),  # [W, L] -> [C' * W, L]
        covariates=covs,  # [W, L, C] in mode "S" (C' = 1), else None
    )
