"""A registry outage never blocks unrelated requests: a real `mlflow server` is killed while
pinned and unpinned forecasts run concurrently. MLflow's HTTP client keeps its default retries
(minutes of backoff): the service's own bounds must hold regardless."""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.service.conftest import ADMIN, HOURLY, READ, Store, kill_group

URL = f"/v1/models/{HOURLY}/forecast"


def _timed(client: TestClient, body: dict) -> tuple[float, int, dict]:
    start = time.monotonic()
    response = client.post(URL, headers=READ, json=body)
    return time.monotonic() - start, response.status_code, response.json()


def test_killed_registry_answers_pinned_503_fast_while_unpinned_keep_their_speed(
    store: Store,
    mlflow_server: tuple[str, subprocess.Popen[bytes]],
    make_client: Callable[..., TestClient],
) -> None:
    url, process = mlflow_server
    client = make_client(tracking_uri=url, models=(HOURLY,), poll_seconds=0.5)
    body = store.hourly.body(horizon=3)
    before = [_timed(client, body) for _ in range(20)]
    assert {status for _, status, _ in before} == {200}
    assert client.get("/v1/ready").json()["registry"]["status"] == "ok"

    kill_group(process)
    pinned: list[tuple[float, int, dict]] = []
    unpinned: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def pin(version: str) -> None:
        pinned.append(_timed(client, {**body, "version": version}))

    def keep_forecasting() -> None:
        while not stop.is_set():
            unpinned.append(_timed(client, body))

    threads = [threading.Thread(target=pin, args=(str(v),)) for v in range(2, 10)]
    threads.append(threading.Thread(target=keep_forecasting))
    for thread in threads:
        thread.start()
    started = time.monotonic()
    report = client.post("/v1/admin/reload", headers=ADMIN).json()
    reload_took = time.monotonic() - started
    time.sleep(max(0.0, 3.0 - reload_took))
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a request is still waiting"

    assert reload_took < 5.0
    assert report["registry_error"].startswith("registry unreachable: ")
    assert len(pinned) == 8
    for took, status, answer in pinned:
        assert (status, answer["field"]) == (503, "version"), answer
        assert took < 2.0
        # the first few wait on the registry; beyond that many loads, the rest are refused
        assert any(
            reason in answer["detail"]
            for reason in (
                "registry unreachable while loading pinned version",
                "pinned versions are loading already",
            )
        ), answer
    assert {status for _, status, _ in unpinned} == {200}
    assert len(unpinned) >= 10
    base = statistics.median(t for t, _, _ in before)
    during = statistics.median(t for t, _, _ in unpinned)
    assert during < 2 * base + 0.02, (base, during)
    assert max(t for t, _, _ in unpinned) < 1.0

    # the negative cache answers a repeated pin at once; readiness shows the outage
    took, status, _ = _timed(client, {**body, "version": "2"})
    assert (status, took < 0.5) == (503, True)
    ready = client.get("/v1/ready")
    assert ready.status_code == 200  # what is loaded keeps serving
    assert ready.json()["registry"]["status"] == "degraded"
    metrics = client.get("/metrics", headers=READ).text
    assert "forecast_registry_up 0.0" in metrics
