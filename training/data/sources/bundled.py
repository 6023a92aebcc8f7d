"""Readers for the bundled datasets, one per quirk, each an explicit and logged policy.

- plain (ETTh1, PJM): regular hourly files. PJM's `EMPTY`/`MISSING` markers are read as NaN;
  its target `cleaned demand (MW)` has none, so nothing is filled.
- trading_days (stocks): rows that are null in every column (AAPL 1981-08-10) are dropped;
  the series is reindexed to every weekday and the weekdays absent from the file (exchange
  holidays and dropped rows) take the previous trading day's values (carry forward).
- hourly_gaps (bike sharing): the 165 absent hours are inserted; `cnt` and the weather
  covariates are interpolated linearly, `holiday`/`workingday` are copied from the same date.
- wide_weekly (sales): one row per product with columns W0..W51 becomes 52 rows per product;
  the file has week indices only, so W0 is anchored at a fixed Monday and W<k> is 7k days later.

The files themselves are never modified (ETTh1's licence forbids publishing altered copies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.frame import SeriesFrame, grid
from training.errors import DataError

logger = logging.getLogger(__name__)

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_FLAG_COLUMNS = ("holiday", "workingday")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to read one bundled dataset.

    Attributes:
        name: "<domain>/<short name>", e.g. "load/etth1".
        path: file path relative to `data_dir()`.
        time_col: timestamp column ("" for the wide sales layout, which has none).
        target_col: the forecast target; for the wide layout, the name given to the cells.
        frequency: canonical frequency string.
        description: one line for `forecast datasets`.
        id_col: series id column for panels, None for one series (its id is `name`).
        covariates: numeric columns that may be requested as past covariates.
        reader: which bundled reader applies the dataset's quirks (see the module docstring);
            "wide_weekly" reads one row per series, the others one row per timestamp.
        na_markers: strings the file uses for missing numbers.
    """

    name: str
    path: str
    time_col: str
    target_col: str
    frequency: str
    description: str
    licence: str
    id_col: str | None = None
    covariates: tuple[str, ...] = ()
    reader: str = "plain"
    na_markers: tuple[str, ...] = ()

    @property
    def domain(self) -> str:
        """The part of `name` before the slash: "load", "stock" or "demand"."""
        return self.name.partition("/")[0]


def read(spec: DatasetSpec, root: Path, covariates: tuple[str, ...], *, week0: str) -> SeriesFrame:
    """Read `spec.path` under `root` with its reader's policies, carrying the `covariates`
    (already checked against the spec); the wide weekly layout anchors W0 at `week0`.

    Raises:
        DataError: when the file is missing or does not have the declared columns.
    """
    path = root / spec.path
    if not path.is_file():
        raise DataError(
            f"dataset {spec.name!r}: file {path} not found. Fix: restore data/ from the "
            "repository or point FORECAST_DATA_DIR at a folder holding "
            f"{spec.path}"
        )
    if spec.reader == "wide_weekly":
        return _wide_weekly(spec, path, week0)
    readers = {"plain": _plain, "trading_days": _trading_days, "hourly_gaps": _hourly_gaps}
    return readers[spec.reader](spec, path, covariates)


def _csv(spec: DatasetSpec, path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, usecols=columns, na_values=list(spec.na_markers))
    except ValueError as exc:  # usecols names a column the file lacks
        raise DataError(
            f"dataset {spec.name!r}: {path} cannot be read with columns {columns}: {exc}. "
            "Fix: restore the file from the repository"
        ) from None


def _build(
    spec: DatasetSpec, table: pd.DataFrame, covariates: tuple[str, ...], notes: list[str]
) -> SeriesFrame:
    """Log the notes and wrap the finished table in a validated frame."""
    for note in notes:
        logger.info("%s: %s", spec.name, note)
    for column in ("value", *covariates):
        table[column] = table[column].astype(np.float64)
    table["timestamp"] = table["timestamp"].astype("datetime64[ns]")
    return SeriesFrame(
        table=table[["series_id", "timestamp", "value", *covariates]].reset_index(drop=True),
        frequency=spec.frequency,
        target=spec.target_col,
        covariates=covariates,
        source=f"bundled:{spec.name}",
        notes=tuple(notes),
    )


def _single(
    spec: DatasetSpec, stamps: pd.Series, raw: pd.DataFrame, covs: tuple[str, ...], notes: list[str]
) -> SeriesFrame:
    """The frame of one series: `raw`'s target and `covs`, row by row with `stamps`."""
    table = pd.DataFrame({"series_id": spec.name, "timestamp": stamps.to_numpy()})
    table["value"] = raw[spec.target_col].to_numpy()
    for column in covs:
        table[column] = raw[column].to_numpy()
    return _build(spec, table, covs, notes)


def _plain(spec: DatasetSpec, path: Path, covs: tuple[str, ...]) -> SeriesFrame:
    raw = _csv(spec, path, [spec.time_col, spec.target_col, *covs])
    stamps = pd.to_datetime(raw[spec.time_col], format=_TIME_FORMAT)
    notes = []
    if spec.na_markers:
        notes.append(
            f"markers {', '.join(spec.na_markers)} read as NaN; target "
            f"{spec.target_col!r} has {int(raw[spec.target_col].isna().sum())} NaN, nothing filled"
        )
    return _single(spec, stamps, raw, covs, notes)


def _trading_days(spec: DatasetSpec, path: Path, covs: tuple[str, ...]) -> SeriesFrame:
    raw = _csv(spec, path, [spec.time_col, *spec.covariates, spec.target_col])
    numeric = [c for c in raw.columns if c != spec.time_col]
    all_null = raw[numeric].isna().all(axis=1)
    notes = []
    if all_null.any():
        dates = ", ".join(raw.loc[all_null, spec.time_col].astype(str))
        notes.append(
            f"dropped {int(all_null.sum())} all-null row(s) ({dates}); "
            "refilled by the business-day policy below"
        )
        raw = raw.loc[~all_null]
    stamps = pd.to_datetime(raw[spec.time_col], format="%Y-%m-%d")
    days = grid(stamps.iloc[0], stamps.iloc[-1], "B")
    full = raw.set_index(pd.DatetimeIndex(stamps)).drop(columns=spec.time_col).reindex(days)
    absent = int(full[spec.target_col].isna().sum())
    dropped = int(all_null.sum())
    full = full.ffill()
    notes.append(
        f"reindexed to business days: {absent} weekday(s) absent ({absent - dropped} "
        f"exchange holiday(s), {dropped} dropped row(s)) carried forward from the "
        "previous close"
    )
    return _single(spec, pd.Series(days), full, covs, notes)


def _hourly_gaps(spec: DatasetSpec, path: Path, covs: tuple[str, ...]) -> SeriesFrame:
    weather = [c for c in spec.covariates if c not in _FLAG_COLUMNS]
    raw = _csv(spec, path, ["dteday", "hr", spec.target_col, *spec.covariates])
    stamps = pd.to_datetime(raw["dteday"], format="%Y-%m-%d") + pd.to_timedelta(raw["hr"], unit="h")
    hours = grid(stamps.iloc[0], stamps.iloc[-1], "h")
    full = raw.set_index(pd.DatetimeIndex(stamps)).reindex(hours)
    missing = full[spec.target_col].isna().to_numpy()  # [T]
    gap, gap_start = _longest_run(missing)
    # Every date has at least one observed hour, so the day-level flags are known.
    by_date = raw.groupby("dteday")[list(_FLAG_COLUMNS)].first()
    dates = hours.strftime("%Y-%m-%d")
    for column in _FLAG_COLUMNS:
        full[column] = by_date[column].reindex(dates).to_numpy()
    full[[spec.target_col, *weather]] = full[[spec.target_col, *weather]].interpolate(
        method="linear"
    )
    notes = [
        f"{int(missing.sum())} missing hour(s) inserted (longest gap {gap} h from "
        f"{hours[gap_start] if gap else '-'}): {spec.target_col!r} and "
        f"{', '.join(weather)} interpolated linearly; holiday/workingday from the same date"
    ]
    return _single(spec, pd.Series(hours), full, covs, notes)


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Length and start index of the longest run of True in a [T] bool mask."""
    padded = np.r_[False, mask, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))  # run starts and ends, alternating
    if edges.size == 0:
        return 0, 0
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(ends[k] - starts[k]), int(starts[k])


def _wide_weekly(spec: DatasetSpec, path: Path, week0: str) -> SeriesFrame:
    raw = pd.read_csv(path)
    weeks = [c for c in raw.columns if c.startswith("W") and c[1:].isdigit()]
    if spec.id_col not in raw.columns or not weeks:
        raise DataError(
            f"dataset {spec.name!r}: {path} lacks {spec.id_col!r} or W0..W51 "
            "columns. Fix: restore the file from the repository"
        )
    weeks.sort(key=lambda c: int(c[1:]))
    values = raw[weeks].to_numpy(dtype=np.float64)  # [S, W]
    ids = raw[spec.id_col].astype(str).to_numpy()  # [S]
    order = np.argsort(ids, kind="stable")
    offsets = np.array([int(c[1:]) for c in weeks]) * np.timedelta64(7, "D")  # [W]
    stamps = np.datetime64(week0, "ns") + offsets  # [W]
    n_series, n_weeks = values.shape
    table = pd.DataFrame(
        {
            "series_id": np.repeat(ids[order], n_weeks),  # [S*W]
            "timestamp": np.tile(stamps, n_series),  # [S*W]
            "value": values[order].reshape(-1),  # [S, W] -> [S*W]
        }
    )
    notes = [
        f"wide layout: {n_series} products x {n_weeks} weeks ({weeks[0]}..{weeks[-1]}) "
        f"reshaped to long; the file has week indices only, so {weeks[0]} is anchored at "
        f"{week0} (a Monday) and each W<k> is 7k days later; MIN/MAX/Normalized columns ignored"
    ]
    return _build(spec, table, (), notes)
