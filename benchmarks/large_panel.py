"""Large panels: memory and speed of a global GRU's training windows, gathered by index per batch
versus materialised all at once (the layout before windows were gathered by index).

    python -m benchmarks.large_panel [--series 30000] [--steps 1000] [--materialised 1000,3000]
        [--lookback 168] [--horizon 24] [--batches 200] [--batch-size 256] [--hidden 64]
        [--fit] [--device auto|cpu|cuda]

The panel is generated (seeded): hourly series with a daily and a weekly cycle, a level and a
scale of their own and AR(1) noise, all on one calendar, with hour/weekday calendar features as
model inputs (as `forecast train` gives hourly data). Each measurement runs in a child process
of its own, so its peak RSS is that mode's alone:

- `index` at --series: `RecurrentForecaster._windows` (what `fit` builds: the series end to end
  plus one start row per window), then --batches training batches of --batch-size drawn by a
  seeded permutation, through the loop's own epoch function (forward, backward, clipping,
  AdamW step). Prints build seconds, training windows/s, peak RSS (and peak CUDA memory).
- `materialised` at each --materialised size: the same, after copying every window out once
  (`PanelWindows.materialise()`: target [N, L+H], calendar [N, L+H, K]), which is what training
  held before. The bytes that layout needs at --series are printed as computed, since at
  30,000 x 1,000 they exceed the machine's memory.
- `--fit` adds a real `RecurrentForecaster.fit` on the --series panel (one epoch of 250,000
  sampled windows, validation on each series' last 24 windows, conformal calibration): peak
  RSS of the whole training call a user makes.

One JSON line per measurement. Run on an otherwise idle machine; report the machine with them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from models.base import SeriesData
from models.features import calendar_features
from models.loop import LoopSettings, _train_epoch, resolve_device
from models.recurrent import RecurrentConfig, RecurrentForecaster

START = np.datetime64("2024-01-01T00", "s")
VAL_WINDOWS = 24  # validation windows per series in --fit


def panel(series: int, steps: int, seed: int = 0) -> list[SeriesData]:
    """`series` hourly series of `steps` values sharing one calendar."""
    rng = np.random.default_rng(seed)
    stamps = START + np.arange(steps) * np.timedelta64(1, "h")
    t = np.arange(steps, dtype=np.float32)
    shape = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168)  # [T]
    noise = rng.standard_normal((series, steps), dtype=np.float32)
    for j in range(1, steps):  # AR(1) with phi = 0.8, every series at once
        noise[:, j] += 0.8 * noise[:, j - 1]
    level = rng.uniform(10, 1000, (series, 1)).astype(np.float32)
    scale = rng.uniform(1, 100, (series, 1)).astype(np.float32)
    values = level + scale * (shape + 0.2 * noise)  # [series, T]
    return [SeriesData(values[i], stamps, series_id=f"s{i}") for i in range(series)]


def _config(args: argparse.Namespace, **extra: Any) -> RecurrentConfig:
    return RecurrentConfig(
        family="gru", lookback=args.lookback, max_horizon=args.horizon, frequency="h",
        calendar=True, hidden_size=args.hidden, segment_length=24, norm="revin",
        batch_size=args.batch_size, device=args.device, **extra,
    )  # fmt: skip


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _materialised_gb(windows: int, args: argparse.Namespace) -> float:
    """Bytes of target [N, L+H] + calendar [N, L+H, K] float32 when every window is copied."""
    k = calendar_features(START + np.arange(2) * np.timedelta64(1, "h"), "h").shape[1]
    return windows * (args.lookback + args.horizon) * (1 + k) * 4 / 2**30


def child(mode: str, series: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process (see the module docstring)."""
    device = resolve_device(args.device)
    torch.manual_seed(0)
    data = panel(series, args.steps)
    generated = _peak_rss_gb()
    if mode == "fit":
        return _fit(data, args, generated)
    model = RecurrentForecaster(_config(args)).to(device)
    start = time.perf_counter()
    windows = model._windows(data, device)
    if mode == "materialised":
        windows = windows.materialise()  # type: ignore[assignment]
    build = time.perf_counter() - start
    n = len(windows)
    settings = LoopSettings(1, args.batch_size, 1e-3, 1e-4, 1, 1.0, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(n, generator=gen)[: (args.batches + 5) * args.batch_size].to(device)

    def loss(module: torch.nn.Module, batch: Any) -> torch.Tensor:
        return module._loss(batch)  # type: ignore[operator, no-any-return]

    _train_epoch(model, windows, order[: 5 * args.batch_size], loss, opt, settings)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    _train_epoch(model, windows, order[5 * args.batch_size :], loss, opt, settings)
    seconds = time.perf_counter() - start  # _train_epoch's float() synchronised
    return {
        "mode": mode,
        "series": series,
        "steps": args.steps,
        "windows": n,
        "materialised_gb_computed": round(_materialised_gb(n, args), 2),
        "build_seconds": round(build, 2),
        "train_windows_per_second": round(args.batches * args.batch_size / seconds),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
        "rss_after_generating_gb": round(generated, 2),
        "cuda_peak_gb": _cuda_peak(device),
        "device": str(device),
    }


def _fit(data: list[SeriesData], args: argparse.Namespace, generated: float) -> dict[str, Any]:
    """A real fit: one epoch of 250,000 sampled windows, then validation and calibration."""
    cut = args.steps - (args.lookback + args.horizon + VAL_WINDOWS - 1)
    train = [SeriesData(s.values[:cut], s.timestamps[:cut], series_id=s.series_id) for s in data]  # type: ignore[index]
    val = [SeriesData(s.values[cut:], s.timestamps[cut:], series_id=s.series_id) for s in data]  # type: ignore[index]
    model = RecurrentForecaster(_config(args, epochs=1, epoch_windows=250_000))
    start = time.perf_counter()
    report = model.fit(train, val)
    seconds = time.perf_counter() - start
    device = torch.device(report.device)
    return {
        "mode": "fit",
        "series": len(data),
        "steps": args.steps,
        "windows": report.train_windows,
        "val_windows": model.meta.extra["val_windows"],
        "epoch_windows": 250_000,
        "fit_seconds": round(seconds, 1),
        "train_windows_per_second": round(report.windows_per_second),
        "val_loss": round(report.val_losses[-1], 4),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
        "rss_after_generating_gb": round(generated, 2),
        "cuda_peak_gb": _cuda_peak(device),
        "device": str(device),
    }


def _cuda_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _run_child(mode: str, series: int, argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.large_panel", *argv, "--child", f"{mode}:{series}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"mode": mode, "series": series, "error": f"exit {done.returncode}: {tail[0]}"}
    return dict(json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=30_000)
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--materialised", default="1000,3000", help="series counts, or ''")
    parser.add_argument("--lookback", type=int, default=168)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--fit", action="store_true", help="also time a real fit on the panel")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.series < 1 or args.steps < args.lookback + args.horizon + VAL_WINDOWS:
        parser.error(
            f"--series must be >= 1 and --steps >= lookback + horizon + {VAL_WINDOWS} "
            f"({args.lookback + args.horizon + VAL_WINDOWS})"
        )
    if args.child:
        mode, count = args.child.split(":")
        print(json.dumps(child(mode, int(count), args)), flush=True)
        return
    try:
        sizes = [int(n) for n in args.materialised.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--materialised {args.materialised!r}: use comma-separated integers")
    runs = [("materialised", n) for n in sizes] + [("index", n) for n in sizes]
    if args.series not in sizes:
        runs.append(("index", args.series))
    if args.fit:
        runs.append(("fit", args.series))
    for mode, count in runs:
        print(json.dumps(_run_child(mode, count, argv)), flush=True)


if __name__ == "__main__":
    main()
