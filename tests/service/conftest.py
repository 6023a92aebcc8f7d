"""Fixtures of the service tests: one real MLflow store (SQLite in a temp dir) with two tiny
models trained once per session by the real pipeline, and apps built on it.

    svc-hourly  GRU on the last 400 rows of ETTh1 (hourly), lookback 24, horizon 6
    svc-stock   GRU on the last 400 rows of AAPL (business days), lookback 24, horizon 6
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.main import create_app
from service.settings import ServiceSettings
from service.store_deps import StoreHandle, StoreSettings

READ_KEY = "read-key-for-tests"
ADMIN_KEY = "admin-key-for-tests"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
HOURLY = "svc-hourly"
STOCK = "svc-stock"
LOOKBACK = 24
HORIZON = 6


@dataclass(frozen=True)
class History:
    """A real recent history of one model's dataset, ready to send."""

    timestamps: list[str]  # ISO-8601
    values: list[float]

    def body(self, **extra: Any) -> dict[str, Any]:
        return {"timestamps": self.timestamps, "values": self.values, **extra}


@dataclass(frozen=True)
class Store:
    """The session's MLflow store and what was trained into it."""

    uri: str
    root: Path
    hourly: History
    stock: History

    def settings(self, **overrides: Any) -> ServiceSettings:
        base: dict[str, Any] = {
            "tracking_uri": self.uri,
            "models": (HOURLY, STOCK),
            "api_keys": (READ_KEY,),
            "admin_keys": (ADMIN_KEY,),
            "poll_seconds": 3600.0,
            "startup_wait_seconds": 60.0,
        }
        base.update(overrides)
        return ServiceSettings(**base)


def _history(dataset: str, rows: int) -> History:
    from training.data.catalogue import load_dataset

    table = load_dataset(dataset).table.tail(rows)
    stamps = np.datetime_as_string(table["timestamp"].to_numpy().astype("datetime64[s]"))
    return History(timestamps=stamps.tolist(), values=table["value"].astype(float).tolist())


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Train the two tiny models once and register them (alias champion) in a SQLite store."""
    from training.jobs.experiment import TrainSpec
    from training.jobs.pipeline import train

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    # Anything that would fall back on MLflow's global URI lands in the temp store, never in
    # the working tree.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        for dataset, name in (("load/etth1", HOURLY), ("stock/aapl", STOCK)):
            spec = TrainSpec(
                family="gru",
                horizon=HORIZON,
                dataset=dataset,
                last_rows=400,
                lookback=LOOKBACK,
                epochs=2,
                device="cpu",
                model={"hidden_size": 8, "segment_length": 6},
                name=name,
            )
            # Two epochs of a hidden size of 8 need not beat naive: the service tests need a
            # champion, not a good one.
            result = train(spec, tracking_uri=uri, allow_worse_than_baseline=True)
            assert result.champion_version == 1, result.gate
        yield Store(
            uri=uri,
            root=root,
            hourly=_history("load/etth1", 48),
            stock=_history("stock/aapl", 40),
        )


@contextlib.contextmanager
def with_series_store(application: FastAPI, url: str, **options: Any) -> Iterator[TestClient]:
    """`application` started (lifespan) with a series store at `url` (StoreSettings
    `options` on top), for the block; the store is closed after the app stops."""
    handle = StoreHandle(StoreSettings(database_url=SecretStr(url), **options))
    application.state.series_store = handle
    try:
        with TestClient(application) as client:
            yield client
    finally:
        handle.close()


@pytest.fixture(scope="module")
def app(store: Store) -> Iterator[FastAPI]:
    """An app serving both models, started (lifespan run) for the whole module."""
    application = create_app(store.settings())
    with TestClient(application):
        yield application


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    """A client on the module's running app (no lifespan of its own)."""
    return TestClient(app)


@pytest.fixture
def make_client(store: Store) -> Iterator[Callable[..., TestClient]]:
    """Start apps with settings overrides; each is shut down at the end of the test."""
    started: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        test_client = TestClient(create_app(store.settings(**overrides)))
        test_client.__enter__()
        started.append(test_client)
        return test_client

    yield make
    for test_client in started:
        test_client.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(store: Store, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `mlflow server` on the session's store, on a free loopback port."""
    port = free_port()
    log = (tmp_path / "mlflow-server.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            store.uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        start_new_session=True,  # its own process group: the server and its workers
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (tmp_path / "mlflow-server.log").read_text()[-2000:]
                pytest.fail(f"mlflow server did not start: {output}")
            time.sleep(0.3)
        yield url, process
    finally:
        kill_group(process)
        log.close()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's process group (the registry vanishes at once, as in a crash)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextlib.contextmanager
def live_server(
    app: FastAPI, log_level: str = "warning", access_log: bool = False
) -> Iterator[int]:
    """Serve `app` with a real uvicorn on a free loopback port (lifespan run); yields the port."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level=log_level, access_log=access_log
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
