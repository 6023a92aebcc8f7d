"""The series store of the service: its settings, one store per app, the route dependency, and
the translation of store errors into the service's HTTP errors.

One `StoreHandle` lives on `app.state.series_store`, built by `create_app()` and opened by the
lifespan. When the database cannot be reached at start-up the service still starts (model
forecasts do not need the store): the series routes answer 503 and the handle retries the
open at most every `REOPEN_SECONDS` on the next request.

Variables (prefix FORECAST_), with their defaults:

    FORECAST_DATABASE_URL           sqlite:///./data/series.db, or postgresql://user:pw@host/db
    FORECAST_INGEST_MAX_BATCH       most observations in one POST .../observations (10000)
    FORECAST_READ_MAX_POINTS        most observations one GET .../observations returns (10000)
    FORECAST_DATABASE_BUSY_TIMEOUT  seconds a SQLite writer waits for the write lock (10)
    FORECAST_FORECAST_LOG           record forecasts made from stored history (true)
    FORECAST_FORECAST_LOG_BUFFER    forecasts waiting to be logged before new ones drop (10000)
    FORECAST_LIVE_WINDOW            latest scored forecasts per version in the gauges (500)
    FORECAST_LIVE_REFRESH_SECONDS   seconds between live-accuracy gauge refreshes (30; 0 off)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, cast

import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, Request
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import InvalidInputError, NotReadyError, ServiceError
from service.settings import build_settings
from training.store import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    DEFAULT_MAX_BATCH,
    SeriesNotFoundError,
    SeriesStore,
    StoreError,
)

logger = logging.getLogger("service.store")

REOPEN_SECONDS = 5.0
"""After a failed open, requests answer 503 for this long before the next attempt."""


class StoreSettings(BaseSettings):
    """The store's URL, the series routes' caps and the forecast log (module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="FORECAST_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices(DATABASE_URL_ENV, "database_url"),
    )
    ingest_max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1)
    read_max_points: int = Field(default=10_000, ge=1)
    database_busy_timeout: float = Field(default=10.0, gt=0)
    forecast_log: bool = True
    forecast_log_buffer: int = Field(default=10_000, ge=1)
    live_window: int = Field(default=500, ge=1)
    live_refresh_seconds: float = Field(default=30.0, ge=0)


def load_store_settings(**overrides: object) -> StoreSettings:
    """Store settings from the environment (plus explicit overrides).

    Raises:
        SettingsError: one line per bad variable, naming it and the rule (values left out,
            so a database password never reaches a log).
    """
    return build_settings(StoreSettings, **overrides)


class SeriesNotFound(ServiceError):
    """The series id is not in the store (404)."""

    status_code = 404


class StoreHandle:
    """The app's one `SeriesStore` (as `settings` say), opened once and reopened after a
    failed open."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._store: SeriesStore | None = None
        self._lock = threading.Lock()
        self._failed_at: float | None = None

    def get(self) -> SeriesStore:
        """The open store, opening it now if needed.

        Raises:
            NotReadyError: the database cannot be opened (503); the cause is logged.
        """
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._failed_at is None or time.monotonic() - self._failed_at >= REOPEN_SECONDS:
                self._open_locked()
            if self._store is None:
                raise NotReadyError(
                    "the series store is unavailable (its database cannot be opened); retry "
                    "in a few seconds, and check FORECAST_DATABASE_URL if it persists",
                    None,
                )
            return self._store

    @property
    def current(self) -> SeriesStore | None:
        """The store when it is open, else None (never blocks)."""
        return self._store

    def try_open(self) -> bool:
        """Open the store now (lifespan start-up); False, logged, when it cannot be opened."""
        with self._lock:
            if self._store is None:
                self._open_locked()
            return self._store is not None

    def close(self) -> None:
        """Release the store's connections (lifespan shutdown)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open_locked(self) -> None:
        try:
            self._store = SeriesStore(
                self.settings.database_url.get_secret_value(),
                max_batch=self.settings.ingest_max_batch,
                busy_timeout=self.settings.database_busy_timeout,
            )
        except StoreError as exc:
            self._failed_at = time.monotonic()
            logger.error("series store cannot be opened, series routes answer 503: %s", exc)
            return
        self._failed_at = None
        logger.info("series store open at %s", self._store.url)


async def get_store(request: Request) -> SeriesStore:
    """The app's series store.

    Raises:
        NotReadyError: its database is down (503).
    """
    handle: StoreHandle = request.app.state.series_store
    store = handle.current
    if store is not None:  # the common case: no threadpool hop, no lock
        return store
    return await anyio.to_thread.run_sync(handle.get)  # opening blocks: keep it off the loop


async def get_store_settings(request: Request) -> StoreSettings:
    """The store settings of the app."""
    return cast(StoreHandle, request.app.state.series_store).settings


StoreDep = Annotated[SeriesStore, Depends(get_store)]
StoreSettingsDep = Annotated[StoreSettings, Depends(get_store_settings)]


@contextmanager
def store_errors() -> Iterator[None]:
    """Translate what the store raises into the service's errors, in one place.

    SeriesNotFoundError -> 404; any other StoreError (a payload the store refused; nothing was
    written) -> 422 naming its field; a value the database itself refuses (too long, out of
    range, a constraint: DataError, IntegrityError) -> 422, never a 500; an unreachable or
    locked database (OperationalError) -> 503.
    """
    try:
        yield
    except SeriesNotFoundError as exc:
        raise SeriesNotFound(str(exc), exc.field or "series_id") from None
    except StoreError as exc:
        raise InvalidInputError(str(exc), exc.field) from None
    except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        logger.info("series store refused a payload: %s", reason)
        raise InvalidInputError(
            f"the database refused the payload ({reason}); nothing was written. Fix: check "
            "the lengths and ranges of the values sent against the request schema at /docs",
            None,
        ) from None
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        logger.warning("series store database error: %s", str(exc).splitlines()[0])
        raise NotReadyError(
            "the series store database is unreachable or busy; nothing was written. Retry in "
            "a few seconds",
            None,
        ) from None
