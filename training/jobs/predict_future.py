"""Known future values for batch forecasts of models with future covariates.

A model with future covariates (weather forecasts, holidays) reads each series' known values
over the horizon: a table `ahead` of one row per series and forecast step (series_id,
timestamp, the future covariates), taken from the rows after each series' last observed value
in a `--data` file (`load_data_file`), or from a `--future` file for stored series
(`read_future`). Its timestamps must be the forecast's own; holiday indicators are computed
(`with_known`). `training.jobs.batch_predict.predict_batch` takes the table as `ahead`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import future_timestamps
from training.data.frame import SeriesFrame
from training.data.known import holiday_indicator, is_holiday_column, supplied_columns
from training.data.sources.files import RowLabel
from training.errors import DataError
from training.jobs.batch_predict import check_frequency


def load_data_file(
    path: Path,
    *,
    time_col: str,
    target_col: str,
    id_col: str | None,
    freq: str | None,
    meta: Any,
    model: str,
    steps: int,
) -> tuple[SeriesFrame, pd.DataFrame | None]:
    """`--data FILE` for `meta`'s model ("name vN"): the history and, with future covariates,
    `ahead` (None without).

    In such a file each series' rows after its last observed target (target cell empty)
    carry the horizon's future covariates; the first `steps` of them are `ahead` and must sit
    at the forecast's timestamps. The history is read by `load_file` like any file (the same
    checks and fill policy, messages naming the file's rows), up to each series' last target.

    Raises:
        DataError: a missing column, too few horizon rows, one off the forecast's timestamps
            or with an empty covariate; naming the series, the column and the timestamp.
    """
    from training.data.catalogue import load_file

    sent = supplied_columns(meta.future_covariates)
    columns = [*meta.covariates, *sent]
    options: dict[str, Any] = {"time_col": time_col, "target_col": target_col,
                               "id_col": id_col, "freq": freq, "covariates": columns}  # fmt: skip
    if not meta.future_covariates:
        return load_file(path, **options), None
    raw, label = _read_table(path, [time_col, target_col, *([id_col] if id_col else []), *columns])
    ids = raw[id_col].astype(str) if id_col else pd.Series(path.stem, index=raw.index)
    stamps = _parse_stamps(raw[time_col])  # [R]; NaT where unparseable (load_file names it)
    observed = (raw[target_col].notna() & stamps.notna()).to_numpy()  # [R]
    last = stamps[observed].groupby(ids[observed]).max()  # series -> last observed stamp
    after = (stamps > ids.map(last)).to_numpy()  # [R] horizon rows, never read as history
    frame = load_file(path, **options, through_last_target=True)
    check_frequency(frame, meta, model)
    rows = pd.DataFrame({"series_id": ids[after], "timestamp": stamps[after],
                         "row": np.flatnonzero(after),
                         **{name: raw.loc[after, name] for name in sent}})  # fmt: skip
    fix = (
        f"append a row per forecast step after the series' last value, with an empty "
        f"{target_col!r} and the {', '.join(map(repr, sent))} known ahead (or ask for fewer "
        "steps with --horizon)"
    )
    return with_known(frame, meta), horizon_rows(rows, frame, meta, steps, str(path), label, fix)


def read_future(path: Path, frame: SeriesFrame, meta: Any, steps: int) -> pd.DataFrame:
    """`--future FILE` for the stored series of `frame`: `ahead` (see `horizon_rows`).

    The file is long, CSV or Parquet: series_id, timestamp and one column per future
    covariate the model reads (holiday indicators are computed); each series needs a row at
    each of its `steps` forecast timestamps. Rows at or before a series' last stored
    timestamp, and rows of other series, are ignored.

    Raises:
        DataError: a missing column or row, a timestamp off the forecast's, or an empty cell;
            naming the series, the column and the timestamp.
    """
    where = str(path)
    sent = supplied_columns(meta.future_covariates)
    raw, label = _read_table(path, ["series_id", "timestamp", *sent])
    stamps = _parse_stamps(raw["timestamp"])  # [R]
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{where}: {label(i)}: timestamp {raw['timestamp'].iloc[i]!r} cannot be parsed. "
            "Fix: write every timestamp as ISO 8601, e.g. 2024-01-31 13:00:00"
        )
    rows = pd.DataFrame({"series_id": raw["series_id"].astype(str), "timestamp": stamps,
                         "row": np.arange(len(raw)), **{n: raw[n] for n in sent}})  # fmt: skip
    fix = f"give each series a row per forecast step with {', '.join(map(repr, sent))}"
    return horizon_rows(rows, frame, meta, steps, where, label, fix)


def horizon_rows(
    rows: pd.DataFrame,
    frame: SeriesFrame,
    meta: Any,
    steps: int,
    where: str,
    label: RowLabel,
    fix: str,
) -> pd.DataFrame:
    """`ahead`: each series of `frame`, its `steps` rows after its last observed timestamp.

    Args:
        rows: candidate rows: series_id, timestamp, row (in the file), the sent future
            covariates as read (text or numbers).
        frame: the history; its last timestamp per series is the forecast's origin.
        meta: the model's metadata (frequency, future covariates).
        where, label, fix: the file and its row labels, and the fix for missing rows, for
            messages.

    Returns:
        series_id, timestamp, value (NaN), then the future covariates in the model's order
        (holiday indicators computed): `steps` rows per series, at the forecast timestamps.

    Raises:
        DataError: too few rows, a row off the forecast's timestamps, or an empty (or
            non-numeric) covariate; naming the series, the column and the timestamp.
    """
    sent = supplied_columns(meta.future_covariates)
    origins = frame.table.groupby("series_id", sort=True)["timestamp"].max()  # [B]
    expected = future_timestamps(origins.to_numpy(), meta.frequency, steps)  # [B, H]
    expected = expected.astype("datetime64[ns]")  # as the file's timestamps
    groups = {str(k): g for k, g in rows.groupby("series_id", sort=False)}
    parts = []
    for b, (sid, origin) in enumerate(origins.items()):
        part = groups.get(str(sid), rows.iloc[:0]).sort_values("timestamp", kind="stable")
        part = part[part["timestamp"] > origin].iloc[:steps]
        want = expected[b]  # [H]
        got = part["timestamp"].to_numpy(dtype="datetime64[ns]")  # [<= H]
        off = np.flatnonzero(got != want[: len(got)])  # a skipped step: the next row is off
        if off.size:
            i = int(off[0])
            raise DataError(
                f"{where}: {label(int(part['row'].iloc[i]))}: series {sid!r} has a row at "
                f"{pd.Timestamp(got[i])} where forecast step {i + 1} is at "
                f"{pd.Timestamp(want[i])} ({steps} steps of {meta.frequency!r} after its last "
                f"observed value at {origin}). Fix: give one row per forecast step, at those "
                "timestamps"
            )
        if len(part) < steps:
            raise DataError(
                f"{where}: series {sid!r} has {len(part)} row(s) of "
                f"{', '.join(map(repr, sent))} after its last observed value at {origin}; "
                f"the model reads them at each of the {steps} forecast steps "
                f"({pd.Timestamp(want[0])} .. {pd.Timestamp(want[-1])}). Fix: {fix}"
            )
        part = part.copy()
        for name in sent:
            values = pd.to_numeric(part[name], errors="coerce").to_numpy(dtype=np.float64)
            empty = np.flatnonzero(~np.isfinite(values))
            if empty.size:
                i = int(empty[0])
                cell = part[name].iloc[i]
                what = "is empty" if pd.isna(cell) else f"holds {cell!r}, not a number,"
                raise DataError(
                    f"{where}: {label(int(part['row'].iloc[i]))}: {name!r} of series {sid!r} "
                    f"{what} at {pd.Timestamp(got[i])}, forecast step {i + 1}; the model reads "
                    "the value known ahead there. Fix: fill it (e.g. from the weather forecast)"
                )
            part[name] = values
        parts.append(part)
    ahead = pd.concat(parts, ignore_index=True)
    ahead["value"] = np.nan
    return _known_columns(ahead, [], meta)  # [B*H rows]


def with_known(frame: SeriesFrame, meta: Any) -> SeriesFrame:
    """`frame` (the sent future covariates loaded as covariates) with the future covariates
    in the model's order after the past ones, holiday indicators computed."""
    table = _known_columns(frame.table, meta.covariates, meta)
    return replace(frame, table=table, covariates=tuple(meta.covariates),
                   future_covariates=tuple(meta.future_covariates))  # fmt: skip


def _known_columns(source: pd.DataFrame, past: Sequence[str], meta: Any) -> pd.DataFrame:
    """series_id, timestamp, value, `past`, then `meta`'s future covariates in order: taken
    from `source`, holiday indicators computed from the timestamps."""
    table = pd.DataFrame({"series_id": source["series_id"].astype(str),
                          "timestamp": source["timestamp"].astype("datetime64[ns]"),
                          "value": source["value"].astype(np.float64)})  # fmt: skip
    stamps = table["timestamp"].to_numpy(dtype="datetime64[ns]")  # [N]
    for name in (*past, *meta.future_covariates):
        if is_holiday_column(name):
            table[name] = holiday_indicator(stamps, name).astype(np.float64)  # [N]
        else:
            table[name] = source[name].to_numpy(dtype=np.float64)  # [N]
    return table.reset_index(drop=True)


def _read_table(path: Path, wanted: Sequence[str]) -> tuple[pd.DataFrame, RowLabel]:
    """A CSV (every cell as text) or Parquet file with the `wanted` columns, and how messages
    name its rows: "row 3 (line 4)" for CSV, "row 3" for Parquet.

    Raises:
        DataError: a missing file, another format, an unreadable file or a missing column.
    """
    where = str(path)
    if not path.exists():
        raise DataError(f"{where}: file not found. Fix: check the path")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".parquet", ".pq"):
        raise DataError(
            f"{where}: unreadable format {suffix or '(no suffix)'!r}; use a .csv or .parquet file"
        )
    csv = suffix in (".csv", ".txt")
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True) if csv else pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{where}: cannot be read ({reason}). Fix: save it with a header row"
        ) from None
    for column in wanted:
        if column not in raw.columns:
            raise DataError(
                f"{where}: column {column!r} not found; the file has columns: "
                f"{', '.join(map(str, raw.columns))}. Fix: add it"
            )
    if csv:
        return raw, lambda i: f"row {i + 1} (line {i + 2})"
    return raw, lambda i: f"row {i + 1}"


def _parse_stamps(column: pd.Series) -> pd.Series:
    """Timestamps as naive UTC datetime64[ns] (offsets converted); NaT where unparseable."""
    parsed = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")
