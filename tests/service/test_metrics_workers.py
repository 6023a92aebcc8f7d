"""/metrics across workers: prometheus_client's multiprocess mode under `forecast serve`.

The slow test runs a real `forecast serve --workers 2` on a free port, sends requests until
both workers have answered some, and checks that /metrics sums them (and that the counters a
stale earlier run left in the directory were wiped at start).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import ServiceMetrics
from service.store_deps import StoreHandle, StoreSettings
from tests.service.conftest import free_port, kill_group
from training.cli.serve import MULTIPROC_ENV, metrics_dir

KEY = "metrics-test-key"
HEALTH = "/v1/health"


def test_one_worker_without_a_directory_stays_single_process() -> None:
    environ: dict[str, str] = {MULTIPROC_ENV: ""}  # set but empty: still multiprocess to p_c
    with metrics_dir(1, environ) as path:
        assert path is None
        assert MULTIPROC_ENV not in environ


def test_workers_get_a_fresh_directory_removed_at_exit() -> None:
    environ: dict[str, str] = {}
    with metrics_dir(2, environ) as path:
        assert path is not None and path.is_dir()
        assert environ[MULTIPROC_ENV] == str(path)
        assert not list(path.iterdir())
        (path / "counter_123.db").write_bytes(b"")
    assert not path.exists()
    assert MULTIPROC_ENV not in environ


def test_a_given_directory_loses_only_metric_files_at_start_and_exit(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    (tmp_path / "gauge_livemin_2.db").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("keep me")
    environ = {MULTIPROC_ENV: str(tmp_path)}
    with metrics_dir(1, environ) as path:
        assert path == tmp_path
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
        (tmp_path / "histogram_3.db").write_bytes(b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert environ[MULTIPROC_ENV] == str(tmp_path)  # the user's setting is left as it was


def test_every_gauge_says_how_workers_combine() -> None:
    metrics = ServiceMetrics(multiprocess=None)
    gauges = [value for value in vars(metrics).values() if isinstance(value, Gauge)]
    assert gauges
    for gauge in gauges:
        # The default "all" keeps one series per pid, dead workers included.
        assert gauge._multiprocess_mode != "all", gauge._name


def test_single_process_exposition_is_the_apps_registry() -> None:
    metrics = ServiceMetrics(registry=CollectorRegistry(), multiprocess=None)
    metrics.requests.labels(HEALTH, "GET", "200").inc(3)
    assert _health_count(metrics.exposition().decode()) == 3


def _health_count(text: str) -> float:
    """forecast_http_requests_total of GET /v1/health, summed over statuses."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "forecast_http_requests_total" and sample.labels["route"] == HEALTH:
                total += sample.value
    return total


def _per_worker(directory: Path, scratch: Path) -> dict[int, float]:
    """pid -> GET /v1/health count, read from each worker's own counter file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        alone = scratch / str(pid)
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[pid] = _health_count(generate_latest(registry).decode())
    return counts


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _stale_counter(directory: Path) -> None:
    """What a crashed earlier run leaves: 1,000 health requests in a counter file."""
    script = (
        "from prometheus_client import Counter\n"
        "c = Counter('forecast_http_requests', 'x', ['route', 'method', 'status'])\n"
        f"c.labels('{HEALTH}', 'GET', '200').inc(1000)\n"
    )
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))


@pytest.mark.slow
def test_metrics_sum_every_worker_of_forecast_serve(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    _stale_counter(shared)
    tracking, database = f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/series.db"
    _create_stores(tracking, database)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "FORECAST_DATABASE_URL": database,
        "FORECAST_MODELS": "",
        "FORECAST_API_KEYS": KEY,
        "FORECAST_ENV": "production",
        "FORECAST_STARTUP_WAIT_SECONDS": "5",
        MULTIPROC_ENV: str(shared),
    }
    forecast = Path(sys.executable).parent / "forecast"
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(forecast), "serve", "--workers", "2", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group: the supervisor and its workers
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:  # /metrics, not /v1/health: only health requests are counted below
            try:
                if _get(f"{base}/metrics", {"X-API-Key": KEY})[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"forecast serve did not start: {_tail(tmp_path)}")
            time.sleep(0.5)

        sent, counts = 0, {}
        with ThreadPoolExecutor(8) as pool:
            while time.monotonic() < deadline:
                # A new connection per request: the kernel hands them to both workers.
                statuses = list(pool.map(lambda _: _get(f"{base}{HEALTH}")[0], range(40)))
                assert statuses == [200] * 40
                sent += 40
                counts = _per_worker(shared, tmp_path / "scratch")
                if len([c for c in counts.values() if c > 0]) >= 2:
                    break
        answered = {pid: c for pid, c in counts.items() if c > 0}
        assert len(answered) == 2, f"only one worker answered: {counts}"

        # A request is counted just after its answer is sent: wait for the last ones.
        settle = time.monotonic() + 30
        while True:
            status, text = _get(f"{base}/metrics", {"X-API-Key": KEY})
            assert status == 200, text
            if _health_count(text) >= sent or time.monotonic() > settle:
                break
            time.sleep(0.2)
        assert _health_count(text) == sent  # both workers, and not the stale 1,000
        assert sum(_per_worker(shared, tmp_path / "scratch").values()) == sent
    finally:
        process.send_signal(signal.SIGINT)  # to the supervisor: stops the workers, then itself
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_group(process)
        log.close()
    assert not list(shared.glob("*.db")), "metric files left after exit"


def _create_stores(tracking: str, database: str) -> None:
    """Create both databases first: two workers creating one at once race on its schema."""
    from mlflow import MlflowClient
    from pydantic import SecretStr

    MlflowClient(tracking_uri=tracking).search_registered_models()
    handle = StoreHandle(StoreSettings(database_url=SecretStr(database)))
    assert handle.try_open()
    handle.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
