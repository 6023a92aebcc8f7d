"""`forecast load-series`: seed the series store from a bundled dataset or a CSV/Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import MofNCompleteColumn

from training.cli import options
from training.cli.console import progress_bar, say, user_errors
from training.data.frame import SeriesFrame
from training.errors import DataError, ExperimentError
from training.store import SeriesStore, UpsertResult
from training.store.timestamps import iso

DEFAULT_CHUNK = 5_000
"""Observations per upsert (one transaction each); capped by the store's batch limit."""


@user_errors
def load_series_command(
    dataset_or_file: Annotated[
        str,
        typer.Argument(
            metavar="DATASET_OR_CSV",
            help="A bundled dataset (e.g. load/etth1) or a CSV/Parquet file.",
        ),
    ],
    series_id: Annotated[
        str, typer.Option("--series-id", help="Store series id to write to (created or updated).")
    ],
    database_url: options.DatabaseUrl = None,
    source_series: Annotated[
        str | None,
        typer.Option("--source-series", help="Which series of a multi-series source to load."),
    ] = None,
    time_col: options.TimeCol = None,
    target_col: options.TargetCol = None,
    id_col: options.IdCol = None,
    freq: options.Freq = None,
    covariates: Annotated[
        str, typer.Option(help="Comma-separated covariate columns to store with the values.")
    ] = "",
    chunk_size: Annotated[int, typer.Option(help="Observations per transaction.")] = DEFAULT_CHUNK,
) -> None:
    """Seed the series store with one series of a bundled dataset or a CSV/Parquet file.

    Rows are upserted in chunks (one transaction each) under a progress bar. Re-running is
    safe: a repeated load updates the same observations in place.
    """
    if chunk_size < 1:
        raise ExperimentError(f"--chunk-size must be at least 1, got {chunk_size}")
    names = tuple(name.strip() for name in covariates.split(",") if name.strip())
    frame = _read_source(dataset_or_file, names, time_col, target_col, id_col, freq)
    source_id = _pick_series(frame, source_series)
    with SeriesStore(database_url) if database_url else SeriesStore.from_env() as store:
        result, stamps = _load(store, frame, source_id, series_id, min(chunk_size, store.max_batch))
        picked = f" (series {source_id})" if frame.n_series > 1 else ""
        say(
            f"loaded {result.total} observations of {frame.source}{picked} into series "
            f"{series_id!r}: {result.inserted} inserted, {result.updated} updated, "
            f"{iso(stamps[0])} .. {iso(stamps[-1])}, frequency {frame.frequency}, "
            f"store {store.url}"
        )


def _read_source(
    name: str,
    covariates: tuple[str, ...],
    time_col: str | None,
    target_col: str | None,
    id_col: str | None,
    freq: str | None,
) -> SeriesFrame:
    """A bundled dataset by name, else a file read with the column flags."""
    from training.data.catalogue import BUNDLED, load_dataset, load_file

    file_flags = {
        "--time-col": time_col,
        "--target-col": target_col,
        "--id-col": id_col,
        "--freq": freq,
    }
    if name in BUNDLED:
        given = [flag for flag, value in file_flags.items() if value is not None]
        if given:
            raise ExperimentError(
                f"{given[0]} applies to files, not to the bundled dataset "
                f"{name!r}. Fix: drop {given[0]}"
            )
        return load_dataset(name, covariates=covariates)
    if not Path(name).exists():
        raise DataError(
            f"{name!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor an "
            "existing file. Fix: pick a name from `forecast datasets` or check "
            "the path"
        )
    if time_col is None or target_col is None:
        raise ExperimentError(
            f"reading the file {name} needs --time-col and --target-col. "
            "Fix: pass the names of its timestamp and target columns"
        )
    return load_file(
        name,
        time_col=time_col,
        target_col=target_col,
        id_col=id_col,
        freq=freq,
        covariates=covariates,
    )


def _pick_series(frame: SeriesFrame, source_series: str | None) -> str:
    ids = frame.series_ids()
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    if source_series is None:
        if len(ids) == 1:
            return ids[0]
        raise ExperimentError(
            f"{frame.source} holds {len(ids)} series ({shown}). Fix: pick one with --source-series"
        )
    if source_series not in ids:
        raise ExperimentError(
            f"--source-series {source_series!r} is not a series of "
            f"{frame.source}; it holds: {shown}"
        )
    return source_series


def _load(
    store: SeriesStore, frame: SeriesFrame, source_id: str, series_id: str, chunk: int
) -> tuple[UpsertResult, np.ndarray]:
    """Create/update the series, then upsert its rows chunk by chunk (a transaction each)."""
    rows = frame.table[frame.table["series_id"] == source_id]
    stamps = rows["timestamp"].to_numpy(dtype="datetime64[ns]")  # [T]
    values = rows["value"].to_numpy(dtype=np.float64)  # [T]
    covs = {name: rows[name].to_numpy(dtype=np.float64) for name in frame.covariates}  # [T]
    store.upsert_series(
        series_id,
        frequency=frame.frequency,
        target=frame.target,
        metadata={
            "source": frame.source,
            "source_series": source_id,
            "covariates": list(frame.covariates),
        },
    )
    inserted = updated = 0
    with progress_bar(MofNCompleteColumn(), err=True) as progress:
        task = progress.add_task(f"loading {series_id}", total=len(values))
        for lo in range(0, len(values), chunk):
            hi = min(lo + chunk, len(values))
            part = {name: column[lo:hi] for name, column in covs.items()} or None
            result = store.upsert_observations(series_id, stamps[lo:hi], values[lo:hi], part)
            inserted += result.inserted
            updated += result.updated
            progress.advance(task, hi - lo)
    return UpsertResult(inserted=inserted, updated=updated), stamps
