"""`forecast train`, `forecast compare` and `forecast promote`.

Each command builds the settings at the edge, calls the library (`pipeline.train`,
`compare.leaderboard`, `promotion.promote_by_hand`) and prints: rich tables and a progress bar
for people, or with `--json` exactly one JSON object on stdout (logs go to stderr).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TextColumn
from rich.table import Table

from models.base import EpochCallback, EpochStats
from training.cli import options
from training.cli.console import console, emit, json_stdout, progress_bar, say, user_errors
from training.errors import ExperimentError
from training.jobs.experiment import TrainSpec
from training.settings import TrainSettings


def spec_flags(series: str | None, data: Path | None, **flags: Any) -> dict[str, Any]:
    """The data and model flags of `train` and `tune` as `TrainSpec` keywords: --series
    parsed, --data as text, --covariates and --future-covariates split at commas."""
    from training.data.sources.store import parse_series_ids

    for key in ("covariates", "future_covariates"):
        if flags.get(key) is not None:
            flags[key] = tuple(c.strip() for c in flags[key].split(",") if c.strip())
    return {
        "series": None if series is None else parse_series_ids(series),
        "data": None if data is None else str(data),
        **flags,
    }


def _total_epochs(spec: TrainSpec, frame: Any) -> int | None:
    """The epoch budget the job starts with (None for auto: several fits)."""
    if spec.family == "auto":
        return None
    if spec.family not in ("lstm", "gru", "rnn"):
        return 1
    if spec.epochs is not None:
        return spec.epochs
    from models.config import RecurrentConfig
    from training.jobs.defaults import derive

    derived = derive(spec, frame).values.get("epochs", RecurrentConfig().epochs)
    return int(spec.model.get("epochs", derived))


@contextmanager
def _progress(spec: TrainSpec, frame: Any) -> Iterator[EpochCallback]:
    """A rich progress bar advanced once per epoch; yields the epoch hook.

    The bar appears with the first epoch, so input errors found before training print
    only their one error line.
    """
    total = _total_epochs(spec, frame)
    progress = progress_bar(
        TextColumn("{task.completed}/{task.total} epochs"), TextColumn("{task.fields[losses]}")
    )
    task = progress.add_task(f"{spec.family} {spec.model_name}", total=total, losses="")
    started: list[bool] = []

    def on_epoch(stats: EpochStats) -> None:
        if not started:
            progress.start()
            started.append(True)
        progress.update(
            task,
            completed=stats.epoch if total is None else min(stats.epoch, total),
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


def _candidates(result: Any) -> Table:
    """The auto contest: every candidate's validation score and test MAE ratios."""
    table = Table(title=f"{result.model_name}: auto candidates (lowest validation score wins)")
    metric = f"val_{result.gate.metric}"
    for column in ("family", metric, "test MAE / naive", "/ seasonal naive", "cov 80", "cov 95",
                   "train s", "status"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("family", "status") else "right")
    keys = [metric, "test_mae_vs_naive", "test_mae_vs_seasonal_naive", "coverage_80"]
    keys += ["coverage_95", "train_seconds"]
    for row in result.candidates:
        mark = " *" if row.get("chosen") else ""
        scores = (_fmt(row.get(key)) for key in keys)
        table.add_row(row["family"] + mark, *scores, str(row.get("status", "")))
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


def _check_fill_flags(spec: TrainSpec, **flags: object) -> None:
    """The fill flags shape files and the store; a bundled dataset has its own fixed policy."""
    given = [name for name, value in flags.items() if value is not None]
    if given and spec.source == "dataset":
        flag = "--" + given[0].replace("_", "-")
        raise ExperimentError(
            f"{flag} applies to a file or the series store, not to the bundled dataset "
            f"{spec.dataset!r} (a bundled dataset's fills are fixed). "
            f"Fix: drop {flag}"
        )


@user_errors
def train_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment file (TOML) in configs/.")
    ] = None,
    dataset: options.Dataset = None,
    data: options.DataFile = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="dataset, file or store (default: from the other flags)."),
    ] = None,
    series: options.Series = None,
    database_url: options.DatabaseUrl = None,
    time_col: options.TimeCol = None,
    target_col: options.TargetCol = None,
    id_col: options.IdCol = None,
    freq: options.Freq = None,
    fill: Annotated[
        str | None,
        typer.Option(
            "--fill",
            help="Gap policy for a file or the store: interpolate (default), ffill, reject.",
        ),
    ] = None,
    max_gap: Annotated[
        int | None,
        typer.Option("--max-gap", help="Longest run of missing steps to interpolate (default 48)."),
    ] = None,
    fill_limit: Annotated[
        float | None,
        typer.Option(
            "--fill-limit",
            help="Largest share of a column a fill may invent, 0..1 (default 0.05).",
        ),
    ] = None,
    covariates: options.Covariates = None,
    future_covariates: Annotated[
        str | None,
        typer.Option(
            "--future-covariates",
            help="Comma-separated columns known over the horizon too (weather forecast, "
            "promotions); backtests read their recorded values (oracle).",
        ),
    ] = None,
    holidays: Annotated[
        str | None,
        typer.Option(
            "--holidays",
            help="Country (optionally -subdivision), e.g. US or US-CA: adds the future "
            "covariate holiday:US from the holidays package.",
        ),
    ] = None,
    covariate_noise: Annotated[
        float | None,
        typer.Option(
            "--covariate-noise",
            help="Test windows only: add Gaussian noise of this many column stds to the "
            "future covariates' horizon values (0 = oracle, the default).",
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            help="lstm, gru, rnn, esn, naive, seasonal_naive, kalman, or auto (the default: "
            "train the candidates, keep the best on validation).",
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", help="Seconds of training (auto: for all candidates)."),
    ] = None,
    allow_worse_than_baseline: options.AllowWorseThanBaseline = False,
    allow_contract_change: options.AllowContractChange = False,
    horizon: options.Horizon = None,
    lookback: Annotated[int | None, typer.Option("--lookback", help="History steps.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs.")] = None,
    last_rows: options.LastRows = None,
    name: options.RegisteredName = None,
    protocol: options.Protocol = None,
    device: options.Device = None,
    tracking_uri: options.TrackingUri = None,
    as_json: options.AsJson = False,
) -> None:
    """Train a forecaster, log it to MLflow, register a version and run the champion gate."""
    from training.data.fill import FLAGS
    from training.jobs.pipeline import train
    from training.jobs.preparation import load_frame

    flags = spec_flags(
        series, data, dataset=dataset, time_col=time_col, target_col=target_col, id_col=id_col,
        freq=freq, fill=fill, max_gap=max_gap, fill_limit=fill_limit, covariates=covariates,
        future_covariates=future_covariates, holidays=holidays, covariate_noise=covariate_noise,
        family=family, horizon=horizon, lookback=lookback, epochs=epochs, last_rows=last_rows,
        name=name, protocol=protocol, device=device,
    )  # fmt: skip
    spec = TrainSpec.from_toml(config, **flags) if config else TrainSpec.from_flags(**flags)
    _check_source(source, spec)
    _check_fill_flags(spec, fill=fill, max_gap=max_gap, fill_limit=fill_limit)
    settings = TrainSettings()
    options: dict[str, Any] = {
        "allow_worse_than_baseline": allow_worse_than_baseline,
        "allow_contract_change": allow_contract_change,
        "time_budget": float(time_budget or 0.0),
    }
    frame = load_frame(spec, database_url, names=FLAGS)
    # Every fill and policy the data went through, where the user sees it (not only in MLflow);
    # under --json on stderr, so stdout keeps its one object.
    for note in frame.notes:
        say(f"data: {note}", err=as_json)
    if as_json:
        with json_stdout(as_json):
            result = train(spec, tracking_uri, settings=settings, frame=frame, **options)
        emit(result.to_json())
        return
    with _progress(spec, frame) as on_epoch:
        result = train(spec, tracking_uri, on_epoch, settings=settings, frame=frame, **options)
    if result.candidates:
        console.print(_candidates(result))
        console.print(f"auto: {result.data.get('auto_note', '')}", highlight=False)
    console.print(_summary(result))
    if result.still_improving:
        say(
            f"note: the best epoch was the last ({result.fit.best_epoch} of "
            f"{result.fit.epochs}): still improving when stopped; pass a larger --epochs"
        )
    gate = result.gate
    verdict = "promoted to champion" if gate.promoted else "kept as challenger"
    if gate.worse_than_baseline and not gate.promoted:
        say(
            f"{gate.decision}: validation {gate.metric} {gate.challenger_score:.6g} vs "
            f"{gate.baseline} {gate.baseline_score:.6g}; not promoted (pass "
            "--allow-worse-than-baseline to override)"
        )
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
    tracking_uri: options.TrackingUri = None,
    database_url: options.DatabaseUrl = None,
    as_json: options.AsJson = False,
) -> None:
    """Leaderboard of every version of a registered model (read from MLflow), with each
    version's live accuracy from the series store's forecast log next to its test scores."""
    from training.registry.compare import add_live, compare_plot, leaderboard, render
    from training.registry.tracking import Tracker

    tracker = Tracker(tracking_uri, TrainSettings())
    rows = leaderboard(tracker, name, metric)
    add_live(rows, _live_scores(name, database_url))
    written = None if plot is None else compare_plot(tracker, name, rows, metric, plot)
    if as_json:
        champion = next((r["version"] for r in rows if r["champion"]), None)
        emit(
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


def _live_scores(name: str, database_url: str | None) -> list[Any]:
    """The forecast log's scores of `name` per version ([] when the store cannot be read)."""
    from training.store import SeriesStore, StoreError

    try:
        with SeriesStore(database_url) if database_url else SeriesStore.from_env() as store:
            return store.forecast_log.scores(model=name)
    except StoreError as exc:
        logging.getLogger(__name__).warning("compare: no live accuracy (%s)", exc)
        return []


@user_errors
def promote_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with your user name).")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even when the request contract (look-back, frequency, covariates) "
            "differs from the champion's: its clients' requests will be refused.",
        ),
    ] = False,
    tracking_uri: options.TrackingUri = None,
    as_json: options.AsJson = False,
) -> None:
    """Set the champion by hand, bypassing the gate; records who and why.

    Refused when the version's request contract differs from the champion's, unless --force.
    """
    from training.registry.gate import promote_by_hand
    from training.registry.tracking import Tracker

    tracker = Tracker(tracking_uri, TrainSettings())
    user = getpass.getuser()
    done = promote_by_hand(tracker, name, version, reason=reason, user=user, force=force)
    if as_json:
        emit(
            {
                "model_name": done.name,
                "champion_version": done.version,
                "previous_champion": done.previous_champion,
                "user": done.user,
                "reason": done.reason,
                "contract_changes": list(done.contract_changes),
            }
        )
        return
    console.print(
        f"{done.name}: v{done.version} is champion (was v{done.previous_champion}); "
        f"by {done.user}: {done.reason}",
        highlight=False,
    )
    if done.contract_changes:
        console.print(
            f"request contract changed (--force): {'; '.join(done.contract_changes)}",
            style="yellow",
            highlight=False,
        )
