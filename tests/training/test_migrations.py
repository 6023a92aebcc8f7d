"""The one migration runner: databases made by the release before it upgrade in place.

`_create_as_released` is the DDL and version bookkeeping of `training/store/schema.py` and
`training/retraining/tables.py` as they stood before the runner was shared (copied, never to
be edited): the same tables, the same version tables and rows. The new code must open such a
database, apply nothing, and read back every row; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from training.retraining.schedule import Job
from training.retraining.scheduler import CycleRecord, JobState, Scheduler
from training.retraining.tables import SCHEDULER
from training.store import SeriesStore, StoreError
from training.store.engine import create_engine, transaction
from training.store.migrations import STORE, Component, Migration, migrate

APPLIED = datetime(2025, 6, 1, 12, 0, 0)
STAMPS = [datetime(2024, 1, 1, h) for h in range(3)]


def _create_as_released(conn: Connection) -> None:
    """The series store and scheduler tables exactly as the previous release created them."""
    frozen = sa.MetaData()
    series = sa.Table(
        "series",
        frozen,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    observations = sa.Table(
        "observations",
        frozen,
        sa.Column(
            "series_id",
            sa.String(128),
            sa.ForeignKey("series.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ts", sa.DateTime, primary_key=True),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("covariates", sa.Text, nullable=True),
    )
    versions = {
        name: sa.Table(
            name,
            frozen,
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("description", sa.String(200), nullable=False),
            sa.Column("applied_at", sa.DateTime, nullable=False),
        )
        for name in ("schema_version", "scheduler_schema_version")
    }
    jobs = sa.Table(
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
    conn.execute(
        versions["schema_version"]
        .insert()
        .values(version=1, description="create series and observations", applied_at=APPLIED)
    )
    conn.execute(
        versions["scheduler_schema_version"]
        .insert()
        .values(
            version=1, description="create scheduler_jobs and scheduler_runs", applied_at=APPLIED
        )
    )
    made = datetime(2025, 1, 1)
    conn.execute(
        series.insert(),
        [
            dict(id="load-a", frequency="h", target="load_mw", metadata='{"unit": "MW"}',
                 created_at=made, updated_at=made),
            dict(id="empty-b", frequency="15min", target="kw", metadata="{}",
                 created_at=made, updated_at=datetime(2025, 2, 1)),
        ],
    )  # fmt: skip
    conn.execute(
        observations.insert(),
        [
            dict(series_id="load-a", ts=STAMPS[0], value=1.5, covariates='{"temp": 3.5}'),
            dict(series_id="load-a", ts=STAMPS[1], value=2.5, covariates=None),
            dict(series_id="load-a", ts=STAMPS[2], value=-0.5, covariates='{"temp": -1.0}'),
        ],
    )
    conn.execute(
        jobs.insert(),
        [
            dict(name="load-etth1", cron="0 3 * * *", timezone="UTC",
                 next_run_at=datetime(2026, 3, 3, 3), last_run_at=datetime(2026, 3, 2, 3),
                 last_status="succeeded", updated_at=made),
            dict(name="paused", cron="*/5 * * * *", timezone="Europe/Berlin", next_run_at=None,
                 last_run_at=None, last_status=None, updated_at=made),
        ],
    )  # fmt: skip
    conn.execute(
        runs.insert(),
        [
            dict(name="load-etth1", scheduled_for=datetime(2026, 3, 2, 3), missed=2,
                 started_at=datetime(2026, 3, 2, 3, 0, 1), finished_at=datetime(2026, 3, 2, 3, 5),
                 status="succeeded", promoted=True,
                 versions='{"challenger": "4", "champion_before": "3", "champion_after": "4"}',
                 error=None),
            dict(name="load-etth1", scheduled_for=datetime(2026, 3, 3, 3), missed=1,
                 started_at=datetime(2026, 3, 3, 3, 0, 2), finished_at=None, status="failed",
                 promoted=None, versions=None, error="TrackingError: registry unreachable"),
        ],
    )  # fmt: skip


def _version_rows(url: str) -> dict[str, list[tuple[int, str, datetime]]]:
    engine = create_engine(url, 5.0)
    try:
        with transaction(engine, write=False) as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(sa.select(table))]
                for table in (STORE.version_table, SCHEDULER.version_table)
            }
    finally:
        engine.dispose()


def test_a_database_made_by_the_previous_release_upgrades_in_place(database_url: str) -> None:
    engine = create_engine(database_url, 5.0)
    with transaction(engine, write=True) as conn:
        _create_as_released(conn)
    engine.dispose()
    before = _version_rows(database_url)

    with SeriesStore(database_url) as store:
        assert store.migrate() == []
        assert store.schema_version() == STORE.version
        load = store.get_series("load-a")
        assert (load.frequency, load.target, load.metadata) == ("h", "load_mw", {"unit": "MW"})
        assert load.count == 3
        assert (load.first_timestamp, load.last_timestamp) == (STAMPS[0], STAMPS[-1])
        empty = store.get_series("empty-b")
        assert (empty.frequency, empty.count) == ("15min", 0)
        assert empty.updated_at == datetime(2025, 2, 1)
        stamps, values, covariates = store.observations("load-a")
        np.testing.assert_array_equal(stamps, np.array(STAMPS, dtype="datetime64[ns]"))
        np.testing.assert_array_equal(values, [1.5, 2.5, -0.5])
        np.testing.assert_array_equal(covariates["temp"], [3.5, np.nan, -1.0])
        # the upgraded store keeps working: the next hour lands on the old grid
        store.upsert_observations("load-a", ["2024-01-01T03:00"], [4.0])
        assert store.get_series("load-a").count == 4

    clock = datetime(2026, 3, 2, 12, tzinfo=UTC)
    jobs = [Job("load-etth1", "0 3 * * *", "UTC")]
    with Scheduler(jobs, database_url, clock=lambda: clock) as scheduler:
        assert scheduler.job_states() == [
            JobState("load-etth1", "0 3 * * *", "UTC", datetime(2026, 3, 3, 3),
                     datetime(2026, 3, 2, 3), "succeeded"),
            JobState("paused", "*/5 * * * *", "Europe/Berlin", None, None, None),
        ]  # fmt: skip
        assert scheduler.runs() == [
            CycleRecord(2, "load-etth1", datetime(2026, 3, 3, 3), 1, datetime(2026, 3, 3, 3, 0, 2),
                        None, "failed", None, None, "TrackingError: registry unreachable"),
            CycleRecord(1, "load-etth1", datetime(2026, 3, 2, 3), 2, datetime(2026, 3, 2, 3, 0, 1),
                        datetime(2026, 3, 2, 3, 5), "succeeded", True,
                        {"challenger": "4", "champion_before": "3", "champion_after": "4"}, None),
        ]  # fmt: skip
    released = {
        "schema_version": [(1, "create series and observations", APPLIED)],
        "scheduler_schema_version": [(1, "create scheduler_jobs and scheduler_runs", APPLIED)],
    }
    after = _version_rows(database_url)
    assert before == released
    # Opening the store added the forecast log (step 2) and kept step 1's record as it was.
    assert after["scheduler_schema_version"] == released["scheduler_schema_version"]
    assert after["schema_version"][0] == released["schema_version"][0]
    assert [row[:2] for row in after["schema_version"][1:]] == [(2, "create the forecast log")]


def test_one_runner_applies_a_new_step_to_old_tables_once(database_url: str) -> None:
    """A next step (here: a column on scheduler_runs) runs once on a database of the last
    release, keeps its rows, and is recorded in that component's own version table only."""

    def add_host(conn: Connection) -> None:
        conn.execute(sa.text("ALTER TABLE scheduler_runs ADD COLUMN host VARCHAR(64)"))

    upgraded = Component(
        name="scheduler",
        version_table=SCHEDULER.version_table,
        lock_key=SCHEDULER.lock_key,
        steps=(*SCHEDULER.steps, Migration(2, "add scheduler_runs.host", add_host)),
    )
    engine = create_engine(database_url, 5.0)
    try:
        with transaction(engine, write=True) as conn:
            _create_as_released(conn)
        with transaction(engine, write=True) as conn:
            assert migrate(conn, upgraded) == [2]
        with transaction(engine, write=True) as conn:
            assert migrate(conn, upgraded) == []
            hosts = conn.execute(sa.text("SELECT id, host FROM scheduler_runs ORDER BY id"))
            assert [tuple(row) for row in hosts] == [(1, None), (2, None)]
        versions = _version_rows(database_url)
        assert [v for v, _, _ in versions["scheduler_schema_version"]] == [1, 2]
        assert [v for v, _, _ in versions["schema_version"]] == [1]
        with (
            pytest.raises(
                StoreError,
                match=re.escape(
                    "the scheduler tables are at schema version 2, newer than this code's 1. "
                    "Fix: upgrade rnn-forecast"
                ),
            ),
            transaction(engine, write=True) as conn,
        ):
            migrate(conn, SCHEDULER)
    finally:
        engine.dispose()


def test_steps_must_be_numbered_without_gaps() -> None:
    with pytest.raises(StoreError, match=re.escape("scheduler migrations are numbered [1, 3]")):
        Component(
            "scheduler",
            SCHEDULER.version_table,
            SCHEDULER.lock_key,
            (*SCHEDULER.steps, Migration(3, "skips 2", lambda conn: None)),
        )
