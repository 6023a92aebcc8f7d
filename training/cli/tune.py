"""`forecast tune`: hyperparameter search on Ray Tune, then the best trial trained, registered
and gated like `forecast train`.

Takes the experiment file or the data/model flags of `forecast train`, plus `--trials`,
`--time-budget` and `--ray-address`. While it runs, a live table shows every trial; at the end
a summary ranks them and names the registered version. `--json` prints one JSON object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from training.cli import options
from training.cli.console import console, emit, json_stdout, say, user_errors
from training.cli.train import spec_flags
from training.errors import ExperimentError
from training.settings import TrainSettings

Opt = typer.Option


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
    dataset: options.Dataset = None,
    data: options.DataFile = None,
    series: options.Series = None,
    database_url: options.DatabaseUrl = None,
    time_col: options.TimeCol = None,
    target_col: options.TargetCol = None,
    id_col: options.IdCol = None,
    freq: options.Freq = None,
    covariates: options.Covariates = None,
    family: Annotated[str | None, Opt("--family", help="lstm, gru, rnn or esn.")] = None,
    horizon: options.Horizon = None,
    lookback: Annotated[
        int | None, Opt("--lookback", help="History steps (searched unless fixed in [tune.space]).")
    ] = None,
    epochs: Annotated[int | None, Opt("--epochs", help="Epoch budget of each trial.")] = None,
    last_rows: options.LastRows = None,
    name: options.RegisteredName = None,
    protocol: options.Protocol = None,
    device: options.Device = None,
    trials: Annotated[int | None, Opt("--trials", help="Trials to run (default 20).")] = None,
    time_budget: Annotated[
        float | None, Opt("--time-budget", help="Minutes for the whole search.")
    ] = None,
    ray_address: options.RayAddress = None,
    tracking_uri: options.TrackingUri = None,
    as_json: options.AsJson = False,
) -> None:
    """Search hyperparameters on Ray Tune; train, register and gate the best trial."""
    from dataclasses import replace

    from training.jobs.experiment import TrainSpec
    from training.jobs.preparation import load_frame
    from training.jobs.search_space import read_settings, read_spec
    from training.jobs.tune import tune

    if trials is not None and trials < 1:
        raise ExperimentError(f"--trials {trials}: must be >= 1. Fix: e.g. --trials 20")
    if time_budget is not None and not time_budget > 0:
        raise ExperimentError(f"--time-budget {time_budget}: must be > 0 minutes. Fix: e.g. 30")
    flags = spec_flags(
        series, data, dataset=dataset, time_col=time_col, target_col=target_col, id_col=id_col,
        freq=freq, covariates=covariates, family=family, horizon=horizon, lookback=lookback,
        epochs=epochs, last_rows=last_rows, name=name, protocol=protocol, device=device,
    )  # fmt: skip
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
        emit(result.to_json())
        return
    table = TrialTable(spec.gate_metric)
    with table.live:
        result = tune(spec, settings, on_update=table.update, **common)
    console.line()
    console.print(_summary(result))
    gate = result.train.gate
    verdict = "promoted to champion" if gate.promoted else "kept as challenger"
    say(
        f"best trial {result.best.trial_id}: {result.best.params}\n"
        f"{result.train.model_name} v{result.train.version} {verdict} ({gate.reason}); "
        f"parent run {result.parent_run_id} on {result.cluster.nodes} Ray node(s), "
        f"{result.seconds:.0f} s"
    )
