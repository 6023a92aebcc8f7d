"""`forecast datasets` and `forecast baseline`: what data ships, and how hard it is to beat."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from training.cli import options
from training.cli.console import console, emit, user_errors
from training.data.catalogue import BUNDLED
from training.errors import ExperimentError
from training.evaluation.protocols import PROTOCOLS


def dataset_summary(name: str) -> dict[str, Any]:
    """One bundled dataset as the JSON row `forecast datasets --json` prints."""
    from training.data.catalogue import load_dataset

    spec = BUNDLED[name]
    frame = load_dataset(name)
    return {
        "name": name,
        "domain": spec.domain,
        "rows": frame.rows,
        "series": frame.n_series,
        "frequency": frame.frequency,
        "start": str(frame.start),
        "end": str(frame.end),
        "target": frame.target,
    }


@user_errors
def datasets_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List the bundled real datasets: rows, series, frequency, span and target."""
    rows = [dataset_summary(name) for name in BUNDLED]
    if as_json:
        emit(rows)
        return
    table = Table(title="Bundled datasets")
    keys = ("name", "domain", "rows", "series", "frequency", "start", "end", "target")
    for key in keys:
        right = key in ("rows", "series")
        table.add_column(
            "freq" if key == "frequency" else key, justify="right" if right else "left"
        )
    table.columns[0].no_wrap = True
    for row in rows:
        cells = (_short_time(row[k]) if k in ("start", "end") else str(row[k]) for k in keys)
        table.add_row(*cells)
    console.print(table)


def _check_baseline_args(dataset: str, horizon: int, protocol: str) -> None:
    if horizon < 1:
        raise ExperimentError(f"--horizon must be at least 1, got {horizon}")
    if protocol not in PROTOCOLS:
        raise ExperimentError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "ett" and not dataset.startswith("load/etth"):
        raise ExperimentError(
            f"--protocol ett applies to ETT datasets (load/etth1), not {dataset!r}; "
            "drop --protocol to use the ratio split"
        )


@user_errors
def baseline_command(
    dataset: Annotated[str, typer.Argument(help="Bundled dataset name, e.g. load/etth1.")],
    horizon: Annotated[int, typer.Option("--horizon", "-H", help="Forecast horizon in steps.")],
    protocol: Annotated[
        str, typer.Option(help="ratio (70/10/20 time split) or ett (the standard ETTh1 protocol).")
    ] = "ratio",
    as_json: options.AsJson = False,
) -> None:
    """Evaluate the naive, seasonal-naive and Kalman baselines on every test window."""
    from training.data.catalogue import load_dataset
    from training.evaluation.backtest import run_baselines

    _check_baseline_args(dataset, horizon, protocol)
    frame = load_dataset(dataset)
    result = run_baselines(frame, horizon, protocol)
    result["dataset"] = dataset
    if as_json:
        emit(result)
        return
    table = Table(
        title=f"{dataset}: baselines at horizon {horizon} ({protocol}, {result['windows']} windows)"
    )
    metric_names = ("mse", "mae", "mase", "smape", "coverage_80", "coverage_95")
    table.add_column("baseline")
    for metric in metric_names:
        table.add_column(metric, justify="right")
    for name, scores in result["baselines"].items():
        table.add_row(name, *(_fmt(scores.get(metric)) for metric in metric_names))
    console.print(table)


def _short_time(text: str) -> str:
    """'2016-07-01 00:00:00' -> '2016-07-01' for midnight stamps, else to the minute."""
    return text[:10] if text.endswith("00:00:00") else text[:16]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)
