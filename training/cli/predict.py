"""`forecast predict NAME`: batch forecasts of many series from a registered model, to Parquet
or into the series store's forecast log (`--to-store`).

The series come from the series store (`--series a,b` or `--all`) or a file of many series
(`--data FILE` with its columns). The model is the version an alias points at (`--alias`,
default champion) or `--version N`. In this process by default; with `--ray-address` (or
`--ray`, which starts Ray here) the series are sharded over a Ray cluster.

A model with future covariates reads their values over the horizon: in a `--data` file, each
series' rows after its last observed target (target empty) carry them; for stored series,
`--future FILE` (series_id, timestamp, one column per covariate) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from training.cli import options
from training.cli.console import console, emit, json_stdout, say, user_errors
from training.errors import ExperimentError
from training.settings import TrainSettings

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    import pandas as pd

    from training.data.frame import SeriesFrame
    from training.jobs.batch_predict import ModelRef

Opt = typer.Option


def _data_source(series: str | None, all_series: bool, data: Path | None) -> None:
    given = [flag for flag, on in (("--series", series is not None), ("--all", all_series),
                                   ("--data", data is not None)) if on]  # fmt: skip
    if len(given) != 1:
        raise ExperimentError(
            f"{' and '.join(given) or 'no data flag'} given: pass exactly one of --series "
            "ID[,ID...], --all (every stored series) or --data FILE"
        )


def _preview(table: Any, rows: int = 10) -> Table:
    out = Table(title=f"first {min(rows, len(table))} of {len(table)} forecast rows")
    for column in table.columns:
        out.add_column(str(column))
    for record in table.head(rows).itertuples(index=False):
        out.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in record))
    return out


def _stored(
    ref: ModelRef,
    meta: Any,
    ids: Sequence[str] | None,
    database_url: str | None,
    future: Path | None,
    steps: int,
) -> tuple[SeriesFrame, pd.DataFrame | None]:
    """(the stored series as a frame, `ahead` from --future or None)."""
    from training.data.known import supplied_columns
    from training.jobs.batch_predict import history_rows, store_frame
    from training.jobs.predict_future import read_future, with_known

    sent = supplied_columns(meta.future_covariates)
    if meta.future_covariates and future is None:
        raise ExperimentError(
            f"model {ref.name!r} version {ref.version} reads the future covariates "
            f"{list(meta.future_covariates)} over the horizon, and the store holds only the "
            f"past. Fix: pass --future FILE (CSV or Parquet: series_id, timestamp, "
            f"{', '.join(sent)}) with each series' next {steps} values"
        )
    frame = store_frame(database_url, ids, [*meta.covariates, *sent], last=history_rows(meta))
    if future is None:
        return frame, None
    return with_known(frame, meta), read_future(future, frame, meta, steps)


@user_errors
def predict_command(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. load-etth1.")],
    series: options.Series = None,
    all_series: Annotated[bool, Opt("--all", help="Every series in the store.")] = False,
    data: Annotated[Path | None, Opt("--data", help="CSV or Parquet of many series.")] = None,
    time_col: options.TimeCol = None,
    target_col: options.TargetCol = None,
    id_col: options.IdCol = None,
    freq: options.Freq = None,
    future: Annotated[
        Path | None,
        Opt(
            "--future",
            help="CSV or Parquet of the horizon's future covariates of stored "
            "series: series_id, timestamp, one column each (--series/--all).",
        ),
    ] = None,
    database_url: options.DatabaseUrl = None,
    horizon: Annotated[int | None, Opt("--horizon", help="Steps (default: the model's).")] = None,
    levels: Annotated[str, Opt("--levels", help="Interval levels in percent.")] = "80,95",
    version: Annotated[
        int | None, Opt("--version", help="Model version (default: the alias's).")
    ] = None,
    alias: Annotated[str, Opt("--alias", help="Alias to forecast with.")] = "champion",
    output: Annotated[Path | None, Opt("--output", help="Write the rows to FILE.parquet.")] = None,
    to_store: Annotated[
        bool,
        Opt("--to-store", help="Record the forecasts in the store's forecast log (live accuracy)."),
    ] = False,
    ray_address: options.RayAddress = None,
    use_ray: Annotated[bool, Opt("--ray", help="Shard over Ray even without an address.")] = False,
    shard_size: Annotated[int, Opt("--shard-size", help="Series per shard.")] = 1000,
    tracking_uri: options.TrackingUri = None,
    as_json: options.AsJson = False,
) -> None:
    """Forecast many series with a registered model; write the rows to Parquet and/or record
    them in the series store's forecast log (--to-store: idempotent per version, series and
    origin; scored as the actuals are ingested)."""
    from training.data.sources.store import parse_series_ids
    from training.jobs.batch_predict import (
        forecast_steps,
        load_forecaster,
        predict_batch,
        record_to_store,
        resolve_model,
        write_parquet,
    )
    from training.jobs.predict_future import load_data_file
    from training.registry.tracking import Tracker

    _data_source(series, all_series, data)
    try:
        level_list = [int(v) for v in levels.split(",") if v.strip()]
    except ValueError:
        raise ExperimentError(f"--levels {levels!r}: expected integers, e.g. 80,95") from None
    if to_store and data is not None:
        raise ExperimentError(
            "--to-store records forecasts of stored series only. Fix: use --series or --all "
            "(load the file with `forecast load-series` first), or --output FILE.parquet"
        )
    if output is not None and output.suffix != ".parquet":
        raise ExperimentError(f"--output {str(output)!r}: must end in .parquet. Fix: out.parquet")
    if future is not None and data is not None:
        raise ExperimentError(
            "--future gives the horizon of stored series (--series/--all). Fix: with --data, "
            "put each series' horizon rows in the file after its last value (target empty)"
        )
    tracker = Tracker(tracking_uri, TrainSettings())
    ref = resolve_model(tracker, name, version, alias)
    meta = load_forecaster(ref.files).meta
    if future is not None and not meta.future_covariates:
        raise ExperimentError(
            f"model {ref.name!r} version {ref.version} reads no future covariates. "
            "Fix: drop --future"
        )
    steps = forecast_steps(meta, horizon)
    if data is not None:
        if not (time_col and target_col):
            raise ExperimentError("--data needs --time-col and --target-col. Fix: pass both")
        frame, ahead = load_data_file(data, time_col=time_col, target_col=target_col,
                                      id_col=id_col, freq=freq, meta=meta,
                                      model=f"{ref.name} v{ref.version}", steps=steps)  # fmt: skip
    else:
        ids = None if all_series else parse_series_ids(str(series))
        frame, ahead = _stored(ref, meta, ids, database_url, future, steps)
    with json_stdout(as_json):
        result = predict_batch(
            ref, frame, horizon=steps, levels=level_list, ray_address=ray_address,
            use_ray=use_ray, shard_size=shard_size, ahead=ahead,
        )  # fmt: skip
    written = None if output is None else write_parquet(result.forecasts, output)
    recorded = record_to_store(result, frame, database_url, level_list) if to_store else None
    summary = {
        "model_name": result.model, "version": result.version, "series": result.series,
        "rows": len(result.forecasts), "shards": result.shards, "seconds": result.seconds,
        "ray": None if result.cluster is None else vars(result.cluster),
        "output": None if written is None else str(written), "recorded": recorded,
    }  # fmt: skip
    if as_json:
        emit(summary)
        return
    if written is None and recorded is None:
        console.print(_preview(result.forecasts))
    where = (
        "in this process" if result.cluster is None else f"on {result.cluster.nodes} Ray node(s)"
    )
    say(
        f"{result.model} v{result.version}: {result.series} series, {summary['rows']} rows in "
        f"{result.seconds:.1f} s {where}" + (f"; written to {written}" if written else "")
    )
