"""`SeriesStore`: series and their observations in SQLite or PostgreSQL (SQLAlchemy Core).

Every public method is synchronous and thread-safe (each call checks out its own pooled
connection) and runs in one transaction, so a failure anywhere inside a call leaves nothing
half-written. Payloads are validated completely before anything is written; a bad one raises
`StoreError` (a `DataError`) naming the field (e.g. "values[3]"), the value and the fix.

Concurrency:
- SQLite: WAL journal (readers never wait for writers) and a busy timeout; writes begin with
  `BEGIN IMMEDIATE`, so concurrent writers, threads or processes, queue instead of failing.
- PostgreSQL: a write to a series locks its `series` row (`SELECT ... FOR UPDATE`), so
  concurrent upserts to one series run one after the other and report exact counts; the
  upsert itself is `INSERT ... ON CONFLICT DO UPDATE`, so nothing is lost either way.

Example:
    >>> store = SeriesStore("sqlite:///./data/series.db")
    >>> store.upsert_series("load-a", frequency="h", target="load_mw", metadata={})
    >>> store.upsert_observations("load-a", ["2024-01-01T00:00Z", "2024-01-01T01:00Z"], [1.0, 2.0])
    UpsertResult(inserted=2, updated=0)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from training.store import migrations, schema, validation
from training.store.bulk import SeriesRows, read_many
from training.store.engine import create_engine, transaction
from training.store.forecast_log import ForecastLog, score
from training.store.schema import StoreError, observations, series
from training.store.timestamps import parse_range, parse_timestamps

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///./data/series.db"
DATABASE_URL_ENV = "FORECAST_DATABASE_URL"
DEFAULT_MAX_BATCH = 10_000
"""Most observations one `upsert_observations` call may carry."""
DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite writer waits for the write lock before giving up."""

Observations = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]
"""(timestamps [T] datetime64[ns] naive UTC, values [T] float64, covariates name -> [T] float64
with NaN where an observation lacks that covariate)."""


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; datetimes as ISO 8601 strings (UTC, no offset)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "frequency": self.frequency,
            "target": self.target,
            "metadata": dict(self.metadata),
            "count": self.count,
            "first_timestamp": iso(self.first_timestamp),
            "last_timestamp": iso(self.last_timestamp),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class UpsertResult:
    """What one `upsert_observations` call did.

    Attributes:
        inserted: observations at timestamps the series did not have yet.
        updated: observations that replaced a stored value at the same timestamp.
    """

    inserted: int
    updated: int

    @property
    def total(self) -> int:
        """Observations in the batch (inserted + updated)."""
        return self.inserted + self.updated


class SeriesStore:
    """Series and observations in one SQL database; the schema is migrated on open.

    Args:
        url: `sqlite:///path/to/series.db` or `postgresql://user:pass@host/db`
            (`postgresql://` uses psycopg 3). Relative SQLite paths start at the working
            directory; the folder is created.
        max_batch: most observations one `upsert_observations` call may carry.
        busy_timeout: seconds a SQLite writer waits for the lock before failing.

    Raises:
        StoreError: unparseable or unsupported URL, unreachable database, or a database
            schema newer than this code.
    """

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise StoreError(
                f"max_batch must be a positive integer, got {max_batch!r}", "max_batch"
            )
        self.max_batch = max_batch
        self._engine = create_engine(url, busy_timeout)
        self.url = self._engine.url.render_as_string(hide_password=True)
        try:
            self.migrate()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            self._engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreError(
                f"cannot open the series store at {self.url} ({reason}). Fix: check "
                f"{DATABASE_URL_ENV} and that the database is running and writable"
            ) from None
        except BaseException:
            self._engine.dispose()
            raise
        self.forecast_log = ForecastLog(self._engine)
        """Forecasts recorded from this store's series, scored as their actuals arrive."""

    @classmethod
    def from_env(cls, *, max_batch: int = DEFAULT_MAX_BATCH) -> SeriesStore:
        """Open the store at $FORECAST_DATABASE_URL, else `sqlite:///./data/series.db`."""
        return cls(os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL, max_batch=max_batch)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and for queries this class does not offer)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Release every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> SeriesStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[int]:
        """Bring the schema to the current version (idempotent; already run on open).

        Returns:
            The versions applied by this call ([] when the schema was current).
        """
        with transaction(self._engine, write=True) as conn:
            applied = migrations.migrate(conn, migrations.STORE)
        return applied

    def schema_version(self) -> int:
        """The schema version the database is at."""
        with transaction(self._engine, write=False) as conn:
            return migrations.current_version(conn, migrations.STORE)

    # -- series -----------------------------------------------------------------------

    def upsert_series(
        self,
        series_id: str,
        *,
        frequency: str,
        target: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> SeriesInfo:
        """Create a series, or replace its target and metadata.

        Args:
            series_id: 1-128 characters of letters, digits, ".", "_", ":" and "-",
                starting with a letter or digit.
            frequency: one of "h", "<n>h", "<n>min", "D", "B", "W".
            target: what the values measure, e.g. "OT" or "load_mw".
            metadata: a JSON object (at most 64 KiB); replaces the stored one.

        Returns:
            The series as stored now.

        Raises:
            StoreError: bad id, frequency, target or metadata, or a frequency change on a
                series that already has observations.
        """
        validation.check_series_id(series_id)
        freq = validation.check_frequency(frequency)
        validation.check_target(target)
        meta_text = validation.metadata_json(metadata)
        now = schema.utc_now()
        with transaction(self._engine, write=True) as conn:
            old = conn.execute(
                sa.select(series.c.frequency).where(series.c.id == series_id).with_for_update()
            ).scalar_one_or_none()
            if old is not None and old != freq:
                count = _stats(conn, series_id)[0]
                if count:
                    raise StoreError(
                        f"series {series_id!r} has {count} observations at frequency {old!r}; "
                        f"frequency cannot change to {freq!r}. Fix: create a new series id",
                        "frequency",
                    )
            insert = _dialect_insert(conn).values(
                id=series_id,
                frequency=freq,
                target=target,
                metadata=meta_text,
                created_at=now,
                updated_at=now,
            )
            stmt = insert.on_conflict_do_update(
                index_elements=[series.c.id],
                set_={
                    "frequency": insert.excluded.frequency,
                    "target": insert.excluded.target,
                    "metadata": insert.excluded.metadata,
                    "updated_at": insert.excluded.updated_at,
                },
            )
            conn.execute(stmt)
            return self._info(conn, series_id)

    def list_series(self, prefix: str = "", limit: int = 100) -> list[SeriesInfo]:
        """Series whose id starts with `prefix`, in id order, at most `limit`.

        Raises:
            StoreError: when limit is not a positive integer.
        """
        limit = validation.check_positive(limit, "limit")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            sa.select(series)
            .where(series.c.id.like(f"{escaped}%", escape="\\"))
            .order_by(series.c.id)
            .limit(limit)
        )
        with transaction(self._engine, write=False) as conn:
            found = conn.execute(query).all()
            return [_row_info(row, *_stats(conn, row.id)) for row in found]

    def get_series(self, series_id: str) -> SeriesInfo:
        """The series with its observation count and first/last timestamps.

        Raises:
            SeriesNotFoundError: when no series has this id.
        """
        with transaction(self._engine, write=False) as conn:
            return self._info(conn, series_id)

    # -- observations ---------------------------------------------------------------

    def upsert_observations(
        self,
        series_id: str,
        timestamps: Sequence[Any] | np.ndarray,
        values: Sequence[float] | np.ndarray,
        covariates: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    ) -> UpsertResult:
        """Insert or replace observations of one series, all or nothing.

        The batch is validated before anything is written: the series exists; timestamps,
        values and every covariate have the same length (1..max_batch); values and
        covariates are finite numbers; timestamps parse (naive = UTC, offsets converted),
        strictly increase, step by exactly the series' frequency (for "B": weekdays, gaps
        allowed), and sit on the grid of the series' stored observations.

        An observation at a stored timestamp replaces its value; its covariates are
        replaced when given and kept when omitted.

        Args:
            series_id: an existing series.
            timestamps: [T] ISO 8601 strings, datetimes or datetime64.
            values: [T] finite numbers.
            covariates: name -> [T] finite numbers, or None.

        Returns:
            How many observations were inserted and how many replaced a stored one.

        Raises:
            SeriesNotFoundError: unknown series.
            StoreError: a bad payload; the message names the field and index.
        """
        validation.check_series_id(series_id)
        n = validation.batch_length(timestamps, values, covariates, self.max_batch)
        stamps = parse_timestamps(timestamps, "timestamps")  # [T] datetime64[us], in range
        vals = validation.finite_numbers(values, "values")  # [T]
        covs = {
            name: validation.finite_numbers(seq, f"covariates.{name}")
            for name, seq in (covariates or {}).items()
        }  # name -> [T]
        validation.check_increasing(stamps)
        stamp_list: list[datetime] = stamps.tolist()
        with transaction(self._engine, write=True) as conn:
            freq = conn.execute(
                sa.select(series.c.frequency).where(series.c.id == series_id).with_for_update()
            ).scalar_one_or_none()
            if freq is None:
                raise _not_found(series_id)
            validation.check_frequency_steps(stamps, freq, series_id)
            first = conn.execute(
                sa.select(sa.func.min(observations.c.ts)).where(
                    observations.c.series_id == series_id
                )
            ).scalar_one_or_none()
            validation.check_grid(stamps, first, freq, series_id)
            existing = (
                conn.execute(
                    sa.select(observations.c.ts).where(
                        observations.c.series_id == series_id,
                        observations.c.ts >= stamp_list[0],
                        observations.c.ts <= stamp_list[-1],
                    )
                )
                .scalars()
                .all()
            )
            updated = len(set(existing).intersection(stamp_list))
            rows = _rows(series_id, stamp_list, vals, covs, n)
            conn.execute(_upsert_statement(conn), rows)
            # Logged forecasts of these timestamps are scored in the same transaction.
            score(conn, series_id, stamp_list, vals)
        logger.debug("series %s: upserted %d observations (%d new)", series_id, n, n - updated)
        return UpsertResult(inserted=n - updated, updated=updated)

    def observations(
        self,
        series_id: str,
        start: Any = None,
        end: Any = None,
        limit: int | None = None,
    ) -> Observations:
        """Stored observations in time order, optionally within [start, end] (inclusive).

        Args:
            series_id: an existing series.
            start: first timestamp to include (ISO string, datetime or datetime64), or None.
            end: last timestamp to include, or None.
            limit: at most this many observations (the earliest ones), or None for all.

        Returns:
            (timestamps [T] datetime64[ns], values [T] float64, covariates name -> [T]).

        Raises:
            SeriesNotFoundError: unknown series.
            StoreError: unparseable start/end, start after end, or a bad limit.
        """
        lo, hi = parse_range(start, end)
        if limit is not None:
            limit = validation.check_positive(limit, "limit")
        o = observations.c
        query = sa.select(o.ts, o.value, o.covariates).where(o.series_id == series_id)
        if lo is not None:
            query = query.where(o.ts >= lo)
        if hi is not None:
            query = query.where(o.ts <= hi)
        query = query.order_by(o.ts.asc()).limit(limit)
        with transaction(self._engine, write=False) as conn:
            self._require(conn, series_id)
            rows = conn.execute(query).all()
        return _arrays(rows)

    def read_many(
        self,
        series_ids: Sequence[str],
        *,
        covariates: Sequence[str] = (),
        start: Any = None,
        end: Any = None,
        last: int | None = None,
    ) -> SeriesRows:
        """Many series' observations in a few queries (`training.store.bulk`).

        Args:
            series_ids: distinct ids of stored series.
            covariates: stored covariates to return with the values.
            start, end: inclusive time bounds (ISO string, datetime or datetime64), or None.
            last: only each series' newest `last` observations, or None for all.

        Raises:
            SeriesNotFoundError: an unknown id (the first one).
            StoreError: unparseable start/end, start after end, or a bad `last`.
        """
        lo, hi = parse_range(start, end)
        if last is not None:
            last = validation.check_positive(last, "last")
        rows, missing = read_many(
            self._engine, series_ids, covariates=covariates, start=lo, end=hi, last=last
        )
        if missing:
            raise _not_found(missing[0])
        return rows

    def latest(self, series_id: str, n: int) -> Observations:
        """The last `n` observations (fewer if the series is shorter), in time order.

        Raises:
            SeriesNotFoundError: unknown series.
            StoreError: when n is not a positive integer.
        """
        n = validation.check_positive(n, "n")
        o = observations.c
        query = (
            sa.select(o.ts, o.value, o.covariates)
            .where(o.series_id == series_id)
            .order_by(o.ts.desc())
            .limit(n)
        )
        with transaction(self._engine, write=False) as conn:
            self._require(conn, series_id)
            rows = conn.execute(query).all()
        return _arrays(rows[::-1])

    # -- internals ------------------------------------------------------------------

    def _require(self, conn: Connection, series_id: str) -> None:
        found = conn.execute(sa.select(series.c.id).where(series.c.id == series_id)).first()
        if found is None:
            raise _not_found(series_id)

    def _info(self, conn: Connection, series_id: str) -> SeriesInfo:
        row = conn.execute(sa.select(series).where(series.c.id == series_id)).first()
        if row is None:
            raise _not_found(series_id)
        count, first, last = _stats(conn, series_id)
        return _row_info(row, count, first, last)


def _dialect_insert(conn: Connection, table: sa.Table = series) -> Any:
    """INSERT with ON CONFLICT support for the connection's dialect."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _upsert_statement(conn: Connection) -> Any:
    insert = _dialect_insert(conn, observations)
    return insert.on_conflict_do_update(
        index_elements=[observations.c.series_id, observations.c.ts],
        set_={
            "value": insert.excluded.value,
            # Covariates omitted from a batch keep the stored ones.
            "covariates": sa.func.coalesce(insert.excluded.covariates, observations.c.covariates),
        },
    )


# -- queries and rows ---------------------------------------------------------------


def _stats(conn: Connection, series_id: str) -> tuple[int, datetime | None, datetime | None]:
    o = observations.c
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(o.ts), sa.func.max(o.ts)).where(
            o.series_id == series_id
        )
    ).one()
    return int(row[0]), row[1], row[2]


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


def _rows(
    series_id: str,
    stamps: list[datetime],
    values: np.ndarray,
    covariates: dict[str, np.ndarray],
    n: int,
) -> list[dict[str, Any]]:
    """Parameter dicts for the executemany upsert, one per observation."""
    value_list = values.tolist()
    if covariates:
        names = list(covariates)
        columns = [covariates[name].tolist() for name in names]  # C x [T]
        cov_text: list[str | None] = [
            json.dumps(dict(zip(names, (col[i] for col in columns), strict=True))) for i in range(n)
        ]
    else:
        cov_text = [None] * n
    return [
        {"series_id": series_id, "ts": stamps[i], "value": value_list[i], "covariates": cov_text[i]}
        for i in range(n)
    ]


def _arrays(rows: Sequence[Any]) -> Observations:
    """Rows of (ts, value, covariates JSON) -> the arrays `observations()` returns."""
    stamps = np.array([row.ts for row in rows], dtype="datetime64[us]").astype(
        "datetime64[ns]"
    )  # [T]
    values = np.array([row.value for row in rows], dtype=np.float64)  # [T]
    parsed = [json.loads(row.covariates) if row.covariates else {} for row in rows]
    names = sorted({name for item in parsed for name in item})
    covariates = {
        name: np.array([item.get(name, np.nan) for item in parsed], dtype=np.float64)  # [T]
        for name in names
    }
    return stamps, values, covariates


def _not_found(series_id: str) -> SeriesNotFoundError:
    return SeriesNotFoundError(
        f"series {series_id!r} does not exist. Fix: create it first "
        "(SeriesStore.upsert_series, PUT /v1/series/{id}, or forecast load-series)",
        "series_id",
    )


__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_MAX_BATCH",
    "Observations",
    "SeriesInfo",
    "SeriesNotFoundError",
    "SeriesStore",
    "StoreError",
    "UpsertResult",
]
