"""Data-driven defaults: the one place where a config value the user did not set is derived.

`forecast train --data my.csv --horizon 24` must give a sensible model without a config file.
The forecaster configs in `models.config` keep the values tuned on z-scored ETTh1 (a benchmark
builds them directly); a training job instead starts from what this module derives from the
data, and every key the user did set (a flag, a top-level spec key or a `[model]` key) wins.

What is derived, and why (`derive` returns each value with its reason, logged to MLflow):

- **lookback**: the dominant cycles of the frequency: a week for sub-daily data (168 hourly
  steps: the daily and the weekday/weekend cycle), four seasons for daily or business-daily
  data (28 / 20 steps), a year for weekly data; at least four horizons and 8 steps; at most
  half of the shortest series' training rows minus the horizon (so every series keeps training
  windows); rounded down to a whole number of segments.
- **segment_length** (recurrent): one day for sub-daily data (SegRNN's 24 hourly steps), one
  season for daily data, 4 weeks for weekly data; the largest divisor of the look-back up to
  that when the look-back is shorter.
- **norm** (recurrent): "revin" (subtract the window mean, divide by the window std, both from
  the look-back only). Raw units (megawatts, rentals) otherwise reach the network unscaled.
  ESN: "last" for one series (its input scale is fitted on the training rows), "revin" for
  panels whose series differ in size.
- **hidden_size**, **batch_size** (recurrent): 128 units; batches of 128 windows once there
  are more than 20,000 training windows, else 64.
- **epochs**, **max_epochs**, **lr_schedule**, **patience** (recurrent): an epoch budget worth
  about 3,000 optimiser steps (4 to 30 epochs), extended up to twice that while the last epoch
  is still the best, and a rate halved after every epoch without improvement ("plateau"). When
  the user sets `lr` the schedule stays constant (their rate was tuned for it); when the user
  sets `epochs` the budget is not extended.
- **epoch_windows** (recurrent): panels of more than 250,000 training windows (thousands of
  series) sample 250,000 fresh windows per epoch instead of passing over all of them, so an
  epoch stays minutes long and early stopping still looks at validation often; the epoch
  budget is then counted in such epochs. Smaller data passes over every window.
- **calendar** (ESN, sub-daily data): hour-of-day and weekday features in the readout. On PJM
  hourly load (H=24) they took the ESN from 0.65x to 0.57x seasonal naive's test MAE; the GRU,
  whose look-back of whole days already shows the daily shape, did not gain (0.58x without,
  0.61x with), so recurrent models keep `calendar` off unless asked. Covariates stay opt-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.features import parse_frequency, season_length
from training.data.frame import SeriesFrame
from training.evaluation import splits
from training.jobs.experiment import TrainSpec

RECURRENT = ("lstm", "gru", "rnn")
TARGET_STEPS = 3000  # optimiser steps one epoch budget is worth
MIN_EPOCHS, MAX_EPOCHS = 4, 30
BIG_DATA_WINDOWS = 20_000
PANEL_EPOCH_WINDOWS = 250_000  # windows one epoch samples from a larger panel
ESN_WASHOUT = 96


@dataclass(frozen=True)
class Derived:
    """Config values derived from the data, with one reason each (for MLflow and the CLI)."""

    values: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, value: Any, reason: str) -> None:
        """Record `key` = `value` because of `reason`."""
        self.values[key] = value
        self.reasons[key] = reason


def is_sub_daily(frequency: str) -> bool:
    """Whether a step is shorter than a day ("h", "15min", "3h", ...)."""
    return parse_frequency(frequency).unit in ("min", "h")


def cycle_length(frequency: str) -> int:
    """Steps that cover the dominant cycles: a week (sub-daily), 4 weeks (D, B), a year (W)."""
    season = season_length(frequency)
    if is_sub_daily(frequency):
        return 7 * season
    if parse_frequency(frequency).unit == "W":
        return season
    return 4 * season


def segment_target(frequency: str) -> int:
    """The recurrent segment the look-back is cut into: a day (sub-daily), a season, 4 weeks."""
    if parse_frequency(frequency).unit == "W":
        return 4
    return season_length(frequency)


def _train_rows(frame: SeriesFrame, spec: TrainSpec) -> list[int]:
    """Training rows of every series under the spec's split."""
    if spec.protocol == "ett":
        return [splits.ETT_SPLIT.train_end]
    return [
        splits.ratio_split(
            len(s.values), spec.val_fraction, spec.test_fraction, horizon=spec.horizon,
            series_id=s.series_id,
        ).train_end
        for s in frame.to_series()
    ]  # fmt: skip


def shortest_train_rows(frame: SeriesFrame, spec: TrainSpec) -> int:
    """Training rows of the shortest series under the spec's split."""
    return min(_train_rows(frame, spec))


def train_windows(frame: SeriesFrame, spec: TrainSpec, lookback: int) -> int:
    """How many training windows a model with this look-back gets (over every series)."""
    return sum(max(rows - lookback - spec.horizon + 1, 0) for rows in _train_rows(frame, spec))


def lookback_for(frame: SeriesFrame, spec: TrainSpec, family: str) -> tuple[int, str]:
    """`family`'s derived look-back and its reason (see the module docstring)."""
    cycle = cycle_length(frame.frequency)
    segment = segment_target(frame.frequency) if family in RECURRENT else 1
    wanted = max(cycle, 4 * spec.horizon, 8)
    cap = max(2, (shortest_train_rows(frame, spec) - spec.horizon) // 2)
    lookback = min(wanted, cap)
    if segment > 1 and lookback >= segment:
        lookback -= lookback % segment
    reason = (
        f"max(cycle {cycle} steps of freq {frame.frequency!r}, 4 x horizon {spec.horizon}, 8)"
        f" = {wanted}"
    )
    if lookback < wanted:
        reason += f", capped at {lookback} by the shortest series' training rows"
    return lookback, reason


def segment_for(lookback: int, frequency: str) -> int:
    """The largest divisor of `lookback` up to the frequency's segment target."""
    top = min(segment_target(frequency), lookback)
    return max(d for d in range(1, top + 1) if lookback % d == 0)


def _given(spec: TrainSpec, key: str) -> bool:
    """Whether the user set `key` (a top-level spec field or a [model] key)."""
    return key in spec.model or (key in ("lookback", "epochs") and getattr(spec, key) is not None)


def derive(spec: TrainSpec, frame: SeriesFrame, family: str | None = None) -> Derived:
    """Every default the data decides for `family` (default: the spec's), minus what is given.

    Keys the user set are left out, so merging `values` under the spec can never override them.
    """
    family = family or spec.family
    out = Derived()
    if _given(spec, "lookback"):
        lookback = int(spec.model.get("lookback", spec.lookback))
    else:
        lookback, reason = lookback_for(frame, spec, family)
        out.put("lookback", lookback, reason)
    if family == "esn":
        _derive_esn(spec, frame, lookback, out)
    elif family in RECURRENT:
        _derive_recurrent(spec, frame, lookback, out)
    return out


def _derive_esn(spec: TrainSpec, frame: SeriesFrame, lookback: int, out: Derived) -> None:
    if not _given(spec, "washout"):
        out.put("washout", min(ESN_WASHOUT, lookback), "reservoir warm-up, at most the look-back")
    if not _given(spec, "calendar") and is_sub_daily(frame.frequency):
        out.put("calendar", True, "sub-daily data: the readout sees the hour and weekday")
    if not _given(spec, "norm"):
        if frame.n_series > 1:
            reason = f"{frame.n_series} series of different sizes: a scale per series"
            out.put("norm", "revin", reason)
        else:
            out.put("norm", "last", "one series: level from the last value, scale from training")


def _derive_recurrent(spec: TrainSpec, frame: SeriesFrame, lookback: int, out: Derived) -> None:
    if not _given(spec, "segment_length"):
        reason = (
            f"largest divisor of lookback {lookback} up to "
            f"{segment_target(frame.frequency)} (one day / season per recurrent step)"
        )
        out.put("segment_length", segment_for(lookback, frame.frequency), reason)
    if not _given(spec, "norm"):
        out.put("norm", "revin", "raw units: subtract the window mean, divide by its std")
    if not _given(spec, "hidden_size"):
        out.put("hidden_size", 128, "enough for one univariate series; trains in minutes on CPU")
    n_windows = train_windows(frame, spec, lookback)
    if not _given(spec, "batch_size"):
        batch = 128 if n_windows > BIG_DATA_WINDOWS else 64
        out.put("batch_size", batch, f"{n_windows} training windows")
    if not _given(spec, "epoch_windows") and n_windows > PANEL_EPOCH_WINDOWS:
        reason = f"{n_windows} training windows: each epoch samples {PANEL_EPOCH_WINDOWS}"
        out.put("epoch_windows", PANEL_EPOCH_WINDOWS, reason)
    per_epoch = int(spec.model.get("epoch_windows", out.values.get("epoch_windows", 0)))
    batch = int(spec.model.get("batch_size", out.values.get("batch_size", 64)))
    steps = max(1, math.ceil(min(n_windows, per_epoch or n_windows) / batch))
    if not _given(spec, "epochs"):
        epochs = int(np.clip(round(TARGET_STEPS / steps), MIN_EPOCHS, MAX_EPOCHS))
        out.put("epochs", epochs, f"about {TARGET_STEPS} optimiser steps at {steps} per epoch")
        if not _given(spec, "max_epochs"):
            out.put("max_epochs", 2 * epochs, "budget grows while the last epoch is the best")
    if not _given(spec, "lr_schedule") and not _given(spec, "lr"):
        out.put("lr_schedule", "plateau", "halve the rate after an epoch without improvement")
    if not _given(spec, "patience"):
        out.put("patience", 3, "three epochs without improvement, at ever smaller rates")
