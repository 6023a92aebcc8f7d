"""`forecast tune`: hyperparameter search on Ray Tune, then the best trial trained, registered
and gated like `forecast train`.

Takes the experiment file or the data/model flags of `forecast train`, plus `--trials`,
`--time-budget` and `--ray-address`. While it runs, a live table shows every trial; at the end
a summary ranks them and names the registered version. `--json` prints one JSON object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from training.cli.console import console, json_stdout, user_errors
from training.errors import ExperimentError
from training.settings import TrainSettings

Opt = typer.Option
RayAddress = Annotated[
    str | None,
    Opt("--ray-address", help="Ray cluster (host:port, ray://host:port or auto); default: "
        "$RAY_ADDRESS, else Ray starts on this machine."),
]  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class TrialTable:
    """The live table: one row per trial, updated from `TrialUpdate`s."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.rows: dict[str, Any] = {}
        self.live = Live(self.render(), console=console, refresh_per_second=4, transient=False)

    def update(self, update: Any) -> None:
        """Record one TrialUpdate and redraw."""
        self.rows[update.trial_id] = update
        self.live.update(self.render())

    def render(self) -> Table:
        """The table as it stands."""
        table = Table(title=f"trials (val_{self.metric}, lower is better)")
        for column in ("trial", "status", "node", "epoch", f"val_{self.metric}", "values"):
            table.add_column(column, justify="right" if column == "epoch" else "left")
        for u in self.rows.values():
            values = ", ".join(f"{k}={_fmt(v)}" for k, v in u.params.items())
            table.add_row(u.trial_id, u.status, u.node_id[:8], str(u.epoch), _fmt(u.score), values)
        return table


def _summary(result: Any) -> Table:
    """Every trial ranked by its validation score, and the one retrained."""
    table = Table(title=f"{len(result.trials)} trials, best retrained as "
                  f"{result.train.model_name} v{result.train.version}")  # fmt: skip
    for column in ("rank", "trial", "status", "epochs", f"val_{result.metric}", "node", "run"):
        table.add_column(column)
    ranked = sorted(result.trials, key=lambda t: (t.score is None, t.score or 0.0))
    for i, t in enumerate(ranked, start=1):
        mark = " *" if t.trial_id == result.best.trial_id else ""
        table.add_row(str(i), t.trial_id + mark, t.status, str(t.epochs), _fmt(t.score),
                      t.node_id[:8], t.run_id)  # fmt: skip
    return table


@user_errors
def tune_command(
    config: Annotated[
        Path | None,
        Opt(
            "--config",
            help="Experiment file (TOML); its [tune] table sets the search (see the README).",
        ),
    ] = None,
    dataset: Annotated[str | None, Opt("--dataset", help="Bundled dataset.")] = None,
    data: Annotated[Path | None, Opt("--data", help="Your CSV or Parquet file.")] = None,
    series: Annotated[
        str | None, Opt("--series", help="Series-store ids, comma-separated.")
    ] = None,
    database_url: Annotated[str | None, Opt("--database-url", help="Series store.")] = None,
    time_col: Annotated[str | None, Opt("--time-col", help="Timestamp column.")] = None,
    target_col: Annotated[str | None, Opt("--target-col", help="Target column.")] = None,
    id_col: Annotated[str | None, Opt("--id-col", help="Series id column.")] = None,
    freq: Annotated[str | None, Opt("--freq", help="h, D, B, W, <n>min or <n>h.")] = None,
    covariates: Annotated[str | None, Opt("--covariates", help="Past covariates, a,b.")] = None,
    family: Annotated[str | None, Opt("--family", help="lstm, gru, rnn or esn.")] = None,
    horizon: Annotated[int | None, Opt("--horizon", help="Forecast steps.")] = None,
    lookback: Annotated[
        int | None, Opt("--lookback", help="History steps (searched unless fixed in [tune.space]).")
    ] = None,
    epochs: Annotated[int | None, Opt("--epochs", help="Epoch budget of each trial.")] = None,
    last_rows: Annotated[int | None, Opt("--last-rows", help="Newest N rows per series.")] = None,
    name: Annotated[str | None, Opt("--name", help="Registered model.")] = None,
    protocol: Annotated[str | None, Opt("--protocol", help="ratio or ett.")] = None,
    device: Annotated[str | None, Opt("--device", help="auto, cpu or cuda.")] = None,
    trials: Annotated[int | None, Opt("--trials", help="Trials to run (default 20).")] = None,
    time_budget: Annotated[
        float | None, Opt("--time-budget", help="Minutes for the whole search.")
    ] = None,
    ray_address: RayAddress = None,
    tracking_uri: Annotated[str | None, Opt("--tracking-uri", help="MLflow tracking URI.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Search hyperparameters on Ray Tune; train, register and gate the best trial."""
    from dataclasses import replace

    from training.data.sources.store import parse_series_ids
    from training.jobs.experiment import TrainSpec
    from training.jobs.preparation import load_frame
    from training.jobs.search_space import read_settings, read_spec
    from training.jobs.tune import tune

    if trials is not None and trials < 1:
        raise ExperimentError(f"--trials {trials}: must be >= 1. Fix: e.g. --trials 20")
    if time_budget is not None and not time_budget > 0:
        raise ExperimentError(f"--time-budget {time_budget}: must be > 0 minutes. Fix: e.g. 30")
    flags: dict[str, Any] = {
        "series": None if series is None else parse_series_ids(series),
        "dataset": dataset, "data": None if data is None else str(data),
        "time_col": time_col, "target_col": target_col, "id_col": id_col, "freq": freq,
        "covariates": None if covariates is None
        else tuple(c.strip() for c in covariates.split(",") if c.strip()),
        "family": family, "horizon": horizon, "lookback": lookback, "epochs": epochs,
        "last_rows": last_rows, "name": name, "protocol": protocol, "device": device,
    }  # fmt: skip
    spec = read_spec(config, **flags) if config else TrainSpec.from_flags(**flags)
    settings = read_settings(config)
    settings = replace(
        settings,
        trials=trials if trials is not None else settings.trials,
        time_budget=time_budget if time_budget is not None else settings.time_budget,
    )
    frame = load_frame(spec, database_url)
    # Ray's own experiment banner would interleave with our table (and with --json's stdout).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    common: dict[str, Any] = {
        "ray_address": ray_address, "tracking_uri": tracking_uri,
        "train_settings": TrainSettings(), "frame": frame,
    }  # fmt: skip
    if as_json:
        with json_stdout(as_json):
            result = tune(spec, settings, **common)
        typer.echo(json.dumps(result.to_json(), default=str))
        return
    table = TrialTable(spec.gate_metric)
    with table.live:
        result = tune(spec, settings, on_update=table.update, **common)
    console.line()
    console.print(_summary(result))
    gate = result.train.gate
    verdict = "promoted to champion" if gate.promoted else "kept as challenger"
    console.print(
        f"best trial {result.best.trial_id}: {result.best.params}\n"
        f"{result.train.model_name} v{result.train.version} {verdict} ({gate.reason}); "
        f"parent run {result.parent_run_id} on {result.cluster.nodes} Ray node(s), "
        f"{result.seconds:.0f} s",
        highlight=False,
        soft_wrap=True,
    )
