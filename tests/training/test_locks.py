"""The per-model retraining lock: file locks (threads, processes) and PostgreSQL advisory locks."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.errors import TrackingError
from training.retraining.locks import LockTimeoutError, is_postgres, lock_file, lock_key, model_lock

POSTGRES_ENV = "FORECAST_TEST_POSTGRES_URL"
HOLD = 0.4  # seconds each holder keeps the lock

# Run by each child process: take the lock, write "enter exit" monotonic-free wall times.
CHILD = """
import sys, time
from pathlib import Path
from training.retraining.locks import model_lock
lock_dir, out, url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None
with model_lock("shared-model", url, lock_dir=lock_dir):
    enter = time.time()
    time.sleep(float(sys.argv[4]))
    out.write_text(f"{enter} {time.time()}")
"""


def assert_disjoint(intervals: list[tuple[float, float]]) -> None:
    """No two (enter, exit) intervals overlap: the holders ran one after the other."""
    ordered = sorted(intervals)
    for (_, first_exit), (second_enter, _) in itertools.pairwise(ordered):
        assert second_enter >= first_exit, ordered


def hold_in_threads(n: int, url: str | None, lock_dir: Path | None, name: str) -> list:
    intervals: list[tuple[float, float]] = []
    barrier = threading.Barrier(n)

    def work() -> None:
        barrier.wait()
        with model_lock(name, url, lock_dir=lock_dir):
            enter = time.monotonic()
            time.sleep(HOLD)
            intervals.append((enter, time.monotonic()))

    threads = [threading.Thread(target=work) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return intervals


def test_lock_key_is_stable_and_signed_64_bit() -> None:
    assert lock_key("load-etth1") == lock_key("load-etth1")
    assert lock_key("load-etth1") != lock_key("load-etth2")
    assert -(2**63) <= lock_key("load-etth1") < 2**63
    # Pinned: every host and every Python process must derive the same key.
    digest = hashlib.sha256(b"forecast-retrain:load-etth1").digest()
    assert lock_key("load-etth1") == int.from_bytes(digest[:8], "big", signed=True)


def test_lock_file_is_safe_and_distinct(tmp_path: Path) -> None:
    a, b = lock_file("a/b", tmp_path), lock_file("a_b", tmp_path)
    assert a.parent == tmp_path and a.name.startswith("a_b-") and a.suffix == ".lock"
    assert a != b


def test_is_postgres() -> None:
    assert is_postgres("postgresql://u@h/db")
    assert is_postgres("postgresql+psycopg://u@h/db")
    assert not is_postgres("sqlite:///x.db")
    assert not is_postgres(None)
    assert not is_postgres("not a url")


def test_file_lock_serialises_threads(tmp_path: Path) -> None:
    intervals = hold_in_threads(3, None, tmp_path, "threads")
    assert len(intervals) == 3
    assert_disjoint(intervals)


def test_file_lock_serialises_processes(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "locks"), str(out), "", "1.0"], env=env
        )
        for out in outs
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    intervals = [tuple(float(x) for x in out.read_text().split()) for out in outs]
    assert_disjoint(intervals)  # type: ignore[arg-type]


def test_waiter_times_out_with_a_clear_error(tmp_path: Path) -> None:
    with model_lock("busy", None, lock_dir=tmp_path):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeoutError) as caught,
            model_lock("busy", None, lock_dir=tmp_path, timeout=0.3),
        ):
            pass
        assert time.monotonic() - started >= 0.3
    assert str(caught.value) == (
        f"model 'busy': another retraining cycle still holds the file lock "
        f"{lock_file('busy', tmp_path)} after waiting 0.3s. Fix: wait for that cycle to finish, "
        "or raise --lock-timeout"
    )
    with model_lock("busy", None, lock_dir=tmp_path, timeout=0.3):
        pass  # released on exit: free again


def test_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), model_lock("crash", None, lock_dir=tmp_path):
        raise RuntimeError("cycle crashed")
    with model_lock("crash", None, lock_dir=tmp_path, timeout=0.1):
        pass


def test_negative_timeout_is_rejected(tmp_path: Path) -> None:
    with (
        pytest.raises(TrackingError, match=r"lock timeout=-1: must be >= 0 seconds or None"),
        model_lock("x", None, lock_dir=tmp_path, timeout=-1),
    ):
        pass


def test_default_lock_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_LOCK_DIR", str(tmp_path / "env-locks"))
    with model_lock("env-model"):
        assert lock_file("env-model").parent == tmp_path / "env-locks"
        assert lock_file("env-model").exists()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    yield url


@pytest.mark.postgres
def test_advisory_lock_serialises_threads_and_times_out(postgres_url: str) -> None:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    intervals = hold_in_threads(2, postgres_url, None, name)
    assert len(intervals) == 2
    assert_disjoint(intervals)
    with (
        model_lock(name, postgres_url),
        pytest.raises(LockTimeoutError) as caught,
        model_lock(name, postgres_url, timeout=0.3),
    ):
        pass
    assert f"advisory lock {lock_key(name)} after waiting 0.3s" in str(caught.value)
    with model_lock(name, postgres_url, timeout=0.3):
        pass  # released


@pytest.mark.postgres
def test_advisory_lock_serialises_processes(postgres_url: str, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(out), postgres_url, "1.0"], env=env
        )
        for out in outs
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert_disjoint([tuple(float(x) for x in out.read_text().split()) for out in outs])  # type: ignore[misc]
    assert not list(tmp_path.glob("*.lock"))  # PostgreSQL: no file lock was used
