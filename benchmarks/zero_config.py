"""Zero-config benchmark: the path a new user takes, `forecast train` with flags only.

    python -m benchmarks.zero_config [--quick] [--datasets pjm,bike,...] [--families gru,esn,auto]
        [--time-budget S] [--json]

Every bundled file is passed as a plain `--data` CSV (nothing dataset-specific: no experiment
file, no `--dataset`, no covariates, no look-back), with the horizon as the only modelling flag:

- pjm: PJM hourly load (data/load/PJM.csv, "cleaned demand (MW)"), H = 24;
- bike: Capital Bikeshare hourly rentals (data/demand/hour.csv; the user joins `dteday` and `hr`
  into one timestamp column first, as the file has none), H = 24;
- stocks: the five daily closes in data/stock/ (frequency inferred: business days), H = 5;
- sales: the weekly sales panel (811 products x 52 weeks), reshaped to long form (id, week,
  units), one global model, H = 4;
- etth1: ETTh1's OT column as any hourly CSV (ratio split, original units), H = 24.

For each dataset and family (gru, lstm, esn, auto) one `python -m training.cli train ... --json`
subprocess runs against a fresh MLflow store in a temporary folder; its JSON gives the test
MAE, the naive and seasonal-naive test MAE on the same windows, the interval coverage and the
training time. One JSON line per result; then, unless --json, a table. Targets (issue 12):
auto <= 0.80x seasonal naive on hourly load and demand, <= 1.00x naive on every stock; each
neural family <= 0.90x seasonal naive on hourly load/demand; coverage 77-83% / 92-98%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import Column, report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
FAMILIES = ("gru", "lstm", "esn", "auto")
DATASETS = ("pjm", "bike", "stocks", "sales", "etth1")
QUICK = {"datasets": ("pjm", "bike"), "families": ("gru", "esn", "auto")}
CANDIDATE_KEYS = ("family", "test_mae_vs_naive", "test_mae_vs_seasonal_naive", "train_seconds",
                  "status")  # fmt: skip
STOCKS = ("AAPL", "AMZN", "GOOG", "GOOGL", "MSFT")
COLUMNS: list[Column] = [
    ("dataset", "dataset", ">8"),
    ("family", "family", ">6"),
    ("chosen", "chosen", ">14"),
    ("mae_vs_naive", "/naive", ">7.3f"),
    ("mae_vs_seasonal_naive", "/snaive", ">7.3f"),
    ("coverage_80", "cov80", ">6.3f"),
    ("coverage_95", "cov95", ">6.3f"),
    ("train_seconds", "train s", ">8.1f"),
    ("promoted", "promoted", ">8"),
]


def _bike_csv(folder: Path) -> Path:
    """hour.csv with one timestamp column (dteday + hr hours): what a user prepares."""
    raw = pd.read_csv(DATA / "demand" / "hour.csv")
    stamps = pd.to_datetime(raw["dteday"]) + pd.to_timedelta(raw["hr"], unit="h")
    path = folder / "bike-hourly.csv"
    pd.DataFrame({"timestamp": stamps, "cnt": raw["cnt"]}).to_csv(path, index=False)
    return path


def _sales_csv(folder: Path) -> Path:
    """The wide weekly sales file as a long table (product, week start, units)."""
    raw = pd.read_csv(DATA / "demand" / "Sales_Transactions_Dataset_Weekly.csv")
    weeks = [c for c in raw.columns if c.startswith("W")]
    long = raw.melt(id_vars="Product_Code", value_vars=weeks, var_name="week", value_name="units")
    start = pd.Timestamp("2018-01-01")  # any Monday: the file has week numbers only
    long["week"] = start + pd.to_timedelta(long["week"].str[1:].astype(int) * 7, unit="D")
    path = folder / "sales-weekly.csv"
    long.sort_values(["Product_Code", "week"]).to_csv(path, index=False)
    return path


def jobs(datasets: tuple[str, ...], folder: Path) -> Iterator[tuple[str, list[str]]]:
    """(label, data flags) of every series job of the chosen datasets."""
    for name in datasets:
        if name == "pjm":
            yield "pjm", ["--data", str(DATA / "load" / "PJM.csv"), "--time-col", "date_time",
                          "--target-col", "cleaned demand (MW)", "--horizon", "24"]  # fmt: skip
        elif name == "bike":
            yield "bike", ["--data", str(_bike_csv(folder)), "--time-col", "timestamp",
                           "--target-col", "cnt", "--horizon", "24"]  # fmt: skip
        elif name == "stocks":
            for ticker in STOCKS:
                yield ticker.lower(), ["--data", str(DATA / "stock" / f"{ticker}.csv"),
                                       "--time-col", "Date", "--target-col", "Close",
                                       "--horizon", "5"]  # fmt: skip
        elif name == "sales":
            yield "sales", ["--data", str(_sales_csv(folder)), "--time-col", "week",
                            "--target-col", "units", "--id-col", "Product_Code",
                            "--horizon", "4"]  # fmt: skip
        elif name == "etth1":
            yield "etth1", ["--data", str(DATA / "load" / "ETTh1.csv"), "--time-col", "date",
                            "--target-col", "OT", "--horizon", "24"]  # fmt: skip


def run_one(label: str, flags: list[str], family: str, uri: str, budget: float) -> dict[str, Any]:
    """One `forecast train --json` subprocess; its JSON reduced to the benchmark's fields."""
    cmd = [sys.executable, "-m", "training.cli", "train", *flags, "--family", family,
           "--name", f"{label}-{family}", "--tracking-uri", uri, "--json"]  # fmt: skip
    if family == "auto" and budget > 0:
        cmd += ["--time-budget", str(budget)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"dataset": label, "family": family, "error": done.stderr.strip()[-500:]}
    out = json.loads(done.stdout)
    mae = out["metrics"]["test_mae"]
    naive = out["baselines"]["naive"]["mae"]
    season = out["baselines"]["seasonal_naive"]["mae"]
    candidates = out.get("candidates") or []
    train_s = sum(c.get("train_seconds") or 0.0 for c in candidates) or out["fit"]["seconds"]
    return {
        "dataset": label,
        "family": family,
        "chosen": out.get("family", family),
        "horizon": int(flags[flags.index("--horizon") + 1]),
        "test_mae": mae,
        "naive_mae": naive,
        "seasonal_naive_mae": season,
        "mae_vs_naive": mae / naive,
        "mae_vs_seasonal_naive": mae / season,
        "coverage_80": out["metrics"].get("test_coverage_80"),
        "coverage_95": out["metrics"].get("test_coverage_95"),
        "train_seconds": train_s,
        "wall_seconds": wall,
        "epochs": out["fit"]["epochs"],
        "best_epoch": out["fit"]["best_epoch"],
        "still_improving": out["fit"].get("still_improving"),
        "lookback": out["data"]["lookback"],
        "promoted": out["promoted"],
        "gate": out["gate"].get("decision"),
        "candidates": [{k: c.get(k) for k in CANDIDATE_KEYS} for c in candidates],
    }


def results(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Every (dataset job, family) result, measured lazily (printed as it arrives)."""
    with tempfile.TemporaryDirectory(prefix="zero-config-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        for label, flags in jobs(args.datasets, folder):
            for family in args.families:
                yield run_one(label, flags, family, uri, args.time_budget)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zero_config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"only {','.join(QUICK['datasets'])} x {','.join(QUICK['families'])}",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=240.0,
        help="seconds of training for each auto job (0 = none)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines only, no table")
    args = parser.parse_args(argv)
    args.datasets = tuple(d for d in args.datasets.split(",") if d)
    args.families = tuple(f for f in args.families.split(",") if f)
    if args.quick:
        args.datasets, args.families = QUICK["datasets"], QUICK["families"]
    for value, known, flag in ((args.datasets, DATASETS, "--datasets"),
                               (args.families, FAMILIES, "--families")):  # fmt: skip
        bad = sorted(set(value) - set(known))
        if bad:
            parser.error(f"{flag}: unknown {bad}; use a subset of {','.join(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one JSON line per result (then a table unless --json)."""
    args = _parse(argv)
    rows = ({**r, **{k: r.get(k, float("nan")) for k, _, _ in COLUMNS if k not in r}}
            for r in results(args))  # fmt: skip
    report(rows, COLUMNS, args.json)


if __name__ == "__main__":
    main()
