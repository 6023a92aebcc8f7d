"""User CSV and Parquet files -> a validated SeriesFrame.

Rows in messages are 1-based data rows (the header is not counted); for CSV the file line
is given too. Steps, in order: read, check the named columns exist, parse timestamps and
numbers, sort per series, reject duplicate timestamps, check the row count, settle the
frequency (given or inferred from the median step), reindex each series to its regular
grid, and fill the holes by the `fill` policy:

- "interpolate" (default): linear, but only runs of at most `max_gap` missing steps; a
  longer run, or a hole at the start or end of a series, is rejected with its row.
- "ffill": carry the last observed value forward; a hole at a series' start is rejected.
- "reject": any absent timestamp or empty cell is an error naming the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training.errors import DataError
from training.data.frame import SeriesFrame, canonical_frequency, grid, infer_frequency

logger = logging.getLogger(__name__)

FILL_POLICIES = ("interpolate", "ffill", "reject")
DEFAULT_MAX_GAP = 48
"""Longest run of missing steps "interpolate" fills (two days of hourly data)."""
MIN_ROWS = 10
"""Fewest observed rows a series may have."""

_CSV_SUFFIXES = (".csv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")

RowLabel = Callable[[int], str]


def load_file(
    path: str | Path,
    *,
    time_col: str,
    target_col: str,
    id_col: str | None = None,
    freq: str | None = None,
    covariates: Sequence[str] = (),
    fill: str = "interpolate",
    max_gap: int = DEFAULT_MAX_GAP,
    min_rows: int = MIN_ROWS,
) -> SeriesFrame:
    """Read a CSV or Parquet file of one or many series into a validated SeriesFrame.

    Args:
        path: a .csv/.txt or .parquet/.pq file.
        time_col: the timestamp column (ISO 8601 text or a datetime column; time zones are
            converted to UTC and dropped).
        target_col: the numeric column to forecast.
        id_col: the series id column of a panel; None for one series (id = file stem).
        freq: canonical frequency ("h", "D", "B", "W", "<n>min", "<n>h"); inferred if None.
        covariates: numeric columns carried along as past covariates (filled like the target).
        fill: "interpolate", "ffill" or "reject" (see the module docstring).
        max_gap: longest run of missing steps "interpolate" may fill.
        min_rows: fewest observed rows each series must have.

    Raises:
        DataError: naming the file, the row or column, and the fix, for every bad input.
    """
    path = Path(path)
    where = str(path)
    if fill not in FILL_POLICIES:
        raise DataError(
            f"{where}: fill policy {fill!r} is unknown; use one of {', '.join(FILL_POLICIES)}"
        )
    raw, row_label = _read(path)
    wanted = [time_col, target_col, *([id_col] if id_col else []), *covariates]
    for column in wanted:
        if column not in raw.columns:
            raise DataError(
                f"{where}: column {column!r} not found; the file has columns: "
                f"{', '.join(map(str, raw.columns))}. Fix: pass one of them"
            )
    notes: list[str] = []
    long = pd.DataFrame({"row": np.arange(len(raw))})
    long["series_id"] = _ids(raw, id_col, path.stem, where, row_label)
    long["timestamp"] = _timestamps(raw[time_col], time_col, where, row_label, notes)
    long["value"] = _numbers(raw[target_col], target_col, "target", where, row_label)
    for column in covariates:
        long[column] = _numbers(raw[column], column, "covariate", where, row_label)
    long = long.sort_values(["series_id", "timestamp"], kind="stable", ignore_index=True)
    _check_duplicates(long, where, row_label)
    _check_row_counts(long, min_rows, where)
    if freq is None:
        stamps = [g.to_numpy() for _, g in long.groupby("series_id", sort=False)["timestamp"]]
        frequency = infer_frequency(stamps, where=where)
        notes.append(f"frequency {frequency!r} inferred from the median step")
    else:
        frequency = canonical_frequency(freq, where=where)
    parts = []
    for sid, part in long.groupby("series_id", sort=False):
        parts.append(
            _regularise(
                part, str(sid), frequency, fill, max_gap, target_col, where, row_label, notes
            )
        )
    table = pd.concat(parts, ignore_index=True).drop(columns="row")
    for note in notes:
        logger.info("%s: %s", where, note)
    return SeriesFrame(
        table=table,
        frequency=frequency,
        target=target_col,
        covariates=tuple(covariates),
        source=where,
        notes=tuple(notes),
    )


def _read(path: Path) -> tuple[pd.DataFrame, RowLabel]:
    where = str(path)
    if not path.exists():
        raise DataError(
            f"{where}: file not found. Fix: check the path (relative paths start at {Path.cwd()})"
        )
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        kind = "CSV"
    elif suffix in _PARQUET_SUFFIXES:
        kind = "Parquet"
    else:
        raise DataError(
            f"{where}: unreadable format {suffix or '(no suffix)'!r}; use a .csv or .parquet file"
        )
    try:
        if kind == "CSV":
            raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
        else:
            raw = pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{where}: cannot be read as {kind} ({reason}). "
            f"Fix: save it as a valid {kind} file with a header row"
        ) from None
    if kind == "CSV":
        return raw, lambda i: f"row {i + 1} (line {i + 2})"
    return raw, lambda i: f"row {i + 1}"


def _ids(
    raw: pd.DataFrame, id_col: str | None, default: str, where: str, row_label: RowLabel
) -> np.ndarray:
    if id_col is None:
        return np.full(len(raw), default, dtype=object)
    ids = raw[id_col]
    empty = np.flatnonzero(ids.isna().to_numpy())
    if empty.size:
        raise DataError(
            f"{where}: {row_label(int(empty[0]))}: id column {id_col!r} is empty. "
            "Fix: give every row a series id"
        )
    return ids.astype(str).to_numpy(dtype=object)


def _timestamps(
    column: pd.Series, name: str, where: str, row_label: RowLabel, notes: list[str]
) -> np.ndarray:
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        parsed = pd.to_datetime(column)
    else:
        text = column.astype("string")
        try:
            parsed = pd.to_datetime(text, errors="coerce")
        except (ValueError, TypeError):  # mixed time zones and the like
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        if pd.isna(column.iloc[i]):
            raise DataError(
                f"{where}: {row_label(i)}: timestamp column {name!r} is empty. "
                "Fix: give every row a timestamp"
            )
        raise DataError(
            f"{where}: {row_label(i)}: timestamp {column.iloc[i]!r} in column {name!r} "
            "cannot be parsed. Fix: write every timestamp as ISO 8601, e.g. "
            "2024-01-31 13:00:00"
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        notes.append(
            f"timestamps in {name!r} carried time zone {parsed.dt.tz}; "
            "converted to UTC and made naive"
        )
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _numbers(
    column: pd.Series, name: str, role: str, where: str, row_label: RowLabel
) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        column = column.astype(np.float64)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero((np.isnan(values) & column.notna().to_numpy()) | np.isinf(values))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{where}: {row_label(i)}: {role} column {name!r} has non-numeric value "
            f"{column.iloc[i]!r}. Fix: write a number, or leave the cell empty to have "
            "it filled by the fill policy"
        )
    return values


def _check_duplicates(long: pd.DataFrame, where: str, row_label: RowLabel) -> None:
    dup = long.duplicated(["series_id", "timestamp"], keep=False).to_numpy()
    if not dup.any():
        return
    first = int(np.flatnonzero(dup)[0])
    sid = str(long["series_id"].iat[first])
    stamp = long["timestamp"].to_numpy()[first]
    rows = long.loc[
        dup & (long["series_id"] == sid).to_numpy() & (long["timestamp"] == stamp).to_numpy(), "row"
    ]
    labels = " and ".join(row_label(int(r)) for r in sorted(rows)[:2])
    raise DataError(
        f"{where}: series {sid!r} has duplicate timestamp {pd.Timestamp(stamp)} in "
        f"{labels}. Fix: keep one row per series and timestamp (aggregate or drop the others)"
    )


def _check_row_counts(long: pd.DataFrame, min_rows: int, where: str) -> None:
    if long.empty:
        raise DataError(
            f"{where}: the file has 0 data rows; at least {min_rows} are needed. "
            "Fix: supply a file with data rows under the header"
        )
    counts = long.groupby("series_id", sort=True).size()
    short = counts[counts < min_rows]
    if len(short):
        sid, n = short.index[0], int(short.iloc[0])
        raise DataError(
            f"{where}: series {sid!r} has {n} rows; at least {min_rows} are needed. "
            "Fix: supply a longer history (or drop that series)"
        )


def _regularise(
    part: pd.DataFrame,
    sid: str,
    freq: str,
    fill: str,
    max_gap: int,
    target: str,
    where: str,
    row_label: RowLabel,
    notes: list[str],
) -> pd.DataFrame:
    """Reindex one sorted series to its regular grid and fill holes by `fill`."""
    stamps = pd.DatetimeIndex(part["timestamp"])
    full_grid = grid(stamps[0], stamps[-1], freq)
    off = np.flatnonzero(~stamps.isin(full_grid))
    if off.size:
        i = int(part["row"].to_numpy()[int(off[0])])
        raise DataError(
            f"{where}: {row_label(i)}: timestamp {stamps[int(off[0])]} of series {sid!r} is "
            f"not on the {freq!r} grid that starts at {stamps[0]}. Fix: resample the file "
            "to one frequency, or pass the right freq"
        )
    full = part.set_index("timestamp").reindex(full_grid)
    absent = len(full_grid) - len(part)
    rows = full["row"].to_numpy()  # [T] source row, NaN where the timestamp was absent
    columns = [c for c in full.columns if c not in ("row", "series_id")]
    for column in columns:
        holes = full[column].isna().to_numpy()  # [T]
        if not holes.any():
            continue
        name = target if column == "value" else column
        _check_holes(holes, rows, full_grid, sid, name, fill, max_gap, where, row_label)
        full[column] = (
            full[column].interpolate(method="linear")
            if fill == "interpolate"
            else full[column].ffill()
        )
        notes.append(
            f"series {sid!r}: {int(holes.sum())} missing value(s) of {name!r} "
            f"filled by {fill} ({absent} absent timestamp(s))"
        )
    full["series_id"] = sid
    full = full.rename_axis("timestamp").reset_index()
    return full[["row", "series_id", "timestamp", *columns]]


def _check_holes(
    holes: np.ndarray,
    rows: np.ndarray,
    stamps: pd.DatetimeIndex,
    sid: str,
    column: str,
    fill: str,
    max_gap: int,
    where: str,
    row_label: RowLabel,
) -> None:
    """Raise DataError for the first hole the policy cannot fill, naming its row."""
    padded = np.r_[False, holes, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        length = int(end - start)
        at_start, at_end = start == 0, end == len(holes)
        if fill == "reject":
            problem = "is missing and fill='reject'"
        elif at_start:
            problem = "starts the series, so nothing precedes it to fill from"
        elif fill == "interpolate" and at_end:
            problem = "ends the series, so it cannot be interpolated"
        elif fill == "interpolate" and length > max_gap:
            problem = f"is a gap of {length} steps, longer than max_gap={max_gap}"
        else:
            continue
        src = rows[start]
        place = (
            row_label(int(src))
            if not np.isnan(src)
            else f"after {row_label(int(rows[start - 1]))}"
            if start > 0
            else "start"
        )
        raise DataError(
            f"{where}: {place}: {column!r} of series {sid!r} at {stamps[start]} {problem}. "
            "Fix: fill the file, use fill='ffill', or raise max_gap"
            + (" (fill='interpolate' fills short gaps)" if fill == "reject" else "")
        )
