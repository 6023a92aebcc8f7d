"""The one module of training/ that talks to MLflow: runs, metrics, artifacts, models, registry.

Everything else in training/ goes through `Tracker` (a connection to one tracking URI) and
`RunLog` (the active run), so the MLflow API surface we depend on is in one file. Layout:

- one experiment per registered model name (e.g. "load-etth1"); one run per training job;
- the model is a pyfunc logged from code (`training/registry/pyfunc_model.py`) whose artifact
  "forecaster" is the saved forecaster directory; the `models` package travels as its code;
- registered model versions carry tags (family, val_score, gate_decision, ...) and the aliases
  "champion" / "challenger".
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from models.base import EpochCallback, EpochStats
from training.errors import TrackingError
from training.settings import TrainSettings, local_artifact_root, resolve_tracking_uri

logger = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODELS_PACKAGE = Path(__file__).resolve().parents[2] / "models"
MODEL_NAME_IN_RUN = "model"
FORECASTER_ARTIFACT = "forecaster"
_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call
_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "safetensors")


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version, as the rest of training/ sees it."""

    name: str  # registered model name
    version: int
    run_id: str  # the run that logged it ("" if unknown)
    tags: dict[str, str]
    aliases: tuple[str, ...]  # aliases pointing at it ("champion", "challenger")
    created_ms: int  # creation time, milliseconds since the epoch


@dataclass(frozen=True)
class RunData:
    """Params, metrics and tags of one run (latest metric values)."""

    run_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_ms: int
    end_ms: int | None


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Fail fast when an http(s) tracking server does not answer its /health endpoint.

    Without this MLflow's client retries a dead server for minutes before it gives up.

    Raises:
        TrackingError: naming the URI, the cause and the fix.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"tracking server {uri} is unreachable ({reason}). Fix: start it (mlflow server "
            "--backend-store-uri ...), or pass --tracking-uri / set MLFLOW_TRACKING_URI to a "
            "running server, or unset it to use the local sqlite:///./mlruns/mlflow.db"
        ) from None
    if status != 200:
        raise TrackingError(
            f"tracking server {uri} answered {url} with HTTP {status}. Fix: check that the "
            "URI points at an MLflow server"
        )


def _pinned_requirements() -> list[str]:
    out = []
    for package in _REQUIREMENTS:
        try:
            out.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(package)
    return out


def model_signature(
    horizon: int,
    levels: Sequence[int],
    covariates: Sequence[str] = (),
    future_covariates: Sequence[str] = (),
) -> ModelSignature:
    """The pyfunc signature: long input frame, long output frame, params horizon and levels.

    Future covariates are input columns too: on the history rows and on the horizon rows
    (whose value is empty), see training.registry.pyfunc_model.
    """
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec("string", "series_id", required=False),
        ColSpec("datetime", "timestamp"),
        ColSpec("double", "value"),
        *(ColSpec("double", c) for c in (*covariates, *future_covariates)),
    ]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("string", "series_id"),
        ColSpec("datetime", "timestamp"),
        ColSpec("long", "step"),
        ColSpec("double", "mean"),
        *(ColSpec("double", f"{side}_{level}") for level in levels for side in ("lower", "upper")),
    ]
    params = ParamSchema(
        [
            ParamSpec("horizon", "long", int(horizon)),
            ParamSpec("levels", "long", [int(v) for v in levels], shape=(-1,)),
        ]
    )
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


class RunLog:
    """Logging into the active run (created by `Tracker.run`)."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def params(self, params: Mapping[str, Any]) -> None:
        """Log params; lists and dicts become JSON strings."""
        mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    def metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics at one step (non-finite values are skipped with a warning)."""
        self.metric_rows([(k, float(v), step or 0) for k, v in metrics.items()])

    def metric_rows(self, rows: Sequence[tuple[str, float, int]]) -> None:
        """Log (key, value, step) rows in batches; NaN/inf are dropped (MLflow rejects inf)."""
        now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
        good = [Metric(k, float(v), now, int(s)) for k, v, s in rows if math.isfinite(v)]
        if len(good) < len(rows):
            logger.warning("skipped %d non-finite metric values", len(rows) - len(good))
        for i in range(0, len(good), _BATCH):
            self.client.log_batch(self.run_id, metrics=good[i : i + _BATCH])

    def tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values as strings)."""
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload one local file or folder."""
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def json(self, obj: Any, name: str) -> None:
        """Upload a JSON document under `name`."""
        mlflow.log_dict(obj, name)

    def figure(self, figure: Any, name: str) -> None:
        """Upload a matplotlib figure as an image."""
        mlflow.log_figure(figure, name, save_kwargs={"dpi": 80})

    def epoch_callback(self) -> EpochCallback:
        """A per-epoch hook that logs train_loss / val_loss as metric history (step = epoch)."""

        def log_epoch(stats: EpochStats) -> None:
            values = {"train_loss": stats.train_loss, "val_loss": stats.val_loss,
                      "epoch_seconds": stats.seconds}  # fmt: skip
            self.metric_rows([(key, value, stats.epoch) for key, value in values.items()])

        return log_epoch

    def log_model(
        self,
        forecaster_dir: Path,
        *,
        registered_name: str,
        signature: ModelSignature,
        input_example: pd.DataFrame,
        horizon: int,
    ) -> int:
        """Log the pyfunc (from code) with `forecaster_dir` (config.json, meta.json,
        weights.safetensors) and register a version of `registered_name` (created if absent).

        `signature` comes from `model_signature`; `horizon` is the input example's horizon param.
        Returns the new version number.
        """
        with tempfile.TemporaryDirectory(prefix="forecast-model-") as tmp:
            staged = Path(tmp) / FORECASTER_ARTIFACT
            shutil.copytree(forecaster_dir, staged)
            code = Path(tmp) / "code" / "models"
            shutil.copytree(MODELS_PACKAGE, code, ignore=shutil.ignore_patterns("__pycache__"))
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME_IN_RUN,
                python_model=str(PYFUNC_CODE),
                artifacts={FORECASTER_ARTIFACT: str(staged)},
                code_paths=[str(code)],
                signature=signature,
                input_example=(input_example, {"horizon": int(horizon)}),
                pip_requirements=_pinned_requirements(),
                registered_model_name=registered_name,
            )
        if info.registered_model_version is None:
            raise TrackingError(f"registering a version of {registered_name!r} returned none")
        return int(info.registered_model_version)


class Tracker:
    """A connection to one tracking (and registry) URI.

    Args:
        uri: tracking URI; None takes `MLFLOW_TRACKING_URI` or the embedded SQLite default.
        settings: environment settings; read fresh when None.

    Raises:
        TrackingError: when an http(s) server is unreachable (checked here, before any work).
    """

    def __init__(self, uri: str | None = None, settings: TrainSettings | None = None) -> None:
        self.settings = settings or TrainSettings()
        self.uri = resolve_tracking_uri(uri, self.settings)
        check_reachable(self.uri, self.settings.connect_timeout)
        self.artifact_root = local_artifact_root(self.uri, self.settings)

    @cached_property
    def client(self) -> MlflowClient:
        """The MLflow client, made on first use (a new SQLite store creates its schema then)."""
        if self.uri.startswith("sqlite:///"):
            Path(self.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point MLflow's fluent API at this URI for the block, then restore the previous one.

        MLflow keeps the fluent URI (and the active run) per process, so two trackers with
        different URIs must not log from different threads at the same time.
        """
        previous_tracking = mlflow.get_tracking_uri()
        previous_registry = mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous_tracking)
            mlflow.set_registry_uri(previous_registry)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created (with our local artifact root) if absent."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        root = self.artifact_root
        location = None if root is None else f"{root.rstrip('/')}/{name}"
        return str(self.client.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(
        self,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        *,
        nested: bool = False,
    ) -> Iterator[RunLog]:
        """Start a run in `experiment`; it ends FINISHED, or FAILED when the block raises.

        `nested=True` inside another run's block makes a child run of it (the `auto` job's
        candidates), shown under the parent in the MLflow UI.
        """
        experiment_id = self.experiment_id(experiment)
        with (
            self.active(),
            mlflow.start_run(
                experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {}), nested=nested
            ) as run,
        ):
            yield RunLog(self.client, run.info.run_id)

    # --- registry -------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Names of every registered model, sorted."""
        return sorted(m.name for m in self.client.search_registered_models())

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version of registered model `name` ({} when the model does not exist)."""
        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def version(self, name: str, version: int) -> VersionInfo:
        """One version of `name`.

        Raises:
            TrackingError: when the model or the version does not exist.
        """
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException:
            known = [v.version for v in self.versions(name)]
            raise TrackingError(
                f"registered model {name!r} has no version {version!r} (versions: "
                f"{known or 'none'}). Fix: pick one listed by `forecast compare {name}`"
            ) from None
        return _version_info(mv, self.aliases(name))

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of `name`, oldest first ([] when the model does not exist)."""
        by_alias = self.aliases(name)
        found = self.client.search_model_versions(filter_string=f"name = '{name}'")
        return sorted((_version_info(mv, by_alias) for mv in found), key=lambda v: v.version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` of `name` at `version`."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, Any]) -> None:
        """Set tags on one model version (values as strings)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, str(value))

    def set_run_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a (possibly finished) run."""
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def log_child_run(
        self,
        parent_run_id: str,
        run_name: str,
        *,
        params: Mapping[str, Any],
        metric_rows: Sequence[tuple[str, float, int]],
        tags: Mapping[str, Any],
        failed: bool = False,
    ) -> str:
        """Log a finished child run of `parent_run_id` in one go (a tuning trial, from the
        driver); returns its id. It ends FINISHED, or FAILED when `failed`."""
        parent = self.client.get_run(parent_run_id)
        run = self.client.create_run(
            parent.info.experiment_id,
            run_name=run_name,
            tags={**{k: str(v) for k, v in tags.items()}, "mlflow.parentRunId": parent_run_id},
        )
        run_id = str(run.info.run_id)
        self.client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
        RunLog(self.client, run_id).metric_rows(metric_rows)
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
        return run_id

    def download_forecaster(self, name: str, version: int, destination: Path) -> Path:
        """Download version `version` of `name`; return its forecaster directory."""
        with self.active():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=str(destination)
            )
        directory = Path(local) / "artifacts" / FORECASTER_ARTIFACT
        if not directory.is_dir():
            raise TrackingError(
                f"model {name!r} version {version} has no artifacts/{FORECASTER_ARTIFACT} "
                "folder; it was not logged by `forecast train`. Fix: promote another version"
            )
        return directory

    # --- runs -----------------------------------------------------------------------------

    def run_data(self, run_id: str) -> RunData:
        """Params, latest metrics and tags of run `run_id`."""
        run = self.client.get_run(run_id)
        return RunData(
            run_id=run_id,
            status=run.info.status,
            params=dict(run.data.params),
            metrics={k: float(v) for k, v in run.data.metrics.items()},
            tags=dict(run.data.tags),
            start_ms=int(run.info.start_time or 0),
            end_ms=int(run.info.end_time) if run.info.end_time else None,
        )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of `key`, ordered by step."""
        history = self.client.get_metric_history(run_id, key)
        return sorted((int(m.step), float(m.value)) for m in history)

    def runs(self, experiment: str) -> list[RunData]:
        """Every run of `experiment` (newest first); [] when it does not exist."""
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = self.client.search_runs([found.experiment_id], order_by=["start_time DESC"])
        return [self.run_data(r.info.run_id) for r in runs]

    def download_run_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        """Download one artifact of a run; return its local path."""
        return Path(self.client.download_artifacts(run_id, path, str(destination)))


def _param_value(value: Any) -> str:
    """A param as MLflow stores it: lists and dicts as JSON, the rest as str."""
    return json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)


def _version_info(mv: Any, by_alias: Mapping[str, int]) -> VersionInfo:
    """`mv` with the aliases (of alias -> version `by_alias`) that point at it."""
    version = int(mv.version)
    return VersionInfo(
        name=str(mv.name),
        version=version,
        run_id=str(mv.run_id or ""),
        tags=dict(mv.tags or {}),
        aliases=tuple(sorted(a for a, v in by_alias.items() if v == version)),
        created_ms=int(mv.creation_timestamp or 0),
    )
