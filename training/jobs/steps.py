"""The steps of a training job, shared by `pipeline.train` (one family) and `auto` (several):
fit and score a candidate, log it into a run, register it and gate it (-> `TrainResult`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import io as models_io
from models.base import EpochCallback, EpochStats, FitReport, Forecaster, SeriesData
from training.data.frame import SeriesFrame
from training.evaluation import plots
from training.evaluation.metrics import Scores
from training.evaluation.windows import Windows, with_covariate_noise
from training.jobs.defaults import RECURRENT, Derived, derive
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import (
    BASELINES,
    Evaluation,
    baseline_val_scores,
    build_config,
    champion_scorer,
    cross_fitted,
    default_lookback,
    evaluate_model,
    fit_series,
    windows,
)
from training.registry.gate import GateDecision, run_gate
from training.registry.tracking import Tracker, model_signature

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PLOT_WINDOWS = 3
# TrainSpec fields logged as run params as they are
SPEC_PARAMS = ("protocol", "val_fraction", "test_fraction", "last_rows", "gate_metric",
               "gate_margin")  # fmt: skip
# FitReport fields `--json` prints under "fit", in this order
FIT_KEYS = ("epochs", "best_epoch", "seconds", "train_windows", "windows_per_second",
            "stopped_early")  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    """What one training job produced (and what `forecast train --json` prints).

    Attributes:
        run_id, experiment, model_name, version: where it is in MLflow.
        promoted: whether the gate made it champion.
        champion_version: the champion after the gate.
        metrics: test_* and val_* metrics of the model (overall).
        baselines: baseline name -> its test metrics on the same windows.
        tracking_uri: the store it was logged to.
        data: source, rows, series, frequency and the split protocol.
        family: the registered family (auto: the chosen one).
        still_improving: the best epoch was the last one (the fit had not converged).
        derived: config key -> why it was derived from the data (training.jobs.defaults).
        candidates: auto only: one summary per candidate family (the contest).
    """

    run_id: str
    experiment: str
    model_name: str
    version: int
    promoted: bool
    champion_version: int | None
    metrics: dict[str, float]
    baselines: dict[str, dict[str, Any]]
    gate: GateDecision
    fit: FitReport
    tracking_uri: str
    data: dict[str, Any]
    family: str = ""
    still_improving: bool = False
    derived: dict[str, str] = field(default_factory=dict)
    candidates: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The one JSON object `forecast train --json` prints."""
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "model_name": self.model_name,
            "version": self.version,
            "promoted": self.promoted,
            "champion_version": self.champion_version,
            "metrics": {k: float(v) if np.isfinite(v) else None for k, v in self.metrics.items()},
            "baselines": self.baselines,
            "gate": self.gate.to_dict(),
            "fit": {
                **{key: getattr(self.fit, key) for key in FIT_KEYS},
                "still_improving": self.still_improving,
                "device": self.fit.device,
            },
            "family": self.family,
            "derived_defaults": self.derived,
            "candidates": list(self.candidates),
            "tracking_uri": self.tracking_uri,
            "data": self.data,
        }


# --- the job -------------------------------------------------------------------------------


def chain_hooks(*hooks: EpochCallback | None) -> EpochCallback:
    """One per-epoch callback that calls each of `hooks` in order (None: left out)."""

    def call(stats: EpochStats) -> None:
        for hook in hooks:
            if hook is not None:
                hook(stats)

    return call


def git_commit() -> str:
    """HEAD of the repository this code runs from, or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _input_example(
    series: SeriesData, lookback: int, frame: SeriesFrame, horizon: int
) -> pd.DataFrame:
    """The last `lookback` rows of a validation series of `frame`, in the pyfunc input layout.

    With future covariates the example ends with `horizon` rows whose value is empty (NaN)
    and whose future covariates are the values known ahead (training.registry.pyfunc_model).
    """
    ahead = horizon if frame.future_covariates else 0
    rows = slice(len(series.values) - lookback - ahead, len(series.values))  # L (+ H) rows
    values = series.values[rows].astype(np.float64)  # [L (+ H)]
    if ahead:
        values[-ahead:] = np.nan  # the steps to forecast
    stamps = series.timestamps[rows]  # type: ignore[index]
    example = pd.DataFrame({"series_id": series.series_id, "timestamp": stamps, "value": values})
    if series.covariates is not None:
        for i, name in enumerate(frame.covariates):
            example[name] = series.covariates[rows, i].astype(np.float64)  # [L (+ H)]
    if series.future_covariates is not None:
        for i, name in enumerate(frame.future_covariates):
            example[name] = series.future_covariates[rows, i].astype(np.float64)  # [L (+ H)]
    return example


def _json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _baseline_metrics(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: dict(result["baselines"][name]) for name in BASELINES}


def _log_metrics(run: Any, prefix: str, scores: Scores, per_step: bool) -> None:
    run.metrics({f"{prefix}_{k}": v for k, v in scores.overall.items()})
    if per_step:
        rows = [
            (f"{prefix}_{k}_by_step", float(v), step)
            for k, values in scores.per_step.items()
            for step, v in enumerate(np.asarray(values).tolist(), start=1)
        ]
        run.metric_rows(rows)


@dataclass
class Candidate:
    """One family fitted on the job's splits and scored on its validation and test windows."""

    family: str
    config: Any
    model: Forecaster
    report: FitReport
    lookback: int
    derived: Derived
    val_series: list[SeriesData]
    val_windows: Windows
    test_windows: Windows
    val_eval: Evaluation
    test_eval: Evaluation
    kept_val_eval: Evaluation

    @property
    def still_improving(self) -> bool:
        """Whether a gradient-trained model's best epoch was its last (it had not converged)."""
        return self.family in RECURRENT and self.report.best_epoch == self.report.epochs

    def val_score(self, metric: str) -> float:
        """Its validation score on the gate metric (lower is better): cross-fitted where the
        fit chose on the validation windows (what `auto` and the baseline floor compare)."""
        return float(self.val_eval.scores.overall[metric])

    def kept_val_score(self, metric: str) -> float:
        """The kept model's own validation score, as a champion is re-scored."""
        return float(self.kept_val_eval.scores.overall[metric])


def fit_candidate(
    spec: TrainSpec,
    frame: SeriesFrame,
    family: str,
    callback: EpochCallback | None = None,
    *,
    time_budget: float = 0.0,
) -> Candidate:
    """Build `family`'s config (derived defaults under the spec), fit it, score val and test.

    `time_budget` (seconds, 0 = none) caps a recurrent fit unless `[model] time_budget` is set.
    """
    lookback = spec.lookback or default_lookback(frame, spec, family)
    config = build_config(spec, frame, lookback, family)
    if time_budget > 0 and family in RECURRENT and "time_budget" not in spec.model:
        config = dataclasses.replace(config, time_budget=float(time_budget))
    train_series, val_series = fit_series(frame, spec, lookback)
    val_windows = windows(frame, spec, lookback, "val")
    test_windows = with_covariate_noise(
        windows(frame, spec, lookback, "test"), spec.covariate_noise, frame.future_covariates
    )  # recorded (oracle) future covariates, plus noise when --covariate-noise is set
    model = models_io.create(config)
    report = model.fit(train_series, val_series, callback=callback)
    kept = evaluate_model(model, val_windows, spec.levels)
    return Candidate(
        family=family,
        config=config,
        model=model,
        report=report,
        lookback=lookback,
        derived=derive(spec, frame, family),
        val_series=val_series,
        val_windows=val_windows,
        test_windows=test_windows,
        val_eval=cross_fitted(kept, report, val_windows),  # what the choice did not see
        test_eval=evaluate_model(model, test_windows, spec.levels),
        kept_val_eval=kept,
    )


def log_candidate(
    run: Any, cand: Candidate, spec: TrainSpec, frame: SeriesFrame, base: dict[str, Any]
) -> None:
    """Params, spec, config, derived defaults, metrics, baselines and a plot into `run`."""
    run.params(
        {
            **cand.config.to_dict(),
            "dataset": spec.data_label,
            **{key: getattr(spec, key) for key in SPEC_PARAMS},
            "data_rows": frame.rows,
            "n_series": frame.n_series,
            "val_windows": len(cand.val_windows),
            "val_cross_fitted": cand.val_eval.cross_fitted,
            "test_windows": len(cand.test_windows),
            "derived_keys": sorted(cand.derived.values),
        }
    )
    run.json(spec.to_dict(), "spec.json")
    run.json(cand.config.to_dict(), "model_config.json")
    reasons = cand.derived.reasons
    derived = {k: {"value": v, "reason": reasons[k]} for k, v in cand.derived.values.items()}
    run.json(derived, "derived_defaults.json")
    run.json(
        {**_json_safe(frame.fingerprint()), "notes": list(frame.notes)}, "data_fingerprint.json"
    )
    if spec.source_file:
        run.artifact(Path(spec.source_file), "config")
    _log_metrics(run, "val", cand.val_eval.scores, per_step=False)
    _log_metrics(run, "test", cand.test_eval.scores, per_step=True)
    run.metrics(
        {
            f"{b}_test_{k}": v
            for b, scores in _baseline_metrics(base).items()
            for k, v in scores.items()
            if isinstance(v, int | float) and k != "season"
        }
    )
    report = cand.report
    run.metrics(
        {
            "train_seconds": report.seconds,
            "best_epoch": report.best_epoch,
            "epochs_run": report.epochs,
            "still_improving": float(cand.still_improving),
            "windows_per_second": report.windows_per_second,
        }
    )
    run.tags({"converged": "false" if cand.still_improving else "true"})
    if cand.still_improving:
        logger.warning(
            "%s: the best epoch was the last (%d of %d): still improving when stopped",
            cand.family, report.best_epoch, report.epochs,
        )  # fmt: skip
    run.json(base, "baselines.json")
    test = cand.test_windows
    picks = np.unique(np.linspace(0, len(test) - 1, PLOT_WINDOWS).astype(int))
    ev = cand.test_eval
    figure = plots.forecast_figure(
        test.history[picks], test.actual[picks], ev.mean[picks],  # [P, L], [P, H], [P, H]
        {k: v[picks] for k, v in ev.lower.items()}, {k: v[picks] for k, v in ev.upper.items()},
        title=f"{spec.model_name} {cand.family} h={spec.horizon}: test windows",
        labels=[f"test window {int(i)}" for i in picks],
    )  # fmt: skip
    run.figure(figure, "forecast.png")


def register_candidate(
    run: Any,
    tracker: Tracker,
    cand: Candidate,
    spec: TrainSpec,
    frame: SeriesFrame,
    base: dict[str, Any],
    *,
    allow_worse_than_baseline: bool = False,
    allow_contract_change: bool = False,
) -> TrainResult:
    """`log_candidate`, then log the pyfunc, register a version and gate it against the
    baselines and the champion."""
    log_candidate(run, cand, spec, frame, base)
    name = spec.model_name
    with tempfile.TemporaryDirectory(prefix="forecast-train-") as tmp:
        directory = Path(tmp) / "forecaster"
        models_io.save(cand.model, directory)
        version = run.log_model(
            directory,
            registered_name=name,
            signature=model_signature(
                spec.horizon, spec.levels, frame.covariates, frame.future_covariates
            ),
            input_example=_input_example(cand.val_series[0], cand.lookback, frame, spec.horizon),
            horizon=spec.horizon,
        )
    metric = spec.gate_metric
    val_score = cand.val_score(metric)
    floor = baseline_val_scores(cand.val_windows, frame.frequency, metric)
    run.metrics({f"{b}_val_{metric}": v for b, v in floor.items()})
    tracker.set_version_tags(
        name,
        version,
        {
            "family": cand.family,
            "val_score": f"{val_score:.6g}",
            "val_score_kept": f"{cand.kept_val_score(metric):.6g}",
            "dataset": spec.data_label,
            "run_id": run.run_id,
            "horizon": spec.horizon,
            "lookback": cand.lookback,
            "protocol": spec.protocol,
            "covariates": ",".join(frame.covariates),
            "future_covariates": ",".join(frame.future_covariates),
        },
    )
    decision = run_gate(
        tracker, name, version, val_score, metric=metric, margin=spec.gate_margin,
        score_champion=champion_scorer(frame, spec, metric), run_id=run.run_id,
        baseline_scores=floor, allow_worse_than_baseline=allow_worse_than_baseline,
        family=cand.family, allow_contract_change=allow_contract_change,
        kept_score=cand.kept_val_score(metric),
    )  # fmt: skip
    run.metrics({"gate_promoted": float(decision.promoted)})
    if decision.champion_score is not None:
        run.metrics({"gate_champion_score": decision.champion_score})
    metrics = {f"test_{k}": v for k, v in cand.test_eval.scores.overall.items()}
    metrics.update({f"val_{k}": v for k, v in cand.val_eval.scores.overall.items()})
    return TrainResult(
        run_id=run.run_id,
        experiment=spec.model_name,
        model_name=spec.model_name,
        version=version,
        promoted=decision.promoted,
        champion_version=decision.champion_version,
        metrics=metrics,
        baselines=_baseline_metrics(base),
        gate=decision,
        fit=cand.report,
        tracking_uri=tracker.uri,
        data={
            "source": frame.source,
            "rows": frame.rows,
            "series": frame.n_series,
            "frequency": frame.frequency,
            "protocol": spec.protocol,
            "scale": "z-scored" if spec.protocol == "ett" else "original",
            "lookback": cand.lookback,
            "test_windows": len(cand.test_windows),
            "notes": list(frame.notes),
        },
        family=cand.family,
        still_improving=cand.still_improving,
        derived=dict(cand.derived.reasons),
    )


def run_tags(spec: TrainSpec, frame: SeriesFrame, family: str) -> dict[str, str]:
    """The tags every training run starts with."""
    return {
        "dataset": spec.data_label,
        "family": family,
        "git_commit": git_commit(),
        "protocol": spec.protocol,
        "horizon": str(spec.horizon),
        "data_sha256": str(_json_safe(frame.fingerprint()).get("sha256", "")),
        "future_covariates": ",".join(frame.future_covariates),
    }
