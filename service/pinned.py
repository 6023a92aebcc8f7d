"""Pinned versions: a request names a version other than the alias's, loaded on demand.

A pinned version is loaded once however many requests ask for it at the same time (one load in
flight per version, its future shared by every waiter), kept in a small LRU cache, and a
failed load is answered from memory for a while (the negative cache) rather than hammering
the registry. Loads in flight are bounded, and so is every wait: a request gives up as soon
as the registry is degraded, or after FORECAST_PIN_WAIT_SECONDS.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from service.errors import InvalidInputError, ModelNotFoundError, NotReadyError, ServiceError
from service.metrics import ServiceMetrics
from service.model_loading import LoadedModel, Refused, VersionLoader
from service.registry_health import RegistryHealth, is_not_found, short_error
from service.settings import ServiceSettings

_WAIT_SLICE = 0.05  # seconds between looks at a pinned load being waited for
_MAX_FLIGHTS = 4  # pinned versions loading at once; more answer 503 (bounds the threads)
_MAX_FAILED = 1024  # recent pinned-load failures remembered (the negative cache)
_MAX_VERSION = 2**31 - 1  # registry versions are 32-bit integers
VERSION_PATTERN = "^[1-9][0-9]*$"


def check_version(version: str) -> None:
    """A pinned version must be a canonical positive integer: "3", not "03", "٣" or "３".

    Raises:
        InvalidInputError: naming `version` and the fix.
    """
    if not (version.isascii() and version.isdigit() and version[0] != "0"):
        raise InvalidInputError(
            f"version {version!r} is not a registered version number; send it as ASCII digits "
            'without leading zeros, such as "3", or leave version out to use the alias',
            "version",
        )


class PinnedVersions:
    """Loads pinned versions on demand: single-flight, LRU-cached, failures remembered.

    Loads and waits stop once `health` says the registry is degraded. `refused` (name ->
    version -> why) is shared with the model cache's refresh: a version refused by either is
    never loaded again by either.
    """

    def __init__(
        self,
        loader: VersionLoader,
        health: RegistryHealth,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        refused: dict[str, dict[str, str]],
    ) -> None:
        self._loader = loader
        self._health = health
        self._settings = settings
        self._metrics = metrics
        self._refused = refused
        # Loaded LRU, loads in flight (one per version), recent failures.
        # The lock guards these three dicts only; no I/O ever happens under it.
        self._pinned: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._flights: dict[tuple[str, str], Future[LoadedModel]] = {}
        self._failed: OrderedDict[tuple[str, str], tuple[float, ServiceError]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, name: str, version: str) -> LoadedModel | Future[LoadedModel]:
        """The cached version, or the (shared) future of its load; never waits for I/O.

        Raises:
            ModelNotFoundError: the version is not registered, or was refused.
            NotReadyError: the registry is degraded, or too many pinned versions are loading.
            ServiceError: the remembered failure of a recent load of the same version.
        """
        if int(version) > _MAX_VERSION:
            raise _not_registered(name, version)
        refused = self._refused.get(name, {}).get(version)
        if refused is not None:
            raise ModelNotFoundError(
                f"version {version} of {name!r} was refused ({refused}); pin another", "version"
            )
        key = (name, version)
        now = time.monotonic()
        with self._lock:
            hit = self._pinned.get(key)
            if hit is not None:
                self._pinned.move_to_end(key)
                return hit
            failed = self._failed.get(key)
            if failed is not None and failed[0] > now:
                raise type(failed[1])(failed[1].message, failed[1].field)
            flight = self._flights.get(key)
            if flight is not None:
                return flight
            status = self._health.status()
            if not status.up and self._health.busy():
                # One call already hangs on the registry: do not pile more threads onto it.
                raise _unreachable(name, version, status.detail)
            if len(self._flights) >= _MAX_FLIGHTS:
                raise NotReadyError(
                    f"{len(self._flights)} pinned versions are loading already; retry version "
                    f"{version} of {name!r} in a few seconds or leave version out",
                    "version",
                )
            flight = self._flights[key] = Future()
        threading.Thread(
            target=self._fly, args=(key, flight), name=f"pin-{name}-{version}", daemon=True
        ).start()
        return flight

    def wait(self, name: str, version: str, flight: Future[LoadedModel]) -> LoadedModel:
        """Block (a worker thread) on a load from `lookup`, within the bounds of `_check_wait`."""
        started = time.monotonic()
        while True:
            try:
                return flight.result(timeout=_WAIT_SLICE)
            except FutureTimeout:
                self._check_wait(name, version, started)

    async def wait_async(self, name: str, version: str, flight: Future[LoadedModel]) -> LoadedModel:
        """`wait` for the event loop: polls the load without holding a thread."""
        started = time.monotonic()
        while not flight.done():
            await asyncio.sleep(_WAIT_SLICE)
            if not flight.done():
                self._check_wait(name, version, started)
        return flight.result()

    def _check_wait(self, name: str, version: str, started: float) -> None:
        """Give up on a pinned load once the registry is degraded or the wait is too long."""
        status = self._health.status()
        if not status.up:
            raise _unreachable(name, version, status.detail)
        if time.monotonic() - started > self._settings.pin_wait_seconds:
            raise NotReadyError(
                f"version {version} of {name!r} is still loading after "
                f"{self._settings.pin_wait_seconds:g} s; retry in a few seconds (it stays cached "
                "once loaded) or leave version out",
                "version",
            )

    def _fly(self, key: tuple[str, str], flight: Future[LoadedModel]) -> None:
        """Load one pinned version (its own thread); the outcome goes to every waiter."""
        name, version = key
        outcome: LoadedModel | ServiceError
        try:
            outcome = self._loader.load(name, version, alias=None)
        except Refused as exc:
            self._refused.setdefault(name, {})[version] = str(exc)
            outcome = ModelNotFoundError(
                f"version {version} of {name!r} cannot be served: {exc}", "version"
            )
        except Exception as exc:
            if is_not_found(exc):
                outcome = _not_registered(name, version)
            else:
                self._metrics.registry_errors.inc()
                outcome = _unreachable(name, version, short_error(exc))
        self._land(key, flight, outcome)

    def _land(
        self, key: tuple[str, str], flight: Future[LoadedModel], outcome: LoadedModel | ServiceError
    ) -> None:
        with self._lock:
            del self._flights[key]
            if isinstance(outcome, LoadedModel):
                if self._settings.max_pinned > 0:
                    self._pinned[key] = outcome
                    while len(self._pinned) > self._settings.max_pinned:
                        self._pinned.popitem(last=False)
            else:  # negative cache: the same question gets the same answer for a while
                until = time.monotonic() + self._settings.negative_cache_seconds
                self._failed[key] = (until, outcome)
                self._failed.move_to_end(key)
                while len(self._failed) > _MAX_FAILED:
                    self._failed.popitem(last=False)
        if isinstance(outcome, LoadedModel):
            flight.set_result(outcome)
        else:
            flight.set_exception(outcome)


def _not_registered(name: str, version: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"version {version} of {name!r} is not registered; "
        "list versions in the MLflow UI or leave version out",
        "version",
    )


def _unreachable(name: str, version: str, why: str | None) -> NotReadyError:
    return NotReadyError(
        f"registry unreachable while loading pinned version {version} of {name!r} ({why}); "
        "retry later or leave version out to use the served alias version",
        "version",
    )
