"""Hot reload against the real registry: a promotion is picked up by the poller with zero
failed requests, broken versions are refused while the old one keeps serving, and a registry
that goes away (a real `mlflow server` process, stopped) does not stop forecasts."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from safetensors import safe_open
from safetensors.torch import save_file

from tests.service.conftest import ADMIN, HOURLY, READ, Store, kill_group

RELOAD = "svc-reload"
POLL = 0.5


def _register_copy(client: MlflowClient, source_version: str, damage: str | None = None) -> str:
    """A new version of RELOAD with HOURLY's artifacts, optionally damaged.

    damage: None (identical copy), "garbage" (weights file is not safetensors) or "nan"
    (valid safetensors, every weight NaN: loads, but the smoke forecast fails).
    """
    source = client.get_model_version_download_uri(HOURLY, source_version)
    run_id = client.get_model_version(HOURLY, source_version).run_id
    if damage is not None:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
            weights = local / "artifacts" / "forecaster" / "weights.safetensors"
            if damage == "garbage":
                weights.write_bytes(b"definitely not safetensors")
            else:
                with safe_open(str(weights), framework="pt") as f:
                    metadata = f.metadata()
                    tensors = {k: torch.full_like(f.get_tensor(k), float("nan")) for k in f.keys()}  # noqa: SIM118
                save_file(tensors, str(weights), metadata=metadata)
            experiment = client.get_run(run_id).info.experiment_id
            run = client.create_run(experiment, run_name=f"damaged-{damage}")
            client.log_artifacts(run.info.run_id, str(local), artifact_path="model")
            client.set_terminated(run.info.run_id)
            source, run_id = f"{run.info.artifact_uri}/model", run.info.run_id
    return str(client.create_model_version(RELOAD, source=source, run_id=run_id).version)


@pytest.fixture(scope="module")
def registry(store: Store) -> MlflowClient:
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    client.create_registered_model(RELOAD)
    first = _register_copy(client, "1")
    client.set_registered_model_alias(RELOAD, "champion", first)
    return client


def _forecast_loop(
    client: TestClient, body: dict, stop: threading.Event, log: list[tuple[float, int, str]]
) -> None:
    while not stop.is_set():
        response = client.post(f"/v1/models/{RELOAD}/forecast", headers=READ, json=body)
        version = response.json().get("version", "") if response.status_code == 200 else ""
        log.append((time.monotonic(), response.status_code, version))


def test_promotion_is_served_within_the_poll_interval_with_no_failed_request(
    store: Store, registry: MlflowClient, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(models=(RELOAD,), poll_seconds=POLL)
    body = store.hourly.body(horizon=3)
    stop = threading.Event()
    logs: list[list[tuple[float, int, str]]] = [[], []]
    threads = [
        threading.Thread(target=_forecast_loop, args=(client, body, stop, log)) for log in logs
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        new = _register_copy(registry, "1")
        registry.set_registered_model_alias(RELOAD, "champion", new)
        promoted_at = time.monotonic()
        deadline = promoted_at + 20
        while time.monotonic() < deadline and not any(v == new for _, _, v in logs[0][-3:]):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    for log in logs:
        statuses = {status for _, status, _ in log}
        assert statuses == {200}, f"failed requests during the swap: {statuses}"
        versions = [v for _, _, v in log]
        assert versions[0] == "1"
        switch = versions.index(new)
        assert set(versions[switch:]) == {new}, "a request went back to the old version"
    switched_at = min(t for log in logs for t, _, v in log if v == new)
    # the poller wakes within one interval; loading the version takes well under a second more
    assert switched_at - promoted_at < POLL + 2.0


def test_broken_versions_are_refused_and_the_old_one_keeps_serving(
    store: Store, registry: MlflowClient, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(models=(RELOAD,), poll_seconds=3600.0)
    serving = client.get(f"/v1/models/{RELOAD}", headers=READ).json()["version"]
    body = store.hourly.body(horizon=3)
    for damage, reason in (
        ("garbage", "load failed: "),
        ("nan", "smoke forecast failed: SmokeTestError: smoke forecast mean is not finite"),
    ):
        bad = _register_copy(registry, "1", damage=damage)
        registry.set_registered_model_alias(RELOAD, "champion", bad)
        report = client.post("/v1/admin/reload", headers=ADMIN).json()
        (outcome,) = report["models"]
        assert (outcome["version"], outcome["changed"]) == (serving, False)
        assert outcome["error"].startswith(f"version {bad} refused: {reason}")
        response = client.post(f"/v1/models/{RELOAD}/forecast", headers=READ, json=body)
        assert (response.status_code, response.json()["version"]) == (200, serving)
        pinned = client.post(
            f"/v1/models/{RELOAD}/forecast", headers=READ, json={**body, "version": bad}
        )
        assert pinned.status_code == 404
        assert pinned.json()["detail"].startswith(f"version {bad} of 'svc-reload' was refused")
    # a refused version is not retried (and not counted) at every poll
    client.post("/v1/admin/reload", headers=ADMIN)
    metrics = client.get("/metrics", headers=READ).text
    assert f'forecast_model_load_failures_total{{model="{RELOAD}"}} 2.0' in metrics
    # an older good version can still be pinned while the alias points at a broken one
    older = client.post(
        f"/v1/models/{RELOAD}/forecast", headers=READ, json={**body, "version": "1"}
    )
    assert (older.status_code, older.json()["version"]) == (200, "1")
    good = _register_copy(registry, "1")
    registry.set_registered_model_alias(RELOAD, "champion", good)
    (outcome,) = client.post("/v1/admin/reload", headers=ADMIN).json()["models"]
    assert (outcome["version"], outcome["changed"], outcome["error"]) == (good, True, None)


def test_registry_going_away_does_not_stop_forecasts(
    store: Store,
    mlflow_server: tuple[str, subprocess.Popen[bytes]],
    make_client: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, process = mlflow_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    client = make_client(tracking_uri=url, models=(HOURLY,), poll_seconds=0.2)
    body = store.hourly.body(horizon=3)
    first = client.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body)
    assert (first.status_code, first.json()["version"]) == (200, "1")

    kill_group(process)
    time.sleep(1.0)  # several polls fail meanwhile
    for _ in range(10):
        response = client.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body)
        assert response.status_code == 200
        assert response.json()["mean"] == first.json()["mean"]
    report = client.post("/v1/admin/reload", headers=ADMIN).json()
    assert report["registry_error"].startswith("registry unreachable: ")
    assert client.get("/v1/ready").status_code == 200
    errors = [
        line
        for line in client.get("/metrics", headers=READ).text.splitlines()
        if line.startswith("forecast_registry_errors_total ")
    ]
    assert float(errors[0].split()[1]) >= 2
