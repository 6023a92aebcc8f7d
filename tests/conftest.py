"""Shared pytest fixtures (keep this file small; one fixture per real need)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write `text` (dedented lines, first line the header) to tmp_path/`name`; return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        lines = [line.strip() for line in text.strip().splitlines()]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def _state_outside_the_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Default stores and locks go to a temp folder, so no test writes into the checkout.

    Tests that need a particular store pass its URL explicitly; this only moves the defaults
    (`sqlite:///./data/series.db`, `./mlruns`, the lock folder) out of the working tree.
    """
    root = tmp_path_factory.mktemp("defaults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORECAST_DATABASE_URL", f"sqlite:///{root}/series.db")
        mp.setenv("FORECAST_LOCK_DIR", str(root / "locks"))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a private schema on
    $FORECAST_TEST_POSTGRES_URL's database (dropped afterwards; skips without the variable)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'series.db'}"
        return
    base = os.environ.get("FORECAST_TEST_POSTGRES_URL")
    if not base:
        pytest.skip(
            "FORECAST_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)"
        )
    import sqlalchemy as sa

    schema = f"forecast_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        sa.engine.make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            sa.engine.make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """A new PostgreSQL database on $FORECAST_TEST_POSTGRES_URL's server, dropped afterwards.

    Yields its SQLAlchemy URL (postgresql+psycopg://...). Skips without the variable. Each test
    gets its own database, so runs never see each other's rows.
    """
    admin_url = os.environ.get("FORECAST_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip(
            "FORECAST_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1/test)"
        )
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"forecast_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
