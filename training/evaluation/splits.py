"""Time-ordered train / validation / test splits and the rolling test origins.

A split is three row boundaries of one series: train rows [0, train_end), validation rows
[train_end, val_end), test rows [val_end, end). A forecast "origin" is the row of the first
forecast step; its history is every row before it, so a test window's look-back may reach
into validation and training rows, but its targets never leave the test rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import DataError, ExperimentError


@dataclass(frozen=True)
class Split:
    """Row boundaries of one series: train [0, train_end), val [.., val_end), test [.., end).

    Attributes:
        train_end: first validation row.
        val_end: first test row.
        end: one past the last test row (rows after it are ignored).
    """

    train_end: int
    val_end: int
    end: int

    def __post_init__(self) -> None:
        if not 0 < self.train_end < self.val_end < self.end:
            raise DataError(
                f"Split(train_end={self.train_end}, val_end={self.val_end}, end={self.end}): "
                "boundaries must satisfy 0 < train_end < val_end < end. "
                "Fix: give each part at least one row"
            )

    @property
    def n_val(self) -> int:
        """Validation rows."""
        return self.val_end - self.train_end

    @property
    def n_test(self) -> int:
        """Test rows."""
        return self.end - self.val_end


# The standard long-horizon ETT protocol (Informer, Autoformer, DLinear, ...): 12 months of
# hourly rows for training, 4 for validation, 4 for test; rows from 14400 on are unused.
ETT_SPLIT = Split(8640, 11520, 14400)


def _check_horizon(horizon: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ExperimentError(f"horizon={horizon!r}: must be a positive integer. Fix: pass e.g. 24")


def ratio_split(
    n_rows: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    *,
    horizon: int = 1,
    series_id: str = "",
) -> Split:
    """Split `n_rows` rows by time: the last `test_fraction` for test, the `val_fraction` before it.

    Validation and test each get at least `horizon` rows (so each holds one full window),
    training at least `horizon + 2` rows (so h-step residuals exist).

    Args:
        n_rows: rows of the series (the split's `end`).
        val_fraction: share of rows for validation, in (0, 1).
        test_fraction: share of rows for test, in (0, 1); val + test < 1.
        horizon: forecast steps per window.
        series_id: named in the error message.

    Raises:
        ExperimentError: for fractions out of range or a non-positive horizon.
        DataError: when the series is too short for these sizes.
    """
    _check_horizon(horizon)
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise ExperimentError(f"{name}={frac!r}: must lie in (0, 1). Fix: use e.g. 0.1 or 0.2")
    if val_fraction + test_fraction >= 1.0:
        raise ExperimentError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g}: must be < 1 "
            "so that training rows remain. Fix: lower one of them"
        )
    n_test = max(round(n_rows * test_fraction), horizon)
    n_val = max(round(n_rows * val_fraction), horizon)
    need_train = horizon + 2
    n_train = n_rows - n_test - n_val
    if n_train < need_train:
        needed = need_train + 2 * horizon
        where = f"series {series_id!r}" if series_id else "series"
        raise DataError(
            f"{where} has {n_rows} rows; a split with val_fraction={val_fraction:g}, "
            f"test_fraction={test_fraction:g} and horizon={horizon} leaves {n_train} "
            f"training rows but needs {need_train} (at least about {needed} rows in all). "
            "Fix: use a shorter --horizon, or drop series this short"
        )
    return Split(n_rows - n_test - n_val, n_rows - n_test, n_rows)


def test_origins(split: Split, horizon: int) -> np.ndarray:
    """Every test forecast origin (rolling origin, stride 1, none dropped): [N] int64 rows
    val_end .. end - horizon inclusive, N = n_test - horizon + 1.

    Raises:
        DataError: when the test part is shorter than the horizon.
    """
    return _origins(split.val_end, split.end, horizon, "test")


def val_origins(split: Split, horizon: int) -> np.ndarray:
    """Every validation forecast origin: train_end .. val_end - horizon inclusive ([N] int64)."""
    return _origins(split.train_end, split.val_end, horizon, "validation")


def _origins(start: int, stop: int, horizon: int, part: str) -> np.ndarray:
    _check_horizon(horizon)
    if stop - start < horizon:
        raise DataError(
            f"horizon={horizon}: the {part} part has only {stop - start} rows "
            f"[{start}, {stop}), so no window fits. Fix: use a horizon <= {stop - start}"
        )
    return np.arange(start, stop - horizon + 1, dtype=np.int64)  # [N]


def window_stack(
    values: np.ndarray, origins: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gather the history and target of every origin.

    Args:
        values: [T] or [T, C] rows of one series.
        origins: [N] forecast-start rows; each needs `lookback` rows before it and
            `horizon` rows from it.
        lookback: L history steps per window.
        horizon: H target steps per window.

    Returns:
        history [N, L] and actual [N, H] for [T] values; [N, C, L] and [N, C, H] for [T, C].

    Raises:
        DataError: when an origin's window leaves the rows.
    """
    v = np.asarray(values)
    o = np.asarray(origins, dtype=np.int64).reshape(-1)  # [N]
    if lookback < 1 or horizon < 1:
        raise ExperimentError(
            f"window_stack: lookback={lookback}, horizon={horizon}; both must be >= 1. "
            "Fix: pass positive sizes"
        )
    if o.size and (int(o.min()) < lookback or int(o.max()) + horizon > v.shape[0]):
        raise DataError(
            f"window_stack: origins span [{int(o.min())}, {int(o.max())}] but with lookback="
            f"{lookback} and horizon={horizon} they must lie in [{lookback}, "
            f"{v.shape[0] - horizon}] for {v.shape[0]} rows. Fix: use a shorter lookback"
        )
    hist = v[o[:, None] + np.arange(-lookback, 0)]  # [N, L] or [N, L, C]
    act = v[o[:, None] + np.arange(horizon)]  # [N, H] or [N, H, C]
    if v.ndim == 2:
        hist = hist.transpose(0, 2, 1)  # [N, L, C] -> [N, C, L]
        act = act.transpose(0, 2, 1)  # [N, H, C] -> [N, C, H]
    return hist, act
