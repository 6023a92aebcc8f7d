"""Serving benchmark: our service vs `mlflow models serve` on the same registered model.

    python -m benchmarks.serve [--dataset load/etth1] [--family gru] [--horizon 24]
        [--concurrency 1,8,32] [--requests 2000] [--warmup 200] [--batch-series 1000]
        [--batch-requests 10] [--workers 2] [--store DIR] [--skip-mlflow]

1. Trains a champion on a bundled dataset with the real pipeline (model defaults, 1 epoch on
   the last 3,000 rows: speed, not accuracy, is measured) into a SQLite store (a temp dir, or
   --store, reused when it already holds a champion).
2. Starts `forecast serve --workers N` (default 2, one per core here) on a free loopback port
   and waits for /v1/ready.
3. Drives it with a bounded closed-loop load: for each concurrency c, c clients send
   --warmup untimed single-series forecasts (H = --horizon), then --requests timed ones, back
   to back; then --batch-requests batches of --batch-series series, one at a time. Bodies are
   encoded once, up front.
4. Does the same against `mlflow models serve --env-manager local -w N` on the same model
   version (the same number of uvicorn workers) with the pyfunc's long input frame, and prints
   the ratios.

The load generator is a small asyncio HTTP/1.1 client over keep-alive connections with the
request bytes built once: httpx's client cost more CPU than the server it measured and
inflated the tail latencies several-fold on 2 cores.

Output: one JSON line per (server, case, concurrency) with requests, errors, throughput (req/s,
and series/s for batches) and p50/p95/p99 latency in ms; then one "compare" line per case.
The load generator shares the machine with the server; report the machine with the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

KEY = "benchmark-key"
REPO = Path(__file__).resolve().parent.parent


def _emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_champion(uri: str, dataset: str, family: str, horizon: int) -> tuple[str, str]:
    """(registered name, champion version), training one when the store has none."""
    from mlflow import MlflowClient

    from training.jobs.experiment import TrainSpec
    from training.jobs.pipeline import train

    name = f"bench-{dataset.replace('/', '-')}-{family}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        return name, str(client.get_model_version_by_alias(name, "champion").version)
    except Exception:
        pass
    spec = TrainSpec(
        family=family,
        horizon=horizon,
        dataset=dataset,
        last_rows=3000,
        epochs=1,
        device="cpu",
        name=name,
    )
    result = train(spec, tracking_uri=uri)
    client.set_registered_model_alias(name, "champion", str(result.version))
    return name, str(result.version)


@contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Run a server process (its own process group) until the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[:3]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def windows(dataset: str, lookback: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` histories of `lookback` points (stamps [N, L] as text, values [N, L])."""
    from training.data.catalogue import load_dataset

    table = load_dataset(dataset).table
    stamps = np.datetime_as_string(table["timestamp"].to_numpy().astype("datetime64[s]"))
    values = table["value"].to_numpy(dtype=np.float64)
    stride = max(1, (len(values) - lookback) // max(count, 1))
    starts = [len(values) - lookback - i * stride for i in range(count)]
    return (
        np.stack([stamps[s : s + lookback] for s in starts]),  # [N, L]
        np.stack([values[s : s + lookback] for s in starts]),  # [N, L]
    )


def ours_bodies(stamps: np.ndarray, values: np.ndarray, horizon: int) -> tuple[bytes, bytes]:
    single = {"timestamps": stamps[0].tolist(), "values": values[0].tolist(), "horizon": horizon}
    series = [
        {"id": f"s{i}", "timestamps": stamps[i].tolist(), "values": values[i].tolist()}
        for i in range(len(values))
    ]
    batch = {"series": series, "horizon": horizon}
    return json.dumps(single).encode(), json.dumps(batch).encode()


def mlflow_bodies(stamps: np.ndarray, values: np.ndarray, horizon: int) -> tuple[bytes, bytes]:
    def frame(rows: range) -> bytes:
        data = [
            [f"s{i}", str(t), float(v)]
            for i in rows
            for t, v in zip(stamps[i], values[i], strict=True)
        ]
        body = {
            "dataframe_split": {"columns": ["series_id", "timestamp", "value"], "data": data},
            "params": {"horizon": horizon},
        }
        return json.dumps(body).encode()

    return frame(range(1)), frame(range(len(values)))


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked body); return its status."""
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while True:
        size = int((await reader.readline()).strip(), 16)
        await reader.readexactly(size + 2)  # chunk + CRLF
        if size == 0:
            return status


async def drive(
    url: str,
    body: bytes | list[bytes],
    concurrency: int,
    requests: int,
    warm_up: int = 0,
    keep: list[float] | None = None,
) -> dict[str, Any]:
    """Closed loop: `concurrency` keep-alive connections share `requests` timed requests
    (with several bodies, each request sends the next in turn). `keep` receives every
    latency (seconds), for figures over several runs.

    First, untimed, every connection sends one request and together they send `warm_up` more
    at the same concurrency: connection set-up and each server process's first passes through
    its code are not steady-state latency (both servers get the same warm-up).

    The client is a few lines of asyncio over raw HTTP/1.1 (pre-built request bytes), so the
    load generator costs far less CPU than the servers it measures on the same cores.
    """
    parsed = httpx.URL(url)
    host, port = parsed.host, int(parsed.port or 80)
    prepared = [
        (
            f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nX-API-Key: {KEY}\r\n"
            f"Content-Length: {len(one)}\r\n\r\n"
        ).encode()
        + one
        for one in ([body] if isinstance(body, bytes) else body)
    ]
    sent = 0

    def next_request() -> bytes:
        nonlocal sent
        sent += 1
        return prepared[sent % len(prepared)]

    latencies: list[float] = []
    errors = 0
    remaining = requests

    warm_left = warm_up

    async def worker() -> None:
        nonlocal remaining, errors, warm_left
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(next_request())  # untimed: one per connection, then the warm-up
            await _read_response(reader)
            while warm_left > 0:
                warm_left -= 1
                writer.write(next_request())
                await _read_response(reader)
            ready.append(1)
            if len(ready) == concurrency:
                all_ready.set()
            await started.wait()
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                writer.write(next_request())
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - start)
                errors += status != 200
        finally:
            writer.close()

    started, all_ready, ready = asyncio.Event(), asyncio.Event(), []
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await all_ready.wait()  # every connection open, warm-up requests answered
    start = time.perf_counter()
    started.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    if keep is not None:
        keep.extend(latencies)
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def run_cases(
    server: str, urls: tuple[str, str], single: bytes, batch: bytes, args: argparse.Namespace
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every single-series concurrency level, then the batch case; emits one line each."""
    results = {}
    for c in args.concurrency:
        r = asyncio.run(drive(urls[0], single, c, args.requests, args.warmup))
        results[("single", c)] = r
        _emit({"server": server, "case": f"single_h{args.horizon}", "concurrency": c, **r})
    r = asyncio.run(drive(urls[1], batch, 1, args.batch_requests))
    r["series_per_second"] = round(r["throughput_rps"] * args.batch_series, 1)
    results[("batch", 1)] = r
    _emit({"server": server, "case": f"batch_{args.batch_series}", "concurrency": 1, **r})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serve", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", default="load/etth1")
    parser.add_argument("--family", default="gru")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=2000, help="per concurrency level")
    parser.add_argument(
        "--warmup", type=int, default=200, help="untimed requests before each single-series level"
    )
    parser.add_argument("--batch-series", type=int, default=1000)
    parser.add_argument("--batch-requests", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="server processes, both servers")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error(
            f"--concurrency {args.concurrency!r}: use comma-separated integers, e.g. 1,8,32"
        )
    for flag, value, least in (
        ("--concurrency", min(args.concurrency, default=0), 1),
        ("--requests", args.requests, 1),
        ("--warmup", args.warmup, 0),
        ("--batch-series", args.batch_series, 1),
        ("--batch-requests", args.batch_requests, 1),
        ("--workers", args.workers, 1),
    ):
        if value < least:
            parser.error(f"{flag} {value}: must be >= {least}")

    root = args.store or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root.resolve()}/mlflow.db"
    name, version = ensure_champion(uri, args.dataset, args.family, args.horizon)
    bin_dir = str(Path(sys.executable).parent)  # `mlflow models serve` execs uvicorn from PATH
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO), "PATH": path}

    port = _free_port()
    ours_env = {**env, "FORECAST_API_KEYS": KEY, "FORECAST_MODELS": name}
    serve = [sys.executable, "-m", "training.cli", "serve", "--port", str(port)]
    serve += ["--log-level", "warning", "--workers", str(args.workers)]
    base = f"http://127.0.0.1:{port}"
    with running(serve, ours_env, f"{base}/v1/ready", root / "serve.log"):
        info = httpx.get(f"{base}/v1/models/{name}", headers={"X-API-Key": KEY}).json()
        lookback = int(info["lookback"])
        stamps, values = windows(args.dataset, lookback, args.batch_series)
        single, batch = ours_bodies(stamps, values, args.horizon)
        _emit(
            {
                "model": name,
                "version": version,
                "family": info["family"],
                "lookback": lookback,
                "cpus": os.cpu_count(),
                "workers": args.workers,
            }
        )
        url = f"{base}/v1/models/{name}/forecast"
        ours = run_cases("ours", (url, f"{url}/batch"), single, batch, args)
    if args.skip_mlflow:
        return

    port = _free_port()
    mlflow_cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{name}/{version}",
        "--env-manager",
        "local",
        "-w",
        str(args.workers),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    ]
    single_m, batch_m = mlflow_bodies(stamps, values, args.horizon)
    base = f"http://127.0.0.1:{port}"
    with running(mlflow_cmd, env, f"{base}/ping", root / "mlflow-serve.log"):
        invocations = f"{base}/invocations"
        theirs = run_cases("mlflow", (invocations, invocations), single_m, batch_m, args)
    for (case, c), mine in ours.items():
        other = theirs[(case, c)]
        _emit(
            {
                "compare": f"{case} c={c}",
                "throughput_ratio": round(mine["throughput_rps"] / other["throughput_rps"], 2),
                "p99_ratio_mlflow_over_ours": round(other["p99_ms"] / mine["p99_ms"], 2),
            }
        )


if __name__ == "__main__":
    main()
