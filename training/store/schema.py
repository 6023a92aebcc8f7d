"""Tables of the series store as the code uses them now, and the store's error.

The current shape of each table is declared once below (`series`, `observations`) and used by
every query. The database gets there through the frozen steps in `training.store.migrations`,
whose runner records each applied step in `schema_version` (declared here too).

Timestamps are naive UTC (`TIMESTAMP WITHOUT TIME ZONE` on PostgreSQL, ISO text on SQLite,
which sorts like time). Metadata and covariates are JSON text, portable across both.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from training.errors import DataError

ID_LENGTH = 128
"""Longest series id (ids appear in URLs, so they are short and slash-free)."""
FREQUENCY_LENGTH = 16
"""Longest frequency text the `series.frequency` column holds."""
TARGET_LENGTH = 200
"""Longest target name the `series.target` column holds."""

metadata = sa.MetaData()

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("frequency", sa.String(FREQUENCY_LENGTH), nullable=False),
    sa.Column("target", sa.String(TARGET_LENGTH), nullable=False),
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
    """The series store cannot do what was asked (bad URL, bad payload, schema too new).

    Args:
        message: what is wrong, the value received and the fix.
        field: the argument or payload field at fault, spelled as a request names it
            ("values[3]", "timestamps[0]", "covariates.temp[2]", "frequency"); None when the
            error is about no one field (an unreachable database, a schema too new).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def utc_now() -> datetime:
    """The current time as naive UTC (how the store keeps every timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)
