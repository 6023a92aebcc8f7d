"""Timestamps as every path takes them in: parsed to naive UTC and kept to a supported range.

One parser serves the series store (ingestion) and the service (forecast histories): ISO-8601
strings, datetimes or datetime64, naive = UTC, an offset or zone converted to UTC. Plain ISO
strings are parsed by NumPy in one call (about 70x faster than building datetime objects);
strings with an offset, and anything NumPy refuses, one at a time by `datetime.fromisoformat`.

Every stamp must lie in `SUPPORTED_RANGE` (1900-01-01 .. 2200-01-01 UTC, both included): the
arrays handed to models and read back from the store are datetime64[ns], which overflows
outside 1677..2262, silently turning a date into another one.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np

from training.store.schema import StoreError

SUPPORTED_RANGE = (np.datetime64("1900-01-01T00:00:00", "us"), np.datetime64("2200-01-01", "us"))
"""The earliest and latest timestamp (naive UTC, both included) anything may carry."""

_TIME_TYPES = (str, datetime, np.datetime64)
TIME_FIX = (
    "Fix: send ISO-8601 timestamps such as 2024-01-31T13:00:00 (naive = UTC; an offset "
    "such as Z or +02:00 is converted to UTC)"
)


def iso(stamp: np.datetime64) -> str:
    """A timestamp as ISO 8601 to the second, for messages."""
    return str(np.datetime_as_string(stamp, unit="s"))


def range_text() -> str:
    """The supported range as words, for messages."""
    earliest, latest = SUPPORTED_RANGE
    return f"{iso(earliest)} .. {iso(latest)} UTC"


def parse_timestamps(items: Any, field: str) -> np.ndarray:
    """[T] ISO strings, datetimes or datetime64 -> [T] datetime64[us], naive UTC, in range.

    Args:
        items: a sequence (or 1-D array) of timestamps.
        field: the name of the sequence in messages and in `StoreError.field` ("timestamps",
            "series[2].timestamps"); entries are named `field[i]`.

    Raises:
        StoreError: naming `field[i]` and the value of the first entry that is not a
            timestamp or lies outside `SUPPORTED_RANGE`.
    """
    stamps: np.ndarray | None
    if isinstance(items, np.ndarray) and items.dtype.kind == "M":
        stamps = items.astype("datetime64[us]").reshape(-1)  # [T]
    else:
        listed = list(items)
        stamps = _fast(listed)
        if stamps is None:
            stamps = np.array(
                [_parse_one(item, f"{field}[{i}]") for i, item in enumerate(listed)],
                dtype="datetime64[us]",
            ).reshape(-1)  # [T]
    nat = np.flatnonzero(np.isnat(stamps))
    if nat.size:
        i = int(nat[0])
        raise StoreError(
            f"{field}[{i}] is empty (NaT), not a timestamp. {TIME_FIX}", f"{field}[{i}]"
        )
    check_in_range(stamps, field)
    return stamps


def parse_timestamp(item: Any, field: str) -> datetime:
    """One timestamp (ISO string, datetime, datetime64) -> naive UTC datetime.

    Not bounded to `SUPPORTED_RANGE`: it is for query limits (start, end), where any time is
    a valid bound.

    Raises:
        StoreError: naming `field` and the value when it cannot be parsed.
    """
    moment = _parse_one(item, field).item()
    if not isinstance(moment, datetime):  # NaT
        raise StoreError(f"{field} is {item!r}, not a timestamp. {TIME_FIX}", field)
    return moment


def check_in_range(stamps: np.ndarray, field: str) -> None:
    """Raise StoreError naming `field[i]` for the first of [T] stamps outside the range."""
    earliest, latest = SUPPORTED_RANGE
    outside = np.flatnonzero((stamps < earliest) | (stamps > latest))  # [T] -> indices
    if outside.size:
        i = int(outside[0])
        raise StoreError(
            f"{field}[{i}] ({iso(stamps[i])}) is outside the supported range "
            f"{range_text()}. Fix: send timestamps within that range",
            f"{field}[{i}]",
        )


def _fast(listed: list[Any]) -> np.ndarray | None:
    """[T] datetime64[us] when every item is a plain ISO string NumPy parses alone, else None.

    NumPy also takes "now" and "today" and warns on offsets: strings not starting with a
    digit, and offsets, take the slow path, which refuses or converts them.
    """
    if not all(type(item) is str and item[:1].isdigit() for item in listed):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return np.array(listed, dtype="datetime64[us]").reshape(-1)  # [T]
    except (ValueError, UserWarning, DeprecationWarning, OverflowError):
        return None


def _parse_one(item: Any, field: str) -> np.datetime64:
    """One timestamp -> datetime64[us] naive UTC (NaT for an empty datetime64)."""
    if not isinstance(item, _TIME_TYPES):
        raise StoreError(f"{field} is {item!r}, not a timestamp. {TIME_FIX}", field)
    if isinstance(item, np.datetime64):
        converted: np.datetime64 = item.astype("datetime64[us]")
        return converted
    if isinstance(item, str):
        try:
            item = datetime.fromisoformat(item.strip())
        except ValueError:
            raise StoreError(
                f"{field} is {item!r}, which cannot be parsed as a timestamp. {TIME_FIX}", field
            ) from None
    if item.tzinfo is not None:
        try:
            item = item.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+02:00: before year 1 in UTC
            raise StoreError(
                f"{field} ({item.isoformat()}) is outside the supported range {range_text()}. "
                "Fix: send timestamps within that range",
                field,
            ) from None
    return np.datetime64(item, "us")


def parse_range(
    start: Any, end: Any, names: tuple[str, str] = ("start", "end")
) -> tuple[datetime | None, datetime | None]:
    """Optional inclusive bounds as naive UTC datetimes, checked in order.

    Args:
        start, end: ISO strings, datetimes or datetime64, or None (unbounded).
        names: how the two bounds are called in messages and in `StoreError.field`.

    Raises:
        StoreError: an unparseable bound, or start after end (field: the first name).
    """
    lo = None if start is None else parse_timestamp(start, names[0])
    hi = None if end is None else parse_timestamp(end, names[1])
    if lo is not None and hi is not None and lo > hi:
        raise StoreError(
            f"{names[0]} {lo.isoformat()} is after {names[1]} {hi.isoformat()}. "
            f"Fix: pass {names[0]} <= {names[1]}",
            names[0],
        )
    return lo, hi
