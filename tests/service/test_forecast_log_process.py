"""The forecast log's writer is a process of its own: forecasts sent by the serving process
are written by it (real SQLite and PostgreSQL stores), shutdown drains what was sent, a killed
writer is noticed, counted and replaced without hanging anything, and its logs reach the
serving process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from service.forecast_log import ForecastRecorder
from service.metrics import ServiceMetrics
from service.store_deps import StoreHandle, StoreSettings
from training.store import SeriesStore

DEAD = "postgresql://nobody@127.0.0.1:1/none"  # refused: the writer can never open it


def _recorder(url: str, buffer: int = 100) -> tuple[ForecastRecorder, ServiceMetrics]:
    handle = StoreHandle(StoreSettings(database_url=SecretStr(url)))  # type: ignore[call-arg]
    metrics = ServiceMetrics()
    return ForecastRecorder(handle, metrics, buffer=buffer, refresh_seconds=0, window=10), metrics


def _submit(recorder: ForecastRecorder, hour: int) -> None:
    """One 3-step forecast of series "a" from a 48-hour history ending at `hour`."""
    origin = np.datetime64("2024-01-01T00:00") + np.timedelta64(hour, "h")
    stamps = [str(origin + np.timedelta64(h, "h")) for h in (1, 2, 3)]
    result = {
        "timestamps": stamps,
        "mean": [1.0, 2.0, 3.0],
        "intervals": {"80": {"lower": [0.0, 1.0, 2.0], "upper": [2.0, 3.0, 4.0]}},
    }
    recorder.submit("m", "1", "a", "h", origin, np.arange(48.0), result)


def _wait(condition: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _count(counter: object) -> float:
    return float(counter._value.get())  # type: ignore[attr-defined]


@pytest.fixture
def store_url(database_url: str) -> Iterator[str]:
    """A store with series "a": SQLite, and PostgreSQL when FORECAST_TEST_POSTGRES_URL is set."""
    with SeriesStore(database_url) as store:
        store.upsert_series("a", frequency="h", target="y")
    yield database_url


def _logged(url: str) -> int:
    with SeriesStore(url) as store:
        return len(store.forecast_log.forecasts("a", limit=1000))


def test_the_writer_is_another_process_and_shutdown_drains(store_url: str) -> None:
    recorder, metrics = _recorder(store_url)
    before = set(threading.enumerate())
    recorder.start()
    pid = recorder.writer_pid
    assert pid is not None and pid != os.getpid()
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"PPid:\t{os.getpid()}\n" in status  # a child of this process
    for hour in range(50):
        _submit(recorder, hour)
    # No thread of this process writes, or even handles the forecasts: only a watcher runs.
    started = {t.name for t in set(threading.enumerate()) - before}
    assert started == {"forecast-log-watch"}
    recorder.stop()  # at once: the writer still has everything to write
    assert recorder.pending == 0
    assert (_count(metrics.forecast_log_recorded), _count(metrics.forecast_log_dropped)) == (50, 0)
    assert _logged(store_url) == 50
    assert not Path(f"/proc/{pid}").exists()  # ended, and reaped


def test_a_killed_writer_is_counted_and_nothing_hangs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="service.forecast_log")
    recorder, metrics = _recorder(DEAD)
    recorder.start()
    for hour in range(5):
        _submit(recorder, hour)
    # The writer holds the five and retries; what it logs reaches this process's log.
    assert _wait(lambda: "the store cannot be opened, retrying" in caplog.text)
    assert _wait(lambda: recorder.pending == 5)
    pid = recorder.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: _count(metrics.forecast_log_dropped) == 5)
    assert "the writer process died (exit code -9)" in caplog.text
    assert "5 forecasts sent to the dead writer were not written" in caplog.text
    _submit(recorder, 6)  # goes to the next writer's queue, never blocks
    started = time.monotonic()
    recorder.stop()  # the next writer cannot write it either: counted, not waited on forever
    assert time.monotonic() - started < 10
    assert recorder.pending == 0 and _count(metrics.forecast_log_dropped) == 6
    assert _count(metrics.forecast_log_recorded) == 0


def test_a_killed_writer_is_replaced_and_the_next_one_writes(store_url: str) -> None:
    recorder, metrics = _recorder(store_url)
    recorder.start()
    first = recorder.writer_pid
    assert first is not None
    _submit(recorder, 0)
    assert _wait(lambda: _count(metrics.forecast_log_recorded) == 1)
    os.kill(first, signal.SIGKILL)
    assert _wait(lambda: recorder.writer_pid not in (first, None))  # restarted after 1 s
    _submit(recorder, 1)
    assert _wait(lambda: _count(metrics.forecast_log_recorded) == 2)
    recorder.stop()
    assert _logged(store_url) == 2 and _count(metrics.forecast_log_dropped) == 0


def test_signals_to_the_process_group_lose_nothing(store_url: str) -> None:
    """Ctrl-C or a SIGTERM sent to the whole group reaches the writer too: it keeps writing
    until the serving process, shutting down, sends it the end."""
    recorder, metrics = _recorder(store_url)
    recorder.start()
    pid = recorder.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    for hour in range(20):
        _submit(recorder, hour)
    time.sleep(0.5)
    recorder.stop()
    assert (_count(metrics.forecast_log_recorded), _count(metrics.forecast_log_dropped)) == (20, 0)
    assert _logged(store_url) == 20


def test_a_writer_whose_server_died_writes_what_it_got_and_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'series.db'}"
    with SeriesStore(url) as store:
        store.upsert_series("a", frequency="h", target="y")
    script = (
        "import os, sys\n"
        "from tests.service.test_forecast_log_process import _recorder, _submit\n"
        f"recorder, _ = _recorder({url!r})\n"
        "recorder.start()\n"
        "for hour in range(3):\n"
        "    _submit(recorder, hour)\n"
        "print(recorder.writer_pid, flush=True)\n"
        "os._exit(0)  # dies without stopping the recorder\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],  # the repository root: `tests` imports from there
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pid = int(done.stdout.split()[-1])
    assert _wait(lambda: _logged(url) == 3)
    assert _wait(lambda: not _alive(pid), seconds=10)


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False


def test_a_full_buffer_on_a_dead_database_still_stops() -> None:
    """A full buffer at shutdown (the writer stuck on a dead database) still ends: the
    writer gives up after its tries, and stop() counts the rest."""
    recorder, metrics = _recorder(DEAD, buffer=3)
    recorder.start()
    for hour in range(10):
        _submit(recorder, hour)
    started = time.monotonic()
    recorder.stop()
    assert time.monotonic() - started < 15
    assert recorder.pending == 0
    assert _count(metrics.forecast_log_dropped) == 10  # dropped when full, or at shutdown
