"""Tables of the series store as the code uses them now, and the store's error.

The current shape of each table is declared once below (`series`, `observations`,
`forecast_log`) and used by every query. The database gets there through the frozen steps in
`training.store.migrations`, whose runner records each applied step in `schema_version`
(declared here too).

Timestamps are naive UTC (`TIMESTAMP WITHOUT TIME ZONE` on PostgreSQL, ISO text on SQLite,
which sorts like time). Metadata and covariates are JSON text, portable across both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from training.errors import DataError

ID_LENGTH = 128
"""Longest series id (ids appear in URLs, so they are short and slash-free)."""
FREQUENCY_LENGTH = 16
"""Longest frequency text the `series.frequency` column holds."""
TARGET_LENGTH = 200
"""Longest target name the `series.target` column holds."""
MODEL_NAME_LENGTH = 200
"""Longest registered model name the forecast log holds."""
VERSION_LENGTH = 32
"""Longest model version text the forecast log holds."""

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

forecast_log = sa.Table(
    "forecast_log",
    metadata,
    # One row per logged forecast; arrays are packed little-endian bytes (float64, or int64
    # microseconds since the epoch for stamps), [H] each, lower/upper [K, H] in `levels` order.
    sa.Column("model", sa.String(MODEL_NAME_LENGTH), primary_key=True),
    sa.Column("version", sa.String(VERSION_LENGTH), primary_key=True),
    sa.Column("series_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("origin", sa.DateTime, primary_key=True),  # naive UTC: the last history stamp
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("first_ts", sa.DateTime, nullable=False),  # naive UTC: step 1
    sa.Column("last_ts", sa.DateTime, nullable=False),  # naive UTC: step H
    sa.Column("stamps", sa.LargeBinary, nullable=False),
    sa.Column("mean", sa.LargeBinary, nullable=False),
    sa.Column("naive", sa.LargeBinary, nullable=True),  # seasonal naive, same history
    sa.Column("levels", sa.String(64), nullable=False),  # "80,95"
    sa.Column("lower", sa.LargeBinary, nullable=False),
    sa.Column("upper", sa.LargeBinary, nullable=False),
    sa.Column("actual", sa.LargeBinary, nullable=False),  # NaN until observed
    sa.Column("scored", sa.Integer, nullable=False),  # steps with an actual
    sa.Column("created_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Index("ix_forecast_log_series_span", "series_id", "last_ts"),
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


def between(query: Any, column: Any, lo: Any, hi: Any) -> Any:
    """`query` restricted to rows with lo <= `column` <= hi (a None bound leaves that side open)."""
    if lo is not None:
        query = query.where(column >= lo)
    return query if hi is None else query.where(column <= hi)


def utc_now() -> datetime:
    """The current time as naive UTC (how the store keeps every timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)
