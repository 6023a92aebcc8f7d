"""`retrain(name)`: replay a registered model's training spec on fresh data and gate the result.

One cycle, under the model's lock (`training.retraining.locks.model_lock`, so two cycles of
one model run one after the other, across processes and, on PostgreSQL, across hosts):

1. find the registered model's champion (the latest version when there is none) and download
   the `spec.json` its run logged;
2. rebuild the `TrainSpec` and load the freshest data from the spec's source (the bundled
   dataset or file, read again now; or the series store for `series` specs), once: the same
   frame is trained on and reported;
3. `pipeline.train(spec)`: trains a challenger, registers it, re-scores the champion on the
   same newest validation windows and promotes through the gate;
4. tag the challenger's run `retrain=true` with the data span and the champion before.

A cycle whose fresh data is exactly the data the replayed version was trained on (same
sha256 of the table, logged as the run tag `data_sha256`) trains nothing: it returns a result
with `skipped` set to the reason and records that reason on the version (tag
`retrain_skipped`), instead of registering a duplicate.

A cycle that raises leaves the champion alias untouched (the pipeline moves it only in the
gate, after everything else succeeded); the failure is logged, recorded in MLflow as a FAILED
run named "retrain-failed" carrying the error, and re-raised to the caller.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.base import EpochCallback
from training.errors import TrackingError
from training.jobs import pipeline, preparation
from training.jobs.experiment import TrainSpec
from training.registry.gate import CHAMPION
from training.registry.tracking import Tracker, VersionInfo
from training.retraining.locks import model_lock

logger = logging.getLogger(__name__)

SPEC_ARTIFACT = "spec.json"
FAILED_RUN_NAME = "retrain-failed"


@dataclass(frozen=True)
class RetrainResult:
    """What one retraining cycle did (and what `forecast retrain --json` prints)."""

    model_name: str  # the registered model
    challenger_version: int | None  # the version this cycle registered (None: skipped)
    champion_version_before: int | None  # the champion when the cycle started (None: none)
    champion_version_after: int | None  # the champion after the gate
    promoted: bool  # whether the challenger became champion
    metric: str  # gate metric (validation, lower is better)
    challenger_score: float  # the challenger's validation score
    champion_score: float | None  # the previous champion's on the same windows (None: none)
    margin: float  # relative improvement the gate required
    rows: int  # rows of fresh data the challenger was trained and evaluated on
    start: str  # first timestamp of that data (ISO 8601)
    end: str  # last timestamp of that data (ISO 8601)
    source: str  # where the data came from ("bundled:load/etth1", "file:...", "store:...")
    run_id: str  # the challenger's MLflow run
    spec_version: int  # the version whose spec.json was replayed
    seconds: float  # wall time of the cycle, lock wait included
    skipped: str | None = None  # why the cycle trained nothing (no new data), else None

    def to_json(self) -> dict[str, Any]:
        """The one JSON object `forecast retrain --json` prints (non-finite scores -> null)."""
        return {
            "model_name": self.model_name,
            "challenger_version": self.challenger_version,
            "champion_version_before": self.champion_version_before,
            "champion_version_after": self.champion_version_after,
            "promoted": self.promoted,
            "scores": {
                "metric": self.metric,
                "challenger": _finite_or_none(self.challenger_score),
                "champion": _finite_or_none(self.champion_score),
                "margin": self.margin,
            },
            "data": {"rows": self.rows, "start": self.start, "end": self.end,
                     "source": self.source},
            "run_id": self.run_id,
            "spec_version": self.spec_version,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
        }  # fmt: skip


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# --- the spec and the data -----------------------------------------------------------------


def replay_version(tracker: Tracker, name: str) -> VersionInfo:
    """The version whose spec a cycle replays: the champion, else the latest version.

    Raises:
        TrackingError: when `name` is not a registered model or has no versions.
    """
    versions = tracker.versions(name)
    if not versions:
        known = ", ".join(tracker.model_names()) or "none"
        raise TrackingError(
            f"registered model {name!r} does not exist in {tracker.uri} (registered: {known}). "
            "Fix: train it first, e.g. forecast train --config configs/load-etth1-gru.toml, "
            "or pass the right --tracking-uri"
        )
    champion = tracker.aliases(name).get(CHAMPION)
    if champion is not None:
        return tracker.version(name, champion)
    return versions[-1]


def load_spec(tracker: Tracker, version: VersionInfo) -> TrainSpec:
    """The `TrainSpec` logged with `version`'s run, ready to replay, its look-back pinned to the
    version's.

    The experiment file it was read from is not re-logged (`source_file` is dropped): it may
    have changed or moved since; the replayed spec itself is logged with the new run.

    Raises:
        TrackingError: when the version has no run or its run has no spec.json.
        ExperimentError: when the stored spec no longer validates.
    """
    where = f"version {version.version} of {version.name!r}"
    if not version.run_id:
        raise TrackingError(
            f"{where} has no run, so there is no training spec to replay. Fix: train the "
            "model with `forecast train` and promote that version"
        )
    with tempfile.TemporaryDirectory(prefix="forecast-retrain-") as tmp:
        try:
            path = tracker.download_run_artifact(version.run_id, SPEC_ARTIFACT, Path(tmp))
            doc = json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # MlflowException, OSError, JSONDecodeError
            raise TrackingError(
                f"{where} (run {version.run_id}) has no readable {SPEC_ARTIFACT} ({exc}); "
                "it was not logged by `forecast train`. Fix: retrain it once with "
                "`forecast train` and promote that version"
            ) from None
    if not isinstance(doc, dict):
        raise TrackingError(f"{where}: {SPEC_ARTIFACT} holds {type(doc).__name__}, not an object")
    doc["source_file"] = None
    # A look-back derived from the data (none given) is pinned to the one this version serves:
    # re-derived on grown data it could change the request contract, which the gate refuses.
    if doc.get("lookback") is None and str(version.tags.get("lookback", "")).isdigit():
        doc["lookback"] = int(version.tags["lookback"])
    return TrainSpec.from_dict(doc)


def resolve_database_url(database_url: str | None) -> str | None:
    """The series store / lock database URL: the argument, else $FORECAST_DATABASE_URL."""
    from training.store import DATABASE_URL_ENV

    return database_url or os.environ.get(DATABASE_URL_ENV)


def unchanged_data(tracker: Tracker, version: VersionInfo, frame: Any) -> str | None:
    """Why a cycle on `frame` would only repeat `version`'s training, else None.

    The pipeline tags every run with the sha256 of the table it trained on; the same digest
    means not one observation was added or changed since.
    """
    if not version.run_id:
        return None
    trained_on = tracker.run_data(version.run_id).tags.get("data_sha256", "")
    if not trained_on or trained_on != frame.fingerprint().get("sha256"):
        return None
    return (
        f"no new observations since version {version.version} was trained (the data still "
        f"ends at {frame.end.isoformat()}, {frame.rows} rows, same sha256)"
    )


# --- the cycle -----------------------------------------------------------------------------


def retrain(
    name: str,
    *,
    tracking_uri: str | None = None,
    database_url: str | None = None,
    callback: EpochCallback | None = None,
    lock_timeout: float | None = None,
    lock_dir: Path | None = None,
    allow_worse_than_baseline: bool = False,
    force: bool = False,
    allow_contract_change: bool = False,
) -> RetrainResult:
    """Run one retraining cycle of registered model `name` (see the module docstring).

    Args:
        name: registered model name, e.g. "load-etth1".
        tracking_uri: MLflow URI; None: `MLFLOW_TRACKING_URI` or the embedded SQLite store.
        database_url: series store / lock database; None: `FORECAST_DATABASE_URL`. A
            PostgreSQL URL makes the lock an advisory lock (shared across hosts).
        callback: per-epoch hook passed to the pipeline (e.g. a progress bar); an exception
            it raises fails the cycle.
        lock_timeout: seconds to wait for a running cycle of the same model; None: no limit.
        lock_dir: folder of file locks (non-PostgreSQL); None: see `training.retraining.locks`.
        allow_worse_than_baseline: let the gate promote a challenger that loses to naive /
            seasonal naive on the validation windows (it must still beat the champion).
        force: train even when the data is exactly what the replayed version saw.
        allow_contract_change: let the gate promote a challenger whose request contract
            (look-back, frequency, covariates) differs from the champion's.

    Returns:
        The decision, both scores and the data span.

    Raises:
        TrackingError: unknown model, no spec to replay, unreachable server.
        LockTimeoutError: another cycle held the lock past `lock_timeout`.
        Anything training raises, after the failure is recorded (the champion is unchanged).
    """
    started = time.monotonic()
    tracker = Tracker(tracking_uri)
    database_url = resolve_database_url(database_url)
    with model_lock(name, database_url, timeout=lock_timeout, lock_dir=lock_dir):
        before = tracker.aliases(name).get(CHAMPION)
        version = replay_version(tracker, name)
        try:
            spec = load_spec(tracker, version)
            frame = preparation.load_frame(spec, database_url)
            logger.debug(
                "retrain %s: replaying the spec of v%d (%s) on %d rows up to %s",
                name, version.version, spec.family, frame.rows, frame.end.isoformat(),
            )  # fmt: skip
            # what a cycle that trains nothing reports; a trained one replaces the outcome
            untrained = RetrainResult(
                model_name=name,
                challenger_version=None,
                champion_version_before=before,
                champion_version_after=before,
                promoted=False,
                metric=spec.gate_metric,
                challenger_score=math.nan,
                champion_score=None,
                margin=spec.gate_margin,
                rows=frame.rows,
                start=frame.start.isoformat(),
                end=frame.end.isoformat(),
                source=frame.source,
                run_id="",
                spec_version=version.version,
                seconds=0.0,
            )
            skipped = None if force else unchanged_data(tracker, version, frame)
            if skipped is not None:
                tracker.set_version_tags(name, version.version, {"retrain_skipped": skipped})
                logger.info("retrain %s: skipped: %s", name, skipped)
                return replace(untrained, seconds=time.monotonic() - started, skipped=skipped)
            result = pipeline.train(
                spec,
                tracker.uri,
                callback,
                frame=frame,
                allow_worse_than_baseline=allow_worse_than_baseline,
                allow_contract_change=allow_contract_change,
            )
        except Exception as exc:
            _record_failure(tracker, name, version.version, before, exc)
            raise
        tracker.set_run_tags(
            result.run_id,
            {
                "retrain": "true",
                "data_start": frame.start.isoformat(),
                "data_end": frame.end.isoformat(),
                "data_rows": frame.rows,
                "retrain_spec_version": version.version,
                "champion_version_before": "" if before is None else before,
            },
        )
    gate = result.gate
    out = replace(
        untrained,
        challenger_version=result.version,
        champion_version_after=result.champion_version,
        promoted=result.promoted,
        metric=gate.metric,
        challenger_score=gate.challenger_score,
        champion_score=gate.champion_score,
        margin=gate.margin,
        run_id=result.run_id,
        seconds=time.monotonic() - started,
    )
    logger.debug(
        "retrain %s: v%d %s (%s %.6g vs champion %s); champion v%s -> v%s",
        name, out.challenger_version, "promoted" if out.promoted else "rejected", out.metric,
        out.challenger_score, "none" if out.champion_score is None else f"{out.champion_score:.6g}",
        before, out.champion_version_after,
    )  # fmt: skip
    return out


class _RecordedFailure(Exception):
    """Raised inside the failure run so that MLflow ends it FAILED; never escapes."""


def _record_failure(
    tracker: Tracker, name: str, spec_version: int, champion: int | None, exc: BaseException
) -> None:
    """Log the failed cycle and record it in MLflow as a FAILED run carrying the error."""
    error = f"{type(exc).__name__}: {exc}"
    logger.error("retrain %s failed; champion v%s unchanged: %s", name, champion, error)
    tags = {
        "retrain": "true",
        "retrain_status": "failed",
        "retrain_error": error[:4000],
        "retrain_spec_version": str(spec_version),
        "champion_version_before": "" if champion is None else str(champion),
    }
    try:
        with tracker.run(name, run_name=FAILED_RUN_NAME, tags=tags) as run:
            run.json({"error": error, "champion_version": champion}, "retrain_failure.json")
            raise _RecordedFailure
    except _RecordedFailure:
        pass
    except Exception:  # recording must not hide the cycle's own error
        logger.exception("retrain %s: could not record the failure in MLflow", name)
