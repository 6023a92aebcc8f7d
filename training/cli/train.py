"""`forecast train`, `forecast compare` and `forecast promote`.

Each command builds the settings at the edge, calls the library (`pipeline.train`,
`compare.leaderboard`, `promotion.promote_by_hand`) and prints: rich tables and a progress bar
for people, or with `--json` exactly one JSON object on stdout (logs go to stderr).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from models.base import EpochCallback, EpochStats
from training.cli.console import console, json_stdout, user_errors
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.settings import TrainSettings

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlruns/mlflow.db).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]


def _emit(obj: Any) -> None:
    typer.echo(json.dumps(obj, default=str))


def _total_epochs(spec: TrainSpec) -> int:
    if spec.family == "esn":
        return 1
    if spec.epochs is not None:
        return spec.epochs
    from models.config import RecurrentConfig

    return int(spec.model.get("epochs", RecurrentConfig().epochs))


@contextmanager
def _progress(spec: TrainSpec) -> Iterator[EpochCallback]:
    """A rich progress bar advanced once per epoch; yields the epoch hook.

    The bar appears with the first epoch, so input errors found before training print
    only their one error line.
    """
    total = _total_epochs(spec)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} epochs"),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task(f"{spec.family} {spec.model_name}", total=total, losses="")
    started: list[bool] = []

    def on_epoch(stats: EpochStats) -> None:
        if not started:
            progress.start()
            started.append(True)
        progress.update(
            task,
            completed=min(stats.epoch, total),
            losses=f"train {stats.train_loss:.4g}  val {stats.val_loss:.4g}"
            + (" *" if stats.best else ""),
        )

    try:
        yield on_epoch
        progress.update(task, completed=total)
    finally:
        if started:
            progress.stop()


def _summary(result: Any) -> Table:
    """Model vs baselines on the same test windows."""
    table = Table(
        title=f"{result.model_name} v{result.version}: test windows "
        f"({result.data['test_windows']}, {result.data['scale']} scale)"
    )
    keys = ("mae", "mse", "mase", "smape", "coverage_80", "coverage_95", "width_80")
    table.add_column("model")
    for key in keys:
        table.add_column(key, justify="right")
    model_row = [result.metrics.get(f"test_{k}") for k in keys]
    table.add_row(f"{result.gate.name} ({result.fit.device})", *(_fmt(v) for v in model_row))
    for name, scores in result.baselines.items():
        table.add_row(name, *(_fmt(scores.get(k)) for k in keys))
    return table


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _check_source(source: str | None, spec: TrainSpec) -> None:
    """`--source`, when given, must agree with the data flags (it documents intent)."""
    if source is None:
        return
    if source not in ("dataset", "file", "store"):
        raise ExperimentError(f"--source {source!r} is unknown. Fix: use dataset, file or store")
    if source != spec.source:
        flag = {"dataset": "--dataset NAME", "file": "--data FILE", "store": "--series ID"}
        raise ExperimentError(
            f"--source {source} but the data comes from a {spec.source}. "
            f"Fix: pass {flag[source]} (and drop the other data flags)"
        )


@user_errors
def train_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment file (TOML) in configs/.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Bundled dataset, e.g. load/etth1.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Your CSV or Parquet file.")] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="dataset, file or store (default: from the other flags)."),
    ] = None,
    series: Annotated[
        str | None,
        typer.Option("--series", help="Series-store ids, comma-separated (with --source store)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Series store for --series (default: $FORECAST_DATABASE_URL, "
            "else sqlite:///./data/series.db).",
        ),
    ] = None,
    time_col: Annotated[str | None, typer.Option("--time-col", help="Timestamp column.")] = None,
    target_col: Annotated[str | None, typer.Option("--target-col", help="Target column.")] = None,
    id_col: Annotated[str | None, typer.Option("--id-col", help="Series id column.")] = None,
    freq: Annotated[
        str | None, typer.Option("--freq", help="h, D, B, W, <n>min or <n>h (file only).")
    ] = None,
    covariates: Annotated[
        str | None, typer.Option("--covariates", help="Comma-separated past covariates.")
    ] = None,
    family: Annotated[str | None, typer.Option("--family", help="lstm, gru, rnn or esn.")] = None,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Forecast steps.")] = None,
    lookback: Annotated[int | None, typer.Option("--lookback", help="History steps.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs.")] = None,
    last_rows: Annotated[
        int | None, typer.Option("--last-rows", help="Use only the newest N rows per series.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Registered model (default: from the dataset).")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="ratio (default) or ett.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    tracking_uri: TrackingUri = None,
    as_json: AsJson = False,
) -> None:
    """Train a forecaster, log it to MLflow, register a version and run the champion gate."""
    from training.data.sources.store import parse_series_ids
    from training.jobs.pipeline import train
    from training.jobs.preparation import load_frame

    flags: dict[str, Any] = {
        "series": None if series is None else parse_series_ids(series),
        "dataset": dataset,
        "data": None if data is None else str(data),
        "time_col": time_col,
        "target_col": target_col,
        "id_col": id_col,
        "freq": freq,
        "covariates": None
        if covariates is None
        else tuple(c.strip() for c in covariates.split(",") if c.strip()),
        "family": family,
        "horizon": horizon,
        "lookback": lookback,
        "epochs": epochs,
        "last_rows": last_rows,
        "name": name,
        "protocol": protocol,
        "device": device,
    }
    spec = (
        TrainSpec.from_toml(config, **flags)
        if config is not None
        else TrainSpec.from_flags(**flags)
    )
    _check_source(source, spec)
    settings = TrainSettings()
    frame = load_frame(spec, database_url)
    if as_json:
        with json_stdout(as_json):
            result = train(spec, tracking_uri, settings=settings, frame=frame)
        _emit(result.to_json())
        return
    with _progress(spec) as on_epoch:
        result = train(spec, tracking_uri, on_epoch, settings=settings, frame=frame)
    console.print(_summary(result))
    gate = result.gate
    verdict = "promoted to champion" if gate.promoted else "kept as challenger"
    console.print(
        f"{result.model_name} v{result.version} {verdict} ({gate.reason}); "
        f"champion: v{result.champion_version}; run {result.run_id} in {result.tracking_uri}",
        highlight=False,
    )


@user_errors
def compare_command(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. load-etth1.")],
    metric: Annotated[
        str, typer.Option("--metric", help="Ranking metric, e.g. test_mae, test_mase.")
    ] = "test_mae",
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG: metric by version, error by step.")
    ] = None,
    tracking_uri: TrackingUri = None,
    as_json: AsJson = False,
) -> None:
    """Leaderboard of every version of a registered model (read from MLflow)."""
    from training.registry.compare import compare_plot, leaderboard, render
    from training.registry.tracking import Tracker

    tracker = Tracker(tracking_uri, TrainSettings())
    rows = leaderboard(tracker, name, metric)
    written = None if plot is None else compare_plot(tracker, name, rows, metric, plot)
    if as_json:
        champion = next((r["version"] for r in rows if r["champion"]), None)
        _emit(
            {
                "model_name": name,
                "metric": metric,
                "champion_version": champion,
                "plot": None if written is None else str(written),
                "versions": rows,
            }
        )
        return
    console.print(render(rows, name, metric))
    if written is not None:
        console.print(f"plot written to {written}", highlight=False)


@user_errors
def promote_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with your user name).")],
    tracking_uri: TrackingUri = None,
    as_json: AsJson = False,
) -> None:
    """Set the champion by hand, bypassing the gate; records who and why."""
    from training.registry.gate import promote_by_hand
    from training.registry.tracking import Tracker

    tracker = Tracker(tracking_uri, TrainSettings())
    done = promote_by_hand(tracker, name, version, reason=reason, user=getpass.getuser())
    if as_json:
        _emit(
            {
                "model_name": done.name,
                "champion_version": done.version,
                "previous_champion": done.previous_champion,
                "user": done.user,
                "reason": done.reason,
            }
        )
        return
    console.print(
        f"{done.name}: v{done.version} is champion (was v{done.previous_champion}); "
        f"by {done.user}: {done.reason}",
        highlight=False,
    )
