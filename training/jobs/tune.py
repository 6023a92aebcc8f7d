"""`tune(spec, settings)`: hyperparameter search on Ray Tune, then the best trial through the
normal pipeline.

1. connect to the tracking URI (fail fast), load the data, build the family's search space
   (`search_space`) and check that one point of it makes a valid config, before Ray starts;
2. open the parent run; join the Ray cluster (or start Ray here) and run the trials
   (`tune_trial.run_trial`): an Optuna TPE searcher proposes them, ASHA stops the weak ones
   after `grace_period` epochs, `time_budget` ends the search;
3. log every trial from the driver, once, as a child run of the parent (its values, per-epoch
   losses and validation score, final validation metrics, the node that ran it);
4. retrain the best trial's spec with `pipeline.train` (test windows, baselines, registry,
   champion gate) and file that run under the parent as well.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from models.base import EpochCallback
from training.data.frame import SeriesFrame
from training.errors import ExperimentError
from training.jobs.cluster import ClusterInfo, check_reachable, ray_session, resolve_address
from training.jobs.experiment import TrainSpec
from training.jobs.pipeline import TrainResult, train
from training.jobs.preparation import build_config, load_frame
from training.jobs.search_space import SETTINGS, Dimension, TuneSettings, default_space, trial_spec
from training.jobs.tune_events import SINKS, TrialUpdate, collector, plain
from training.jobs.tune_trial import SCORE, run_trial
from training.registry.tracking import Tracker
from training.settings import TrainSettings

logger = logging.getLogger(__name__)

MAX_REPORTS = 10_000  # ASHA's max_t: trials end by early stopping or their epoch budget


@dataclass(frozen=True)
class TrialOutcome:
    """One finished trial as logged to MLflow."""

    trial_id: str
    status: str
    params: dict[str, Any]
    score: float | None  # the last reported validation score (lower is better)
    epochs: int
    node_id: str
    metrics: dict[str, float]  # val_* of the restored best weights (completed trials)
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss, score
    error: str | None = None
    run_id: str = ""


@dataclass(frozen=True)
class TuneResult:
    """What `forecast tune` produced (and what `--json` prints)."""

    parent_run_id: str
    metric: str
    space: dict[str, str]
    trials: list[TrialOutcome]
    best: TrialOutcome
    best_spec: TrainSpec
    train: TrainResult
    cluster: ClusterInfo
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The one JSON object `forecast tune --json` prints."""
        return {
            "parent_run_id": self.parent_run_id,
            "metric": f"val_{self.metric}",
            "space": self.space,
            "cluster": vars(self.cluster),
            "seconds": self.seconds,
            "best_trial": self.best.trial_id,
            "best_params": self.best.params,
            "trials": [{k: v for k, v in vars(t).items() if k != "history"} for t in self.trials],
            "train": self.train.to_json(),
        }


def tune(
    spec: TrainSpec,
    settings: TuneSettings,
    *,
    ray_address: str | None = None,
    tracking_uri: str | None = None,
    train_settings: TrainSettings | None = None,
    frame: SeriesFrame | None = None,
    on_update: Callable[[TrialUpdate], None] | None = None,
    on_epoch: EpochCallback | None = None,
) -> TuneResult:
    """Search, log the trials, retrain and gate the best (see the module docstring).

    Args:
        spec: the base spec; searched keys replace its values trial by trial.
        settings: trials, time budget, ASHA and seed settings and space overrides.
        ray_address: a Ray cluster; None: $RAY_ADDRESS, else Ray starts in this process.
        tracking_uri, train_settings, frame: as for `pipeline.train`.
        on_update: called on the driver whenever a trial starts, reports or ends.
        on_epoch: per-epoch hook of the final retraining.

    Raises:
        ExperimentError: bad settings or space, an unreachable Ray address, every trial
            failing; TrackingError, DataError, ConfigError as for `pipeline.train`.
    """
    started = time.perf_counter()
    if settings.trials < 1:
        raise ExperimentError(f"--trials {settings.trials}: must be >= 1. Fix: e.g. --trials 20")
    address = resolve_address(ray_address)
    if address is not None:
        check_reachable(address)  # seconds, not Ray's minutes of retries, and before any run
    tracker = Tracker(tracking_uri, train_settings)
    frame = frame if frame is not None else load_frame(spec)
    space = {**default_space(frame, spec), **settings.spaces.get(spec.family, {})}  # file wins
    _check_point(spec, frame, space)
    described = {k: d.describe() for k, d in space.items()}
    name, metric = spec.model_name, spec.gate_metric
    tags = {"dataset": spec.data_label, "family": spec.family, "tune_role": "parent"}
    with tracker.run(name, run_name=f"tune-{spec.family}-h{spec.horizon}", tags=tags) as parent:
        parent.params(
            {
                **{key: getattr(settings, key) for key in SETTINGS if key != "time_budget"},
                "time_budget_min": settings.time_budget or 0,
                "searcher": "optuna-tpe",
                "scheduler": "asha",
                "metric": f"val_{metric}",
                **{f"space.{k}": v for k, v in described.items()},
            }
        )
        parent.json(spec.to_dict(), "spec.json")
        with ray_session(address) as cluster:
            parent.tags({"ray_address": cluster.address, "ray_nodes": cluster.nodes})
            outcomes = _search(spec, frame, space, settings, metric, on_update)
        outcomes = [_log_trial(tracker, parent.run_id, spec, t, metric) for t in outcomes]
        scored = [t for t in outcomes if t.score is not None and math.isfinite(t.score)]
        parent.json([vars(t) for t in outcomes], "trials.json")
        parent.metrics(
            {
                "trials_completed": sum(t.status == "completed" for t in outcomes),
                "trials_stopped": sum(t.status == "stopped" for t in outcomes),
                "trials_failed": sum(t.status == "error" for t in outcomes),
            }
        )
        if not scored:
            first = next((t.error for t in outcomes if t.error), "no trial reported a score")
            raise ExperimentError(
                f"all {len(outcomes)} trials failed ({first}). Fix: check the [tune.space."
                f"{spec.family}] values, or raise --time-budget"
            )
        best = min(scored, key=lambda t: (t.status != "completed", t.score))
        parent.metrics({f"best_val_{metric}": float(best.score or 0.0)})
    best_spec = trial_spec(spec, best.params)
    result = train(best_spec, tracking_uri, on_epoch, settings=train_settings, frame=frame)
    tracker.set_run_tags(
        result.run_id,
        {"mlflow.parentRunId": parent.run_id, "tune_role": "best", "tune_trial": best.trial_id},
    )
    tracker.set_run_tags(
        parent.run_id,
        {
            "best_trial": best.trial_id,
            "best_run_id": result.run_id,
            "best_version": result.version,
            "gate_decision": "promoted" if result.promoted else "rejected",
        },
    )
    return TuneResult(
        parent_run_id=parent.run_id, metric=metric, space=described, trials=outcomes, best=best,
        best_spec=best_spec, train=result, cluster=cluster, seconds=time.perf_counter() - started,
    )  # fmt: skip


def _check_point(spec: TrainSpec, frame: SeriesFrame, space: Mapping[str, Dimension]) -> None:
    """Fail before Ray starts when the first value of every dimension makes no valid config."""
    point = {k: d.values[0] for k, d in space.items()}
    checked = trial_spec(spec, point)
    build_config(checked, frame, int(checked.lookback or 0))


def _search(
    spec: TrainSpec,
    frame: SeriesFrame,
    space: Mapping[str, Dimension],
    settings: TuneSettings,
    metric: str,
    on_update: Callable[[TrialUpdate], None] | None,
) -> list[TrialOutcome]:
    """Run the trials on the connected Ray cluster; one outcome per trial."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, frame=frame, base=spec.to_dict(), metric=metric),
        {"cpu": settings.cpus_per_trial},
    )
    budget = None if settings.time_budget is None else settings.time_budget * 60.0
    scheduler = ASHAScheduler(max_t=MAX_REPORTS, grace_period=settings.grace_period,
                              reduction_factor=settings.reduction_factor)  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=settings.seed))
    tune_config = tune.TuneConfig(
        metric=SCORE, mode="min", search_alg=searcher, scheduler=scheduler,
        num_samples=settings.trials, time_budget_s=budget,
    )  # fmt: skip
    reports: dict[str, list[dict[str, Any]]] = {}
    key = uuid.uuid4().hex
    SINKS[key] = (reports, on_update)
    with tempfile.TemporaryDirectory(prefix="forecast-tune-") as tmp:
        tuner = tune.Tuner(
            trainable,
            param_space={k: d.to_tune() for k, d in space.items()},
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name="tune", storage_path=tmp, verbose=0, callbacks=[collector(key)]
            ),
        )
        try:
            grid = tuner.fit()
        finally:
            del SINKS[key]
    return [_outcome(grid[i], list(space), reports) for i in range(len(grid))]


def _outcome(
    result: Any, keys: list[str], reports: Mapping[str, list[dict[str, Any]]]
) -> TrialOutcome:
    """A Ray Tune `Result` and the reports the driver collected as a TrialOutcome."""
    trial_id = str((result.metrics or {}).get("trial_id", ""))
    rows = reports.get(trial_id, [])
    last = rows[-1] if rows else {}
    config = result.config or {}
    final = bool(last.get("final"))
    status = "error" if result.error is not None else "completed" if final else "stopped"
    history = [
        {k: float(r[k]) for k in ("epoch", "train_loss", "val_loss", SCORE)}
        for r in rows
        if not r.get("final")
    ]
    score = last.get(SCORE)
    return TrialOutcome(
        trial_id=trial_id,
        status=status,
        params={k: plain(config[k]) for k in keys if k in config},
        score=None if score is None else float(score),
        epochs=int(last.get("epoch", 0) or 0),
        node_id=str(last.get("node_id", "")),
        metrics={k: float(v) for k, v in last.items() if k.startswith("val_") and k != "val_loss"},
        history=history,
        error=None if result.error is None else str(result.error).strip().splitlines()[-1],
    )


def _log_trial(
    tracker: Tracker, parent_id: str, spec: TrainSpec, trial: TrialOutcome, metric: str
) -> TrialOutcome:
    """Log `trial` as a finished child run of the parent; return it with its run id."""
    rows = [
        (key, row[src], int(row["epoch"]))
        for row in trial.history
        for key, src in (("train_loss", "train_loss"), ("val_loss", "val_loss"),
                         (f"epoch_val_{metric}", SCORE))
    ]  # fmt: skip
    rows += [(k, v, 0) for k, v in trial.metrics.items()]
    try:
        resolved = trial_spec(spec, trial.params)
        params = {"lookback": resolved.lookback, **resolved.model}
    except ExperimentError:
        params = dict(trial.params)
    run_id = tracker.log_child_run(
        parent_id,
        f"trial-{trial.trial_id}",
        params=params,
        metric_rows=rows,
        tags={
            "tune_role": "trial",
            "tune_trial": trial.trial_id,
            "tune_status": trial.status,
            "ray_node_id": trial.node_id,
            "family": spec.family,
            **({"error": trial.error[:500]} if trial.error else {}),
        },
        failed=trial.status == "error",
    )
    return replace(trial, run_id=run_id)
