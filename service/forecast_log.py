"""Records forecasts in the store's forecast log off the request path, and keeps the live
accuracy gauges current.

A request hands its forecast to `ForecastRecorder.submit`, which only appends it to a bounded
queue (FORECAST_FORECAST_LOG_BUFFER entries): it never waits on the database. One writer
thread wakes every FLUSH_SECONDS, packs what was queued meanwhile into table rows (~30 us
each, in slices between which it yields the GIL to the requests) and writes up to 500 per
transaction into `SeriesStore.forecast_log` (its cost to the requests is measured in
benchmarks/live.py). When the queue is full the forecast is dropped and counted
(`forecast_log_dropped_total`) rather than blocking or failing the request. While the
database is unreachable the writer holds its batch and retries, so nothing already queued is
lost; on shutdown it writes what is left before the process exits.

The same thread refreshes the live-accuracy gauges every FORECAST_LIVE_REFRESH_SECONDS from
the latest FORECAST_LIVE_WINDOW scored forecasts of each version.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request

from service.metrics import ServiceMetrics
from service.registry import LoadedModel
from service.store_deps import StoreHandle
from training.store.forecast_log import ForecastRecord, forecast_row, naive_reference

logger = logging.getLogger("service.forecast_log")

_BATCH = 500
"""Most forecasts the writer writes in one transaction."""
FLUSH_SECONDS = 0.25
"""How often the writer wakes to write what was queued meanwhile."""
_YIELD_EVERY = 32
"""Forecasts the writer prepares between two yields of the GIL (about 1 ms of work)."""
_RETRY_SECONDS = 1.0
_SHUTDOWN_TRIES = 10
"""Writes tried (0.2 s apart) at shutdown while the database is down, before giving up."""


@dataclass(frozen=True)
class _Pending:
    """What a request hands over: raw pieces, turned into a record."""

    model: str
    version: str
    series_id: str
    frequency: str
    origin: np.datetime64
    history: np.ndarray  # [L] the values the forecast was made from
    result: dict[str, Any]  # {"timestamps": [H] text, "mean": [H], "intervals": {...}}


class ForecastRecorder:
    """The bounded queue and writer thread of one app.

    Args:
        store: the app's store handle (the writer waits while the store is down).
        metrics: where recorded and dropped forecasts and the live gauges are counted.
        buffer: most forecasts waiting to be written; beyond it new ones are dropped.
        refresh_seconds: how often the live gauges are recomputed (0: never).
        window: the gauges cover each version's latest `window` scored forecasts.
    """

    def __init__(
        self,
        store: StoreHandle,
        metrics: ServiceMetrics,
        *,
        buffer: int,
        refresh_seconds: float,
        window: int,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=buffer)
        self._refresh_seconds = refresh_seconds
        self._window = window
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread (lifespan start-up)."""
        self._thread = threading.Thread(target=self._run, name="forecast-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer (lifespan shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error(
                    "forecast log: %d forecasts still queued at shutdown were not written",
                    self._queue.qsize(),
                )

    def submit(
        self,
        model: str,
        version: str,
        series_id: str,
        frequency: str,
        origin: np.datetime64,
        history: np.ndarray,
        result: dict[str, Any],
    ) -> None:
        """Queue one forecast for the log; drops it (counted) when the queue is full.

        Args:
            origin: the last history timestamp.
            history: [L] the values forecast from (for the seasonal-naive reference).
            result: the response body's "timestamps", "mean" and "intervals".
        """
        item = _Pending(model, version, series_id, frequency, origin, history, result)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._metrics.forecast_log_dropped.inc()

    @property
    def pending(self) -> int:
        """Forecasts queued and not yet written."""
        return self._queue.qsize()

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        next_refresh = time.monotonic() + self._refresh_seconds
        while True:
            # Wake every FLUSH_SECONDS, not on every forecast: one transaction then carries
            # everything queued meanwhile, instead of one per request.
            stopping = self._stop.wait(FLUSH_SECONDS)
            while batch := self._take():
                self._write(batch)
            if self._refresh_seconds > 0 and time.monotonic() >= next_refresh:
                self._refresh_gauges()
                next_refresh = time.monotonic() + self._refresh_seconds
            if stopping and self._queue.empty():
                return

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while len(batch) < _BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[_Pending]) -> None:
        records = []
        for i, item in enumerate(batch, start=1):
            if i % _YIELD_EVERY == 0:
                time.sleep(0)  # let request threads take the GIL between short slices
            try:
                records.append(forecast_row(_record(item)))
            except (ValueError, KeyError) as exc:  # one we cannot log (StoreError included)
                logger.warning("forecast log: skipped a forecast of %s: %s", item.model, exc)
                self._metrics.forecast_log_dropped.inc()
        tries_after_stop = 0
        while records:
            store = self._store.current
            if store is None and self._store.try_open():
                store = self._store.current
            if store is not None:
                try:
                    store.forecast_log.write_rows(records)
                    self._metrics.forecast_log_recorded.inc(len(records))
                    return
                except Exception as exc:  # the database is down or busy: hold and retry
                    logger.warning("forecast log: write failed, retrying: %s", exc)
            if self._stop.is_set():
                tries_after_stop += 1
                if tries_after_stop >= _SHUTDOWN_TRIES:
                    logger.error("forecast log: %d forecasts lost at shutdown", len(records))
                    self._metrics.forecast_log_dropped.inc(len(records))
                    return
            if self._stop.is_set():
                time.sleep(0.2)
            else:
                self._stop.wait(_RETRY_SECONDS)

    def _refresh_gauges(self) -> None:
        store = self._store.current
        if store is None:
            return
        try:
            scores = store.forecast_log.scores(last=self._window)
        except Exception as exc:
            logger.warning("forecast log: live scores not refreshed: %s", exc)
            return
        m = self._metrics
        for entry in scores:
            key = (entry.model, entry.version)
            m.live_forecasts.labels(*key).set(entry.overall.forecasts)
            if entry.overall.mase is not None:
                m.live_mase.labels(*key).set(entry.overall.mase)
            if entry.overall.mae is not None:
                m.live_mae.labels(*key).set(entry.overall.mae)
            for level, share in entry.overall.coverage.items():
                m.live_coverage.labels(*key, str(level)).set(share)


def _record(item: _Pending) -> ForecastRecord:
    result = item.result
    stamps: Sequence[str] = result["timestamps"]
    horizon = len(stamps)
    intervals = {
        int(level): (bounds["lower"], bounds["upper"])
        for level, bounds in result["intervals"].items()
    }
    return ForecastRecord(
        model=item.model,
        version=item.version,
        series_id=item.series_id,
        origin=item.origin.astype("datetime64[us]").item(),
        timestamps=np.array(stamps, dtype="datetime64[us]"),  # [H]
        mean=result["mean"],
        intervals=intervals,
        naive=naive_reference(item.history, horizon, item.frequency),
    )


def record_forecast(
    request: Request,
    model: LoadedModel,
    series_id: str,
    origin: np.datetime64,
    history: np.ndarray,
    result: dict[str, Any],
) -> None:
    """`ForecastRecorder.submit` for the app of `request`, when it keeps a forecast log."""
    recorder: ForecastRecorder | None = getattr(request.app.state, "forecast_recorder", None)
    if recorder is not None:
        recorder.submit(
            model.name, model.version, series_id, model.meta.frequency, origin, history, result
        )
