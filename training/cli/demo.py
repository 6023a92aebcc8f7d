"""`make demo`: train the bundled models into a local MLflow, show the leaderboards, serve them.

Trains LSTM, GRU and ESN forecasters on one load, one stock and one demand dataset (the
experiment files in configs/, with fewer epochs so the demo takes minutes on a laptop),
registers each as a version of its dataset's model, prints each model's leaderboard, writes a
ready-made forecast request per model and starts the service on 127.0.0.1, with the web
console's URL printed next to the curl lines.

A second `make demo` reuses the trained models (pass `--retrain` to train again).

    python -m training.cli.demo [--epochs 3] [--port 8000] [--retrain] [--no-serve]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from training.cli.console import console, say

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / ".demo"
MODELS = ("load-etth1", "stock-aapl", "demand-bike-hourly")
DEMO_FAMILIES = ("lstm", "gru", "esn")  # the configs the demo trains
TRACKING_URI = f"sqlite:///{DEMO_DIR / 'mlruns' / 'mlflow.db'}"  # kept apart from ./mlruns


def train_all(uri: str, epochs: int, retrain: bool) -> None:
    """Train every (model, family) pair, unless the model already has a champion."""
    from training.cli.train import train_command
    from training.registry.tracking import Tracker

    tracker = Tracker(uri)
    for name in MODELS:
        if not retrain and "champion" in tracker.aliases(name):
            console.print(f"{name}: already trained in {uri} (use --retrain to train again)")
            continue
        for family in DEMO_FAMILIES:
            config = REPO / "configs" / f"{name}-{family}.toml"
            console.rule(f"{name}: {family}")
            train_command(config=config, epochs=epochs, tracking_uri=uri)
        fallback = REPO / "configs" / f"{name}-naive.toml"
        if "champion" not in tracker.aliases(name) and fallback.exists():
            # The gate refused every learned family (on daily stocks, nothing may beat the
            # random walk): the random walk itself serves, as `--family auto` would choose.
            console.rule(f"{name}: naive (no learned family beat the baselines)")
            train_command(config=fallback, tracking_uri=uri)


def show_leaderboards(uri: str) -> None:
    """One leaderboard per model, read back from MLflow."""
    from training.cli.train import compare_command

    for name in MODELS:
        compare_command(name=name, tracking_uri=uri)


def write_requests(uri: str) -> dict[str, Path]:
    """A forecast request per model built from the newest real data, for the printed curl."""
    from training.data.catalogue import load_dataset
    from training.jobs.experiment import TrainSpec
    from training.registry.tracking import Tracker

    tracker = Tracker(uri)
    paths: dict[str, Path] = {}
    for name in MODELS:
        champion = tracker.aliases(name).get("champion")
        if champion is None:
            continue
        info = tracker.version(name, champion)
        lookback = int(info.tags.get("lookback", "0"))
        spec = TrainSpec.from_toml(REPO / "configs" / f"{name}-{DEMO_FAMILIES[0]}.toml")
        frame = load_dataset(spec.dataset or "", covariates=spec.covariates or None)
        table = frame.table.tail(lookback)
        body: dict[str, object] = {
            "timestamps": [t.isoformat() for t in table["timestamp"]],
            "values": [float(v) for v in table["value"]],
            "horizon": spec.horizon,
            "levels": [80, 95],
        }
        if spec.covariates:
            body["covariates"] = {c: [float(v) for v in table[c]] for c in spec.covariates}
        path = DEMO_DIR / f"request-{name}.json"
        path.write_text(json.dumps(body))
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> None:
    """Run the demo (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m training.cli.demo", description=__doc__)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per recurrent model")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--retrain", action="store_true", help="train even if trained before")
    parser.add_argument("--no-serve", action="store_true", help="stop after the leaderboards")
    args = parser.parse_args(argv)

    (DEMO_DIR / "mlruns").mkdir(parents=True, exist_ok=True)
    train_all(TRACKING_URI, args.epochs, args.retrain)
    show_leaderboards(TRACKING_URI)
    requests = write_requests(TRACKING_URI)
    if args.no_serve:
        return
    os.environ["MLFLOW_TRACKING_URI"] = TRACKING_URI
    os.environ.setdefault("FORECAST_ENV", "development")
    os.environ.setdefault("FORECAST_DATABASE_URL", f"sqlite:///{DEMO_DIR / 'series.db'}")
    os.environ.setdefault("FORECAST_MODELS", ",".join(requests))
    base = f"http://127.0.0.1:{args.port}"
    console.rule("serving")
    console.print(f"API docs: {base}/docs    metrics: {base}/metrics    stop: Ctrl-C")
    for name, path in requests.items():
        say(
            f"curl -s -X POST {base}/v1/models/{name}/forecast "
            f"-H 'Content-Type: application/json' -d @{path.relative_to(REPO)}"
        )
    keyless = not (os.environ.get("FORECAST_API_KEYS") or os.environ.get("FORECAST_ADMIN_KEYS"))
    say(
        f"web console: {base}/console/  (open it in a browser; "
        + ("choose Connect with the key field empty)" if keyless else "connect with a read key)")
    )
    sys.stdout.flush()
    from training.cli.serve import serve

    serve(host="127.0.0.1", port=args.port, workers=1, log_level="info", access_log=True)


if __name__ == "__main__":
    main()
