"""Tables of the series store and the versioned DDL migrations that create them.

The current shape of each table is declared once below (`series`, `observations`) and used
by every query. The database gets there through `MIGRATIONS`, an ordered list of steps, each
with its own frozen DDL, so that a later change to a table is a new step rather than an edit
of an old one. `migrate()` applies the missing steps at start-up and records each in
`schema_version`. It is idempotent, and safe when several processes start at once:

- PostgreSQL: the whole migration runs in one transaction (PostgreSQL DDL is transactional)
  behind a transaction-scoped advisory lock, so a second process waits, then finds nothing
  left to do.
- SQLite: the migration runs in a `BEGIN IMMEDIATE` transaction, which takes the database's
  write lock up front; the second process waits on the busy timeout, then finds nothing left.

Timestamps are naive UTC (`TIMESTAMP WITHOUT TIME ZONE` on PostgreSQL, ISO text on SQLite,
which sorts like time). Metadata and covariates are JSON text, portable across both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from training.errors import DataError

logger = logging.getLogger(__name__)

ID_LENGTH = 128
"""Longest series id (ids appear in URLs, so they are short and slash-free)."""

MIGRATION_LOCK_KEY = 0x5E_21E5_0001
"""PostgreSQL advisory lock key held while migrating (any constant unique to this app)."""

metadata = sa.MetaData()

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("frequency", sa.String(16), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object
    sa.Column("created_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("updated_at", sa.DateTime, nullable=False),  # naive UTC
)

observations = sa.Table(
    "observations",
    metadata,
    sa.Column(
        "series_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("series.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("ts", sa.DateTime, primary_key=True),  # naive UTC
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("covariates", sa.Text, nullable=True),  # JSON object name -> float, or NULL
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),  # naive UTC
)


class StoreError(DataError):
    """The series store cannot do what was asked (bad URL, bad payload, schema too new)."""


@dataclass(frozen=True)
class Migration:
    """One step of DDL that moves the schema from `version - 1` to `version`.

    Attributes:
        version: the schema version after this step (1, 2, ...; no gaps).
        description: one line recorded in `schema_version`.
        apply: runs the DDL on a connection inside the migration transaction.
    """

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_create_tables(conn: Connection) -> None:
    """Version 1: series and observations, as first shipped (frozen; never edit)."""
    frozen = sa.MetaData()
    sa.Table(
        "series",
        frozen,
        sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "observations",
        frozen,
        sa.Column(
            "series_id",
            sa.String(ID_LENGTH),
            sa.ForeignKey("series.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ts", sa.DateTime, primary_key=True),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("covariates", sa.Text, nullable=True),
    )
    frozen.create_all(conn, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create series and observations", _v1_create_tables),
)
"""Every schema step in order; `MIGRATIONS[-1].version` is the version this code expects."""

SCHEMA_VERSION = MIGRATIONS[-1].version


def utc_now() -> datetime:
    """The current time as naive UTC (how the store keeps every timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when none has been applied)."""
    found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar_one()
    return int(found or 0)


def migrate(conn: Connection) -> list[int]:
    """Apply the missing migration steps on `conn`, inside the caller's transaction.

    The caller opens the transaction with the right lock (see the module docstring); this
    function takes the PostgreSQL advisory lock itself.

    Args:
        conn: a connection in an open transaction (SQLite: begun IMMEDIATE).

    Returns:
        The versions applied now, in order ([] when the schema was already current).

    Raises:
        StoreError: when the database is at a newer version than this code knows.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    schema_version.create(conn, checkfirst=True)
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the series store database is at schema version {version}, newer than this "
            f"code's {SCHEMA_VERSION}. Fix: upgrade rnn-forecast, or point "
            "FORECAST_DATABASE_URL at a database made by this version"
        )
    applied = []
    for step in MIGRATIONS:
        if step.version <= version:
            continue
        step.apply(conn)
        conn.execute(
            schema_version.insert().values(
                version=step.version, description=step.description, applied_at=utc_now()
            )
        )
        logger.info(
            "series store: applied schema migration %d (%s)", step.version, step.description
        )
        applied.append(step.version)
    return applied
