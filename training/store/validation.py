"""Validation of everything a caller hands the series store, before anything is written.

Every check raises `StoreError` (a `DataError`) whose message names the field, with its index
for batch entries (e.g. "values[3]"), the bad value, and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.errors import ConfigError
from models.features import is_on_frequency, parse_frequency
from training.store.schema import ID_LENGTH, StoreError

MAX_METADATA_BYTES = 65_536
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_RESERVED_COVARIATES = ("series_id", "timestamp", "value")


def check_series_id(series_id: object) -> str:
    """Return `series_id` when it is a valid id, else raise StoreError naming the rule."""
    if (
        not isinstance(series_id, str)
        or len(series_id) > ID_LENGTH
        or not _ID_PATTERN.match(series_id)
    ):
        raise StoreError(
            f"series id {series_id!r} is not valid: use 1-{ID_LENGTH} letters, digits, "
            "'.', '_', ':' or '-', starting with a letter or digit (no slashes or spaces)"
        )
    return series_id


def check_target(target: object) -> str:
    """Return `target` when it is a usable name, else raise StoreError."""
    if not isinstance(target, str) or not target.strip() or len(target) > 200:
        raise StoreError(
            f"target must be a non-empty name of at most 200 characters, got {target!r}. "
            "Fix: name what the values measure, e.g. 'load_mw'"
        )
    return target


def check_frequency(frequency: object) -> str:
    """The canonical spelling of `frequency`, else StoreError listing the accepted forms."""
    try:
        return parse_frequency(frequency).text  # type: ignore[arg-type]
    except ConfigError as exc:
        raise StoreError(f"frequency: {exc}") from None


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """Series metadata as compact JSON text (None -> "{}"), at most MAX_METADATA_BYTES."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise StoreError(
            f"metadata must be a JSON object with string keys, got "
            f"{type(metadata).__name__}. Fix: pass a dict such as {{'unit': 'MW'}}"
        )
    try:
        text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"metadata cannot be stored as JSON ({exc}). Fix: use strings, "
            "finite numbers, booleans, null, lists and objects only"
        ) from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise StoreError(
            f"metadata is {len(text.encode())} bytes as JSON; the limit is "
            f"{MAX_METADATA_BYTES}. Fix: keep large documents elsewhere"
        )
    return text


def check_positive(value: object, field: str) -> int:
    """`value` as an int when it is an integer >= 1 (bools are not), else StoreError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise StoreError(f"{field} must be a positive integer, got {value!r}")
    return int(value)


def batch_length(
    timestamps: Any, values: Any, covariates: Mapping[str, Any] | None, max_batch: int
) -> int:
    """Check the batch's lengths and covariate names; return its length."""
    n = _length(values, "values")
    if n == 0:
        raise StoreError(
            "values is empty: a batch needs at least one observation. "
            "Fix: send timestamps and values of equal, non-zero length"
        )
    if n > max_batch:
        raise StoreError(
            f"values has {n} observations; the limit per request is {max_batch}. "
            f"Fix: split the batch into parts of at most {max_batch}"
        )
    if _length(timestamps, "timestamps") != n:
        raise StoreError(
            f"timestamps has {len(timestamps)} entries but values has {n}. "
            "Fix: send exactly one value per timestamp"
        )
    if covariates is not None and not isinstance(covariates, Mapping):
        raise StoreError(
            f"covariates must map names to lists of numbers, got {type(covariates).__name__}"
        )
    for name, seq in (covariates or {}).items():
        if not isinstance(name, str) or not name or len(name) > 64 or name in _RESERVED_COVARIATES:
            raise StoreError(
                f"covariate name {name!r} is not valid: use 1-64 characters "
                f"other than {', '.join(_RESERVED_COVARIATES)}"
            )
        if _length(seq, f"covariates[{name!r}]") != n:
            raise StoreError(
                f"covariates[{name!r}] has {len(seq)} entries but values has {n}. "
                "Fix: send one covariate value per timestamp"
            )
    return n


def _length(seq: Any, field: str) -> int:
    """len() of a flat list or 1-D array; StoreError for anything else."""
    flat = not isinstance(seq, str | bytes | Mapping) and (
        seq.ndim == 1 if isinstance(seq, np.ndarray) else hasattr(seq, "__len__")
    )
    if not flat:
        raise StoreError(
            f"{field} must be a flat list, got {type(seq).__name__}. "
            "Fix: send a JSON array with one entry per observation"
        )
    return len(seq)


def finite_numbers(seq: Any, field: str) -> np.ndarray:
    """[T] float64 from numbers; StoreError naming `field[i]` for the first bad one."""
    is_numeric_array = isinstance(seq, np.ndarray) and seq.dtype.kind in "iuf"
    if not is_numeric_array:
        for i, item in enumerate(seq):
            if isinstance(item, bool) or not isinstance(
                item, int | float | np.integer | np.floating
            ):
                raise StoreError(
                    f"{field}[{i}] is {item!r}, not a number. "
                    "Fix: send numbers (a missing observation is left out, "
                    "not sent as null)"
                )
    array = np.asarray(seq, dtype=np.float64).reshape(-1)  # [T]
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        i = int(bad[0])
        raise StoreError(
            f"{field}[{i}] is {float(array[i])!r}; every value must be a finite "
            "number. Fix: leave that observation out or send a number"
        )
    return array


def check_increasing(stamps: np.ndarray) -> None:
    """Raise StoreError naming the first of [T] timestamps that is not after its predecessor."""
    steps = np.diff(stamps)  # [T-1]
    bad = np.flatnonzero(steps <= np.timedelta64(0, "us"))
    if bad.size:
        i = int(bad[0]) + 1
        raise StoreError(
            f"timestamps[{i}] ({iso(stamps[i])}) is not after timestamps[{i - 1}] "
            f"({iso(stamps[i - 1])}); a batch must be strictly increasing. "
            "Fix: sort the batch and drop duplicate timestamps"
        )


def check_frequency_steps(stamps: np.ndarray, freq: str, series_id: str) -> None:
    """Raise StoreError naming the first of [T] timestamps that breaks the step of `freq`."""
    bad = is_on_frequency(stamps, freq)
    if bad is None:
        return
    if parse_frequency(freq).business:
        raise StoreError(
            f"timestamps[{bad}] ({iso(stamps[bad])}) is not a business day, and series "
            f"{series_id!r} has frequency 'B'. Fix: send Monday-Friday timestamps only"
        )
    raise StoreError(
        f"timestamps[{bad}] ({iso(stamps[bad])}) is not one step of {freq!r} after "
        f"timestamps[{bad - 1}] ({iso(stamps[bad - 1])}), the frequency of series "
        f"{series_id!r}. Fix: send consecutive observations at that frequency "
        "(one batch per unbroken run)"
    )


def check_grid(stamps: np.ndarray, first: datetime | None, freq: str, series_id: str) -> None:
    """The batch must sit on the grid anchored at the series' first stored observation."""
    if first is None:
        return
    f = parse_frequency(freq)
    step = np.timedelta64(1, "D") if f.business else f.step
    offset = (stamps[0] - np.datetime64(first, "us")) % step.astype("timedelta64[us]")
    if offset != np.timedelta64(0, "us"):
        raise StoreError(
            f"timestamps[0] ({iso(stamps[0])}) is not on the {freq!r} grid of series "
            f"{series_id!r}, which is anchored at its first observation {first.isoformat()}. "
            "Fix: align the timestamps to that grid"
        )


def iso(stamp: np.datetime64) -> str:
    """A timestamp as ISO 8601 to the second, for messages."""
    return str(np.datetime_as_string(stamp, unit="s"))


# -- timestamps ---------------------------------------------------------------------

_TIME_TYPES = (str, datetime, np.datetime64)
_TIME_FIX = "Fix: write timestamps as ISO 8601, e.g. 2024-01-31T13:00:00Z (naive = UTC)"


def parse_timestamps(items: Any, field: str) -> np.ndarray:
    """[T] ISO strings, datetimes or datetime64 -> [T] datetime64[us], naive UTC.

    Naive inputs are taken as UTC; inputs with an offset or zone are converted to UTC.

    Raises:
        StoreError: naming `field[i]` and the value of the first one that cannot be parsed.
    """
    array = items if isinstance(items, np.ndarray) else None
    if array is not None and array.dtype.kind == "M":
        nat = np.flatnonzero(np.isnat(array))
        if nat.size:
            raise StoreError(f"{field}[{int(nat[0])}] is NaT. {_TIME_FIX}")
        return array.astype("datetime64[us]").reshape(-1)
    listed = list(items)
    for i, item in enumerate(listed):
        if not isinstance(item, _TIME_TYPES):
            raise StoreError(f"{field}[{i}] is {item!r}, not a timestamp. {_TIME_FIX}")
    try:
        parsed = pd.to_datetime(pd.Series(listed, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        for i, item in enumerate(listed):
            parse_timestamp(item, f"{field}[{i}]")
        raise  # pragma: no cover  (one element must have failed above)
    nat = np.flatnonzero(parsed.isna().to_numpy())
    if nat.size:
        i = int(nat[0])
        raise StoreError(f"{field}[{i}] is {listed[i]!r}, not a timestamp. {_TIME_FIX}")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


def parse_timestamp(item: Any, field: str) -> datetime:
    """One timestamp (ISO string, datetime, datetime64) -> naive UTC datetime.

    Raises:
        StoreError: naming `field` and the value when it cannot be parsed.
    """
    if not isinstance(item, _TIME_TYPES):
        raise StoreError(f"{field} is {item!r}, not a timestamp. {_TIME_FIX}")
    try:
        parsed = pd.to_datetime(pd.Series([item], dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        raise StoreError(
            f"{field} is {item!r}, which cannot be parsed as a timestamp. {_TIME_FIX}"
        ) from None
    if parsed.isna().iat[0]:
        raise StoreError(f"{field} is {item!r}, not a timestamp. {_TIME_FIX}")
    stamp: datetime = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")[0].item()
    return stamp
