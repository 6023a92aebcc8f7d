"""Records forecasts in the store's forecast log from a writer process, and keeps the live
accuracy gauges current.

A request hands its forecast to `ForecastRecorder.submit`, which pickles a few strings and one
block of float64 bytes (~1.8 KB for 24 steps and two levels, a few us) and sends them as one
datagram on a non-blocking Unix socket to a writer *process*, spawned at start-up (one per serving
process). No other thread of the serving process handles the forecast, so recording takes no
GIL time from the requests beyond that send. At most FORECAST_FORECAST_LOG_BUFFER forecasts
wait (sent, not yet written); beyond that, or when the socket is full or the writer gone, the
forecast is dropped and counted (`forecast_log_dropped_total`) rather than blocking or failing
the request. A forecast must fit in one datagram: the host's net.core.wmem_max (often 208 KB:
about 3,000 steps with two interval levels) bounds it; a larger one is dropped and counted.

The writer (`service/forecast_writer.py`) reads the socket in a thread of its own and, every
FLUSH_SECONDS (0.25 s), packs what came meanwhile into table rows (a forecast repeated
meanwhile once; alike forecasts as arrays) and writes up to 500 per transaction into
`SeriesStore.forecast_log`. While the database is unreachable it holds its batch and retries,
so nothing already sent is lost; at shutdown it writes what is left (10 tries 0.2 s apart if
the database is down; the rest is counted as dropped) before it ends. The packing and the SQL
run at nice 19, so on a busy machine they take CPU after the requests; the receiving thread
keeps the normal priority, so the socket never fills while they wait. The writer ignores
SIGINT (the serving process says when it ends) and ends within 10 s of a SIGTERM.

A watcher thread of the serving process wakes every WATCH_SECONDS: it adds the writer's counts
(shared memory) to the metrics, logs what the writer logged, and notices a writer that died:
what was sent to it and not written is counted as dropped, and a new writer starts after 1 s
(then 2, 4... up to a minute if it keeps dying). Every FORECAST_LIVE_REFRESH_SECONDS it also
refreshes the live-accuracy gauges from the latest FORECAST_LIVE_WINDOW scored forecasts of
each version (here: they are this process's metrics; /metrics combines the workers').

Why so: a writer thread in the serving process took the GIL from the requests (p99 x1.18-1.30),
and a `multiprocessing.Queue`'s feeder thread, starved of the GIL, passed ~200 forecasts/s.
Out of the process the writer still spends the requests' cores, hence the nice value, bytes
rather than lists of floats, array packing and the driver's executemany (~30 us for a new
forecast, a few for a repeat). benchmarks/live.py measures it; BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import pickle
import socket
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from models.features import season_length
from service.forecast_writer import DROPPED, RECORDED, WriterTarget, write_forever

if TYPE_CHECKING:  # the writer process imports this module: it needs none of these
    from multiprocessing.context import SpawnContext
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

    from fastapi import Request

    from service.metrics import ServiceMetrics
    from service.model_loading import LoadedModel
    from service.store_deps import StoreHandle

logger = logging.getLogger("service.forecast_log")

WATCH_SECONDS = 0.5
"""How often the serving process collects the writer's counts and logs, and checks on it."""
_SOCKET_BYTES = 4 << 20
"""Socket buffer asked for (the kernel doubles it, capped by net.core.wmem_max)."""
_RESTART_MAX_SECONDS = 60.0
_READY_SECONDS = 30.0


@dataclass
class _Channel:
    """One writer process and what it shares with the serving process."""

    sender: socket.socket
    receiver: socket.socket  # the writer's end; closed here once the writer holds it
    logs: Queue[logging.LogRecord]
    ready: Event  # set by the writer once it is up, its store opened (or tried)
    counts: Any  # int64 [2] in shared memory, written by the writer only: recorded, dropped
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0  # under `lock`, as `closed`
    closed: bool = False
    process: BaseProcess | None = None
    seen: list[int] = field(default_factory=lambda: [0, 0])  # counts already in the metrics

    @classmethod
    def new(cls, context: SpawnContext) -> _Channel:
        sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BYTES)
        return cls(sender, receiver, context.Queue(), context.Event(), context.RawArray("q", 2))

    @property
    def waiting(self) -> int:
        """Forecasts sent and not yet written or dropped by the writer."""
        return self.sent - int(self.counts[RECORDED]) - int(self.counts[DROPPED])


class ForecastRecorder:
    """The writer process, its socket and the watcher thread of one app.

    Args:
        store: the app's store handle (its settings say where the writer writes).
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
        self._buffer = buffer
        self._refresh_seconds = refresh_seconds
        self._window = window
        self._context = multiprocessing.get_context("spawn")  # fork would copy torch's threads
        self._channel = _Channel.new(self._context)
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._deaths = 0
        self._restart_at = 0.0
        self._stopped = False

    def start(self) -> None:
        """Start the writer process and the watcher thread (lifespan start-up); returns once
        the writer is up, so that its start-up (~0.4 s of CPU) never competes with requests."""
        channel = self._channel
        self._start_writer(channel)
        deadline = time.monotonic() + _READY_SECONDS
        while not channel.ready.wait(0.05):  # the watcher restarts a writer that died
            if not (channel.process and channel.process.is_alive()) or time.monotonic() > deadline:
                logger.warning("forecast log: the writer process did not come up (yet)")
                break
        self._watcher = threading.Thread(target=self._watch, name="forecast-log-watch", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the writer write what was sent, then end it (lifespan shutdown)."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
        channel = self._channel
        process = channel.process
        while process is not None and process.is_alive() and time.monotonic() < deadline:
            try:
                channel.sender.send(b"", socket.MSG_DONTWAIT)  # the end, behind every forecast
                break
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break
        while process is not None and process.is_alive() and time.monotonic() < deadline:
            process.join(0.2)
            self._relay(channel)  # its last logs, so that it never waits on a full pipe
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)
        self._end(channel, "still waiting at shutdown")
        self._stopped = True

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None before it starts)."""
        process = self._channel.process
        return None if process is None else process.pid

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
        """Send one forecast to the writer; drops it (counted) when it cannot wait there.

        Args:
            origin: the last history timestamp.
            history: [L] the values forecast from (for the seasonal-naive reference).
            result: the response body's "timestamps", "mean" and "intervals".
        """
        try:
            tail = history[-_season(frequency) :]
            data = pickle.dumps(
                _datagram(model, version, series_id, frequency, origin, tail, result),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except Exception as exc:  # never fail a request for its log
            logger.warning("forecast log: a forecast of %s cannot be sent: %s", model, exc)
            data = b""
        channel = self._channel
        with channel.lock:  # held for the count only: `send` lets go of the GIL
            room = bool(data) and not channel.closed and channel.waiting < self._buffer
            channel.sent += room
        if room:
            try:
                channel.sender.send(data, socket.MSG_DONTWAIT)
                return
            except OSError:  # full (the writer lags), too large, or the writer is gone
                with channel.lock:
                    if channel.closed:  # already counted as dropped when it closed
                        return
                    channel.sent -= 1
        self._metrics.forecast_log_dropped.inc()

    @property
    def pending(self) -> int:
        """Forecasts sent to the writer and not yet written (0 once stopped)."""
        return 0 if self._stopped else self._channel.waiting

    # -- the watcher thread ----------------------------------------------------------------

    def _watch(self) -> None:
        next_refresh = time.monotonic() + self._refresh_seconds
        while not self._stopping.wait(WATCH_SECONDS):
            channel = self._channel
            self._relay(channel)
            self._collect(channel)
            if channel.process is None:
                if time.monotonic() >= self._restart_at:
                    self._start_writer(channel)
            elif not channel.process.is_alive():
                self._replace(channel)
            if self._refresh_seconds > 0 and time.monotonic() >= next_refresh:
                self._refresh_gauges()
                next_refresh = time.monotonic() + self._refresh_seconds

    def _start_writer(self, channel: _Channel) -> None:
        config = self._store.settings
        target = WriterTarget(
            config.database_url.get_secret_value(),
            config.ingest_max_batch,
            config.database_busy_timeout,
            logger.getEffectiveLevel(),
            os.getpid(),
            channel.sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )
        process = self._context.Process(
            target=write_forever,
            args=(channel.receiver, channel.logs, channel.ready, channel.counts, target),
            name="forecast-log-writer",
            daemon=True,
        )
        process.start()
        channel.process = process
        channel.receiver.close()  # the writer has its own copy

    def _replace(self, channel: _Channel) -> None:
        """A writer died: new forecasts go to a fresh channel, whose writer starts later."""
        self._channel = _Channel.new(self._context)
        self._deaths += 1
        delay = min(2.0 ** (self._deaths - 1), _RESTART_MAX_SECONDS)
        self._restart_at = time.monotonic() + delay
        code = None if channel.process is None else channel.process.exitcode
        logger.error(
            "forecast log: the writer process died (exit code %s); a new one starts in %.0f s",
            code,
            delay,
        )
        self._end(channel, "sent to the dead writer")

    def _end(self, channel: _Channel, why: str) -> None:
        """Count what an ended writer left unwritten as dropped, and close its socket."""
        if channel.process is None or channel.process.exitcode == 0:
            self._relay(channel)  # a writer that died may have died writing a log record
        self._collect(channel)
        with channel.lock:  # what a request sends to it from now on is dropped and counted
            lost = channel.waiting
            channel.closed = True
            channel.sender.close()
            channel.receiver.close()
        if lost:
            logger.error("forecast log: %d forecasts %s were not written", lost, why)
            self._metrics.forecast_log_dropped.inc(lost)

    def _collect(self, channel: _Channel) -> None:
        """Add the writer's counts since the last collection to the metrics."""
        recorded, dropped = int(channel.counts[RECORDED]), int(channel.counts[DROPPED])
        if recorded > channel.seen[0]:
            self._metrics.forecast_log_recorded.inc(recorded - channel.seen[0])
        if dropped > channel.seen[1]:
            self._metrics.forecast_log_dropped.inc(dropped - channel.seen[1])
        channel.seen[:] = [recorded, dropped]

    def _relay(self, channel: _Channel) -> None:
        """Log here what the writer logged (the service's log handlers live here)."""
        while True:
            try:
                record = channel.logs.get_nowait()
            except Exception:  # queue.Empty, or a queue the writer left broken
                return
            logging.getLogger(record.name).handle(record)

    def _refresh_gauges(self) -> None:
        store = self._store.current
        if store is None and self._store.try_open():
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


@functools.cache
def _season(frequency: str) -> int:
    """Season length, as `naive_reference` takes it (computed once per frequency)."""
    try:
        return season_length(frequency)
    except ValueError:  # a frequency the writer will refuse, saying why: send it everything
        return 0


def _datagram(
    model: str,
    version: str,
    series_id: str,
    frequency: str,
    origin: np.datetime64,
    tail: np.ndarray,
    result: dict[str, Any],
) -> tuple[str, str, str, str, str, str, int, str, bytes]:
    """What `submit` sends: a few strings and one block of float64 bytes (unpickling lists
    of floats, ~170 objects a forecast, was the writer's largest cost).

    Returns:
        (model, version, series id, frequency, origin, levels "80,95", T, the step
        timestamps joined by "\x1f", float64 bytes: the history's last T values [T], then
        mean [H], then lower and upper [H] each per level in that order).
    """
    intervals = result.get("intervals") or {}
    levels = sorted(intervals, key=float)
    parts = [np.asarray(tail, dtype=np.float64).tobytes(), array("d", result["mean"]).tobytes()]
    for level in levels:
        bounds = intervals[level]
        parts += [array("d", bounds["lower"]).tobytes(), array("d", bounds["upper"]).tobytes()]
    return (
        model, version, series_id, frequency, str(origin), ",".join(levels), len(tail),
        "\x1f".join(result["timestamps"]), b"".join(parts),
    )  # fmt: skip


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
