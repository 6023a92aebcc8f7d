"""The forecast log's writer process: `write_forever` is the body of the process the serving
process spawns (`service.forecast_log` describes the whole design)."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import pickle
import select
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from models.features import season_length
from training.store import SeriesStore
from training.store.forecast_rows import F8, MAX_RECORDED_STEPS, packed_rows
from training.store.schema import StoreError, utc_now

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event
    from types import FrameType

logger = logging.getLogger("service.forecast_log")

_BATCH = 500
"""Most forecasts received that the writer packs and writes in one transaction."""
FLUSH_SECONDS = 0.25
"""How often the writer wakes to write what came meanwhile. Each wake-up is a burst of CPU
that slows the requests it overlaps: once a second made four times longer bursts, and p99
no better (BENCHMARKS.md)."""
_RECEIVE_SECONDS = 0.02
"""The writer's receiving thread sleeps this long between two reads of its socket."""
_RETRY_SECONDS = 1.0
_SHUTDOWN_TRIES = 10
"""Writes tried (0.2 s apart) at shutdown while the database is down, before giving up."""
_TERM_GRACE_SECONDS = 10.0
_NICE = 19
"""The writing thread's nice value (Linux: per thread), the lowest priority."""
RECORDED, DROPPED = 0, 1
"""The writer's counts, in shared memory: forecasts written, forecasts dropped."""


@dataclass(frozen=True)
class WriterTarget:
    """What the writer process needs to know (pickled to it; the URL may hold a password)."""

    url: str
    max_batch: int
    busy_timeout: float
    log_level: int
    parent: int
    datagram: int  # the largest datagram the socket carries


def write_forever(
    receiver: socket.socket,
    logs: Queue[logging.LogRecord],
    ready: Event,
    counts: Any,
    target: WriterTarget,
) -> None:
    """The writer process's body: write the forecasts received until the end arrives."""
    # Ctrl-C reaches the whole process group: the serving process says when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    root.setLevel(target.log_level)
    writer = _Writer(receiver, counts, target)
    signal.signal(signal.SIGTERM, writer.terminate)
    writer.open()
    ready.set()
    writer.run()


class _Writer:
    """Receives forecasts (a thread), packs them into rows and writes them in batches,
    retrying while the database is down. `counts` tells the serving process how it went."""

    def __init__(self, receiver: socket.socket, counts: Any, target: WriterTarget) -> None:
        self._receiver = receiver
        self._counts = counts
        self._target = target
        self._received: deque[bytes] = deque()
        self._finished = threading.Event()  # the end came, or the serving process is gone
        self._store: SeriesStore | None = None
        self._lost_at_end = 0

    def run(self) -> None:
        threading.Thread(target=self._receive, name="forecast-log-receive", daemon=True).start()
        # The packing and the SQL (this thread only: the receiving one keeps the socket
        # drained) yield the CPU to every other process: on a busy machine the requests first.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        finished = False
        while not finished:
            # Every FLUSH_SECONDS, not on every forecast: one transaction carries what came.
            finished = self._finished.wait(FLUSH_SECONDS)  # then all sent before is received
            while batch := self._take():
                self._write(*self._pack(batch))
        if self._lost_at_end:
            logger.error("forecast log: %d forecasts lost at shutdown", self._lost_at_end)
        if self._store is not None:
            self._store.close()

    def terminate(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM (often sent to the whole process group): end within a grace period, by
        which the serving process has normally sent the end itself."""
        timer = threading.Timer(_TERM_GRACE_SECONDS, self._finished.set)
        timer.daemon = True
        timer.start()

    def open(self) -> SeriesStore | None:
        if self._store is None:
            t = self._target
            try:
                self._store = SeriesStore(t.url, max_batch=t.max_batch, busy_timeout=t.busy_timeout)
            except Exception as exc:  # StoreError: down; anything else: logged, retried alike
                logger.warning("forecast log: the store cannot be opened, retrying: %s", exc)
        return self._store

    def _receive(self) -> None:
        buffer = bytearray(self._target.datagram)
        view = memoryview(buffer)
        self._receiver.setblocking(False)
        poller = select.poll()
        poller.register(self._receiver, select.POLLIN)
        while not self._finished.is_set():
            if not poller.poll(1000):  # idle for a second
                if os.getppid() != self._target.parent:  # the serving process died
                    break
                continue
            if self._drain(buffer, view):
                break
            # Let a few arrive: one wake-up for many forecasts, not one each (a wake-up
            # preempts a request thread on a busy machine).
            time.sleep(_RECEIVE_SECONDS)
        self._finished.set()

    def _drain(self, buffer: bytearray, view: memoryview) -> bool:
        """Receive every datagram waiting; True when the end came (or the socket broke)."""
        while True:
            try:
                size = self._receiver.recv_into(buffer)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if size == 0:  # the end
                return True
            self._received.append(bytes(view[:size]))

    def _take(self) -> list[bytes]:
        # Only the receiving thread appends: the deque holds at least the count taken here.
        return [self._received.popleft() for _ in range(min(_BATCH, len(self._received)))]

    def _pack(self, batch: list[bytes]) -> tuple[list[dict[str, Any]], int]:
        """The rows of `batch` (see `service.forecast_log._datagram`), and how many of its
        forecasts they stand for.

        Of forecasts with one key (model, version, series, origin) only the last is packed,
        as writing them in turn would leave it alone; the others count as written with it.
        A forecast that cannot be logged is counted dropped (with the repeats of its key).
        Forecasts alike in frequency, levels and sizes are packed as arrays, together.
        """
        latest: dict[tuple[str, ...], tuple[Any, ...]] = {}
        repeats: dict[tuple[str, ...], int] = {}
        for data in batch:
            try:
                item = pickle.loads(data)
                key: tuple[str, ...] = (item[0], item[1], item[2], item[4])
            except Exception as exc:
                self._skip(1, exc)
                continue
            latest[key] = item
            repeats[key] = repeats.get(key, 0) + 1
        groups: dict[tuple[Any, ...], list[tuple[str, ...]]] = {}
        for key, item in latest.items():
            groups.setdefault((item[3], item[5], item[6], len(item[8])), []).append(key)
        rows: list[dict[str, Any]] = []
        forecasts = 0
        now = utc_now()  # one created_at for the batch, as `ForecastLog.record` does
        for keys in groups.values():
            packed, failed = _pack_alike([latest[key] for key in keys], now)
            rows += packed
            forecasts += sum(repeats[key] for key in keys)
            for i, why in failed:
                self._skip(repeats[keys[i]], why)
                forecasts -= repeats[keys[i]]
        return rows, forecasts

    def _skip(self, forecasts: int, why: Exception) -> None:
        logger.warning("forecast log: skipped a forecast: %s", why)
        self._counts[DROPPED] += forecasts

    def _write(self, rows: list[dict[str, Any]], forecasts: int) -> None:
        """Write `rows` (standing for `forecasts` received), retrying while the database is
        down; at the end, a few tries, then they are counted dropped."""
        tries_after_end = 0
        while rows and not self._lost_at_end:
            store = self.open()
            if store is not None:
                try:
                    store.forecast_log.write_rows(rows)
                    self._counts[RECORDED] += forecasts
                    return
                except Exception as exc:  # the database is down or busy: hold and retry
                    logger.warning("forecast log: write failed, retrying: %s", exc)
            if not self._finished.is_set():
                self._finished.wait(_RETRY_SECONDS)
                continue
            tries_after_end += 1
            if tries_after_end >= _SHUTDOWN_TRIES:
                break
            time.sleep(0.2)
        if rows:  # given up at the end: the database stayed down; the rest is not tried
            self._lost_at_end += forecasts
            self._counts[DROPPED] += forecasts


def _pack_alike(
    items: list[tuple[Any, ...]], now: datetime
) -> tuple[list[dict[str, Any]], list[tuple[int, Exception]]]:
    """The rows of forecasts alike (frequency, levels, sizes), packed as arrays; when one
    spoils the lot, each is packed alone. Returns (rows, (index, why) of those that fail)."""
    try:
        return _rows(items, now), []
    except Exception as exc:
        if len(items) == 1:
            return [], [(0, exc)]
    rows: list[dict[str, Any]] = []
    failed: list[tuple[int, Exception]] = []
    for i, item in enumerate(items):
        packed, bad = _pack_alike([item], now)
        rows += packed
        failed += [(i, exc) for _, exc in bad]
    return rows, failed


def _rows(items: list[tuple[Any, ...]], now: datetime) -> list[dict[str, Any]]:
    """The table rows of N received forecasts alike (`service.forecast_log._datagram`).

    Raises:
        StoreError, ValueError: something in them cannot be logged (sizes, stamps, levels,
            frequency, non-finite values).
    """
    _, _, _, frequency, _, text, tail, _, _ = items[0]
    levels = [int(k) for k in text.split(",") if k]
    season = season_length(frequency)
    floats, odd = divmod(len(items[0][8]), F8.itemsize)
    horizon, rest = divmod(floats - tail, 1 + 2 * len(levels))
    if odd or rest or not 1 <= horizon <= MAX_RECORDED_STEPS:
        raise StoreError(f"a forecast of {floats} values does not split into steps", "mean")
    values = np.frombuffer(b"".join(item[8] for item in items), F8).reshape(len(items), floats)
    if not np.isfinite(values).all():
        raise StoreError("a logged forecast must hold finite numbers", "mean")
    stamps = np.array("\x1f".join(item[7] for item in items).split("\x1f"), "datetime64[us]")
    stamps = stamps.reshape(len(items), horizon)  # ValueError when a count differs
    origins = np.array([item[4] for item in items], dtype="datetime64[us]").tolist()
    history, mean = values[:, :tail], values[:, tail : tail + horizon]  # [N, T], [N, H]
    bounds = values[:, tail + horizon :].reshape(len(items), len(levels), 2, horizon)
    season = season if tail >= season else 1  # as `naive_reference`: a random walk if short
    naive = history[:, tail - season + np.arange(horizon) % season]  # [N, H]
    keys = [(*item[:3], origin) for item, origin in zip(items, origins, strict=True)]
    return packed_rows(keys, stamps, mean, naive, levels, bounds[:, :, 0], bounds[:, :, 1], now)
