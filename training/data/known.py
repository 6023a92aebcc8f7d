"""Future-known covariates of a frame: data columns declared known ahead, and holidays.

A column such as a weather forecast or a planned promotion is *known over the horizon*: the
model may read its value at the step it forecasts (models.future). Sources load these columns
like past covariates (same fill policies, same errors naming the row and the column);
`with_future_covariates` then moves them to `SeriesFrame.future_covariates` and appends the
holiday indicator when a `holidays` country is set.

Holidays come from the `holidays` package: `holidays = "US"` (a country code, optionally with
a subdivision, "US-CA") adds the column "holiday:US" (or "holiday:US-CA"): 1.0 on every step
whose date is a public holiday there, else 0.0. It needs no user column: the service computes
it for the horizon from the timestamps alone (`holiday_indicator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import holidays as holidays_lib
import numpy as np

from training.data.frame import SeriesFrame
from training.errors import DataError

HOLIDAY_PREFIX = "holiday:"


def holiday_column(code: str) -> str:
    """The future-covariate name of the holidays of `code` ("US" -> "holiday:US").

    Raises:
        DataError: the country (or its subdivision) is not in the holidays package.
    """
    country, subdiv = _parse(code)
    return HOLIDAY_PREFIX + (f"{country}-{subdiv}" if subdiv else country)


def is_holiday_column(name: str) -> bool:
    """True for a computed holiday indicator ("holiday:US"), false for a data column."""
    return name.startswith(HOLIDAY_PREFIX)


def supplied_columns(names: Sequence[str]) -> list[str]:
    """The future covariates among `names` that data must carry (a request, a file): all but
    the holiday indicators, which are computed from the timestamps."""
    return [name for name in names if not is_holiday_column(name)]


def holiday_indicator(timestamps: np.ndarray, name: str) -> np.ndarray:
    """1.0 where the timestamp's date is a holiday of column `name`'s country, else 0.0.

    Args:
        timestamps: datetime64 stamps of any shape, e.g. [B, T + H].
        name: a holiday column ("holiday:US" or "holiday:US-CA").

    Returns:
        float32 of the shape of `timestamps`.
    """
    country, subdiv = _parse(name.removeprefix(HOLIDAY_PREFIX))
    days = np.asarray(timestamps).astype("datetime64[D]")  # [...]
    unique, inverse = np.unique(days.ravel(), return_inverse=True)
    dates = _holiday_dates(country, subdiv, tuple(sorted({int(str(d)[:4]) for d in unique})))
    flags = np.isin(unique, dates).astype(np.float32)  # [U]
    return flags[inverse].reshape(days.shape)


def with_future_covariates(
    frame: SeriesFrame, names: Sequence[str], holidays: str | None = None
) -> SeriesFrame:
    """`frame` with the columns `names` moved from its covariates to its future covariates,
    then the holiday indicator of `holidays` appended (when given).

    Raises:
        DataError: a name that is not a loaded column, or an unknown holiday country.
    """
    names = list(names)
    missing = [n for n in names if n not in frame.covariates]
    if missing:
        raise DataError(
            f"{frame.source}: future covariate {missing[0]!r} is not a loaded column (loaded: "
            f"{', '.join(frame.covariates) or 'none'}). Fix: list a column of the data in "
            'future_covariates, or use holidays = "US" for holiday indicators'
        )
    if not names and holidays is None:
        return frame
    past = tuple(c for c in frame.covariates if c not in names)
    table = frame.table[["series_id", "timestamp", "value", *past, *names]].copy()
    notes = list(frame.notes)
    if holidays is not None:
        column = holiday_column(holidays)
        stamps = table["timestamp"].to_numpy(dtype="datetime64[ns]")  # [N]
        table[column] = holiday_indicator(stamps, column).astype(np.float64)
        names.append(column)
        notes.append(f"{column}: {int(table[column].sum())} holiday row(s) from `holidays`")
    return replace(
        frame,
        table=table.reset_index(drop=True),
        covariates=past,
        future_covariates=tuple(names),
        notes=tuple(notes),
    )


def _parse(code: str) -> tuple[str, str | None]:
    """ "US" -> ("US", None); "US-CA" -> ("US", "CA"); checked against the holidays package."""
    country, _, subdiv = str(code).strip().partition("-")
    supported = holidays_lib.list_supported_countries()
    if country.upper() not in supported:
        raise DataError(
            f"holidays={code!r}: {country!r} is not a country of the holidays package. Fix: "
            'use an ISO 3166 code such as "US", "GB" or "DE", optionally with a '
            'subdivision ("US-CA")'
        )
    country = country.upper()
    if subdiv and subdiv.upper() not in supported[country]:
        raise DataError(
            f"holidays={code!r}: {subdiv!r} is not a subdivision of {country} in the holidays "
            f"package. Fix: use one of {', '.join(supported[country][:12])}, ..."
        )
    return country, subdiv.upper() or None


@lru_cache(maxsize=64)
def _holiday_dates(country: str, subdiv: str | None, years: tuple[int, ...]) -> np.ndarray:
    """Sorted datetime64[D] holiday dates of `country` (`subdiv`) in `years`."""
    table = holidays_lib.country_holidays(country, subdiv=subdiv, years=list(years))
    return np.array(sorted(table.keys()), dtype="datetime64[D]")
