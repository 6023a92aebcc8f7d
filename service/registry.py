"""ModelCache: the served models, loaded from the MLflow registry and swapped atomically.

Each alias version is loaded by `service.model_loading` (download, safe load, smoke forecast),
then swapped in. The served table is a dict that is *replaced*, never mutated, under a lock:
a request takes a reference to one `LoadedModel` and finishes on it even if a newer version
is swapped in meanwhile. A version that fails to load or to forecast is refused (counted,
logged, never retried) and the old one keeps serving; a registry that cannot be reached
leaves everything as it is and is retried at the next poll. Versions pinned by a request are
loaded on demand (`service.pinned`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from service.errors import ModelNotFoundError, NotReadyError
from service.metrics import ServiceMetrics
from service.model_loading import LoadedModel, Refused, VersionLoader
from service.pinned import PinnedVersions, check_version
from service.registry_health import RegistryHealth, is_not_found, short_error
from service.settings import ServiceSettings

logger = logging.getLogger("service.registry")

T = TypeVar("T")

_WAIT_SLICE = 0.05  # seconds between looks at a refresh being waited for


@dataclass(frozen=True)
class Outcome:
    """What one refresh did for one model name."""

    name: str
    version: str | None
    previous: str | None
    changed: bool
    error: str | None = None


@dataclass(frozen=True)
class RefreshReport:
    """Result of one refresh; `registry_error` is set when the registry could not be read."""

    outcomes: tuple[Outcome, ...] = ()
    registry_error: str | None = None


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered version of a name, as the registry holds it (the console's history)."""

    version: str  # "3"
    aliases: tuple[str, ...]  # the aliases pointing at it ("champion", "challenger")
    created_at: datetime | None  # when it was registered (UTC)
    run_id: str | None
    tags: dict[str, str]  # its version tags (family, val_score, gate_decision, gate_reason, ...)


@dataclass
class _State:
    served: dict[str, LoadedModel] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    # name -> version -> why; shared with PinnedVersions, so mutated in place, never replaced
    refused: dict[str, dict[str, str]] = field(default_factory=dict)


class ModelCache:
    """Loads, serves and hot-swaps the alias version of each configured registered model.

    Args:
        settings: service settings (tracking URI, names, alias, poll interval, pin cache size,
            registry timeouts).
        metrics: where load failures, swaps, served versions and registry state are recorded.
    """

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        from mlflow import MlflowClient

        self.settings = settings
        self.metrics = metrics
        self._client = MlflowClient(
            tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
        )
        self.health = RegistryHealth(settings.registry_timeout_seconds, metrics.registry_up)
        self._state = _State(names=settings.models)
        self._swap_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refresh_flight: Future[RefreshReport] | None = None
        self._reload_lock = threading.Lock()  # guards _refresh_flight only; never held for I/O
        self._loader = VersionLoader(self._client, self.health, settings.tracking_uri)
        self._pinned = PinnedVersions(
            self._loader, self.health, settings, metrics, refused=self._state.refused
        )
        self._stop = threading.Event()
        self._first_refresh = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- reading (hot path)

    def served(self) -> dict[str, LoadedModel]:
        """A snapshot of name -> served model (safe to iterate while swaps happen)."""
        return self._state.served

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model serving `name` (its alias version, or the pinned `version`).

        Blocks (a worker thread) while a pinned version loads, for at most
        FORECAST_PIN_WAIT_SECONDS, and no longer once the registry is degraded.

        Raises:
            InvalidInputError: `version` is not a canonical version number.
            ModelNotFoundError: unknown name, or a version that is not registered.
            NotReadyError: the name is configured but not loaded yet, or a pinned version needs
                the registry and it does not answer in time.
        """
        found = self._lookup(name, version)
        if isinstance(found, LoadedModel):
            return found
        return self._pinned.wait(name, str(version), found)

    async def get_async(self, name: str, version: str | None = None) -> LoadedModel:
        """`get` for the event loop: waits for a pinned load without holding a thread."""
        found = self._lookup(name, version)
        if isinstance(found, LoadedModel):
            return found
        return await self._pinned.wait_async(name, str(version), found)

    def readiness(self) -> tuple[bool, dict[str, str], list[str]]:
        """(ready, name -> served version, configured names not loaded)."""
        served = self._state.served
        loaded = {name: model.version for name, model in served.items()}
        missing = [name for name in self._state.names if name not in served]
        ready = self._first_refresh.is_set() and not missing and bool(served)
        return ready, loaded, missing

    def versions(self, name: str) -> list[RegisteredVersion]:
        """Every registered version of the served name `name`, newest first (blocks on I/O).

        Raises:
            ModelNotFoundError, NotReadyError: as `get` for an unknown or unloaded name.
            NotReadyError: the registry is degraded or does not answer.
        """
        self._lookup(name, None)  # served names only: never a filter built from a stranger
        status = self.health.status()
        if not status.up and self.health.busy():
            raise NotReadyError(
                f"the model registry is unreachable ({status.detail}); retry later", "name"
            )
        try:
            client = self._client
            registered = self.health.call(partial(client.get_registered_model, name))
            found = self.health.call(partial(client.search_model_versions, f"name = '{name}'"))
        except Exception as exc:
            self.metrics.registry_errors.inc()
            raise NotReadyError(
                f"the model registry did not answer ({short_error(exc)}); retry later", "name"
            ) from None
        aliases = dict(registered.aliases or {})
        out = [
            RegisteredVersion(
                version=str(mv.version),
                aliases=tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version))),
                created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)
                if mv.creation_timestamp
                else None,
                run_id=mv.run_id or None,
                tags={str(k): str(v) for k, v in (mv.tags or {}).items()},
            )
            for mv in found
        ]
        return sorted(out, key=lambda v: int(v.version), reverse=True)

    def _lookup(self, name: str, version: str | None) -> LoadedModel | Future[LoadedModel]:
        current = self._state.served.get(name)
        if current is None:
            if name in self._state.names:
                raise NotReadyError(
                    f"model {name!r} is configured but not loaded yet; retry in a few seconds "
                    "(GET /v1/ready says when every model is loaded)",
                    "name",
                )
            known = sorted(self._state.served) or ["(none loaded)"]
            raise ModelNotFoundError(
                f"model {name!r} is not served; use one of {', '.join(known)} (GET /v1/models)",
                "name",
            )
        if version is None:
            return current
        check_version(version)
        if version == current.version:
            return current
        return self._pinned.lookup(name, version)

    # ---------------------------------------------------------------- refreshing

    def reload(self) -> RefreshReport:
        """A refresh now (joining one in progress), waited for while the registry answers.

        Returns within about FORECAST_REGISTRY_TIMEOUT_SECONDS once the registry is degraded,
        and after FORECAST_RELOAD_WAIT_SECONDS at most; the refresh then goes on in the
        background and the report says so.
        """
        with self._reload_lock:
            flight = self._refresh_flight
            if flight is None or flight.done():
                flight = self._refresh_flight = Future()
                threading.Thread(
                    target=_settle, args=(flight, self.refresh), name="reload", daemon=True
                ).start()
        started = time.monotonic()
        while True:
            try:
                return flight.result(timeout=_WAIT_SLICE)
            except FutureTimeout:
                status = self.health.status()
                waited = time.monotonic() - started
                if status.up and waited < self.settings.reload_wait_seconds:
                    continue
                why = status.detail or f"the refresh is still running after {waited:.1f} s"
                return RefreshReport(
                    registry_error=f"registry unreachable: {why}; the served models stay, and "
                    "the refresh goes on in the background"
                )

    def refresh(self) -> RefreshReport:
        """Ask the registry for each alias version; load and swap in what changed."""
        with self._refresh_lock:
            try:
                targets = self._targets()
            except Exception as exc:
                self.metrics.registry_errors.inc()
                logger.warning("registry unreachable, keeping served models: %s", exc)
                self._first_refresh.set()
                return RefreshReport(registry_error=f"registry unreachable: {short_error(exc)}")
            outcomes = [self._refresh_one(name, target) for name, target in targets.items()]
            if not self.settings.models:
                self._state.names = tuple(sorted(set(targets) | set(self._state.served)))
            self._first_refresh.set()
            return RefreshReport(outcomes=tuple(outcomes))

    def _targets(self) -> dict[str, str | Exception]:
        """name -> alias version (or the per-name error); raises when the registry is down."""
        alias = self.settings.alias
        if not self.settings.models:
            found: dict[str, str | Exception] = {}
            token: str | None = None
            search = partial(self._client.search_registered_models, max_results=200)
            while True:
                page = self.health.call(partial(search, page_token=token))
                for rm in page:
                    if alias in rm.aliases:
                        found[rm.name] = str(rm.aliases[alias])
                token = page.token
                if not token:
                    return found
        targets: dict[str, str | Exception] = {}
        for name in self.settings.models:
            try:
                found_version = self.health.call(
                    partial(self._client.get_model_version_by_alias, name, alias)
                )
                targets[name] = str(found_version.version)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                targets[name] = exc
        return targets

    def _refresh_one(self, name: str, target: str | Exception) -> Outcome:
        current = self._state.served.get(name)
        previous = current.version if current else None
        if isinstance(target, Exception):
            alias = self.settings.alias
            message = f"no version of {name!r} has alias {alias!r}: {short_error(target)}"
            logger.warning(message)
            return Outcome(name, previous, previous, False, message)
        if target == previous:
            return Outcome(name, previous, previous, False)
        why = self._state.refused.get(name, {}).get(target)
        if why is not None:
            return Outcome(name, previous, previous, False, f"version {target} refused: {why}")
        try:
            model = self._loader.load(name, target, alias=self.settings.alias)
        except Refused as exc:
            self._state.refused.setdefault(name, {})[target] = str(exc)
            self.metrics.load_failures.labels(name).inc()
            logger.error("refused %s version %s, still serving %s: %s", name, target, previous, exc)
            return Outcome(name, previous, previous, False, f"version {target} refused: {exc}")
        except Exception as exc:
            self.metrics.registry_errors.inc()
            logger.warning("could not fetch %s version %s, will retry: %s", name, target, exc)
            return Outcome(name, previous, previous, False, f"fetch failed: {short_error(exc)}")
        with self._swap_lock:
            self._state.served = {**self._state.served, name: model}
        self.metrics.model_swaps.labels(name).inc()
        self.metrics.served_version.labels(name).set(float(target) if target.isdigit() else -1)
        logger.info("serving %s version %s (was %s)", name, target, previous)
        return Outcome(name, target, previous, True)

    # ---------------------------------------------------------------- background poller

    def start(self) -> None:
        """Start the poller thread: one refresh now, then one every poll_seconds."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def wait_first_refresh(self, timeout: float) -> bool:
        """Block until the first refresh finished (loaded or failed); False on timeout."""
        return self._first_refresh.wait(timeout)

    def stop(self) -> None:
        """Stop the poller; wait a few seconds for a refresh in progress to finish.

        A refresh stuck on an unreachable registry (MLflow retries for minutes) is left
        behind: it runs in a daemon thread and swaps nothing that matters after shutdown.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the poller must survive anything
                logger.exception("model refresh failed")
            if self._stop.wait(self.settings.poll_seconds):
                return


def _settle(future: Future[T], fn: Callable[[], T]) -> None:
    """Run `fn` (in its own thread) and put its result or exception into `future`."""
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
