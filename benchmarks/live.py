"""Live-accuracy benchmarks: what the forecast log costs a request, and how fast ingestion
scores logged forecasts.

    python -m benchmarks.live [--part overhead,scoring] [--database-url URL]
        [--concurrency 32] [--requests 3000] [--rounds 3] [--store DIR] [--sides off,on]
        [--forecasts 10000] [--observations 100000] [--series 100] [--horizon 24]

overhead: trains (or reuses, with --store) the serving benchmark's champion (a GRU on ETTh1,
    benchmarks.serve), then starts `forecast serve --workers 1` on a SQLite series store twice
    per round, FORECAST_FORECAST_LOG=false then true, and drives single-series forecasts that
    name a `series_id` (so each one is logged when recording is on) at --concurrency with the
    closed-loop client of benchmarks.serve. The requests name --series stored series in turn
    (with 1, every request is the same forecast, and the writer writes each batch's repeats
    once). `--sides off,off` runs two identical servers instead: the ratio it finds is what
    this machine's noise alone makes. One JSON line per (round, side), then a summary line
    with, for each side, the median of the rounds' p50/p99 and the p50/p99 of all its timed
    requests pooled (steadier on a shared machine), and the ratios second side / first.
scoring: a fresh store (SQLite in a temp dir, or --database-url, e.g. a PostgreSQL database
    the benchmark may fill) with --series hourly series; --forecasts logged forecasts of
    --horizon steps spread over them; then --observations observations ingested in batches of
    1,000 per series, each batch scoring the logged steps it covers in its own transaction.
    Prints the ingestion time with scoring, the same ingestion into a store with no logged
    forecasts, the difference, and the scored points.

Run on 2 shared cores the figures include the load generator; report the machine with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.serve import KEY, _free_port, drive, ensure_champion, running, windows

T0 = datetime(2024, 1, 1)


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def overhead(args: argparse.Namespace) -> None:
    """Single-series p50/p99 with the forecast log off and on, side by side."""
    from training.store import SeriesStore

    root = Path(args.store or tempfile.mkdtemp(prefix="bench-live-"))
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root}/mlflow.db"
    name, version = ensure_champion(uri, "load/etth1", "gru", 24)
    store_url = f"sqlite:///{root}/series.db"
    ids = [f"bench-{i}" for i in range(args.series)]
    with SeriesStore(store_url) as store:
        for series_id in ids:
            store.upsert_series(series_id, frequency="h", target="OT")
    bodies: list[bytes] = []
    # side -> recording; "off,off" measures how far two identical servers differ here
    labels = [f"{s}{i + 1}" if args.sides.count(s) > 1 else s for i, s in enumerate(args.sides)]
    sides: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    pooled: dict[str, list[float]] = {label: [] for label in labels}
    for round_ in range(args.rounds):
        for label, side in zip(labels, args.sides, strict=True):
            recording = side == "on"
            port = _free_port()
            env = {
                **os.environ,
                "MLFLOW_TRACKING_URI": uri,
                "FORECAST_MODELS": name,
                "FORECAST_API_KEYS": KEY,
                "FORECAST_ADMIN_KEYS": KEY + "-admin",
                "FORECAST_ENV": "production",
                "FORECAST_DATABASE_URL": store_url,
                "FORECAST_FORECAST_LOG": str(recording).lower(),
            }
            command = [sys.executable, "-m", "training.cli", "serve", "--host", "127.0.0.1",
                       "--port", str(port), "--workers", "1"]  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            with running(command, env, f"{url}/v1/ready", root / "serve.log"):
                if not bodies:  # a history of the served model's look-back
                    info = httpx.get(f"{url}/v1/models/{name}", headers={"X-API-Key": KEY})
                    stamps, values = windows("load/etth1", int(info.json()["lookback"]), 1)
                    bodies = [
                        json.dumps(
                            {"timestamps": stamps[0].tolist(), "values": values[0].tolist(),
                             "horizon": 24, "series_id": series_id}
                        ).encode()
                        for series_id in ids
                    ]  # fmt: skip
                    probe = httpx.post(f"{url}/v1/models/{name}/forecast", content=bodies[0],
                                       headers={"X-API-Key": KEY,
                                                "Content-Type": "application/json"})  # fmt: skip
                    if probe.status_code != 200:
                        raise SystemExit(f"the benchmark request fails: {probe.text}")
                result = asyncio.run(
                    drive(f"{url}/v1/models/{name}/forecast", bodies, args.concurrency,
                          args.requests, warm_up=200, keep=pooled[label])
                )  # fmt: skip
                if recording:  # what the writer wrote and dropped, a second after the load
                    time.sleep(1.0)
                    metrics = httpx.get(f"{url}/metrics", headers={"X-API-Key": KEY})
                    result.update(_log_counts(metrics.text))
            sides[label].append(result)
            _emit({"part": "overhead", "round": round_, "side": label, "recording": recording,
                   "model": f"{name} v{version}", "concurrency": args.concurrency,
                   "series": args.series,
                   **result})  # fmt: skip
    summary: dict[str, Any] = {"part": "overhead", "summary": True}
    for key, results in sides.items():
        summary[f"p50_ms_{key}"] = statistics.median(r["p50_ms"] for r in results)
        summary[f"p99_ms_{key}"] = statistics.median(r["p99_ms"] for r in results)
        summary[f"errors_{key}"] = sum(r["errors"] for r in results)
        ms = np.asarray(pooled[key]) * 1000.0  # every timed request of the side
        summary[f"pooled_p50_ms_{key}"] = round(float(np.percentile(ms, 50)), 2)
        summary[f"pooled_p99_ms_{key}"] = round(float(np.percentile(ms, 99)), 2)
    first, second = labels  # the ratios: second side over first
    for q in ("p50", "p99"):
        summary[f"{q}_ratio"] = round(summary[f"{q}_ms_{second}"] / summary[f"{q}_ms_{first}"], 3)
        pooled_ratio = summary[f"pooled_{q}_ms_{second}"] / summary[f"pooled_{q}_ms_{first}"]
        summary[f"pooled_{q}_ratio"] = round(pooled_ratio, 3)
    _emit(summary)


def _log_counts(metrics: str) -> dict[str, int]:
    """The forecast log's counters in a /metrics text."""
    counts = {}
    for line in metrics.splitlines():
        for name in ("recorded", "dropped"):
            if line.startswith(f"forecast_log_{name}_total "):
                counts[f"log_{name}"] = int(float(line.split()[1]))
    return counts


def scoring(args: argparse.Namespace) -> None:
    """Ingest observations with and without logged forecasts to score; time both."""
    from training.store import SeriesStore
    from training.store.forecast_log import ForecastRecord

    per_series = args.observations // args.series
    origins_per_series = args.forecasts // args.series
    rng = np.random.default_rng(0)

    def ingest(store: SeriesStore) -> float:
        start = time.perf_counter()
        for s in range(args.series):
            for lo in range(0, per_series, 1000):
                n = min(1000, per_series - lo)
                stamps = [T0 + timedelta(hours=lo + i) for i in range(n)]
                store.upsert_observations(f"s{s}", stamps, rng.normal(size=n))
        return time.perf_counter() - start

    results = {}
    for with_forecasts in (False, True):
        url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-score-')}/s.db"
        with SeriesStore(url) as store:
            for s in range(args.series):
                store.upsert_series(f"s{s}", frequency="h", target="y")
            if with_forecasts:
                step = max(1, (per_series - args.horizon) // origins_per_series)
                records = [
                    ForecastRecord(
                        model="bench", version="1", series_id=f"s{s}",
                        origin=T0 + timedelta(hours=o * step),
                        timestamps=[T0 + timedelta(hours=o * step + h + 1)
                                    for h in range(args.horizon)],
                        mean=[0.0] * args.horizon,
                        intervals={80: ([-1.3] * args.horizon, [1.3] * args.horizon)},
                        naive=[0.0] * args.horizon,
                    )
                    for s in range(args.series) for o in range(origins_per_series)
                ]  # fmt: skip
                started = time.perf_counter()
                for lo in range(0, len(records), 1000):
                    store.forecast_log.record(records[lo : lo + 1000])
                record_seconds = time.perf_counter() - started
            seconds = ingest(store)
            scored = store.forecast_log.scores(model="bench") if with_forecasts else []
            if args.database_url:  # leave the database as found
                _clear(store)
        results[with_forecasts] = seconds
        line = {"part": "scoring", "logged_forecasts": args.forecasts if with_forecasts else 0,
                "observations": per_series * args.series, "series": args.series,
                "ingest_seconds": round(seconds, 3),
                "database": url.split(":", 1)[0]}  # fmt: skip
        if with_forecasts:
            line["record_seconds"] = round(record_seconds, 3)
            line["scored_points"] = scored[0].overall.points if scored else 0
            line["scoring_seconds"] = round(seconds - results[False], 3)
        _emit(line)


def _clear(store: Any) -> None:
    import sqlalchemy as sa

    from training.store.schema import forecast_log, observations, series

    with store.engine.begin() as conn:
        for table in (forecast_log, observations, series):
            conn.execute(sa.delete(table))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="overhead,scoring")
    parser.add_argument(
        "--sides", default="off,on", help="overhead: recording of the two servers of a round"
    )
    parser.add_argument("--database-url", default=None, help="scoring: a database to fill")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default=None, help="overhead: reuse this folder's model")
    parser.add_argument("--forecasts", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--series", type=int, default=100, help="stored series (both parts)")
    parser.add_argument("--horizon", type=int, default=24)
    args = parser.parse_args(argv)
    args.sides = args.sides.split(",")
    if len(args.sides) != 2 or not set(args.sides) <= {"off", "on"}:
        parser.error(
            f"--sides {','.join(args.sides)!r}: give two of off/on, e.g. off,on or off,off"
        )
    parts = args.part.split(",")
    if "scoring" in parts:
        scoring(args)
    if "overhead" in parts:
        overhead(args)


if __name__ == "__main__":
    main()
