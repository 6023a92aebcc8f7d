"""Serving cost of future covariates: one model with 5 future-known covariates against the same
model without them, behind one `forecast serve`.

    python -m benchmarks.serve_covariates [--concurrency 8] [--requests 2000] [--rounds 3]
        [--store DIR]

1. Trains (or reuses, with --store) two GRUs on the last 3,000 hours of bike rentals
   (demand/bike-hourly, H = 24, 1 epoch: speed, not accuracy, is measured): one with
   temp, atemp, hum, windspeed and weathersit as future covariates, one without.
2. Starts `forecast serve --workers 1` serving both, and for each round drives --requests
   timed single-series forecasts (after 200 warm-up) at --concurrency against each model in
   turn, with the closed-loop client of benchmarks.serve. The covariate request carries the
   history's values in `covariates` and the horizon's in `future_covariates`.

Output: one JSON line per (round, model), then a summary with the median p50/p99 of each and
their ratio. The load generator shares the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serve import KEY, _free_port, drive, running

DATASET = "demand/bike-hourly"
COVARIATES = ("temp", "atemp", "hum", "windspeed", "weathersit")
HORIZON = 24


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def champion(uri: str, name: str, future: tuple[str, ...]) -> None:
    """Register a champion GRU named `name` unless the store has one."""
    from mlflow import MlflowClient

    from training.jobs.experiment import TrainSpec
    from training.jobs.pipeline import train

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.get_model_version_by_alias(name, "champion")
        return
    except Exception:
        pass
    spec = TrainSpec(
        family="gru", horizon=HORIZON, dataset=DATASET, last_rows=3000, epochs=1, device="cpu",
        name=name, future_covariates=future,
    )  # fmt: skip
    result = train(spec, tracking_uri=uri, allow_worse_than_baseline=True)
    client.set_registered_model_alias(name, "champion", str(result.version))


def bodies(lookback: int) -> tuple[bytes, bytes]:
    """(without, with) request bodies: the newest `lookback` hours, H = 24."""
    from training.data.catalogue import load_dataset

    table = load_dataset(DATASET, covariates=COVARIATES).table
    history = table.iloc[-(lookback + HORIZON) : -HORIZON]
    ahead = table.iloc[-HORIZON:]
    base = {
        "timestamps": history["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S").tolist(),
        "values": history["value"].astype(float).tolist(),
        "horizon": HORIZON,
    }
    rich = {
        **base,
        "covariates": {c: history[c].astype(float).tolist() for c in COVARIATES},
        "future_covariates": {c: ahead[c].astype(float).tolist() for c in COVARIATES},
    }
    return json.dumps(base).encode(), json.dumps(rich).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    root = Path(args.store or tempfile.mkdtemp(prefix="bench-cov-serve-"))
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root}/mlflow.db"
    names = {"plain": "bench-bike-plain", "covariates": "bench-bike-future"}
    champion(uri, names["plain"], ())
    champion(uri, names["covariates"], COVARIATES)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ, "MLFLOW_TRACKING_URI": uri, "FORECAST_MODELS": ",".join(names.values()),
        "FORECAST_API_KEYS": KEY, "FORECAST_ADMIN_KEYS": KEY + "-admin",
        "FORECAST_ENV": "production", "FORECAST_DATABASE_URL": f"sqlite:///{root}/series.db",
    }  # fmt: skip
    command = [sys.executable, "-m", "training.cli", "serve", "--host", "127.0.0.1", "--port",
               str(port), "--workers", "1"]  # fmt: skip
    results: dict[str, list[dict[str, Any]]] = {"plain": [], "covariates": []}
    with running(command, env, f"{url}/v1/ready", root / "serve.log"):
        headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
        info = httpx.get(f"{url}/v1/models/{names['covariates']}", headers=headers).json()
        plain, rich = bodies(int(info["lookback"]))
        payload = {"plain": plain, "covariates": rich}
        for kind, body in payload.items():  # a bad body would time 4xx answers: refuse it
            probe = httpx.post(f"{url}/v1/models/{names[kind]}/forecast", content=body,
                               headers=headers)  # fmt: skip
            if probe.status_code != 200:
                raise SystemExit(f"{kind} request fails: {probe.text}")
        for round_ in range(args.rounds):
            for kind, body in payload.items():
                target = f"{url}/v1/models/{names[kind]}/forecast"
                r = asyncio.run(drive(target, body, args.concurrency, args.requests, 200))
                results[kind].append(r)
                _emit({"round": round_, "model": kind, "concurrency": args.concurrency, **r})
    summary: dict[str, Any] = {"summary": True, "concurrency": args.concurrency}
    for kind, rows in results.items():
        summary[f"p50_ms_{kind}"] = statistics.median(r["p50_ms"] for r in rows)
        summary[f"p99_ms_{kind}"] = statistics.median(r["p99_ms"] for r in rows)
    summary["p50_ratio"] = round(summary["p50_ms_covariates"] / summary["p50_ms_plain"], 3)
    summary["p99_ratio"] = round(summary["p99_ms_covariates"] / summary["p99_ms_plain"], 3)
    _emit(summary)


if __name__ == "__main__":
    main()
