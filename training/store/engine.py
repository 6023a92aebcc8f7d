"""Engines for the series store, with each backend's connection and transaction policies.

- SQLite: a file (never in-memory: the store outlives the process), WAL journal so readers
  never wait for a writer, a busy timeout so writers queue instead of failing, foreign keys
  on, and explicit transactions: `transaction(engine, write=True)` begins IMMEDIATE, taking
  the write lock up front, so two writers cannot deadlock upgrading read locks.
- PostgreSQL: `postgresql://` means psycopg 3; pooled connections are pinged before use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from training.store.schema import StoreError


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One pooled connection in one transaction: committed on exit, rolled back on error.

    Args:
        engine: an engine from `create_engine`.
        write: take SQLite's write lock at BEGIN (ignored by PostgreSQL, which locks rows).
    """
    with engine.connect() as conn:
        if write:
            conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def create_engine(url: str, busy_timeout: float) -> Engine:
    """An engine for a SQLite file or a PostgreSQL server, with our connection policies.

    Raises:
        StoreError: an unparseable URL, an unsupported backend, or an in-memory SQLite URL.
    """
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise StoreError(
            f"database URL {url!r} cannot be parsed. Fix: use sqlite:///path/to/series.db "
            "or postgresql://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except ImportError as exc:
            raise StoreError(
                f"database driver {parsed.drivername!r} is not installed ({exc}). Fix: use "
                "postgresql://..., which uses psycopg 3"
            ) from None
    if backend != "sqlite":
        raise StoreError(
            f"database URL scheme {parsed.drivername!r} is not supported by the series store. "
            "Fix: use sqlite:///path/to/series.db or postgresql://user@host:5432/dbname"
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise StoreError(
            f"database URL {url!r} names no SQLite file; an in-memory store would vanish "
            "with the process. Fix: use sqlite:///path/to/series.db"
        )
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder {folder} for the SQLite store ({exc.strerror}). "
            "Fix: point the URL at a writable location"
        ) from None
    engine = sa.create_engine(
        parsed, connect_args={"timeout": busy_timeout, "check_same_thread": False}
    )
    _sqlite_policies(engine, busy_timeout)
    return engine


def _enable_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch to WAL, retrying while another process holds the lock.

    Changing the journal mode needs an exclusive lock, and SQLite may answer "database is
    locked" at once instead of waiting out the busy timeout (seen when several processes open
    a new store together), so the wait is done here, bounded by the same timeout.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _sqlite_policies(engine: Engine, busy_timeout: float) -> None:
    """WAL, a busy timeout, foreign keys, and explicit BEGIN (IMMEDIATE for writes)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own; we do below
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _enable_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
