"""The scheduler's own SQL tables (in the series store's database) and their migrations.

- `scheduler_jobs`: name, cron, timezone, next_run_at, last_run_at, last_status;
- `scheduler_runs`: one row per cycle (scheduled_for, missed, started_at, finished_at, status,
  promoted, versions JSON, error);
- `scheduler_schema_version`: the migration steps applied so far.

They are migrated by the project's one runner (`training.store.migrations`), with their own
version table and lock. Times are naive UTC, like the series store's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from training.store.migrations import Component, Migration

metadata = sa.MetaData()

scheduler_jobs = sa.Table(
    "scheduler_jobs",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("cron", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_run_at", sa.DateTime, nullable=True),  # naive UTC; NULL: never again
    sa.Column("last_run_at", sa.DateTime, nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),  # succeeded | failed
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

scheduler_runs = sa.Table(
    "scheduler_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("scheduled_for", sa.DateTime, nullable=False),  # the (first) fire time it ran for
    sa.Column("missed", sa.Integer, nullable=False),  # fire times coalesced into this cycle
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | failed
    sa.Column("promoted", sa.Boolean, nullable=True),
    sa.Column("versions", sa.Text, nullable=True),  # JSON: challenger, champion_before/after
    sa.Column("error", sa.Text, nullable=True),
)

scheduler_schema_version = sa.Table(
    "scheduler_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)


def _v1_create_tables(conn: Connection) -> None:
    """Version 1: scheduler_jobs and scheduler_runs, as first shipped (frozen; never edit)."""
    frozen = sa.MetaData()
    sa.Table(
        "scheduler_jobs",
        frozen,
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("next_run_at", sa.DateTime, nullable=True),
        sa.Column("last_run_at", sa.DateTime, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    runs = sa.Table(
        "scheduler_runs",
        frozen,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scheduled_for", sa.DateTime, nullable=False),
        sa.Column("missed", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("promoted", sa.Boolean, nullable=True),
        sa.Column("versions", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    sa.Index("ix_scheduler_runs_name_started", runs.c.name, runs.c.started_at)
    frozen.create_all(conn, checkfirst=False)


SCHEDULER = Component(
    name="scheduler",
    version_table=scheduler_schema_version,
    lock_key=0x5C_4ED0_0001,
    steps=(Migration(1, "create scheduler_jobs and scheduler_runs", _v1_create_tables),),
)
"""The scheduler's tables; `SCHEDULER.version` is the version this code expects."""
