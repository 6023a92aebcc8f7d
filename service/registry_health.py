"""Is the MLflow registry answering? Measured on the registry calls the service makes anyway.

Every metadata call of the model cache (alias lookups, version lookups, download URIs) runs
through `RegistryHealth.call`. The registry is *degraded* when the last call failed, or when a
call has been waiting longer than `timeout` seconds: MLflow's HTTP client retries a dead server
with backoff for minutes (7 retries, factor 2), so waiting for its verdict is not an option.
Requests that need the registry (pinned versions, reloads) stop waiting as soon as it is
degraded and answer 503; everything already loaded keeps serving. A later successful call
(the poller makes one every poll interval) clears the state.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from prometheus_client import Gauge

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryStatus:
    """The registry as the service sees it now."""

    up: bool
    detail: str | None = None  # why it is degraded
    since: datetime | None = None  # when it became degraded (UTC)


class RegistryHealth:
    """Tracks registry calls: outcomes, and calls still waiting for an answer.

    Args:
        timeout: seconds a call may wait before the registry counts as degraded.
        gauge: set to 1 while the registry is up, 0 while degraded.
    """

    def __init__(self, timeout: float, gauge: Gauge) -> None:
        self.timeout = timeout
        self._gauge = gauge
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # call id -> monotonic start
        self._ids = itertools.count()
        self._failure: tuple[str, datetime] | None = None  # last call failed: (why, when)
        self._gauge.set(1)

    def call(self, fn: Callable[[], T]) -> T:
        """Run one registry call and record its outcome ("not found" is an answer, not a
        failure: `is_not_found`)."""
        with self._lock:
            call_id = next(self._ids)
            self._pending[call_id] = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            self._record(None if is_not_found(exc) else short_error(exc))
            raise
        finally:
            with self._lock:
                del self._pending[call_id]
        self._record(None)
        return result

    def _record(self, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self._failure = None
            elif self._failure is None:
                self._failure = (failure, datetime.now(UTC))
        self.status()

    def status(self) -> RegistryStatus:
        """Up, or degraded with the reason and since when (also sets the gauge)."""
        with self._lock:
            failure = self._failure
            oldest = min(self._pending.values(), default=None)
        waited = 0.0 if oldest is None else time.monotonic() - oldest
        if failure is not None:
            state = RegistryStatus(False, f"registry call failed: {failure[0]}", failure[1])
        elif waited > self.timeout:
            since = datetime.now(UTC) - timedelta(seconds=waited - self.timeout)
            state = RegistryStatus(
                False, f"registry has not answered a call for {waited:.1f} s", since
            )
        else:
            state = RegistryStatus(True)
        self._gauge.set(1 if state.up else 0)
        return state

    def busy(self) -> bool:
        """True while some registry call waits for an answer."""
        with self._lock:
            return bool(self._pending)


def is_not_found(exc: Exception) -> bool:
    """True when the registry answered "no such model or version" (it is up; the thing is not)."""
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def short_error(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, cut to `limit` characters, for logs and error messages."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
