"""Named locks that hold across threads and processes (and, on PostgreSQL, across hosts).

For jobs that must not overlap, such as one retraining cycle per model:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated
  autocommit connection; the server releases it if the holder dies, so a crash never leaves
  a stale lock.
- SQLite: an OS file lock (`filelock`) on `<database>.locks/<name>.lock` beside the database
  file; the kernel releases it if the holder dies. SQLite is one host, so this is enough.

Example:
    >>> with store.lock("retrain:load-etth1", timeout=0):
    ...     run_cycle()
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from training.store.schema import StoreError
from training.store.validation import check_series_id

POLL_SECONDS = 0.1
"""How often a waiting PostgreSQL lock retries."""


class LockTimeoutError(StoreError):
    """The named lock stayed held by someone else for the whole timeout."""


@contextmanager
def named_lock(engine: Engine, name: str, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock `name` for the duration of the `with` block.

    Args:
        engine: the store's engine (SQLite file or PostgreSQL).
        name: lock name; the series id rules apply (letters, digits, ".", "_", ":", "-").
        timeout: seconds to wait; None waits forever, 0 tries once.

    Raises:
        LockTimeoutError: when the lock is still held by another holder after `timeout`.
    """
    try:
        check_series_id(name)
    except StoreError:
        raise StoreError(
            f"lock name {name!r} is not valid: use letters, digits, '.', '_', ':' "
            "or '-', starting with a letter or digit"
        ) from None
    if timeout is not None and timeout < 0:
        raise StoreError(f"lock timeout must be >= 0 seconds or None, got {timeout!r}")
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, timeout):
            yield
        return
    with _file_lock(engine, name, timeout):
        yield


def _timed_out(name: str, timeout: float | None) -> LockTimeoutError:
    return LockTimeoutError(
        f"lock {name!r} is held by another process (waited {timeout or 0:g} s). Fix: wait for "
        "the running job to finish, or retry later"
    )


def lock_key(name: str) -> int:
    """The signed 64-bit advisory lock key of a lock name (stable across processes)."""
    digest = hashlib.blake2b(f"rnn-forecast:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def _advisory_lock(engine: Engine, name: str, timeout: float | None) -> Iterator[None]:
    key = lock_key(name)
    deadline = None if timeout is None else time.monotonic() + timeout
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
            if deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(name, timeout)
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))


@contextmanager
def _file_lock(engine: Engine, name: str, timeout: float | None) -> Iterator[None]:
    database = Path(engine.url.database or "").expanduser().resolve()
    folder = database.with_name(database.name + ".locks")
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / f"{name}.lock", thread_local=False)
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except filelock.Timeout:
        raise _timed_out(name, timeout) from None
    try:
        yield
    finally:
        lock.release()
