"""A logged forecast as one table row: its arrays packed, unpacked, and filled with actuals.

Arrays are stored as little-endian bytes, [H] each: `stamps` as int64 microseconds since the
epoch (naive UTC), `mean`, `naive` and `actual` as float64 (`actual` NaN until observed), and
`lower` / `upper` as float64 [K, H] in the order of `levels` ("80,95"). One row and no JSON per
forecast keeps logging cheap (benchmarks/live.py). The SQL around these rows is
`training.store.forecast_log`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from training.store.live_scores import ScoredSteps
from training.store.schema import StoreError, utc_now

F8, I8 = np.dtype("<f8"), np.dtype("<i8")
"""How the arrays are packed: float64 values, int64 microsecond stamps, little-endian."""
MAX_RECORDED_STEPS = 10_000
"""Longest horizon one logged forecast may hold."""


@dataclass(frozen=True)
class ForecastRecord:
    """One forecast to log.

    Attributes:
        model: registered model name.
        version: the version that made it (canonical text, e.g. "3").
        series_id: the stored series it forecasts.
        origin: naive UTC timestamp of the last history observation.
        timestamps: [H] naive UTC timestamps of the forecast steps (datetimes, or a
            datetime64 array).
        mean: [H] point forecast.
        intervals: level -> ([H] lower, [H] upper).
        naive: [H] seasonal-naive forecast from the same history, or None when unknown.
    """

    model: str
    version: str
    series_id: str
    origin: datetime
    timestamps: Sequence[datetime] | np.ndarray
    mean: Sequence[float]
    intervals: Mapping[int, tuple[Sequence[float], Sequence[float]]]
    naive: Sequence[float] | None = None


@dataclass(frozen=True)
class LoggedForecast:
    """A logged forecast read back, with the actuals that have arrived ([H] each)."""

    model: str
    version: str
    series_id: str
    origin: datetime
    created_at: datetime
    timestamps: list[datetime]
    mean: list[float]
    intervals: dict[int, tuple[list[float], list[float]]]
    actuals: list[float | None]


def forecast_row(record: ForecastRecord, now: datetime | None = None) -> dict[str, Any]:
    """The table row of `record` (arrays packed, `actual` empty), checked; `now` is its
    created_at (default: now).

    Raises:
        StoreError: arrays that disagree in length or hold non-finite values.
    """
    horizon = len(record.mean)
    stamps = np.asarray(record.timestamps, dtype="datetime64[us]")  # [H]
    if not 1 <= horizon <= MAX_RECORDED_STEPS or stamps.shape != (horizon,):
        raise StoreError(
            f"a logged forecast needs 1..{MAX_RECORDED_STEPS} steps with one timestamp "
            f"each; got {horizon} values and {len(record.timestamps)} timestamps",
            "mean",
        )
    levels = sorted(record.intervals)
    names = ["mean", *(["naive"] if record.naive is not None else [])]
    columns: list[Any] = [record.mean, *([record.naive] if record.naive is not None else [])]
    for level in levels:  # one conversion and one check for every array (the writer's hot path)
        names += [f"intervals.{level}.lower", f"intervals.{level}.upper"]
        columns += list(record.intervals[level])
    try:
        table = np.array(columns, dtype=F8)  # [A, H]
        ragged = table.shape != (len(columns), horizon)
    except ValueError:
        ragged = True
    if ragged or not np.isfinite(table).all():
        bad = next(
            name
            for name, values in zip(names, columns, strict=True)
            if len(values) != horizon or not np.isfinite(np.asarray(values, dtype=F8)).all()
        )
        raise StoreError(f"{bad} of a logged forecast must hold {horizon} finite numbers", bad)
    bounds = table[len(names) - 2 * len(levels) :]  # [2K, H]: lower, upper per level
    key = (record.model, record.version, record.series_id, record.origin)
    naive = table[1:2] if record.naive is not None else None
    return packed_rows(
        [key], stamps[None], table[:1], naive, levels, bounds[None, 0::2], bounds[None, 1::2], now
    )[0]


def packed_rows(
    keys: Sequence[tuple[str, str, str, datetime]],
    stamps: np.ndarray,
    mean: np.ndarray,
    naive: np.ndarray | None,
    levels: Sequence[int],
    lower: np.ndarray,
    upper: np.ndarray,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The table rows of N forecasts of one horizon H and one set of K levels, already
    checked (finite, one stamp a step): packing N at once costs a few microseconds a row.

    Args:
        keys: [N] (model, version, series id, origin).
        stamps: [N, H] datetime64 naive UTC.
        mean, naive: [N, H] (naive None when unknown); lower, upper: [N, K, H] in `levels`
            order.
        now: their created_at (default: now).
    """
    steps = stamps.astype("datetime64[us]")  # [N, H]
    first, last = steps[:, 0].tolist(), steps[:, -1].tolist()
    packed = {
        "stamps": np.ascontiguousarray(steps.astype(I8)),
        "mean": np.ascontiguousarray(mean, F8),
        "lower": np.ascontiguousarray(lower, F8),
        "upper": np.ascontiguousarray(upper, F8),
    }
    naive = None if naive is None else np.ascontiguousarray(naive, F8)
    actual = np.full(steps.shape[1], np.nan, dtype=F8).tobytes()  # NaN until observed
    text = ",".join(str(k) for k in levels)
    created = utc_now() if now is None else now
    return [
        {
            "model": model,
            "version": version,
            "series_id": series_id,
            "origin": origin,
            "horizon": steps.shape[1],
            "first_ts": first[i],
            "last_ts": last[i],
            "stamps": packed["stamps"][i].tobytes(),
            "mean": packed["mean"][i].tobytes(),
            "naive": None if naive is None else naive[i].tobytes(),
            "levels": text,
            "lower": packed["lower"][i].tobytes(),  # [K, H]
            "upper": packed["upper"][i].tobytes(),  # [K, H]
            "actual": actual,
            "scored": 0,
            "created_at": created,
        }
        for i, (model, version, series_id, origin) in enumerate(keys)
    ]


def filled(
    actual: bytes, stamps: bytes, observed: np.ndarray, values: Any
) -> tuple[bytes, int] | None:
    """A row's packed `actual` with the `values` observed at its step `stamps` copied in, and
    how many of its steps are scored now; None when none of its steps was observed.

    actual [H] float64 and stamps [H] int64 us, packed; observed [T] int64 us sorted, values [T].
    """
    steps = np.frombuffer(stamps, I8)  # [H]
    at = np.searchsorted(observed, steps)  # [H]
    inside = at < len(observed)
    hit = np.zeros(len(steps), dtype=bool)
    hit[inside] = observed[at[inside]] == steps[inside]
    if not hit.any():
        return None
    new = np.frombuffer(actual, F8).copy()  # [H]
    new[hit] = np.asarray(values, dtype=np.float64)[at[hit]]
    return new.tobytes(), int(np.count_nonzero(~np.isnan(new)))


def unpacked(row: Any) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(levels, lower [K, H], upper [K, H]) of a row."""
    levels = [int(k) for k in row.levels.split(",") if k]
    shape = (len(levels), len(row.mean) // F8.itemsize)
    lower = np.frombuffer(row.lower, F8).reshape(shape)
    upper = np.frombuffer(row.upper, F8).reshape(shape)
    return levels, lower, upper


def scored_steps(rows: list[Any]) -> ScoredSteps:
    """The scored steps of `rows` (one version's forecasts) as flat arrays."""
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("forecast", "step", "mean", "actual", "naive")
    }
    bounds: dict[int, list[np.ndarray]] = {}
    every_level = sorted({int(k) for row in rows for k in row.levels.split(",") if k})
    for i, row in enumerate(rows):
        actual = np.frombuffer(row.actual, F8)  # [H]
        kept = ~np.isnan(actual)
        horizon = len(actual)
        naive = np.frombuffer(row.naive, F8) if row.naive else np.full(horizon, np.nan)
        levels, lower, upper = unpacked(row)
        parts["forecast"].append(np.full(int(kept.sum()), i))
        parts["step"].append(np.arange(1, horizon + 1)[kept])
        parts["mean"].append(np.frombuffer(row.mean, F8)[kept])
        parts["actual"].append(actual[kept])
        parts["naive"].append(naive[kept])
        for level in every_level:
            pair = np.full((int(kept.sum()), 2), np.nan)  # [n, 2]
            if level in levels:
                k = levels.index(level)
                pair[:, 0], pair[:, 1] = lower[k][kept], upper[k][kept]
            bounds.setdefault(level, []).append(pair)
    return ScoredSteps(
        **{name: np.concatenate(arrays) for name, arrays in parts.items()},
        bounds={level: np.concatenate(pairs) for level, pairs in bounds.items()},
    )


def logged(row: Any) -> LoggedForecast:
    levels, lower, upper = unpacked(row)
    actual = np.frombuffer(row.actual, F8)
    return LoggedForecast(
        model=row.model,
        version=row.version,
        series_id=row.series_id,
        origin=row.origin,
        created_at=row.created_at,
        timestamps=np.frombuffer(row.stamps, I8).astype("datetime64[us]").tolist(),
        mean=np.frombuffer(row.mean, F8).tolist(),
        intervals={level: (lower[k].tolist(), upper[k].tolist()) for k, level in enumerate(levels)},
        actuals=[None if np.isnan(x) else float(x) for x in actual],
    )
