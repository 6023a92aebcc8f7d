"""User CSV and Parquet files -> a validated SeriesFrame.

Rows in messages are 1-based data rows (the header is not counted); for CSV the file line
is given too. Steps, in order: read, check the named columns exist, parse timestamps and
numbers, sort per series, reject duplicate timestamps, check the row count, settle the
frequency (inferred from the median step; a given frequency must agree with it), then put
each series on its regular grid and fill its holes by the `training.data.fill` policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.fill import (
    DEFAULT_FILL_LIMIT,
    DEFAULT_MAX_GAP,
    KEYWORDS,
    FillPolicy,
    OptionNames,
    Origin,
    regularise,
)
from training.data.frame import SeriesFrame, canonical_frequency, infer_frequency, median_step
from training.errors import DataError

logger = logging.getLogger(__name__)

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
    fill_limit: float = DEFAULT_FILL_LIMIT,
    min_rows: int = MIN_ROWS,
    names: OptionNames = KEYWORDS,
    through_last_target: bool = False,
) -> SeriesFrame:
    """Read a CSV or Parquet file of one or many series into a validated SeriesFrame.

    Args:
        path: a .csv/.txt or .parquet/.pq file.
        time_col: the timestamp column (ISO 8601 text or a datetime column; time zones are
            converted to UTC and dropped).
        target_col: the numeric column to forecast.
        id_col: the series id column of a panel; None for one series (id = file stem).
        freq: canonical frequency ("h", "D", "B", "W", "<n>min", "<n>h"); inferred if None;
            when given it must agree with the frequency the timestamps step by.
        covariates: numeric columns carried along as past covariates (filled like the target).
        fill: "interpolate", "ffill" or "reject" (see `training.data.fill`).
        max_gap: longest run of missing steps "interpolate" may fill.
        fill_limit: largest share of any column's values a fill may invent, in [0, 1].
        min_rows: fewest observed rows each series must have.
        names: how messages spell freq/fill/max_gap/fill_limit (keywords, CLI flags or
            experiment-file keys).
        through_last_target: leave out each series' rows after its last non-empty target
            (a forecast's horizon rows, carrying values known ahead: the caller reads them);
            messages still name rows as the file numbers them.

    Returns:
        The frame; its `notes` list every policy applied (inferred frequency, time zones,
        each filled column with its count and share), for the caller to show.

    Raises:
        DataError: naming the file, the row or column, and the fix, for every bad input.
    """
    path = Path(path)
    where = str(path)
    try:
        policy = FillPolicy(fill, max_gap, fill_limit, names)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    raw, row_label = _read(path)
    for column in [time_col, target_col, *([id_col] if id_col else []), *covariates]:
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
    if through_last_target:
        observed = long["value"].notna() & long["timestamp"].notna()
        last = long["timestamp"][observed].groupby(long["series_id"][observed]).max()
        long = long[long["timestamp"] <= long["series_id"].map(last)].reset_index(drop=True)
    kept = long["row"].to_numpy()  # [R'] the file's rows still read
    for column in covariates:
        cells = raw[column].iloc[kept].reset_index(drop=True)
        long[column] = _numbers(
            cells, column, "covariate", where, lambda i: row_label(int(kept[i]))
        )
    long = long.sort_values(["series_id", "timestamp"], kind="stable", ignore_index=True)
    _check_duplicates(long, where, row_label)
    _check_row_counts(long, min_rows, where)
    stamps = [g.to_numpy() for _, g in long.groupby("series_id", sort=False)["timestamp"]]
    frequency = _frequency(stamps, freq, where, names, notes)
    origin = Origin(
        where=where,
        repair="fill the gaps in the file",
        regrid="resample the file to one frequency",
        refreq=f"check that {names.name('freq')} matches the data",
        row_label=row_label,
    )
    parts = []
    for sid, part in long.groupby("series_id", sort=False):
        columns = {c: part[c].to_numpy() for c in ("value", *covariates)}  # [T] each
        table, filled = regularise(
            part["timestamp"].to_numpy(),
            columns,
            series_id=str(sid),
            freq=frequency,
            policy=policy,
            origin=origin,
            labels={"value": target_col},
            rows=part["row"].to_numpy(),
        )
        parts.append(table)
        notes.extend(filled)
    table = pd.concat(parts, ignore_index=True)
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
    if suffix not in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES):
        raise DataError(
            f"{where}: unreadable format {suffix or '(no suffix)'!r}; use a .csv or .parquet file"
        )
    kind = "CSV" if suffix in _CSV_SUFFIXES else "Parquet"
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
        parsed = _parse_text_stamps(column.astype("string"))
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


def _parse_text_stamps(text: pd.Series) -> pd.Series:
    """Parse timestamp text; NaT marks what cannot be parsed.

    pandas infers one format from the first value, so "2024-01-05 12:30" among date-only
    rows would come back NaT and be reported as unparseable; such a column is parsed value
    by value instead, so a stray row is later reported as off the grid, with its row.
    """
    try:
        parsed = pd.to_datetime(text, errors="coerce")
        if not (parsed.isna() & text.notna()).any():
            return parsed
        return pd.to_datetime(text, errors="coerce", format="mixed")
    except (ValueError, TypeError):  # mixed time zones and the like
        return pd.to_datetime(text, errors="coerce", utc=True, format="mixed")


def _frequency(
    stamps: list[np.ndarray], freq: str | None, where: str, names: OptionNames, notes: list[str]
) -> str:
    """The frequency the timestamps step by; a given `freq` must agree with it.

    A wrong frequency does not fail later on its own: hourly steps on a daily file are all
    on the grid, and the fill would invent 23 of every 24 rows.
    """
    if freq is None:
        frequency = infer_frequency(stamps, where=where)
        notes.append(f"frequency {frequency!r} inferred from the median step")
        return frequency
    given = canonical_frequency(freq, where=where)
    seconds = median_step(stamps)
    if seconds is None:
        return given  # nothing to infer from: the given frequency stands
    try:
        inferred: str | None = infer_frequency(stamps, where=where)
    except DataError:
        inferred = None
    if inferred == given:
        return given
    step = _describe_step(seconds, inferred)
    if inferred is None:
        raise DataError(
            f"{where}: {names.set('freq', freq)} but the timestamps step by {step}, which is "
            "none of hourly/minutely multiples, daily, business-daily or weekly. Fix: "
            "resample the file to the frequency you mean"
        )
    raise DataError(
        f"{where}: {names.set('freq', freq)} but the timestamps step by {step} (inferred "
        f"{inferred!r}). Fix: use {names.set('freq', inferred)}, or leave "
        f"{names.name('freq')} out to infer it"
    )


def _describe_step(seconds: int, inferred: str | None) -> str:
    """ "1 day", "1 day on weekdays only", "15 minutes": the median step in words."""
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            return text + (" on weekdays only" if inferred == "B" else "")
    return str(pd.Timedelta(seconds=seconds))


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
    rows = long.loc[(long["series_id"] == sid) & (long["timestamp"] == stamp), "row"]
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
