"""The `forecast` command line: one typer app, every command named here.

Sub-modules hold one command group each (`data`, `train`, `retrain`, `serve`, `store`) and
`demo` (`python -m training.cli.demo`); `console` holds the shared rich consoles and the
user-error policy. This package is the top of `training/`: it may import every other
sub-package, and nothing in `training/` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from training.cli import data, predict, retrain, serve, store, train, tune


def build_app() -> typer.Typer:
    """Assemble the `forecast` app from the command functions of each module."""
    cli = typer.Typer(
        name="forecast",
        help="Train, compare and serve recurrent forecasters (LSTM, GRU, RNN, ESN).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    commands: dict[str, Callable[..., Any]] = {
        "datasets": data.datasets_command,
        "baseline": data.baseline_command,
        "load-series": store.load_series_command,
        "train": train.train_command,
        "compare": train.compare_command,
        "promote": train.promote_command,
        "tune": tune.tune_command,
        "predict": predict.predict_command,
        "retrain": retrain.retrain_command,
        "schedule": retrain.schedule_command,
        "serve": serve.serve,
    }
    for name, fn in commands.items():
        cli.command(name)(fn)
    return cli


app = build_app()


def main() -> None:
    """Run the `forecast` CLI."""
    app()
