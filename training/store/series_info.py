"""Series rows: `SeriesInfo`, creating or updating a series, and reading one or many back
with a summary of their observations (count, first and last timestamp).

Functions take an open `Connection`; `SeriesStore` (training.store.repository) owns the
transactions and calls them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from training.store.schema import StoreError, observations, series


class SeriesNotFoundError(StoreError):
    """The named series does not exist in the store."""


@dataclass(frozen=True)
class SeriesInfo:
    """One stored series and a summary of its observations.

    Attributes:
        id: the series id.
        frequency: canonical frequency string ("h", "D", "B", "W", "<n>min", "<n>h").
        target: what the values measure (a column name, e.g. "OT").
        metadata: free-form JSON object given at creation or last update.
        count: number of stored observations.
        first_timestamp: earliest observation (naive UTC), None when there are none.
        last_timestamp: latest observation (naive UTC), None when there are none.
        created_at: when the series was created (naive UTC).
        updated_at: when its frequency/target/metadata were last written (naive UTC);
            equal to `created_at` right after creation.
    """

    id: str
    frequency: str
    target: str
    metadata: dict[str, Any]
    count: int
    first_timestamp: datetime | None
    last_timestamp: datetime | None
    created_at: datetime
    updated_at: datetime


def upsert(
    conn: Connection, series_id: str, frequency: str, target: str, metadata_json: str, now: datetime
) -> SeriesInfo:
    """Create a series or replace its frequency, target and metadata; returns it as stored.

    The arguments are already validated (`SeriesStore.upsert_series`); `conn` is in a write
    transaction.

    Raises:
        StoreError: a frequency change on a series that already has observations.
    """
    old = conn.execute(
        sa.select(series.c.frequency).where(series.c.id == series_id).with_for_update()
    ).scalar_one_or_none()
    if old is not None and old != frequency:
        count = stats(conn, series_id)[0]
        if count:
            raise StoreError(
                f"series {series_id!r} has {count} observations at frequency {old!r}; "
                f"frequency cannot change to {frequency!r}. Fix: create a new series id",
                "frequency",
            )
    insert = dialect_insert(conn).values(
        id=series_id, frequency=frequency, target=target, metadata=metadata_json,
        created_at=now, updated_at=now,
    )  # fmt: skip
    replaced = ("frequency", "target", "metadata", "updated_at")  # created_at stays
    set_ = {name: insert.excluded[name] for name in replaced}
    conn.execute(insert.on_conflict_do_update(index_elements=[series.c.id], set_=set_))
    return info(conn, series_id)


def list_infos(conn: Connection, prefix: str, limit: int) -> list[SeriesInfo]:
    """Series whose id starts with `prefix` (matched literally), in id order, at most `limit`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = series.c.id.like(f"{escaped}%", escape="\\")
    found = conn.execute(sa.select(series).where(like).order_by(series.c.id).limit(limit)).all()
    return [_row_info(row, *stats(conn, row.id)) for row in found]


def info(conn: Connection, series_id: str) -> SeriesInfo:
    """`SeriesStore.get_series`: the series with its observation count and first/last stamps."""
    row = conn.execute(sa.select(series).where(series.c.id == series_id)).first()
    if row is None:
        raise not_found(series_id)
    return _row_info(row, *stats(conn, series_id))


def require(conn: Connection, series_id: str) -> None:
    """Raise `SeriesNotFoundError` unless the series exists."""
    found = conn.execute(sa.select(series.c.id).where(series.c.id == series_id)).first()
    if found is None:
        raise not_found(series_id)


def stats(conn: Connection, series_id: str) -> tuple[int, datetime | None, datetime | None]:
    """(count, first timestamp, last timestamp) of a series' observations."""
    o = observations.c
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(o.ts), sa.func.max(o.ts)).where(
            o.series_id == series_id
        )
    ).one()
    return int(row[0]), row[1], row[2]


def not_found(series_id: str) -> SeriesNotFoundError:
    """The error for an unknown series id, naming the ways to create one."""
    return SeriesNotFoundError(
        f"series {series_id!r} does not exist. Fix: create it first "
        "(SeriesStore.upsert_series, PUT /v1/series/{id}, or forecast load-series)",
        "series_id",
    )


def dialect_insert(conn: Connection, table: sa.Table = series) -> Any:
    """INSERT with ON CONFLICT support for the connection's dialect."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _row_info(row: Any, count: int, first: datetime | None, last: datetime | None) -> SeriesInfo:
    return SeriesInfo(
        id=row.id,
        frequency=row.frequency,
        target=row.target,
        metadata=json.loads(row.metadata),
        count=count,
        first_timestamp=first,
        last_timestamp=last,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
