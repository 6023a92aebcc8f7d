"""The predict path every family shares: check inputs, roll forward past `max_horizon`, intervals.

A family supplies one forward pass (`StepFn`: the newest history in, `max_horizon` steps out);
`forecast` validates the arguments with the one wording every family uses, calls the step
block by block until the horizon is covered, and wraps the mean with conformal intervals.

Rolling: each block's forecast is appended to the history (its timestamps to the stamps, and
past covariates held at their last row, since they are unknown ahead) and the step runs again.
Future covariates are known ahead: each block reads the given values of its own steps.
Errors compound across blocks, so a `Forecast` made this way says `rolled=True`, and a horizon
beyond `max_roll` times `max_horizon` (default `MAX_ROLL` = 4) is refused rather than guessed:
its intervals would extend calibrated quantiles far past the steps they were measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from models import intervals
from models.base import Forecast, ModelMeta
from models.errors import ForecastInputError
from models.features import future_timestamps
from models.future import check_future, hold_rows
from models.windows import check_predict_inputs

# step(history [B, T'], timestamps [B, T'] | None, covariates [B, T', C] | None,
#      future covariates [B, T' + max_horizon, K] | None) -> [B, max_horizon];
# T' grows by max_horizon per block, the step reads what it needs.
StepFn = Callable[[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None], np.ndarray]
MAX_ROLL = 4  # the longest rolled forecast, in multiples of max_horizon


def check_roll(horizon: int, max_horizon: int, max_roll: int = MAX_ROLL) -> None:
    """Refuse a horizon longer than `max_roll` x `max_horizon`.

    Raises:
        ForecastInputError: naming `horizon`, the cap and the fix.
    """
    cap = max_roll * max_horizon
    if horizon > cap:
        raise ForecastInputError(
            f"horizon {horizon} is beyond what this model forecasts: it emits max_horizon="
            f"{max_horizon} steps per pass and rolls forward at most {max_roll} passes "
            f"({cap} steps); ask for horizon <= {cap}, or train a model with a longer horizon"
        )


def roll_forward(
    step: StepFn,
    history: np.ndarray,
    horizon: int,
    max_horizon: int,
    *,
    timestamps: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
    frequency: str | None = None,
    future_covariates: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Forecast `horizon` steps of `history` [B, T] with a `step` that emits `max_horizon`.

    `timestamps` [B, T] are extended block by block (`frequency` is then required),
    `covariates` [B, T, C] held at their last row; `future_covariates` [B, T + H, K] give each
    block the rows of its history and its own max_horizon steps.

    Returns:
        (mean [B, H], rolled) where rolled is True when more than one block was needed.
    """
    blocks: list[np.ndarray] = []
    done = 0
    hist, stamps, cov = history, timestamps, covariates
    while done < horizon:
        fut = None
        if future_covariates is not None:
            fut = hold_rows(future_covariates, hist.shape[1] + max_horizon)  # [B, T'+max_h, K]
        block = step(hist, stamps, cov, fut)  # [B, max_horizon]
        blocks.append(block)
        done += max_horizon
        if done < horizon:
            hist = np.concatenate([hist, block], axis=1)  # [B, T' + max_horizon]
            if stamps is not None and frequency is not None:
                nxt = future_timestamps(stamps[:, -1], frequency, max_horizon)  # [B, max_h]
                stamps = np.concatenate([stamps.astype(nxt.dtype), nxt], axis=1)
            if cov is not None:
                held = np.repeat(cov[:, -1:], max_horizon, axis=1)  # [B, max_h, C]
                cov = np.concatenate([cov, held], axis=1)  # [B, T' + max_h, C]
    mean = np.concatenate(blocks, axis=1)[:, :horizon]  # [B, H]
    return mean, len(blocks) > 1


def forecast(
    step: StepFn,
    meta: ModelMeta,
    history: np.ndarray,
    horizon: int,
    levels: Sequence[int],
    *,
    timestamps: np.ndarray | None,
    covariates: np.ndarray | None,
    future_covariates: np.ndarray | None = None,
) -> Forecast:
    """A family's `predict`: validate, roll forward, add intervals and future timestamps.

    `step` is the family's forward pass, `meta` its metadata; the other arguments are those of
    `Forecaster.predict`.

    Raises:
        ForecastInputError: naming the argument, the value and the fix.
    """
    hist, stamps, cov = check_predict_inputs(
        history, horizon, levels, timestamps, covariates,
        lookback=meta.lookback, calendar=meta.calendar, covariate_names=meta.covariates,
        calibrated=bool(meta.conformal),
    )  # fmt: skip
    check_roll(horizon, meta.max_horizon)
    fut = check_future(future_covariates, hist.shape[0], hist.shape[1], horizon,
                       meta.future_covariates)  # fmt: skip
    mean, rolled = roll_forward(
        step, hist, horizon, meta.max_horizon,
        timestamps=stamps, covariates=cov, frequency=meta.frequency, future_covariates=fut,
    )  # fmt: skip
    return intervals.forecast(mean, hist, meta, levels, stamps=stamps, rolled=rolled)
