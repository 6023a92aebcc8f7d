"""The one migration runner of every table the project owns, and the series store's steps.

Each component (the series store here; the scheduler in `training.retraining.tables`) lists
its schema as an ordered tuple of `Migration` steps, each with its own frozen DDL, so that a
later change to a table is a new step rather than an edit of an old one. `migrate()` applies
the steps a database lacks and records each in the component's version table
(`schema_version`, `scheduler_schema_version`: version, description, applied_at), the same
tables the code has always written, so a database made by an earlier release upgrades in
place. It is idempotent, and safe when several processes start at once:

- PostgreSQL: the whole migration runs in the caller's transaction (PostgreSQL DDL is
  transactional) behind a transaction-scoped advisory lock per component, so a second
  process waits, then finds nothing left to do.
- SQLite: the caller begins the transaction IMMEDIATE, which takes the write lock up front;
  the second process waits on the busy timeout, then finds nothing left.

Why not Alembic: it would need a script folder and env.py per component, its own version
table (a string revision, not these integer versions) and a translation step for every
existing database, to run the same create-tables DDL this runner already runs in one
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from training.store.schema import ID_LENGTH, StoreError, schema_version, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One step of DDL that moves a component's schema from `version - 1` to `version`.

    Attributes:
        version: the schema version after this step (1, 2, ...; no gaps).
        description: one line recorded in the version table.
        apply: runs the DDL on a connection inside the migration transaction.
    """

    version: int
    description: str
    apply: Callable[[Connection], None]


@dataclass(frozen=True)
class Component:
    """A set of tables migrated together, with its own version table and lock.

    Attributes:
        name: how messages and logs call it ("series store", "scheduler").
        version_table: version (int, primary key), description, applied_at (naive UTC).
        lock_key: the PostgreSQL advisory lock key held while migrating it.
        steps: every step in order, numbered 1..n.
    """

    name: str
    version_table: sa.Table
    lock_key: int
    steps: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [step.version for step in self.steps]
        if numbers != list(range(1, len(numbers) + 1)):
            raise StoreError(
                f"{self.name} migrations are numbered {numbers}; they must run 1, 2, ... "
                "without gaps. Fix: number the new step one above the last"
            )

    @property
    def version(self) -> int:
        """The schema version this code expects."""
        return self.steps[-1].version


def current_version(conn: Connection, component: Component) -> int:
    """The component's schema version recorded in the database (0 when none was applied)."""
    table = component.version_table
    if not sa.inspect(conn).has_table(table.name):
        return 0
    found = conn.execute(sa.select(sa.func.max(table.c.version))).scalar_one()
    return int(found or 0)


def migrate(conn: Connection, component: Component) -> list[int]:
    """Apply the component's missing steps on `conn`, inside the caller's transaction.

    Args:
        conn: a connection in an open transaction (SQLite: begun IMMEDIATE).
        component: the tables to bring up to date.

    Returns:
        The versions applied now, in order ([] when the schema was already current).

    Raises:
        StoreError: when the database is at a newer version than this code knows.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(component.lock_key)))
    component.version_table.create(conn, checkfirst=True)
    version = current_version(conn, component)
    if version > component.version:
        raise StoreError(
            f"the {component.name} tables are at schema version {version}, newer than this "
            f"code's {component.version}. Fix: upgrade rnn-forecast, or point "
            "FORECAST_DATABASE_URL at a database made by this version"
        )
    applied = []
    for step in component.steps[version:]:
        step.apply(conn)
        row = {"version": step.version, "description": step.description, "applied_at": utc_now()}
        conn.execute(component.version_table.insert().values(**row))
        logger.info(
            "%s: applied schema migration %d (%s)", component.name, step.version, step.description
        )
        applied.append(step.version)
    return applied


# -- the series store's steps (frozen: never edit one; add the next) -------------------------


def _v1_create_tables(conn: Connection) -> None:
    """Version 1: series and observations, as first shipped."""
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


def _v2_forecast_log(conn: Connection) -> None:
    """Version 2: the forecast log (one row per logged forecast, scored on arrival)."""
    frozen = sa.MetaData()
    sa.Table(
        "forecast_log",
        frozen,
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("series_id", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("origin", sa.DateTime, primary_key=True),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("first_ts", sa.DateTime, nullable=False),
        sa.Column("last_ts", sa.DateTime, nullable=False),
        sa.Column("stamps", sa.LargeBinary, nullable=False),
        sa.Column("mean", sa.LargeBinary, nullable=False),
        sa.Column("naive", sa.LargeBinary, nullable=True),
        sa.Column("levels", sa.String(64), nullable=False),
        sa.Column("lower", sa.LargeBinary, nullable=False),
        sa.Column("upper", sa.LargeBinary, nullable=False),
        sa.Column("actual", sa.LargeBinary, nullable=False),
        sa.Column("scored", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_forecast_log_series_span", "series_id", "last_ts"),
    )
    frozen.create_all(conn, checkfirst=False)


STORE = Component(
    name="series store",
    version_table=schema_version,
    lock_key=0x5E_21E5_0001,
    steps=(
        Migration(1, "create series and observations", _v1_create_tables),
        Migration(2, "create the forecast log", _v2_forecast_log),
    ),
)
"""The series store's tables; `STORE.version` is the version this code expects."""

SCHEMA_VERSION = STORE.version
