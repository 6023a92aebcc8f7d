"""Forecasting past a model's `max_horizon` by rolling forward block by block.

Each block's forecast is appended to the history (and its timestamps to the stamps) and the
model is run again on the newest look-back, until the requested horizon is covered. Errors
compound across blocks, so a `Forecast` made this way says `rolled=True`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.features import future_timestamps

# step(history [B, T'], timestamps [B, T'] | None) -> [B, max_horizon]
StepFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def roll_forward(
    step: StepFn,
    history: np.ndarray,
    horizon: int,
    max_horizon: int,
    *,
    timestamps: np.ndarray | None = None,
    frequency: str | None = None,
) -> tuple[np.ndarray, bool]:
    """Forecast `horizon` steps with a model that emits `max_horizon` per call.

    Args:
        step: one forward pass: (history [B, T'], timestamps [B, T'] or None) -> [B, max_horizon].
            T' grows by max_horizon each block; the step reads what it needs from the end.
        history: [B, T] observed values.
        horizon: H >= 1 steps wanted.
        max_horizon: steps the model emits per call.
        timestamps: [B, T] datetime64 stamps of `history`, extended block by block when given.
        frequency: the series frequency; required with `timestamps`.

    Returns:
        (mean [B, H], rolled) where rolled is True when more than one block was needed.
    """
    blocks: list[np.ndarray] = []
    done = 0
    hist = history
    stamps = timestamps
    while done < horizon:
        block = step(hist, stamps)  # [B, max_horizon]
        blocks.append(block)
        done += max_horizon
        if done < horizon:
            hist = np.concatenate([hist, block], axis=1)  # [B, T' + max_horizon]
            if stamps is not None and frequency is not None:
                nxt = future_timestamps(stamps[:, -1], frequency, max_horizon)  # [B, max_h]
                stamps = np.concatenate([stamps.astype(nxt.dtype), nxt], axis=1)
    mean = np.concatenate(blocks, axis=1)[:, :horizon]  # [B, H]
    return mean, len(blocks) > 1
