"""`forecast retrain NAME` and `forecast schedule`.

`retrain` runs one cycle now (`training.retraining.retrain.retrain`) and prints the decision,
or with `--json` exactly one JSON object. `schedule` serves the cron jobs of a schedule file
until SIGTERM/SIGINT, logging one line per cycle to stderr; `--once` runs the jobs that are
due and exits (for cron or a Kubernetes CronJob).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from training.cli import options
from training.cli.console import console, emit, json_stdout, user_errors


def _setup_logging() -> None:
    """Log lines to stderr (stdout stays for results); MLflow's chatter only from warnings up."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@user_errors
def retrain_command(
    name: Annotated[str, typer.Argument(help="Registered model, e.g. load-etth1.")],
    as_json: options.AsJson = False,
    tracking_uri: options.TrackingUri = None,
    database_url: options.DatabaseUrl = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option(
            "--lock-timeout", help="Seconds to wait for a running cycle (default: no limit)."
        ),
    ] = None,
    allow_worse_than_baseline: options.AllowWorseThanBaseline = False,
    allow_contract_change: options.AllowContractChange = False,
    force: Annotated[
        bool, typer.Option("--force", help="Train even when no observation was added since.")
    ] = False,
) -> None:
    """Retrain a registered model on fresh data; promote the challenger if it beats the champion."""
    from training.retraining.retrain import retrain

    with json_stdout(as_json):
        result = retrain(
            name, tracking_uri=tracking_uri, database_url=database_url, lock_timeout=lock_timeout,
            allow_worse_than_baseline=allow_worse_than_baseline,
            allow_contract_change=allow_contract_change, force=force,
        )  # fmt: skip
    if as_json:
        emit(result.to_json())
        return
    if result.skipped is not None:
        console.print(f"retrain {name}: skipped: {result.skipped}", markup=False)
        return
    scores = result.to_json()["scores"]
    table = Table(title=f"retrain {name}: {'promoted' if result.promoted else 'not promoted'}")
    table.add_column("")
    table.add_column("value")
    table.add_row("challenger", f"v{result.challenger_version}")
    table.add_row(
        "champion", f"v{result.champion_version_before} -> v{result.champion_version_after}"
    )
    table.add_row(f"val {scores['metric']}", f"{_fmt(scores['challenger'])} (challenger)")
    table.add_row("", f"{_fmt(scores['champion'])} (champion, same windows)")
    table.add_row("margin", f"{scores['margin']:g}")
    table.add_row("data", f"{result.rows} rows, {result.start} .. {result.end} ({result.source})")
    table.add_row("run", result.run_id)
    console.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.6g}"


@user_errors
def schedule_command(
    config: Annotated[
        Path, typer.Option("--config", help="Schedule file with [[jobs]] name/cron tables.")
    ] = Path("configs/schedule.toml"),
    once: Annotated[
        bool, typer.Option("--once", help="Run every due job once, then exit.")
    ] = False,
    database_url: options.DatabaseUrl = None,
    tracking_uri: options.TrackingUri = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --once or --status: print one JSON object.")
    ] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="Print the jobs and their latest cycles (drift figures too), exit."
        ),
    ] = False,
) -> None:
    """Retrain registered models on their cron schedules (state kept in the database).

    A job with trigger = "drift" checks the champion's live accuracy at each fire and retrains
    only when it has drifted; --status shows each decision with its figures."""
    from training.errors import TrackingError
    from training.registry.tracking import Tracker
    from training.retraining.schedule import load_schedule
    from training.retraining.scheduler import Scheduler, job_table

    _setup_logging()
    try:
        tracker: Tracker | None = Tracker(tracking_uri)
    except TrackingError as exc:
        # The scheduler outlives registry outages: start anyway, each cycle reports its error.
        logging.getLogger(__name__).warning("schedule: specs not checked at start: %s", exc)
        tracker = None
    jobs = load_schedule(config, tracker)
    with Scheduler(jobs, database_url, tracking_uri) as scheduler:
        if status:
            _print_status(scheduler, as_json)
            return
        if not once:
            scheduler.serve_forever()
            return
        with json_stdout(as_json):
            cycles = scheduler.run_pending()
        states = job_table(scheduler.job_states(), scheduler.jobs)
    failed = [c for c in cycles if c.status not in ("succeeded", "skipped")]
    if as_json:
        emit({"cycles": [_cycle_json(c) for c in cycles], "jobs": states})
    else:
        if not cycles:
            console.print("no job is due", highlight=False)
        for c in cycles:
            detail = c.error if c.error else f"promoted={c.promoted} versions={c.versions}"
            console.print(f"{c.name}: {c.status} ({detail})", markup=False, highlight=False)
        for s in states:
            console.print(
                f"{s['name']}: next run {s['next_run_at']} UTC"
                + ("" if s["active"] else " (paused: not in the config)"),
                markup=False,
                highlight=False,
            )
    if failed:
        raise typer.Exit(code=1)


def _print_status(scheduler: Any, as_json: bool) -> None:
    """The jobs and their latest cycles, as a table (or one JSON object)."""
    from training.retraining.scheduler import job_table

    states = job_table(scheduler.job_states(), scheduler.jobs)
    cycles = scheduler.runs(limit=20)
    if as_json:
        emit({"jobs": states, "cycles": [_cycle_json(c) for c in cycles]})
        return
    jobs = Table(title="jobs")
    for column in ("name", "cron", "trigger", "next run (UTC)", "last run", "last status"):
        jobs.add_column(column)
    for s in states:
        name = s["name"] + ("" if s["active"] else " (paused)")
        times = (str(s[key]) for key in ("next_run_at", "last_run_at", "last_status"))
        jobs.add_row(name, s["cron"], str(s["trigger"] or "-"), *times)
    console.print(jobs)
    runs = Table(title="latest cycles")
    for column in ("id", "name", "started (UTC)", "status", "promoted", "detail"):
        runs.add_column(column)
    for c in cycles:
        detail = c.error or ", ".join(
            f"{k}={v}" for k, v in (c.versions or {}).items() if k != "drift"
        )
        drift = (c.versions or {}).get("drift")
        if drift and c.status != "skipped":
            detail += f"; {drift['reason']}"
        runs.add_row(
            str(c.id), c.name, c.started_at.isoformat(timespec="seconds"), c.status,
            "-" if c.promoted is None else str(c.promoted), detail,
        )  # fmt: skip
    console.print(runs)


def _cycle_json(c: Any) -> dict[str, Any]:
    keys = ("name", "status", "scheduled_for", "missed", "promoted", "versions", "error")
    return {key: getattr(c, key) for key in keys} | {"scheduled_for": c.scheduled_for.isoformat()}
