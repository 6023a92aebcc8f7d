"""Putting one series on its regular grid and filling its holes: the policy every source uses.

A source (a user file, the series store) hands over one sorted series; `regularise` checks that
every timestamp lies on the frequency's grid, reindexes the series from its first to its last
timestamp, refuses a fill that would invent more than `FillPolicy.limit` of any column, and
fills the rest by the policy's method:

- "interpolate" (default): linear, but only runs of at most `max_gap` missing steps; a longer
  run, or a hole at the start or end of a series, is rejected.
- "ffill": carry the last observed value forward; a hole at a series' start is rejected.
- "reject": any absent timestamp or empty cell is an error.

Messages recommend the option the way the caller can set it (`OptionNames`): a keyword
argument, a `forecast train` flag, or a key in an experiment file's [data] table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from training.data.frame import grid
from training.errors import DataError

FILL_METHODS = ("interpolate", "ffill", "reject")
DEFAULT_MAX_GAP = 48
"""Longest run of missing steps "interpolate" fills (two days of hourly data)."""
DEFAULT_FILL_LIMIT = 0.05
"""Largest share of a column's values a fill may invent: more means the data or the frequency
is wrong (a daily file read as hourly is 96% invented)."""


@dataclass(frozen=True)
class OptionNames:
    """How the user spells a reading option (freq, fill, max_gap, fill_limit).

    Attributes:
        style: "keyword" (`fill='ffill'`, library calls), "flag" (`--fill ffill`, the CLI)
            or "config" (`fill = "ffill"` in an experiment file's [data] table).
    """

    style: Literal["keyword", "flag", "config"] = "keyword"

    def name(self, option: str) -> str:
        """The option's bare name, e.g. "--max-gap" or "max_gap in [data]"."""
        if self.style == "flag":
            return "--" + option.replace("_", "-")
        if self.style == "config":
            return f"{option} in [data]"
        return option

    def set(self, option: str, value: object) -> str:
        """The option set to `value`, e.g. "--fill ffill" or 'fill = "ffill" in [data]'."""
        if self.style == "flag":
            return f"{self.name(option)} {value}"
        if self.style == "config":
            literal = f'"{value}"' if isinstance(value, str) else str(value)
            return f"{option} = {literal} in [data]"
        return f"{option}={value!r}"


KEYWORDS = OptionNames("keyword")
FLAGS = OptionNames("flag")
CONFIG_KEYS = OptionNames("config")


@dataclass(frozen=True)
class FillPolicy:
    """How holes are filled, and how many may be.

    Attributes:
        method: "interpolate", "ffill" or "reject".
        max_gap: longest run of missing steps "interpolate" may fill (>= 1).
        limit: largest share in [0, 1] of any column's values a fill may invent.
        names: how messages spell the options.

    Raises:
        DataError: an unknown method, a max_gap below 1 or a limit outside [0, 1].
    """

    method: str = "interpolate"
    max_gap: int = DEFAULT_MAX_GAP
    limit: float = DEFAULT_FILL_LIMIT
    names: OptionNames = KEYWORDS

    def __post_init__(self) -> None:
        n = self.names
        if self.method not in FILL_METHODS:
            raise DataError(
                f"{n.set('fill', self.method)}: fill policy {self.method!r} is unknown; use "
                f"one of {', '.join(FILL_METHODS)}"
            )
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) or self.max_gap < 1:
            raise DataError(
                f"{n.set('max_gap', self.max_gap)}: must be an integer >= 1 (missing steps "
                f"interpolation may bridge). Fix: use e.g. {n.set('max_gap', DEFAULT_MAX_GAP)}"
            )
        limit = self.limit
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 <= limit <= 1:
            raise DataError(
                f"{n.set('fill_limit', limit)}: must be a share in [0, 1] of the values a fill "
                f"may invent. Fix: use e.g. {n.set('fill_limit', DEFAULT_FILL_LIMIT)}"
            )


@dataclass(frozen=True)
class Origin:
    """Where a series came from, for messages.

    Attributes:
        where: message prefix: the file path, or "store".
        repair: how to mend the data itself, e.g. "fill the file".
        regrid: how to put stray timestamps on one grid, e.g. "resample the file to one
            frequency".
        refreq: how to check the frequency, e.g. "check that --freq matches the data".
        row_label: source row index -> "row 3 (line 4)"; None where rows have no number.
    """

    where: str
    repair: str
    regrid: str
    refreq: str
    row_label: Callable[[int], str] | None = None


def regularise(
    stamps: np.ndarray,
    columns: Mapping[str, np.ndarray],
    *,
    series_id: str,
    freq: str,
    policy: FillPolicy,
    origin: Origin,
    labels: Mapping[str, str] | None = None,
    rows: np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One series on its full grid, holes filled by `policy`.

    Args:
        stamps: [T] sorted, unique datetime64 timestamps.
        columns: name -> [T] float values (NaN = empty cell), e.g. {"value": ..., "temp": ...}.
        freq: canonical frequency of the grid.
        labels: column -> the name the user knows it by (e.g. "value" -> "load").
        rows: [T] source row index of each stamp (for `origin.row_label`), or None.

    Returns:
        A table with "series_id", "timestamp" (datetime64[ns]) and each column (float64) on
        the full grid [T_full], and one note per filled column.

    Raises:
        DataError: an off-grid timestamp, a fill above `policy.limit`, or a hole the method
            may not fill; each names the series, the row or timestamp, and the fix.
    """
    index = pd.DatetimeIndex(stamps)
    full_grid = grid(index[0], index[-1], freq)
    place = _Place(origin, series_id, full_grid, index, rows)
    off = np.flatnonzero(~index.isin(full_grid))
    if off.size:
        k = int(off[0])
        raise DataError(
            f"{origin.where}: {place.at_source(k)}timestamp {index[k]} of series {series_id!r} "
            f"is off the {freq!r} grid that starts at {index[0]}. Fix: {origin.regrid}, or "
            f"{origin.refreq}"
        )
    table = pd.DataFrame(dict(columns), index=index).astype(np.float64).reindex(full_grid)
    absent = len(full_grid) - len(index)
    notes = []
    for column in table.columns:
        holes = table[column].isna().to_numpy()  # [T_full]
        if not holes.any():
            continue
        label = (labels or {}).get(column, column)
        _check_holes(holes, label, policy, place)
        _check_share(holes, label, freq, policy, place)
        filled = table[column]
        interpolate = policy.method == "interpolate"
        table[column] = filled.interpolate(method="linear") if interpolate else filled.ffill()
        notes.append(
            f"series {series_id!r}: {int(holes.sum())} missing value(s) of {label!r} "
            f"filled by {policy.method} ({absent} absent timestamp(s); "
            f"{holes.mean():.1%} of {holes.size} values)"
        )
    table = table.rename_axis("timestamp").reset_index()
    table["timestamp"] = table["timestamp"].astype("datetime64[ns]")
    table.insert(0, "series_id", series_id)
    return table, notes


@dataclass(frozen=True)
class _Place:
    """Turns grid positions into the row (or timestamp) a message should name."""

    origin: Origin
    series_id: str
    grid: pd.DatetimeIndex
    stamps: pd.DatetimeIndex
    rows: np.ndarray | None

    def at_source(self, k: int) -> str:
        """ "row 4 (line 5): " for the k-th source stamp, or "" without row numbers."""
        if self.origin.row_label is None or self.rows is None:
            return ""
        return f"{self.origin.row_label(int(self.rows[k]))}: "

    def at_grid(self, t: int) -> str:
        """The source row at grid position t, or the row it follows when t was absent."""
        if self.origin.row_label is None or self.rows is None:
            return ""
        k = int(self.stamps.searchsorted(self.grid[t]))  # first source stamp >= grid[t]
        if k < len(self.stamps) and self.stamps[k] == self.grid[t]:
            return self.at_source(k)
        return f"after {self.origin.row_label(int(self.rows[k - 1]))}: " if k else "start: "


def _check_share(
    holes: np.ndarray, label: str, freq: str, policy: FillPolicy, place: _Place
) -> None:
    """Refuse a fill that would invent more than `policy.limit` of a column."""
    share = float(holes.mean())
    if share <= policy.limit:
        return
    needed = math.ceil(share * 100) / 100  # the limit that would let this fill through
    n = policy.names
    raise DataError(
        f"{place.origin.where}: series {place.series_id!r}: filling would invent "
        f"{share:.1%} of {label!r} ({int(holes.sum())} of {holes.size} values at frequency "
        f"{freq!r}), above the fill limit {n.set('fill_limit', policy.limit)} "
        f"({policy.limit:.0%}). Fix: {place.origin.refreq}, "
        f"{place.origin.repair}, or allow it with {n.set('fill_limit', needed)}"
    )


def _check_holes(holes: np.ndarray, label: str, policy: FillPolicy, place: _Place) -> None:
    """Raise DataError for the first run of holes the method cannot fill, naming its row."""
    padded = np.r_[False, holes, False].astype(np.int8)  # [T + 2]
    edges = np.flatnonzero(np.diff(padded))  # starts and ends of runs, alternating
    method = policy.method
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        length = int(end - start)
        if method == "reject":
            problem = f"is missing and {policy.names.set('fill', 'reject')}"
        elif start == 0:
            problem = "starts the series, so nothing precedes it to fill from"
        elif method == "interpolate" and end == len(holes):
            problem = "ends the series, so it cannot be interpolated"
        elif method == "interpolate" and length > policy.max_gap:
            problem = (
                f"begins a gap of {length} steps, longer than "
                f"{policy.names.set('max_gap', policy.max_gap)}"
            )
        else:
            continue
        n = policy.names
        raise DataError(
            f"{place.origin.where}: {place.at_grid(int(start))}{label!r} of series "
            f"{place.series_id!r} at {place.grid[int(start)]} {problem}. Fix: "
            f"{place.origin.repair}, use {n.set('fill', 'ffill')}, or raise {n.name('max_gap')}"
            + (f" ({n.set('fill', 'interpolate')} fills short gaps)" if method == "reject" else "")
        )
