"""The series store: series and observations in SQLite or PostgreSQL, with versioned schema
(`migrations` also migrates the scheduler's tables).

The service's ingestion routes, the `forecast load-series` command, the store-backed data
source and the retrainer all use `SeriesStore`; nothing else touches these tables.
`SeriesStore` (repository) is the façade over `series_info` (series rows), `observations`,
`bulk` (many-series reads) and `forecast_log`.
"""

from training.store.migrations import SCHEMA_VERSION
from training.store.observations import Observations, UpsertResult
from training.store.repository import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    DEFAULT_MAX_BATCH,
    SeriesStore,
)
from training.store.schema import StoreError
from training.store.series_info import SeriesInfo, SeriesNotFoundError
from training.store.validation import check_series_id

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_MAX_BATCH",
    "SCHEMA_VERSION",
    "Observations",
    "SeriesInfo",
    "SeriesNotFoundError",
    "SeriesStore",
    "StoreError",
    "UpsertResult",
    "check_series_id",
]
