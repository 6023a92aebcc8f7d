"""The forecast log's writer process (see `service.forecast_log` for the whole design).

`write_forever` is the body of the process the serving process spawns: a receiving thread
drains the Unix datagram socket, and the main thread, at nice 19, unpickles what came every
FLUSH_SECONDS, packs it into rows and writes up to 500 per transaction, retrying while the
database is down. Its counts (written, dropped) sit in shared memory the serving process reads;
its log records go back through a queue.
"""

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
from typing import TYPE_CHECKING, Any

import numpy as np

from training.store import SeriesStore
from training.store.forecast_log import ForecastRecord, forecast_row, naive_reference
from training.store.schema import utc_now

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event
    from types import FrameType

logger = logging.getLogger("service.forecast_log")

_BATCH = 500
"""Most forecasts the writer writes in one transaction."""
FLUSH_SECONDS = 0.25
"""How often the writer wakes to write what came meanwhile."""
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
                self._write(self._pack(batch))
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
        batch: list[bytes] = []
        while len(batch) < _BATCH and self._received:
            batch.append(self._received.popleft())
        return batch

    def _pack(self, batch: list[bytes]) -> list[dict[str, Any]]:
        rows = []
        now = utc_now()  # one created_at for the batch, as `ForecastLog.record` does
        for data in batch:
            try:
                rows.append(forecast_row(_record(pickle.loads(data)), now))
            except Exception as exc:  # one forecast we cannot log (StoreError included)
                logger.warning("forecast log: skipped a forecast: %s", exc)
                self._counts[DROPPED] += 1
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        tries_after_end = 0
        while rows and not self._lost_at_end:
            store = self.open()
            if store is not None:
                try:
                    store.forecast_log.write_rows(rows)
                    self._counts[RECORDED] += len(rows)
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
            self._lost_at_end += len(rows)
            self._counts[DROPPED] += len(rows)


def _record(item: tuple[Any, ...]) -> ForecastRecord:
    """The record of a received forecast (see `ForecastRecorder.submit` for the fields)."""
    model, version, series_id, frequency, origin, history, stamps, mean, intervals = item
    return ForecastRecord(
        model=model,
        version=version,
        series_id=series_id,
        origin=np.datetime64(origin, "us").item(),
        timestamps=np.array(stamps, dtype="datetime64[us]"),  # [H]
        mean=mean,
        intervals={int(k): (bounds["lower"], bounds["upper"]) for k, bounds in intervals.items()},
        naive=naive_reference(np.asarray(history, dtype=np.float64), len(stamps), frequency),
    )
