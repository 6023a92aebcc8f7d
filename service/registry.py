"""ModelCache: the served models, loaded from the MLflow registry and swapped atomically.

The only module of service/ that talks to MLflow. Life of a version:

    registry alias -> download models:/<name>/<version> -> artifacts/forecaster/
      -> models.io.load (safetensors + JSON, never pickle) -> smoke forecast -> swap in

The served table is a dict that is *replaced*, never mutated, under a lock: a request takes a
reference to one `LoadedModel` and finishes on it even if a newer version is swapped in
meanwhile. A version that fails to load or to forecast is refused (counted, logged, never
retried) and the old one keeps serving; a registry that cannot be reached leaves everything
as it is and is retried at the next poll. Versions pinned by a request are loaded on demand
and kept in a small LRU cache.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.base import Forecaster, ModelMeta
from models.features import future_timestamps, season_length
from service.batcher import Batcher
from service.errors import ModelNotFoundError, NotReadyError
from service.metrics import ServiceMetrics
from service.settings import ServiceSettings

logger = logging.getLogger("service.registry")

FORECASTER_SUBDIR = Path("artifacts") / "forecaster"


class SmokeTestError(ValueError):
    """A freshly loaded model did not produce a sane forecast on synthetic input."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded and ready to forecast.

    Attributes:
        name: registered model name.
        version: registered version ("3").
        alias: the alias it is served for, or None when loaded because a request pinned it.
        forecaster: the loaded model.
        run_id: the MLflow run that produced it.
        metrics: test_* metrics of that run.
        loaded_at: when this process loaded it (UTC).
        batcher: merges concurrent single-series forecasts into one forward pass.
    """

    name: str
    version: str
    alias: str | None
    forecaster: Forecaster
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    batcher: Batcher[Any, Any] = field(default_factory=Batcher, compare=False, repr=False)

    @property
    def meta(self) -> ModelMeta:
        """The model's saved metadata."""
        return self.forecaster.meta


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


def smoke_forecast(forecaster: Forecaster) -> None:
    """Forecast a synthetic seasonal series and check shapes, finiteness and interval order.

    Raises:
        SmokeTestError: naming what was wrong with the output.
    """
    meta = forecaster.meta
    lookback, horizon = meta.lookback, meta.max_horizon
    start = np.array(["2024-01-01T00:00:00"], dtype="datetime64[s]")  # a Monday
    stamps = future_timestamps(start, meta.frequency, lookback)  # [1, L]
    season = season_length(meta.frequency)
    t = np.arange(lookback, dtype=np.float32)  # [L]
    history = (100.0 + 10.0 * np.sin(2.0 * np.pi * t / season))[None, :].astype(np.float32)
    covariates = None
    if meta.covariates:
        covariates = np.zeros((1, lookback, len(meta.covariates)), dtype=np.float32)  # [1, L, C]
    levels = sorted(meta.conformal) or [80, 95]
    out = forecaster.predict(history, horizon, levels, timestamps=stamps, covariates=covariates)
    mean = np.asarray(out.mean)
    if mean.shape != (1, horizon):
        raise SmokeTestError(f"smoke forecast mean has shape {mean.shape}, expected (1, {horizon})")
    if not np.isfinite(mean).all():
        raise SmokeTestError("smoke forecast mean is not finite (NaN or Inf weights?)")
    for level in levels:
        lower, upper = np.asarray(out.lower[level]), np.asarray(out.upper[level])
        if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise SmokeTestError(f"smoke forecast {level}% interval is not finite")
        if (lower > upper).any():
            raise SmokeTestError(f"smoke forecast {level}% interval has lower > upper")


@dataclass
class _State:
    served: dict[str, LoadedModel] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    refused: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> version -> why


class ModelCache:
    """Loads, serves and hot-swaps the alias version of each configured registered model.

    Args:
        settings: service settings (tracking URI, names, alias, poll interval, pin cache size).
        metrics: where load failures, swaps and served versions are recorded.
    """

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        from mlflow import MlflowClient

        self.settings = settings
        self.metrics = metrics
        self._client = MlflowClient(
            tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
        )
        self._state = _State(names=settings.models)
        self._swap_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._pinned: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._pinned_lock = threading.Lock()
        self._stop = threading.Event()
        self._first_refresh = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- reading (hot path)

    def served(self) -> dict[str, LoadedModel]:
        """A snapshot of name -> served model (safe to iterate while swaps happen)."""
        return self._state.served

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model serving `name` (its alias version, or the pinned `version`).

        Raises:
            ModelNotFoundError: unknown name, or a version that is not registered.
            NotReadyError: the name is configured but not loaded yet, or the registry is
                needed for a pinned version and cannot be reached.
        """
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
        if version is None or version == current.version:
            return current
        return self._get_pinned(name, version)

    def readiness(self) -> tuple[bool, dict[str, str], list[str]]:
        """(ready, name -> served version, configured names not loaded)."""
        served = self._state.served
        loaded = {name: model.version for name, model in served.items()}
        missing = [name for name in self._state.names if name not in served]
        ready = self._first_refresh.is_set() and not missing and bool(served)
        return ready, loaded, missing

    # ---------------------------------------------------------------- pinned versions

    def _get_pinned(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        with self._pinned_lock:
            hit = self._pinned.get(key)
            if hit is not None:
                self._pinned.move_to_end(key)
                return hit
            if not version.isdigit():
                raise ModelNotFoundError(
                    f"version {version!r} of {name!r} is not a registered version number; "
                    'send digits such as "3", or leave version out to use the alias',
                    "version",
                )
            refused = self._state.refused.get(name, {}).get(version)
            if refused is not None:
                raise ModelNotFoundError(
                    f"version {version} of {name!r} was refused ({refused}); pin another",
                    "version",
                )
            try:
                self._client.get_model_version(name, version)
            except Exception as exc:
                if _is_not_found(exc):
                    raise ModelNotFoundError(
                        f"version {version} of {name!r} is not registered; "
                        "list versions in the MLflow UI or leave version out",
                        "version",
                    ) from None
                raise NotReadyError(
                    f"registry unreachable while loading pinned version {version} of {name!r}; "
                    "retry later or leave version out",
                    "version",
                ) from exc
            try:
                model = self._load(name, version, alias=None)
            except _Refused as exc:
                raise ModelNotFoundError(
                    f"version {version} of {name!r} cannot be served: {exc}", "version"
                ) from None
            if self.settings.max_pinned > 0:
                self._pinned[key] = model
                while len(self._pinned) > self.settings.max_pinned:
                    self._pinned.popitem(last=False)
            return model

    # ---------------------------------------------------------------- refreshing

    def refresh(self) -> RefreshReport:
        """Ask the registry for each alias version; load and swap in what changed."""
        with self._refresh_lock:
            try:
                targets = self._targets()
            except Exception as exc:
                self.metrics.registry_errors.inc()
                logger.warning("registry unreachable, keeping served models: %s", exc)
                self._first_refresh.set()
                return RefreshReport(registry_error=f"registry unreachable: {_short(exc)}")
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
            while True:
                page = self._client.search_registered_models(max_results=200, page_token=token)
                for rm in page:
                    if alias in rm.aliases:
                        found[rm.name] = str(rm.aliases[alias])
                token = page.token
                if not token:
                    return found
        targets: dict[str, str | Exception] = {}
        for name in self.settings.models:
            try:
                targets[name] = str(self._client.get_model_version_by_alias(name, alias).version)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                targets[name] = exc
        return targets

    def _refresh_one(self, name: str, target: str | Exception) -> Outcome:
        current = self._state.served.get(name)
        previous = current.version if current else None
        if isinstance(target, Exception):
            message = f"no version of {name!r} has alias {self.settings.alias!r}: {_short(target)}"
            logger.warning(message)
            return Outcome(name, previous, previous, False, message)
        if target == previous:
            return Outcome(name, previous, previous, False)
        why = self._state.refused.get(name, {}).get(target)
        if why is not None:
            return Outcome(name, previous, previous, False, f"version {target} refused: {why}")
        try:
            model = self._load(name, target, alias=self.settings.alias)
        except _Refused as exc:
            self._state.refused.setdefault(name, {})[target] = str(exc)
            self.metrics.load_failures.labels(name).inc()
            logger.error("refused %s version %s, still serving %s: %s", name, target, previous, exc)
            return Outcome(name, previous, previous, False, f"version {target} refused: {exc}")
        except Exception as exc:
            self.metrics.registry_errors.inc()
            logger.warning("could not fetch %s version %s, will retry: %s", name, target, exc)
            return Outcome(name, previous, previous, False, f"fetch failed: {_short(exc)}")
        with self._swap_lock:
            self._state.served = {**self._state.served, name: model}
        self.metrics.model_swaps.labels(name).inc()
        self.metrics.served_version.labels(name).set(float(target) if target.isdigit() else -1)
        logger.info("serving %s version %s (was %s)", name, target, previous)
        return Outcome(name, target, previous, True)

    def _load(self, name: str, version: str, *, alias: str | None) -> LoadedModel:
        """Download, load and smoke-test one version.

        Raises:
            _Refused: the artifacts are there but are not a working forecaster.
            Exception: anything else (network, registry) is left to the caller to retry.
        """
        import mlflow

        from models.io import load

        run_id = self._client.get_model_version(name, version).run_id
        with tempfile.TemporaryDirectory(prefix="forecast-model-") as tmp:
            # Same files as download_artifacts("models:/name/version"), but resolved with our
            # own client: MLflow resolves models:/ URIs with the process-global registry URI.
            source = self._client.get_model_version_download_uri(name, version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source,
                dst_path=tmp,
                tracking_uri=self.settings.tracking_uri,
                registry_uri=self.settings.tracking_uri,
            )
            folder = Path(local) / FORECASTER_SUBDIR
            if not folder.is_dir():
                raise _Refused(f"no {FORECASTER_SUBDIR.as_posix()}/ folder in the model artifacts")
            try:
                forecaster = load(folder, device="cpu")
            except Exception as exc:
                raise _Refused(f"load failed: {_short(exc)}") from exc
        try:
            smoke_forecast(forecaster)
        except Exception as exc:
            raise _Refused(f"smoke forecast failed: {_short(exc)}") from exc
        metrics: dict[str, float] = {}
        if run_id:
            try:
                run_metrics = self._client.get_run(run_id).data.metrics
                metrics = {k: float(v) for k, v in run_metrics.items() if k.startswith("test_")}
                metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
            except Exception as exc:  # metrics are informative; never block a load on them
                logger.warning("no run metrics for %s version %s: %s", name, version, exc)
        return LoadedModel(
            name=name,
            version=version,
            alias=alias,
            forecaster=forecaster,
            run_id=run_id or None,
            metrics=metrics,
            loaded_at=datetime.now(UTC),
        )

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
        """Stop the poller and wait for it (a refresh in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the poller must survive anything
                logger.exception("model refresh failed")
            if self._stop.wait(self.settings.poll_seconds):
                return


class _Refused(Exception):
    """The version's artifacts are present but do not make a working forecaster."""


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
