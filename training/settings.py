"""Environment settings of the training CLI (pydantic-settings), built once at the entry point.

The tracking URI comes from `--tracking-uri`, else `MLFLOW_TRACKING_URI` (MLflow's own variable,
so `mlflow ui` and our CLI agree), else an embedded SQLite store `./mlruns/mlflow.db` whose
artifacts live in `./mlruns/artifacts`. Relative SQLite paths are made absolute here so that a
run's artifact location does not depend on the directory a later command starts in.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///./mlruns/mlflow.db"
SQLITE_PREFIX = "sqlite:///"


class TrainSettings(BaseSettings):
    """Settings read from the environment (and never from files).

    Attributes:
        tracking_uri: MLflow tracking (and registry) URI; `MLFLOW_TRACKING_URI` or
            `FORECAST_TRACKING_URI`, else the embedded SQLite default.
        artifact_root: where a local (SQLite) store keeps artifacts; default: the folder
            `artifacts` next to the database file. Ignored for http(s) servers, which decide.
        connect_timeout: seconds the up-front reachability check of an http(s) server waits.
    """

    model_config = SettingsConfigDict(env_prefix="FORECAST_", extra="ignore")

    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "FORECAST_TRACKING_URI"),
    )
    artifact_root: str | None = None
    connect_timeout: float = 3.0


def resolve_tracking_uri(uri: str | None, settings: TrainSettings | None = None) -> str:
    """The tracking URI to use: `uri` (the `--tracking-uri` flag) when given, else that of
    `settings` (read fresh when None); `sqlite:///relative/path.db` becomes
    `sqlite:////abs/path.db`."""
    chosen = uri if uri else (settings or TrainSettings()).tracking_uri
    if chosen.startswith(SQLITE_PREFIX):
        path = chosen.removeprefix(SQLITE_PREFIX)
        if path and path != ":memory:" and not path.startswith("/"):
            chosen = SQLITE_PREFIX + str((Path.cwd() / path).resolve())
    elif "://" not in chosen:
        # A bare folder: MLflow's file store is deprecated, so keep a SQLite db inside it.
        chosen = SQLITE_PREFIX + str((Path(chosen) / "mlflow.db").resolve())
    return chosen


def local_artifact_root(uri: str, settings: TrainSettings | None = None) -> str | None:
    """Artifact location (a `file://` URI) for experiments we create on a local SQLite store
    `uri` (already through `resolve_tracking_uri`): `FORECAST_ARTIFACT_ROOT` from `settings`
    (read fresh when None), else `<db folder>/artifacts`; None for servers."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    configured = (settings or TrainSettings()).artifact_root
    if configured:
        return Path(configured).resolve().as_uri()
    db = Path(uri.removeprefix(SQLITE_PREFIX))
    return (db.parent / "artifacts").as_uri()
