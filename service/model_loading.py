"""Loading one registered model version from MLflow into a `LoadedModel`.

    models:/<name>/<version> -> download artifacts/forecaster/
      -> models.io.load (safetensors + JSON, never pickle) -> smoke forecast -> LoadedModel

A version whose artifacts are there but do not make a working forecaster raises `Refused`:
the caller remembers it and never retries it. Anything else (network, registry) propagates,
for the caller to retry later. Every registry metadata call goes through the health tracker.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.base import Forecaster, ModelMeta
from service.batcher import Batcher
from service.registry_health import RegistryHealth, short_error
from service.smoke import smoke_forecast

if TYPE_CHECKING:  # mlflow is imported when the cache is built, not when this module is
    from mlflow import MlflowClient

logger = logging.getLogger("service.registry")  # the model cache's logger, as before the split

FORECASTER_SUBDIR = Path("artifacts") / "forecaster"


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, loaded and ready to forecast."""

    name: str  # registered model name
    version: str  # registered version ("3")
    alias: str | None  # the alias it is served for; None when a request pinned it
    forecaster: Forecaster
    run_id: str | None  # the MLflow run that produced it
    metrics: dict[str, float]  # test_* metrics of that run
    loaded_at: datetime  # when this process loaded it (UTC)
    # merges concurrent single-series forecasts into one forward pass
    batcher: Batcher[Any, Any] = field(default_factory=Batcher, compare=False, repr=False)

    @property
    def meta(self) -> ModelMeta:
        """The model's saved metadata."""
        return self.forecaster.meta


class Refused(Exception):
    """The version's artifacts are present but do not make a working forecaster."""


class VersionLoader:
    """Downloads, loads and smoke-tests registered versions.

    Args:
        client: the MLflow client, bound to the service's tracking and registry URI.
        health: records every registry metadata call (timed, outcome).
        tracking_uri: where artifacts are downloaded from.
    """

    def __init__(self, client: MlflowClient, health: RegistryHealth, tracking_uri: str) -> None:
        self._client = client
        self._health = health
        self._tracking_uri = tracking_uri

    def load(self, name: str, version: str, *, alias: str | None) -> LoadedModel:
        """Download, load and smoke-test one version.

        Raises:
            Refused: the artifacts are there but are not a working forecaster.
            Exception: anything else (network, registry) is left to the caller to retry.
        """
        import mlflow

        from models.io import load

        run_id = self._health.call(lambda: self._client.get_model_version(name, version)).run_id
        with tempfile.TemporaryDirectory(prefix="forecast-model-") as tmp:
            # Same files as download_artifacts("models:/name/version"), but resolved with our
            # own client: MLflow resolves models:/ URIs with the process-global registry URI.
            source = self._health.call(
                lambda: self._client.get_model_version_download_uri(name, version)
            )
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source,
                dst_path=tmp,
                tracking_uri=self._tracking_uri,
                registry_uri=self._tracking_uri,
            )
            folder = Path(local) / FORECASTER_SUBDIR
            if not folder.is_dir():
                raise Refused(f"no {FORECASTER_SUBDIR.as_posix()}/ folder in the model artifacts")
            try:
                forecaster = load(folder, device="cpu")
            except Exception as exc:
                raise Refused(f"load failed: {short_error(exc)}") from exc
        try:
            smoke_forecast(forecaster)
        except Exception as exc:
            raise Refused(f"smoke forecast failed: {short_error(exc)}") from exc
        return LoadedModel(
            name=name,
            version=version,
            alias=alias,
            forecaster=forecaster,
            run_id=run_id or None,
            metrics=self._run_metrics(name, version, run_id),
            loaded_at=datetime.now(UTC),
        )

    def _run_metrics(self, name: str, version: str, run_id: str | None) -> dict[str, float]:
        """The finite test_* metrics of the training run; empty when they cannot be read."""
        metrics: dict[str, float] = {}
        if run_id:
            try:
                run_metrics = self._client.get_run(run_id).data.metrics
                metrics = {k: float(v) for k, v in run_metrics.items() if k.startswith("test_")}
                metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
            except Exception as exc:  # metrics are informative; never block a load on them
                logger.warning("no run metrics for %s version %s: %s", name, version, exc)
        return metrics
