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

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from training.store import migrations, schema, series_info, validation
from training.store import observations as obs
from training.store.bulk import SeriesRows, read_many
from training.store.engine import create_engine, transaction
from training.store.forecast_log import ForecastLog
from training.store.observations import Observations, UpsertResult
from training.store.schema import StoreError
from training.store.series_info import SeriesInfo
from training.store.timestamps import parse_range

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///./data/series.db"
DATABASE_URL_ENV = "FORECAST_DATABASE_URL"
DEFAULT_MAX_BATCH = 10_000
"""Most observations one `upsert_observations` call may carry."""
DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite writer waits for the write lock before giving up."""


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
        self.max_batch = validation.check_positive(max_batch, "max_batch")
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
        """Bring the schema to the current version (idempotent; already run on open); returns
        the versions applied by this call ([] when the schema was current)."""
        with transaction(self._engine, write=True) as conn:
            return migrations.migrate(conn, migrations.STORE)

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
            return series_info.upsert(conn, series_id, freq, target, meta_text, now)

    def list_series(self, prefix: str = "", limit: int = 100) -> list[SeriesInfo]:
        """Series whose id starts with `prefix`, in id order, at most `limit`.

        Raises:
            StoreError: when limit is not a positive integer.
        """
        limit = validation.check_positive(limit, "limit")
        with transaction(self._engine, write=False) as conn:
            return series_info.list_infos(conn, prefix, limit)

    def get_series(self, series_id: str) -> SeriesInfo:
        """The series with its observation count and first/last timestamps.

        Raises:
            SeriesNotFoundError: when no series has this id.
        """
        with transaction(self._engine, write=False) as conn:
            return series_info.info(conn, series_id)

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
        result = obs.upsert(self._engine, series_id, timestamps, values, covariates, self.max_batch)
        logger.debug(
            "series %s: upserted %d observations (%d new)", series_id, result.total, result.inserted
        )
        return result

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
        return obs.read(self._engine, series_id, start, end, limit)

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
        return read_many(
            self._engine, series_ids, covariates=covariates, start=lo, end=hi, last=last
        )

    def latest(self, series_id: str, n: int) -> Observations:
        """The last `n` observations (fewer if the series is shorter), in time order.

        Raises:
            SeriesNotFoundError: unknown series.
            StoreError: when n is not a positive integer.
        """
        return obs.latest(self._engine, series_id, n)
