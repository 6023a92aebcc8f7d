"""Checks of forecast requests against the model that will answer them.

Lengths, the lookback, covariates, caps and levels per series; timestamps parsed by the
project's one parser (`training.store.timestamps`: NumPy on plain ISO strings, bounded to the
supported range) and checked in one vectorised pass over every series of a request
(increasing, on the model's frequency, forecast stamps within the range). Every failure is an
InvalidInputError (or PayloadTooLargeError) naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.base import ModelMeta
from models.features import future_timestamps, parse_frequency
from service.errors import InvalidInputError, PayloadTooLargeError
from service.settings import ServiceSettings
from training.store import StoreError
from training.store import timestamps as stamp_rules


@dataclass(frozen=True)
class CheckedSeries:
    """One validated series, cut to the model's lookback."""

    values: np.ndarray  # [L] float32
    stamps: np.ndarray  # [T] datetime64[s], the whole history (for the checks)
    covariates: np.ndarray | None  # [L, C] float32


def parse_timestamps(texts: Sequence[str], field: str) -> np.ndarray:
    """ISO-8601 strings -> [T] datetime64[s], naive UTC ("Z", "+02:00" converted), in range.

    Raises:
        InvalidInputError: naming the first entry that is not a timestamp or lies outside
            the supported range (`training.store.timestamps.SUPPORTED_RANGE`).
    """
    try:
        parsed = stamp_rules.parse_timestamps(texts, field)  # [T] datetime64[us]
    except StoreError as exc:
        raise InvalidInputError(str(exc), exc.field) from None
    return parsed.astype("datetime64[s]")  # [T]


def check_future_in_range(
    series: Sequence[CheckedSeries], meta: ModelMeta, horizon: int, prefix: str
) -> None:
    """Every series' `horizon` forecast stamps stay within the supported range.

    `prefix` is "" for a single series and "series" for a batch. The field named is "horizon",
    the part of the request that can be changed to fit.
    """
    latest = stamp_rules.SUPPORTED_RANGE[1].astype("datetime64[s]")
    last = np.array([s.stamps[-1] for s in series], dtype="datetime64[s]")  # [B]
    future = future_timestamps(last, meta.frequency, horizon)  # [B, H]
    past = np.flatnonzero(future[:, -1] > latest)  # [B] -> indices
    if not past.size:
        return
    b = int(past[0])
    fits = int(np.searchsorted(future[b], latest, side="right"))  # steps <= latest
    where = f"{prefix}[{b}].timestamps" if prefix else "timestamps"
    fix = (
        f"ask for a horizon of at most {fits}"
        if fits
        else f"send a history that ends before {stamp_rules.iso(latest)}"
    )
    raise InvalidInputError(
        f"horizon {horizon}: {where} ends at {stamp_rules.iso(last[b])}, and {horizon} steps "
        f"of {meta.frequency!r} reach {stamp_rules.iso(future[b, -1])}, past the supported "
        f"range {stamp_rules.range_text()}; {fix}",
        "horizon",
    )


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
    full = check_float32(values, f"{where}values")  # [T]
    cov = _check_covariates(meta, name, where, covariates, n)
    return CheckedSeries(
        values=full[-lookback:],  # [T] -> [L]
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
    columns = [check_float32(given[key], f"{field}.{key}") for key in wanted]  # C x [T]
    return np.stack(columns, axis=1)  # C x [T] -> [T, C]


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32(values: Sequence[float], field: str) -> np.ndarray:
    """[T] float32 of `values`, refusing any value beyond the float32 range.

    JSON allows 1e39 (a finite double) but the models compute in float32, where it becomes
    inf: refused here, naming the value and its index in the request, so that it fails only
    its own request and never a batch it would have joined.

    Raises:
        InvalidInputError: field "<field>[i]" of the first value out of range.
    """
    wide = np.asarray(values, dtype=np.float64)  # [T]
    out = np.abs(wide) > _FLOAT32_MAX  # [T]
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InvalidInputError(
            f"value {values[i]!r} at {field}[{i}] exceeds the float32 range "
            f"(+-{_FLOAT32_MAX:.4g}) that the models compute in; rescale the series (e.g. to "
            "thousands) before sending it",
            f"{field}[{i}]",
        )
    return wide.astype(np.float32)  # [T]


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
