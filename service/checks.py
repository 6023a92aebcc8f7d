"""Checks of forecast requests against the model that will answer them.

Lengths, the lookback, covariates, caps and levels per series; timestamps parsed by NumPy
from the ISO strings (about 70x faster than building datetime objects) and checked in one
vectorised pass over every series of a request (increasing, on the model's frequency). Every
failure is an InvalidInputError (or PayloadTooLargeError) naming the field and the fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from models.base import ModelMeta
from models.features import parse_frequency
from service.errors import InvalidInputError, PayloadTooLargeError
from service.settings import ServiceSettings

_ISO_FIX = "send ISO-8601 timestamps such as 2024-01-31T13:00:00"


@dataclass(frozen=True)
class CheckedSeries:
    """One validated series, cut to the model's lookback."""

    values: np.ndarray  # [L] float32
    stamps: np.ndarray  # [T] datetime64[s], the whole history (for the checks)
    covariates: np.ndarray | None  # [L, C] float32


def parse_timestamps(texts: Sequence[str], field: str) -> np.ndarray:
    """ISO-8601 strings -> [T] datetime64[s]; a UTC offset ("Z", "+02:00") converts to UTC.

    Raises:
        InvalidInputError: naming the first entry that is not a timestamp.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NumPy only warns on offsets: take the slow path
            stamps = np.array(texts, dtype="datetime64[s]")  # [T]
    except (ValueError, UserWarning, DeprecationWarning):
        stamps = np.array([_parse_one(t, f"{field}[{i}]") for i, t in enumerate(texts)])
        stamps = stamps.astype("datetime64[s]")
    if stamps.size and np.isnat(stamps).any():
        i = int(np.flatnonzero(np.isnat(stamps))[0])
        raise InvalidInputError(f"{field}[{i}] is empty; {_ISO_FIX}", f"{field}[{i}]")
    return stamps


def _parse_one(text: str, field: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{field}: {text!r} is not an ISO-8601 timestamp; {_ISO_FIX}", field
        ) from None
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


def check_series(
    meta: ModelMeta,
    name: str,
    where: str,
    timestamps: Sequence[str],
    values: Sequence[float],
    covariates: dict[str, list[float]] | None,
) -> CheckedSeries:
    """Lengths, lookback and covariates of one series (timestamps are checked in bulk later)."""
    n, lookback = len(values), meta.lookback
    if len(timestamps) != n:
        raise InvalidInputError(
            f"{where}timestamps has {len(timestamps)} entries but {where}values has {n}; "
            "send exactly one timestamp per value",
            f"{where}timestamps",
        )
    if n < lookback:
        raise InvalidInputError(
            f"{where}values has {n} points but model {name!r} needs at least its lookback of "
            f"{lookback}; send the last {lookback} or more observations",
            f"{where}values",
        )
    stamps = parse_timestamps(timestamps, f"{where}timestamps")  # [T]
    cov = _check_covariates(meta, name, where, covariates, n)
    return CheckedSeries(
        values=np.asarray(values[-lookback:], dtype=np.float32),  # [L]
        stamps=stamps,
        covariates=None if cov is None else cov[-lookback:],  # [T, C] -> [L, C]
    )


def _check_covariates(
    meta: ModelMeta, name: str, where: str, covariates: dict[str, list[float]] | None, n: int
) -> np.ndarray | None:
    """[T, C] covariates in the model's order, or None when the model takes none."""
    field = f"{where}covariates"
    wanted = list(meta.covariates)
    given = covariates or {}
    if not wanted:
        if given:
            raise InvalidInputError(
                f"model {name!r} takes no covariates but {field} has {sorted(given)}; remove them",
                field,
            )
        return None
    if sorted(given) != sorted(wanted):
        raise InvalidInputError(
            f"{field} has {sorted(given)} but model {name!r} needs exactly {wanted}; "
            "send one list per covariate, aligned with values",
            field,
        )
    for key in wanted:
        if len(given[key]) != n:
            raise InvalidInputError(
                f"{field}.{key} has {len(given[key])} entries but values has {n}; "
                "send one covariate value per timestamp",
                f"{field}.{key}",
            )
    return np.asarray([given[key] for key in wanted], dtype=np.float32).T  # [C, T] -> [T, C]


def check_stamps(series: Sequence[CheckedSeries], meta: ModelMeta, name: str, prefix: str) -> None:
    """Every series' timestamps increase and sit on the model's frequency (one vector pass).

    `prefix` is "" for a single series and "series" for a batch (fields "series[i].timestamps").
    """
    flat = np.concatenate([s.stamps for s in series])  # [N] all series back to back
    starts = np.cumsum([0] + [s.stamps.size for s in series])  # [B + 1]
    steps = np.diff(flat)  # [N - 1]
    inside = np.ones(steps.size, dtype=bool)
    inside[starts[1:-1] - 1] = False  # steps that cross from one series to the next

    def fail(flat_index: int, rule: str) -> None:
        b = int(np.searchsorted(starts, flat_index, side="right")) - 1
        i = flat_index - int(starts[b])
        field = f"{prefix}[{b}].timestamps" if prefix else "timestamps"
        stamps = series[b].stamps
        previous = f" after {stamps[i - 1]}" if i > 0 else ""
        messages = {
            "increasing": f"{field}[{i}] ({stamps[i]}) is not after {field}[{i - 1}] "
            f"({stamps[i - 1]}); sort the history oldest first and drop duplicate timestamps",
            "frequency": f"{field}[{i}] ({stamps[i]}{previous}) is not on model {name!r}'s "
            f"frequency {meta.frequency!r}; resample the history to that frequency and "
            "fill gaps",
        }
        raise InvalidInputError(messages[rule], field)

    not_increasing = (steps <= np.timedelta64(0, "s")) & inside  # [N - 1]
    if not_increasing.any():
        fail(int(np.flatnonzero(not_increasing)[0]) + 1, "increasing")
    freq = parse_frequency(meta.frequency)
    if freq.business:
        off = ~np.is_busday(flat.astype("datetime64[D]"))  # [N] weekends
        if off.any():
            fail(int(np.flatnonzero(off)[0]), "frequency")
    else:
        off_step = (steps != freq.step) & inside  # [N - 1]
        if off_step.any():
            fail(int(np.flatnonzero(off_step)[0]) + 1, "frequency")


def check_request(
    settings: ServiceSettings, meta: ModelMeta, horizon: int, levels: list[int], points: int
) -> None:
    if horizon > settings.max_horizon:
        raise InvalidInputError(
            f"horizon {horizon} is above this service's cap of {settings.max_horizon}; "
            "ask for fewer steps (FORECAST_MAX_HORIZON sets the cap)",
            "horizon",
        )
    if points > settings.max_points:
        raise PayloadTooLargeError(
            f"the request holds {points} points, above the cap of {settings.max_points}; "
            "send only the last lookback points of each series, or split the request",
            "values",
        )
    stored = sorted(int(level) for level in meta.conformal)
    for level in levels:
        if stored and not stored[0] <= level <= stored[-1]:
            raise InvalidInputError(
                f"levels: {level} is outside the calibrated levels {stored[0]}..{stored[-1]}; "
                "ask for levels within that range",
                "levels",
            )
