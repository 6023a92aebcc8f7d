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
from training.data.known import holiday_indicator, is_holiday_column, supplied_columns
from training.store import StoreError
from training.store import timestamps as stamp_rules


@dataclass(frozen=True)
class CheckedSeries:
    """One validated series, cut to the model's lookback."""

    values: np.ndarray  # [L] float32
    stamps: np.ndarray  # [T] datetime64[s], the whole history (for the checks)
    covariates: np.ndarray | None  # [L, C] float32
    future: np.ndarray | None = None  # [L + H, K] float32 future covariates, history + horizon


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
    future_covariates: dict[str, list[float | None]] | None = None,
    horizon: int = 0,
) -> CheckedSeries:
    """Lengths, lookback, covariates and future covariates (`check_future_covariates`) of one
    series (timestamps are checked in bulk later)."""
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
    try:  # naive UTC ("Z", "+02:00" converted), within the supported range
        parsed = stamp_rules.parse_timestamps(timestamps, f"{where}timestamps")  # [T] [us]
    except StoreError as exc:
        raise InvalidInputError(str(exc), exc.field) from None
    stamps = parsed.astype("datetime64[s]")  # [T]
    full = np.asarray(values, dtype=np.float64)  # [T]
    bad = _first_unfit(full[None])  # [1, T]
    if bad is not None:
        raise _unfit_value(values[bad[1]], f"{where}values[{bad[1]}]", "fill it")
    known = set(supplied_columns(meta.future_covariates))
    past = {k: v for k, v in (covariates or {}).items() if k not in known}
    cov = _check_covariates(meta, name, where, past, n, lookback)  # [L, C] or None
    future = check_future_covariates(
        meta, name, where, future_covariates, covariates or {}, stamps, horizon, lookback
    )  # [L + H, K] or None
    values32 = full[-lookback:].astype(np.float32)  # [L]
    return CheckedSeries(values=values32, stamps=stamps, covariates=cov, future=future)


def _check_covariates(
    meta: ModelMeta, name: str, where: str, given: dict[str, list[float]], n: int, keep: int
) -> np.ndarray | None:
    """[keep, C] covariates in the model's order (the newest `keep` rows of each), or None
    when the model takes none. Every value is checked, in one NumPy conversion."""
    field = f"{where}covariates"
    wanted = list(meta.covariates)
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
    rows = [given[key] for key in wanted]  # C x [T]
    wide = np.array(rows, dtype=np.float64)  # C x [T] -> [C, T]
    bad = _first_unfit(wide)
    if bad is not None:
        key, i = wanted[bad[0]], bad[1]
        raise _unfit_value(rows[bad[0]][i], f"{field}.{key}[{i}]", "fill it")
    return np.ascontiguousarray(wide[:, -keep:].T, dtype=np.float32)  # [C, T] -> [L, C]


def check_future_covariates(
    meta: ModelMeta,
    name: str,
    where: str,
    future: dict[str, list[float | None]] | None,
    covariates: dict[str, list[float]],
    stamps: np.ndarray,
    horizon: int,
    keep: int,
) -> np.ndarray | None:
    """[keep + H, K] future covariates in the model's order (history then horizon), or None.

    Each sent column has `horizon` values (its history then comes from `covariates`) or
    T + `horizon` values; holiday columns are computed from the history's stamps and the
    forecast's. Every sent value is checked, the whole history too, in one NumPy conversion
    of all the columns (a request with five covariates of a week of hours holds ~1,000 of
    them: one pass, not a Python loop per value); only the newest `keep` history rows
    are returned. Fields named: "future_covariates.<name>",
    "future_covariates.<name>[i]" and, for a history sent in covariates,
    "covariates.<name>[i]".

    Raises:
        InvalidInputError: a missing, unknown, wrongly long, null or out-of-range covariate.
    """
    field = f"{where}future_covariates"
    wanted, given = supplied_columns(meta.future_covariates), future or {}
    if not meta.future_covariates:
        if given:
            raise InvalidInputError(
                f"model {name!r} takes no future covariates but {field} has {sorted(given)}; "
                "remove them",
                field,
            )
        return None
    unknown = sorted(set(given) - set(wanted))
    if unknown:
        computed = [k for k in unknown if is_holiday_column(k)]
        why = "is computed from the timestamps" if computed else "is not one the model reads"
        raise InvalidInputError(
            f"{field}.{unknown[0]} {why}; model {name!r} needs exactly {wanted} there; remove it",
            f"{field}.{unknown[0]}",
        )
    n = len(stamps)
    rows: list[list[float | None]] = []  # K_data x [T + H], history then horizon
    for key in wanted:
        if key not in given:
            raise InvalidInputError(
                f"model {name!r} needs future covariate {key!r}: send {field}.{key} with its "
                f"{horizon} values ahead (and its history in covariates.{key})",
                f"{field}.{key}",
            )
        rows.append(_future_row(given[key], covariates.get(key), n, horizon, field, key))
    wide = np.array(rows, dtype=np.float64).reshape(len(rows), n + horizon)  # [K_data, T + H]
    bad = _first_unfit(wide)
    if bad is not None:
        key, i = wanted[bad[0]], bad[1]
        split = len(given[key]) == horizon  # its history came from covariates.<key>
        if split and i < n:
            past = f"{field.removesuffix('future_covariates')}covariates.{key}[{i}]"
            raise _unfit_value(rows[bad[0]][i], past, _FILL_AHEAD)
        j = i - n if split else i
        raise _unfit_value(given[key][j], f"{field}.{key}[{j}]", _FILL_AHEAD)
    kept = min(keep, n)
    data = wide[:, n - kept :].astype(np.float32)  # [K_data, T + H] -> [K_data, L + H]
    columns: list[np.ndarray] = []
    for key in meta.future_covariates:
        if is_holiday_column(key):
            ahead = future_timestamps(stamps[-1:], meta.frequency, horizon)[0]  # [H]
            window = np.concatenate([stamps[n - kept :], ahead])  # [L + H]
            columns.append(holiday_indicator(window, key))  # [L + H]
        else:
            columns.append(data[wanted.index(key)])  # [L + H]
    return np.stack(columns, axis=1)  # K x [L + H] -> [L + H, K]


def _future_row(
    values: list[float | None],
    history: list[float] | None,
    n: int,
    horizon: int,
    field: str,
    key: str,
) -> list[float | None]:
    """One future covariate's T + H values as sent: its own list, or history + its H values.

    Lengths only: the values are checked with every other column's (`_first_unfit`).
    """
    where = f"{field}.{key}"
    if len(values) == n + horizon:
        return values
    if len(values) != horizon:
        raise InvalidInputError(
            f"{where} has {len(values)} entries; send {horizon} (the steps ahead, with its "
            f"history in covariates.{key}) or {n + horizon} (history then horizon) for "
            f"horizon {horizon} and {n} values",
            where,
        )
    if history is None or len(history) != n:
        given = "none" if history is None else str(len(history))
        raise InvalidInputError(
            f"{where} has the {horizon} values ahead, but covariates.{key} has {given} of the "
            f"{n} past values the model reads; send covariates.{key} with one value per "
            "timestamp, or history and horizon in one list",
            where,
        )
    return [*history, *values]  # [T] + [H] -> [T + H]


_FLOAT32_MAX = float(np.finfo(np.float32).max)
"""JSON allows 1e39 (a finite double) but the models compute in float32, where it becomes inf:
such a value is refused, naming it and its index, so that it fails only its own request and
never a batch it would have joined."""


def _first_unfit(wide: np.ndarray) -> tuple[int, int] | None:
    """(row, index) of the first null (NaN) or beyond-float32 value of [R, T], row by row."""
    fits = np.abs(wide) <= _FLOAT32_MAX  # [R, T]; False for NaN (a JSON null)
    if fits.all():
        return None
    row, index = np.nonzero(~fits)  # row-major: the first row's first index comes first
    return int(row[0]), int(index[0])


_FILL_AHEAD = "fill it (e.g. from the weather forecast)"


def _unfit_value(value: float | None, field: str, fill: str) -> InvalidInputError:
    """The error for a null (NaN) or beyond-float32 value at `field` ("...temp[3]"); `fill`
    says how to fill a null."""
    if value is None or value != value:  # None or NaN
        return InvalidInputError(
            f"{field} is null (NaN); the model needs a value at every step: {fill} before sending",
            field,
        )
    return InvalidInputError(
        f"value {value!r} at {field} exceeds the float32 range (+-{_FLOAT32_MAX:.4g}) that "
        "the models compute in; rescale the series (e.g. to thousands) before sending it",
        field,
    )


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
    settings: ServiceSettings,
    meta: ModelMeta,
    horizon: int,
    levels: list[int],
    points: int,
    series: int = 1,
) -> None:
    """The caps and levels of a request of `series` series holding `points` values in all,
    before any model runs.

    The answer's size is capped too: series x horizon x (2 + 2 x levels) points (a timestamp,
    a mean and two bounds per level for every step), so that no request makes the service
    build gigabytes of JSON. Field named: "horizon" for one series, "series" for a batch.

    Raises:
        InvalidInputError: horizon above FORECAST_MAX_HORIZON, or a level outside the
            calibrated ones.
        PayloadTooLargeError: more points sent than FORECAST_MAX_POINTS, or more to answer
            than FORECAST_MAX_RESPONSE_POINTS.
    """
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
    answer = series * horizon * (2 + 2 * len(set(levels)))
    if answer > settings.max_response_points:
        fits = settings.max_response_points // (2 + 2 * len(set(levels)))  # series x steps
        raise PayloadTooLargeError(
            f"the answer would hold {answer} points ({series} series x horizon {horizon} x "
            f"(2 + 2 x {len(set(levels))} levels)), above the cap of "
            f"{settings.max_response_points}; ask for at most {fits} series x steps in all: "
            "a shorter horizon, fewer levels, or fewer series per request "
            "(FORECAST_MAX_RESPONSE_POINTS sets the cap)",
            "horizon" if series == 1 else "series",
        )
    stored = sorted(int(level) for level in meta.conformal)
    for level in levels:
        if stored and not stored[0] <= level <= stored[-1]:
            raise InvalidInputError(
                f"levels: {level} is outside the calibrated levels {stored[0]}..{stored[-1]}; "
                "ask for levels within that range",
                "levels",
            )
