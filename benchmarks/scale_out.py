"""Scale-out on Ray: batch forecasts of many stored series, and hyperparameter search on 1 vs 2
worker processes (issue 14).

    python -m benchmarks.scale_out [--part predict,tune] [--series 10000] [--trials 8]
        [--tune-family esn] [--root DIR]

predict: the serving benchmark's champion (a GRU on ETTh1 at H = 24, `benchmarks.serve`) and
    a SQLite series store seeded with --series hourly series of look-back + 24 rows each
    (generated, seeded). End to end as `forecast predict NAME --all --to-store` runs it: read
    every series from the store, forecast with 80/95% intervals, write the forecasts to the
    store's forecast log. Once in this process, once sharded over a local Ray started with
    this machine's cores (one actor per core, each loading the model once); Ray's start-up is
    timed separately. One JSON line per path with series/s and the three stages' seconds.
tune: `forecast tune`'s search (Optuna TPE + ASHA, the default space of --tune-family, then
    the best retrained and gated) with --trials trials on PJM hourly load (H = 24) with Ray
    limited to 1 CPU, then to 2 (one trial per CPU), each into a fresh MLflow store: wall
    time of each and the ratio. Then, for PJM and bike hourly (2 CPUs), the validation and
    test MAE of the tuned model against `forecast train` with the derived defaults.

Run on an otherwise idle machine; report the machine with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serve import ensure_champion

LEVELS = (80, 95)


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _threads() -> int:
    """torch's intra-op threads: the cores an in-process forecast uses."""
    import torch

    return int(torch.get_num_threads())


def seed_store(url: str, series: int, rows: int) -> float:
    """`series` hourly series of `rows` generated values each; the seconds it took."""
    from training.store import SeriesStore

    rng = np.random.default_rng(0)
    stamps = np.datetime64("2024-01-01T00") + np.arange(rows) * np.timedelta64(1, "h")
    t = np.arange(rows)
    started = time.perf_counter()
    with SeriesStore(url) as store:
        for i in range(series):
            sid = f"meter-{i:05d}"
            level, scale = rng.uniform(10, 1000), rng.uniform(1, 50)
            values = level + scale * np.sin(2 * np.pi * t / 24) + rng.normal(0, scale / 5, rows)
            store.upsert_series(sid, frequency="h", target="load")
            store.upsert_observations(sid, stamps, values)
    return time.perf_counter() - started


def predict_part(args: argparse.Namespace, root: Path) -> None:
    """In-process vs local Ray: read -> forecast -> write for every stored series."""
    import ray
    import sqlalchemy as sa

    from training.jobs.batch_predict import (
        history_rows,
        load_forecaster,
        predict_batch,
        record_to_store,
        resolve_model,
        store_frame,
    )
    from training.registry.tracking import Tracker
    from training.store import SeriesStore
    from training.store.schema import forecast_log

    uri = f"sqlite:///{root}/mlflow.db"
    name, _ = ensure_champion(uri, "load/etth1", "gru", 24)
    ref = resolve_model(Tracker(uri), name)
    meta = load_forecaster(ref.files).meta
    url = f"sqlite:///{root}/series.db"
    if not (root / "series.db").exists():
        seconds = seed_store(url, args.series, meta.lookback + 24)
        _emit({"part": "predict", "seeded_series": args.series, "seed_seconds": round(seconds, 1)})
    for path in ("in-process", "ray"):
        with SeriesStore(url) as store, store.engine.begin() as conn:
            conn.execute(sa.delete(forecast_log))  # each path writes every forecast afresh
        ray_start = 0.0
        if path == "ray":
            started = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False)
            ray_start = time.perf_counter() - started
        try:
            t0 = time.perf_counter()
            frame = store_frame(url, None, meta.covariates, last=history_rows(meta))
            t1 = time.perf_counter()
            result = predict_batch(ref, frame, horizon=24, levels=LEVELS, use_ray=path == "ray")
            t2 = time.perf_counter()
            recorded = record_to_store(result, frame, url, LEVELS)
            t3 = time.perf_counter()
            cpus = ray.cluster_resources().get("CPU") if path == "ray" else _threads()
        finally:
            if path == "ray":
                ray.shutdown()
        _emit(
            {
                "part": "predict",
                "path": path,
                "model": f"{name} v{ref.version} ({meta.family}, lookback {meta.lookback})",
                "series": frame.n_series,
                "recorded": recorded,
                "horizon": 24,
                "cpus": cpus,
                "read_seconds": round(t1 - t0, 2),
                "forecast_seconds": round(t2 - t1, 2),
                "write_seconds": round(t3 - t2, 2),
                "total_seconds": round(t3 - t0, 2),
                "series_per_second": round(frame.n_series / (t3 - t0)),
                "forecast_series_per_second": round(frame.n_series / (t2 - t1)),
                "ray_start_seconds": round(ray_start, 1),
            }
        )


def tune_part(args: argparse.Namespace, root: Path) -> None:
    """8 trials on 1 vs 2 CPUs; tuned vs derived defaults on PJM and bike."""
    import ray

    from training.jobs.experiment import TrainSpec
    from training.jobs.pipeline import train
    from training.jobs.search_space import TuneSettings
    from training.jobs.tune import tune

    def spec(dataset: str) -> TrainSpec:
        return TrainSpec(family=args.tune_family, horizon=24, dataset=dataset, device="cpu")

    def run(dataset: str, cpus: int, store: str) -> Any:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            started = time.perf_counter()
            result = tune(
                spec(dataset),
                TuneSettings(trials=args.trials, seed=0),
                tracking_uri=f"sqlite:///{root}/{store}.db",
            )
            return result, time.perf_counter() - started
        finally:
            ray.shutdown()

    walls = {}
    results = {}
    for cpus in (1, 2):
        result, seconds = run("load/pjm", cpus, f"tune-pjm-{cpus}cpu")
        walls[cpus] = seconds
        results[("load/pjm", cpus)] = result
        _emit(
            {
                "part": "tune",
                "dataset": "load/pjm",
                "family": args.tune_family,
                "trials": len(result.trials),
                "cpus": cpus,
                "nodes_used": len({t.node_id for t in result.trials}),
                "wall_seconds": round(seconds, 1),
                "search_seconds": round(result.seconds, 1),
            }
        )
    _emit({"part": "tune", "speedup_2_vs_1_cpu": round(walls[1] / walls[2], 2)})
    results[("demand/bike-hourly", 2)], _ = run("demand/bike-hourly", 2, "tune-bike-2cpu")
    for dataset in ("load/pjm", "demand/bike-hourly"):
        tuned = results[(dataset, 2)].train.metrics
        default = train(spec(dataset), tracking_uri=f"sqlite:///{root}/defaults.db").metrics
        _emit(
            {
                "part": "tune-vs-defaults",
                "dataset": dataset,
                "family": args.tune_family,
                "trials": args.trials,
                "default_val_mae": round(default["val_mae"], 2),
                "tuned_val_mae": round(tuned["val_mae"], 2),
                "default_test_mae": round(default["test_mae"], 2),
                "tuned_test_mae": round(tuned["test_mae"], 2),
                "best_params": results[(dataset, 2)].best.params,
            }
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="predict,tune")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--tune-family", default="esn", choices=("esn", "gru", "lstm", "rnn"))
    parser.add_argument("--root", default=None, help="reuse this folder's stores (default: temp)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.part.split(",") if p.strip()]
    unknown = set(parts) - {"predict", "tune"}
    if unknown or not parts:
        parser.error(f"--part {args.part!r}: use predict, tune or both (comma-separated)")
    if args.series < 1 or args.trials < 1:
        parser.error("--series and --trials must be >= 1")
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    if "predict" in parts:
        predict_part(args, root)
    if "tune" in parts:
        tune_part(args, root)


if __name__ == "__main__":
    main()
