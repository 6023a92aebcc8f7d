"""Validation of everything a caller hands the series store, before anything is written.

Every check raises `StoreError` (a `DataError`) whose message names the field, with its index
for batch entries (e.g. "values[3]"), the bad value, and the fix; its `field` attribute holds
that name, spelled as a request names it ("covariates.temp[2]").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from models.errors import ConfigError
from models.features import is_on_frequency, parse_frequency
from training.store.schema import FREQUENCY_LENGTH, ID_LENGTH, TARGET_LENGTH, StoreError
from training.store.timestamps import iso

MAX_STEP = np.timedelta64(366, "D")
"""The longest step a series' frequency may have (8784h; a longer one is not a time series
this service forecasts, and its stamps would overflow datetime arithmetic)."""

MAX_METADATA_BYTES = 65_536
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_RESERVED_COVARIATES = ("series_id", "timestamp", "value")
_NUMBERS = (int, float, np.integer, np.floating)


def check_series_id(series_id: object) -> str:
    """Return `series_id` when it is a valid id, else raise StoreError naming the rule."""
    if (
        not isinstance(series_id, str)
        or len(series_id) > ID_LENGTH
        or not _ID_PATTERN.match(series_id)
    ):
        raise StoreError(
            f"series id {series_id!r} is not valid: use 1-{ID_LENGTH} letters, digits, "
            "'.', '_', ':' or '-', starting with a letter or digit (no slashes or spaces)",
            "series_id",
        )
    return series_id


def check_target(target: object) -> str:
    """Return `target` when it is a usable name, else raise StoreError."""
    if (
        not isinstance(target, str)
        or not target.strip()
        or len(target) > TARGET_LENGTH
        or not target.isprintable()
    ):
        raise StoreError(
            f"target must be a non-empty name of at most {TARGET_LENGTH} printable "
            f"characters, got {target!r}. Fix: name what the values measure, e.g. 'load_mw'",
            "target",
        )
    return target


def check_frequency(frequency: object) -> str:
    """The canonical spelling of `frequency`, else StoreError listing the accepted forms.

    At most FREQUENCY_LENGTH characters, and a step of at most MAX_STEP.
    """
    if isinstance(frequency, str) and len(frequency) > FREQUENCY_LENGTH:
        raise StoreError(
            f"frequency {frequency[:40]!r}{'...' if len(frequency) > 40 else ''} has "
            f"{len(frequency)} characters; the limit is {FREQUENCY_LENGTH}. Fix: use one of "
            '"h", "<n>h", "<n>min", "D", "B" or "W"',
            "frequency",
        )
    try:
        parsed = parse_frequency(frequency)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise StoreError(f"frequency: {exc}", "frequency") from None
    longest = MAX_STEP.astype("timedelta64[h]").astype(int)
    if not parsed.business and parsed.step > MAX_STEP:
        raise StoreError(
            f"frequency {parsed.text!r} steps more than {longest}h ({MAX_STEP.astype(int)} "
            f"days), the longest supported step. Fix: use a step of at most {longest}h",
            "frequency",
        )
    return parsed.text


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """Series metadata as compact JSON text (None -> "{}"), at most MAX_METADATA_BYTES."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise StoreError(
            f"metadata must be a JSON object with string keys, got "
            f"{type(metadata).__name__}. Fix: pass a dict such as {{'unit': 'MW'}}",
            "metadata",
        )
    try:
        text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"metadata cannot be stored as JSON ({exc}). Fix: use strings, "
            "finite numbers, booleans, null, lists and objects only",
            "metadata",
        ) from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise StoreError(
            f"metadata is {len(text.encode())} bytes as JSON; the limit is "
            f"{MAX_METADATA_BYTES}. Fix: keep large documents elsewhere",
            "metadata",
        )
    return text


def check_positive(value: object, field: str) -> int:
    """`value` as an int when it is an integer >= 1 (bools are not), else StoreError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise StoreError(f"{field} must be a positive integer, got {value!r}", field)
    return int(value)


def batch_length(
    timestamps: Any, values: Any, covariates: Mapping[str, Any] | None, max_batch: int
) -> int:
    """Check the batch's lengths and covariate names; return its length."""
    n = _length(values, "values")
    if n == 0:
        raise StoreError(
            "values is empty: a batch needs at least one observation. "
            "Fix: send timestamps and values of equal, non-zero length",
            "values",
        )
    if n > max_batch:
        raise StoreError(
            f"values has {n} observations; the limit per request is {max_batch}. "
            f"Fix: split the batch into parts of at most {max_batch}",
            "values",
        )
    if _length(timestamps, "timestamps") != n:
        raise StoreError(
            f"timestamps has {len(timestamps)} entries but values has {n}. "
            "Fix: send exactly one value per timestamp",
            "timestamps",
        )
    if covariates is not None and not isinstance(covariates, Mapping):
        raise StoreError(
            f"covariates must map names to lists of numbers, got {type(covariates).__name__}",
            "covariates",
        )
    for name, seq in (covariates or {}).items():
        if not isinstance(name, str) or not name or len(name) > 64 or name in _RESERVED_COVARIATES:
            raise StoreError(
                f"covariate name {name!r} is not valid: use 1-64 characters "
                f"other than {', '.join(_RESERVED_COVARIATES)}",
                "covariates",
            )
        if _length(seq, f"covariates.{name}") != n:
            raise StoreError(
                f"covariates.{name} has {len(seq)} entries but values has {n}. "
                "Fix: send one covariate value per timestamp",
                f"covariates.{name}",
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
            "Fix: send a JSON array with one entry per observation",
            field,
        )
    return len(seq)


def finite_numbers(seq: Any, field: str) -> np.ndarray:
    """[T] float64 from numbers; StoreError naming `field[i]` for the first bad one."""
    if not (isinstance(seq, np.ndarray) and seq.dtype.kind in "iuf"):
        for i, item in enumerate(seq):
            if isinstance(item, bool) or not isinstance(item, _NUMBERS):
                raise StoreError(
                    f"{field}[{i}] is {item!r}, not a number. "
                    "Fix: send numbers (a missing observation is left out, "
                    "not sent as null)",
                    f"{field}[{i}]",
                )
    array = np.asarray(seq, dtype=np.float64).reshape(-1)  # [T]
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        i = int(bad[0])
        raise StoreError(
            f"{field}[{i}] is {float(array[i])!r}; every value must be a finite "
            "number. Fix: leave that observation out or send a number",
            f"{field}[{i}]",
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
            "Fix: sort the batch and drop duplicate timestamps",
            f"timestamps[{i}]",
        )


def check_frequency_steps(stamps: np.ndarray, freq: str, series_id: str) -> None:
    """Raise StoreError naming the first of [T] timestamps that breaks the step of `freq`."""
    bad = is_on_frequency(stamps, freq)
    if bad is None:
        return
    if parse_frequency(freq).business:
        raise StoreError(
            f"timestamps[{bad}] ({iso(stamps[bad])}) is not a business day, and series "
            f"{series_id!r} has frequency 'B'. Fix: send Monday-Friday timestamps only",
            f"timestamps[{bad}]",
        )
    raise StoreError(
        f"timestamps[{bad}] ({iso(stamps[bad])}) is not one step of {freq!r} after "
        f"timestamps[{bad - 1}] ({iso(stamps[bad - 1])}), the frequency of series "
        f"{series_id!r}. Fix: send consecutive observations at that frequency "
        "(one batch per unbroken run)",
        f"timestamps[{bad}]",
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
            "Fix: align the timestamps to that grid",
            "timestamps[0]",
        )
