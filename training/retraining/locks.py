"""One retraining cycle per registered model at a time, across threads, processes and hosts.

`model_lock(name, database_url)` picks the lock by the database the deployment already shares:

- PostgreSQL URL: a session-level advisory lock (`pg_advisory_lock`) on a stable 64-bit hash of
  the model name, held on a connection of its own for the whole cycle. Every host that reaches
  the database sees it; it is released on exit, or by the server when the connection drops (a
  crashed cycle cannot leave it held).
- anything else (SQLite, or no database): an OS file lock (`filelock`) on
  `<lock dir>/<name>.lock`, which serialises threads and processes of one host. The lock dir is
  `lock_dir`, else `$FORECAST_LOCK_DIR`, else `<system temp dir>/forecast-locks`; the kernel
  releases the lock when its holder dies.

A second caller waits; with a `timeout` it gives up with `LockTimeoutError` instead.

Example:
    >>> with model_lock("load-etth1", "postgresql://forecast@db/forecast", timeout=600):
    ...     retrain_once()
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from training.errors import TrackingError

logger = logging.getLogger(__name__)

LOCK_DIR_ENV = "FORECAST_LOCK_DIR"
_POLL_SECONDS = 0.2  # how often a PostgreSQL waiter with a timeout retries pg_try_advisory_lock


class LockTimeoutError(TrackingError):
    """Another cycle still held a model's lock when the caller's timeout ran out."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (the first 8 bytes of its SHA-256).

    Python's `hash()` is salted per process, so it cannot be shared between hosts; this can.
    """
    digest = hashlib.sha256(f"forecast-retrain:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file(name: str, lock_dir: Path | None = None) -> Path:
    """The lock file of model `name` in `lock_dir`, else `$FORECAST_LOCK_DIR`, else
    `<system temp dir>/forecast-locks`: its name made file-safe plus a short hash (no clashes).
    """
    if lock_dir is None:
        configured = os.environ.get(LOCK_DIR_ENV)
        lock_dir = Path(configured or Path(tempfile.gettempdir()) / "forecast-locks")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    return lock_dir / f"{safe}-{suffix}.lock"


def is_postgres(database_url: str | None) -> bool:
    """Whether `database_url` names a PostgreSQL database (any driver)."""
    if not database_url:
        return False
    try:
        return sa.engine.make_url(database_url).get_backend_name() in ("postgresql", "postgres")
    except (sa.exc.ArgumentError, ValueError):
        return False


@contextmanager
def model_lock(
    name: str,
    database_url: str | None = None,
    *,
    timeout: float | None = None,
    lock_dir: Path | None = None,
) -> Iterator[None]:
    """Hold the retraining lock of registered model `name` for the block.

    Args:
        database_url: the deployment's database; a PostgreSQL URL selects the advisory lock,
            anything else (or None) the file lock.
        timeout: seconds to wait for the lock; None waits as long as it takes.
        lock_dir: folder of the file locks (see the module docstring for the default).

    Raises:
        LockTimeoutError: when another cycle still holds the lock after `timeout` seconds.
        TrackingError: for a negative `timeout`.
    """
    if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
        raise TrackingError(
            f"lock timeout={timeout!r}: must be >= 0 seconds or None. Fix: e.g. --lock-timeout 600"
        )
    if is_postgres(database_url):
        with _advisory_lock(name, str(database_url), timeout):
            yield
    else:
        with _file_lock(name, lock_dir, timeout):
            yield


@contextmanager
def _file_lock(name: str, lock_dir: Path | None, timeout: float | None) -> Iterator[None]:
    path = lock_file(name, lock_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # thread_local=False: the lock object is used by one thread only, and two objects on one
    # path (two threads, two processes) exclude each other through the OS lock either way.
    lock = filelock.FileLock(str(path), thread_local=False)
    started = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("model %r: another retraining cycle holds %s; waiting", name, path)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except filelock.Timeout:
            raise _timeout(name, timeout, f"file lock {path}") from None
    logger.debug("model %r: lock %s acquired after %.2fs", name, path, time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _advisory_lock(name: str, database_url: str, timeout: float | None) -> Iterator[None]:
    url = sa.engine.make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    key = lock_key(name)
    # NullPool: the connection (and so the session lock) is closed with the block, never pooled.
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            _acquire_advisory(conn, name, key, timeout)
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
    finally:
        engine.dispose()


def _acquire_advisory(conn: sa.Connection, name: str, key: int, timeout: float | None) -> None:
    if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
        return
    logger.info("model %r: another retraining cycle holds advisory lock %d; waiting", name, key)
    if timeout is None:
        conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one():
            return
    raise _timeout(name, timeout, f"PostgreSQL advisory lock {key}")


def _timeout(name: str, timeout: float | None, what: str) -> LockTimeoutError:
    return LockTimeoutError(
        f"model {name!r}: another retraining cycle still holds the {what} after waiting "
        f"{timeout:g}s. Fix: wait for that cycle to finish, or raise --lock-timeout"
    )
