"""Named locks on the store's database, for jobs that must not overlap.

One implementation serves the whole project: `training.retraining.locks.model_lock` (a
PostgreSQL advisory
lock, so it holds across hosts; otherwise an OS file lock, released by the kernel if the holder
dies). This module only picks the lock folder for a SQLite store (`<database>.locks/` beside the
file) and words a timeout as a store error.

Example:
    >>> with store.lock("retrain:load-etth1", timeout=0):
    ...     run_cycle()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from training.retraining import locks
from training.store.schema import StoreError
from training.store.validation import check_series_id


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
    url = engine.url.render_as_string(hide_password=False)
    lock_dir = None
    if engine.dialect.name != "postgresql":
        database = Path(engine.url.database or "").expanduser().resolve()
        lock_dir = database.with_name(database.name + ".locks")
    held = ExitStack()
    try:
        held.enter_context(locks.model_lock(name, url, timeout=timeout, lock_dir=lock_dir))
    except locks.LockTimeoutError:
        raise LockTimeoutError(
            f"lock {name!r} is held by another process (waited {timeout or 0:g} s). Fix: "
            "wait for the running job to finish, or retry later"
        ) from None
    with held:
        yield
