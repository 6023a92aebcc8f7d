"""Train, register, gate, promote and compare through a real `mlflow server` over HTTP.

The server runs as a separate process on a free loopback port with local proxied artifacts,
on SQLite, and on PostgreSQL when FORECAST_TEST_POSTGRES_URL is set (CI sets it): that run
gets its own database, created and dropped here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import train
from training.jobs.preparation import load_frame
from training.registry.compare import leaderboard
from training.registry.gate import promote_by_hand
from training.registry.tracking import Tracker
from training.settings import TrainSettings

from .test_tracking import fresh_store

POSTGRES_URL = os.environ.get("FORECAST_TEST_POSTGRES_URL")
MLFLOW = Path(sys.executable).with_name("mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server not healthy after {limit}s:\n{log.read_text()[-3000:]}")


def _serve(backend: str, artifacts: Path, log: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(MLFLOW), "server", "--backend-store-uri", backend,
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    # No background job runners (a pool of huey processes) and no telemetry: not under test.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_healthy(url, process, log, limit=180)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def _round_trip(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TrainSettings()
    spec = TrainSpec(
        family="esn",
        horizon=6,
        dataset="load/etth1",
        last_rows=400,
        lookback=24,
        device="cpu",
        model={"reservoir_size": 30},
        name="server-etth1",
    )
    allow = {"allow_worse_than_baseline": True}  # champion mechanics on a server, not accuracy
    first = train(spec, url, settings=settings, **allow)
    assert first.promoted and first.version == 1
    second = train(spec, url, settings=settings, **allow)
    assert second.version == 2 and not second.promoted
    # the champion re-scored as the model it is equals the same model kept by the second run
    assert second.gate.kept_score is not None
    assert second.gate.champion_score == pytest.approx(second.gate.kept_score, rel=1e-6)

    tracker = Tracker(url, settings)
    assert tracker.aliases("server-etth1") == {"champion": 1, "challenger": 2}
    done = promote_by_hand(tracker, "server-etth1", 2, reason="server test", user="ci")
    assert done.previous_champion == 1
    rows = leaderboard(tracker, "server-etth1")
    assert [r["version"] for r in rows if r["champion"]] == [2]
    assert {r["family"] for r in rows} == {"esn"}
    assert all(r["test_mae"] is not None for r in rows)

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with tracker.active():
        pyfunc = mlflow.pyfunc.load_model("models:/server-etth1@champion")
    table = load_frame(spec).table.iloc[-24:][["timestamp", "value"]]
    out = pyfunc.predict(table, params={"horizon": 6})
    assert len(out) == 6 and np.isfinite(out["mean"]).all()
    local = tracker.download_forecaster("server-etth1", 2, tmp_path)
    assert sorted(p.name for p in local.iterdir()) == [
        "config.json",
        "meta.json",
        "weights.safetensors",
    ]


@pytest.mark.slow
def test_server_on_sqlite(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = fresh_store(tmp_path_factory, "server-sqlite")
    for url in _serve(backend, tmp_path / "artifacts", tmp_path / "server.log"):
        _round_trip(url, tmp_path / "dl", monkeypatch)


@pytest.mark.slow
@pytest.mark.postgres
def test_server_on_postgres(
    tmp_path: Path, fresh_postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in _serve(fresh_postgres_database, tmp_path / "artifacts", tmp_path / "server.log"):
        _round_trip(url, tmp_path / "dl", monkeypatch)
