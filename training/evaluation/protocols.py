"""The standard long-horizon ETT protocol (Informer / Autoformer / DLinear / SegRNN tables).

Rows [0, 8640) train, [8640, 11520) validation, and test forecasts that start at every row
11520 .. 14400 - H (2880 - H + 1 windows, none dropped; their look-back may reach back
into validation and training rows). Every column is z-scored with the training rows'
mean and population std (ddof=0), and MSE/MAE are reported on that scale.

Mode "S": the target column (OT) only. Mode "M": all columns as channels, evaluated
channel-independently: each (window, channel) pair is one row of the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.frame import SeriesFrame, infer_frequency
from training.errors import DataError, ExperimentError
from training.evaluation import splits
from training.evaluation.splits import ETT_SPLIT, Split

# How a frame is split for evaluation: "ratio" (train / validation / test fractions) or "ett"
# (the fixed ETTh1 12/4/4-month rows above). The one list; the CLI and the jobs import it.
PROTOCOLS = ("ratio", "ett")
MODES = ("S", "M")


@dataclass(frozen=True)
class EttProblem:
    """Everything needed to score a forecaster on the ETT protocol.

    Attributes:
        values: [N, C] float64 z-scored columns, N = split.end (14400) rows.
        columns: C column names; `values[:, target_index]` is the target.
        mean: [C] training-row means (original scale).
        std: [C] training-row population stds.
        origins: [W] test forecast-start rows, 11520 .. 14400 - H.
        mode: "S" (target only) or "M" (every column as a channel).
        timestamps: [N] datetime64[ns] stamps of the rows.
        frequency: canonical frequency of the rows (sets the MASE season).
    """

    values: np.ndarray
    columns: tuple[str, ...]
    target_index: int
    mean: np.ndarray
    std: np.ndarray
    split: Split
    horizon: int
    origins: np.ndarray
    mode: str
    timestamps: np.ndarray
    frequency: str

    @property
    def channels(self) -> tuple[int, ...]:
        """Column indices evaluated: the target only ("S") or all ("M")."""
        return (self.target_index,) if self.mode == "S" else tuple(range(len(self.columns)))

    @property
    def train_values(self) -> np.ndarray:
        """[8640, C'] z-scored training rows of the evaluated channels."""
        return self.values[: self.split.train_end, list(self.channels)]

    def windows(
        self, lookback: int, origins: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Test windows (or those at `origins`) of every evaluated channel, channel-major.

        Returns:
            history [W * C', lookback] and actual [W * C', H]; rows c * W .. (c + 1) * W - 1
            belong to channel `channels[c]`.
        """
        origins = self.origins if origins is None else origins
        hist, act = splits.window_stack(
            self.values[:, list(self.channels)], origins, lookback, self.horizon
        )  # [W, C', L], [W, C', H]
        w, c = hist.shape[0], hist.shape[1]
        # [W, C', L] -> [C', W, L] -> [C' * W, L]
        return (
            hist.transpose(1, 0, 2).reshape(c * w, lookback),
            act.transpose(1, 0, 2).reshape(c * w, self.horizon),
        )


def read_ett_csv(path: str | Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Columns, [N] datetime64[ns] stamps and [N, C] values of an ETT-format CSV.

    The first column is the date, the rest are numeric.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"ETT file {str(p)!r} does not exist. Fix: pass the path of ETTh1.csv")
    table = pd.read_csv(p)
    cols = [str(c) for c in table.columns[1:]]
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(table[c])]
    if not cols or bad:
        raise DataError(
            f"{p}: expected a date column followed by numeric columns; non-numeric: {bad}. "
            "Fix: pass an ETT-format CSV (date, HUFL, ..., OT)"
        )
    stamps = pd.to_datetime(table.iloc[:, 0], errors="coerce")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise DataError(
            f"{p}: row {row + 1}: date {table.iloc[row, 0]!r} cannot be parsed. "
            "Fix: pass an ETT-format CSV whose first column holds the dates"
        )
    stamps_ns = stamps.to_numpy(dtype="datetime64[ns]")  # [N]
    return tuple(cols), stamps_ns, table[cols].to_numpy(dtype=np.float64)


def _frame_columns(frame: SeriesFrame) -> tuple[tuple[str, ...], np.ndarray]:
    if frame.n_series != 1:
        raise DataError(
            f"{frame.source}: the ETT protocol needs one series; got {frame.n_series}. "
            "Fix: use --protocol ratio for panels"
        )
    cols = (*frame.covariates, frame.target)
    values = frame.table[[*frame.covariates, "value"]].to_numpy(dtype=np.float64)  # [N, C]
    return cols, values


def ett_problem(
    frame_or_path: SeriesFrame | str | Path, horizon: int, *, mode: str = "S", target: str = "OT"
) -> EttProblem:
    """Build the ETT protocol problem for `horizon` from a frame or an ETT-format CSV.

    Args:
        frame_or_path: a one-series SeriesFrame (its covariates become the other channels,
            needed for mode "M"), or the path of an ETT CSV.
        horizon: H, 1 .. 2880.
        target: the target column (for a frame, its own target must match).

    Raises:
        ExperimentError: bad mode or horizon.
        DataError: fewer than 14400 rows, missing target, non-finite values, a constant column.
    """
    if mode not in MODES:
        raise ExperimentError(f"mode={mode!r}: must be one of {MODES}. Fix: use 'S' or 'M'")
    if isinstance(frame_or_path, SeriesFrame):
        cols, raw = _frame_columns(frame_or_path)
        where = frame_or_path.source or "frame"
        stamps = frame_or_path.table["timestamp"].to_numpy(dtype="datetime64[ns]")  # [N]
        frequency = frame_or_path.frequency
    else:
        cols, stamps, raw = read_ett_csv(frame_or_path)
        where = str(frame_or_path)
        frequency = ""
    if target not in cols:
        raise DataError(f"{where}: target column {target!r} not in {list(cols)}. Fix: pass target=")
    if mode == "M" and len(cols) < 2:
        raise DataError(
            f"{where}: mode 'M' needs every ETT column but only {list(cols)} are loaded. "
            "Fix: load the dataset with its covariates, or use mode 'S'"
        )
    split = ETT_SPLIT
    if raw.shape[0] < split.end:
        raise DataError(
            f"{where}: the ETT protocol needs {split.end} rows; got {raw.shape[0]}. "
            "Fix: pass the full ETTh1/ETTh2 file"
        )
    values = raw[: split.end]  # [14400, C]
    if not frequency:
        frequency = infer_frequency([stamps[: split.end]], where=where)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: NaN or inf in the first {split.end} rows. Fix: fill them first")
    mean = values[: split.train_end].mean(axis=0)  # [C]
    std = values[: split.train_end].std(axis=0, ddof=0)  # [C]
    if np.any(std == 0):
        flat = [c for c, s in zip(cols, std, strict=True) if s == 0]
        raise DataError(
            f"{where}: columns {flat} are constant on the training rows. Fix: drop them"
        )
    if horizon > split.n_test:
        raise ExperimentError(
            f"horizon={horizon}: the ETT test part has {split.n_test} rows. Fix: use H <= 2880"
        )
    origins = splits.test_origins(split, horizon)  # [2880 - H + 1]
    return EttProblem(
        values=(values - mean) / std,  # [14400, C]
        columns=cols,
        target_index=cols.index(target),
        mean=mean,
        std=std,
        split=split,
        horizon=horizon,
        origins=origins,
        mode=mode,
        timestamps=stamps[: split.end],  # [14400]
        frequency=frequency,
    )
