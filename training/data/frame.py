"""The validated long table every source produces and every consumer reads.

A `SeriesFrame` holds one pandas table with the columns `series_id` (str), `timestamp`
(datetime64[ns]), `value` (float64), then the past covariates and then the future covariates
(known over the horizon too: weather forecasts, holidays; all float64), sorted by
(series_id, timestamp), free of NaN, and regular at one frequency of `models.features`
(for "B" that means every weekday between a series' first and last stamp is present).
Sources build the table, apply their fill policies and record them in `notes`; the
constructor checks the invariants so that nothing else has to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from models.base import SeriesData
from models.errors import ConfigError
from models.features import parse_frequency
from training.errors import DataError

BASE_COLUMNS = ("series_id", "timestamp", "value")


@dataclass(frozen=True, eq=False)
class SeriesFrame:
    """One or more regular series in long form, with the policies that made them so.

    Treat a frame as immutable: loaders cache frames per process and hand out the same
    object, so copy `table` before changing it.

    Attributes:
        table: columns series_id, timestamp, value, *covariates, *future_covariates; sorted;
            no NaN.
        frequency: canonical frequency string ("h", "D", "B", "W", "<n>min", "<n>h").
        target: name of the target column in the source (the `value` column here).
        covariates: covariate column names, in table order.
        source: where the data came from ("bundled:load/etth1" or a file path).
        notes: one line per policy applied (fills, dropped rows, layout changes).
        future_covariates: future-known covariate column names, in table order (after the
            past covariates); see training.data.known.
    """

    table: pd.DataFrame
    frequency: str
    target: str
    covariates: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = ()
    future_covariates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_invariants(self)

    @property
    def rows(self) -> int:
        """Observations in the long table (all series together)."""
        return len(self.table)

    @property
    def n_series(self) -> int:
        """Number of distinct series."""
        return len(self.bounds)

    @property
    def start(self) -> pd.Timestamp:
        """Earliest timestamp over all series."""
        return pd.Timestamp(self.table["timestamp"].min())

    @property
    def end(self) -> pd.Timestamp:
        """Latest timestamp over all series."""
        return pd.Timestamp(self.table["timestamp"].max())

    def series_ids(self) -> list[str]:
        """Series ids in table order (sorted)."""
        return [sid for sid, _, _ in self.bounds]

    @cached_property
    def bounds(self) -> list[tuple[str, int, int]]:
        """(series_id, first row, end row) per series; rows are contiguous once sorted."""
        ids = self.table["series_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        return [(str(ids[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]

    def to_series(self) -> list[SeriesData]:
        """Split into the per-series arrays models/ consumes.

        Returns:
            One SeriesData per series: values [T] float32, timestamps [T] datetime64[ns],
            covariates [T, C] float32 (None when the frame has no covariates), future
            covariates [T, K] float32 (None when it has none).
        """
        values = self.table["value"].to_numpy(dtype=np.float32)  # [N]
        stamps = self.table["timestamp"].to_numpy(dtype="datetime64[ns]")  # [N]
        covs = self._float32(self.covariates)  # [N, C]
        futs = self._float32(self.future_covariates)  # [N, K]
        return [
            SeriesData(
                values=values[lo:hi].copy(),  # [T]
                timestamps=stamps[lo:hi].copy(),  # [T]
                covariates=None if covs is None else covs[lo:hi].copy(),  # [T, C]
                series_id=sid,
                future_covariates=None if futs is None else futs[lo:hi].copy(),  # [T, K]
            )
            for sid, lo, hi in self.bounds
        ]

    def _float32(self, columns: tuple[str, ...]) -> np.ndarray | None:
        """The `columns` as one [N, len(columns)] float32 array; None for no columns."""
        return self.table[list(columns)].to_numpy(dtype=np.float32) if columns else None

    def fingerprint(self) -> dict[str, object]:
        """Identify the exact data a model saw (logged with every run).

        Returns:
            source, frequency, target, covariates, future covariates (when any), rows, series,
            start, end, and the sha256 of the table (column names, then each column's bytes).
        """
        future = list(self.future_covariates)
        extra = {"future_covariates": future} if future else {}  # old fingerprints unchanged
        return {
            "source": self.source,
            "frequency": self.frequency,
            "target": self.target,
            "covariates": list(self.covariates),
            **extra,
            "rows": self.rows,
            "series": self.n_series,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sha256": self._sha256,
        }

    @cached_property
    def _sha256(self) -> str:
        digest = hashlib.sha256()
        for column in self.table.columns:
            digest.update(str(column).encode() + b"\0")
            data = self.table[column]
            if column == "series_id":
                digest.update("\0".join(data.astype(str)).encode())
            else:
                array = data.to_numpy()
                if column == "timestamp":
                    array = array.astype("datetime64[ns]").view(np.int64)
                digest.update(np.ascontiguousarray(array, dtype=array.dtype).tobytes())
        return digest.hexdigest()


def canonical_frequency(freq: str, *, where: str) -> str:
    """Validate a frequency string and return its canonical spelling.

    Raises:
        DataError: naming `where` (a file or dataset), the value and the accepted forms.
    """
    try:
        return parse_frequency(freq).text
    except ConfigError as exc:
        raise DataError(f"{where}: unknown frequency: {exc}") from None


def infer_frequency(timestamps: list[np.ndarray], *, where: str) -> str:
    """Infer a canonical frequency from the median step of sorted per-series stamps.

    `timestamps` holds one sorted [T] datetime64 array per series; a one-day median step
    whose series never touch a weekend is "B" (business days).

    Raises:
        DataError: when no series has two stamps, or the median step is not one of ours.
    """
    seconds = median_step(timestamps)
    if seconds is None:
        raise DataError(
            f"{where}: cannot infer a frequency from fewer than two timestamps. "
            "Fix: pass the frequency explicitly (e.g. freq='h')"
        )
    day = 86_400
    if seconds == day:
        stamps = np.concatenate([ts.astype("datetime64[D]") for ts in timestamps])
        return "B" if bool(np.is_busday(stamps).all()) else "D"
    if seconds == 7 * day:
        return "W"
    if 0 < seconds < day and seconds % 60 == 0:
        minutes = seconds // 60
        if minutes % 60 == 0:
            hours = minutes // 60
            return "h" if hours == 1 else f"{hours}h"
        return f"{minutes}min"
    raise DataError(
        f"{where}: unknown frequency: the median step between timestamps is "
        f"{pd.Timedelta(seconds=seconds)}, which is none of hourly/minutely multiples, "
        "daily, business-daily or weekly. Fix: resample the file to one of them or pass "
        "freq explicitly ('h', '<n>h', '<n>min', 'D', 'B', 'W')"
    )


def median_step(timestamps: list[np.ndarray]) -> int | None:
    """The median step in seconds of sorted per-series stamps; None without two in a series."""
    steps = [np.diff(ts.astype("datetime64[s]")).astype(np.int64) for ts in timestamps]
    pooled = np.concatenate(steps) if steps else np.empty(0, dtype=np.int64)
    return int(np.median(pooled)) if pooled.size else None


def grid(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> pd.DatetimeIndex:
    """Every timestamp of `freq` from `start` to `end` inclusive ("W" = 7-day steps)."""
    f = parse_frequency(freq)
    if f.business:
        return pd.bdate_range(start, end).as_unit("ns")
    return pd.date_range(start, end, freq=pd.Timedelta(f.step)).as_unit("ns")


def _check_invariants(frame: SeriesFrame) -> None:
    """Raise DataError when the table breaks a SeriesFrame invariant (a loader bug or bad
    hand-built frame); the message names the column or row."""
    table = frame.table
    where = frame.source or "SeriesFrame"
    expected = [*BASE_COLUMNS, *frame.covariates, *frame.future_covariates]
    if list(table.columns) != expected:
        raise DataError(
            f"{where}: table columns are {list(table.columns)}; "
            f"expected {expected}. Fix: build the table in that column order"
        )
    if len(table) == 0:
        raise DataError(f"{where}: the table is empty. Fix: load a file with data rows")
    if not pd.api.types.is_string_dtype(table["series_id"]):
        raise DataError(
            f"{where}: column 'series_id' has dtype {table['series_id'].dtype}; "
            "expected strings. Fix: convert with .astype(str)"
        )
    if table["timestamp"].dtype != np.dtype("datetime64[ns]"):
        raise DataError(
            f"{where}: column 'timestamp' has dtype {table['timestamp'].dtype}; "
            "expected datetime64[ns]. Fix: convert with .astype('datetime64[ns]')"
        )
    for column in expected[2:]:
        if table[column].dtype != np.float64:
            raise DataError(
                f"{where}: column {column!r} has dtype {table[column].dtype}; "
                "expected float64. Fix: convert with .astype('float64')"
            )
        values = table[column].to_numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(
                f"{where}: column {column!r} has a NaN or infinite value at table "
                f"row {int(bad[0])}. Fix: apply a fill policy before building"
            )
    canonical = canonical_frequency(frame.frequency, where=where)
    if canonical != frame.frequency:
        raise DataError(
            f"{where}: frequency {frame.frequency!r} is not canonical; use {canonical!r}"
        )
    _check_regular(frame, where)


def _check_regular(frame: SeriesFrame, where: str) -> None:
    ids = frame.table["series_id"].to_numpy()
    stamps = frame.table["timestamp"].to_numpy()  # [N] datetime64[ns]
    same = ids[1:] == ids[:-1]  # [N-1] consecutive rows of one series
    if (ids[1:][~same] < ids[:-1][~same]).any():
        raise DataError(f"{where}: series_id is not sorted. Fix: sort by (series_id, timestamp)")
    f = parse_frequency(frame.frequency)
    if f.business:
        days = stamps.astype("datetime64[D]")
        on_grid = np.is_busday(days) & (days.astype(stamps.dtype) == stamps)
        gaps = np.busday_count(days[:-1], days[1:]) == 1  # [N-1]
    else:
        on_grid = np.ones(len(stamps), dtype=bool)
        gaps = (stamps[1:] - stamps[:-1]) == f.step  # [N-1]
    bad_steps = np.flatnonzero(same & ~gaps)
    bad_stamps = np.flatnonzero(~on_grid)
    if bad_steps.size or bad_stamps.size:
        row = int(min([*(bad_steps + 1), *bad_stamps]))
        raise DataError(
            f"{where}: series {ids[row]!r} is not regular at frequency {frame.frequency!r} at "
            f"table row {row} (timestamp {pd.Timestamp(stamps[row])}). "
            "Fix: reindex to the frequency and fill gaps before building"
        )
