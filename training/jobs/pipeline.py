"""`train(spec)`: data -> fit -> evaluate against baselines -> log to MLflow -> register -> gate.

One job, in order:
1. connect to the tracking URI (fail fast), load the data, build the forecaster config and
   every window (validation windows for the gate, test windows shared with the baselines);
2. open a run, log params, spec.json, the experiment file, the data fingerprint and tags;
3. fit with a per-epoch hook that logs train/val loss as metric history (plus the caller's
   hook, e.g. a progress bar);
4. score the model on the validation and the test windows, log overall and per-step metrics
   and the baselines' test metrics, and a PNG of a few test forecasts;
5. log the pyfunc model (from code) and register a new version under `spec.model_name`;
6. gate it against the champion, re-scored now on the same validation windows.

Any exception before step 5 leaves the run FAILED and the registry untouched.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import io as models_io
from models.base import EpochCallback, EpochStats, FitReport, SeriesData
from training.data.frame import SeriesFrame
from training.evaluation.metrics import Scores
from training.evaluation import plots
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import (
    BASELINES,
    baselines,
    build_config,
    champion_scorer,
    default_lookback,
    evaluate_model,
    fit_series,
    load_frame,
    windows,
)
from training.registry.gate import GateDecision, run_gate
from training.registry.tracking import Tracker, model_signature
from training.settings import TrainSettings

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PLOT_WINDOWS = 3


@dataclass(frozen=True)
class TrainResult:
    """What one training job produced (and what `forecast train --json` prints).

    Attributes:
        run_id, experiment, model_name, version: where it is in MLflow.
        promoted: whether the gate made it champion.
        champion_version: the champion after the gate.
        metrics: test_* and val_* metrics of the model (overall).
        baselines: baseline name -> its test metrics on the same windows.
        gate: the gate decision.
        fit: the fit report.
        tracking_uri: the store it was logged to.
        data: source, rows, series, frequency and the split protocol.
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

    def to_json(self) -> dict[str, Any]:
        """The one JSON object `forecast train --json` prints."""
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "model_name": self.model_name,
            "version": self.version,
            "promoted": self.promoted,
            "champion_version": self.champion_version,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "baselines": self.baselines,
            "gate": self.gate.to_dict(),
            "fit": {
                "epochs": self.fit.epochs,
                "best_epoch": self.fit.best_epoch,
                "seconds": self.fit.seconds,
                "train_windows": self.fit.train_windows,
                "windows_per_second": self.fit.windows_per_second,
                "stopped_early": self.fit.stopped_early,
                "device": self.fit.device,
            },
            "tracking_uri": self.tracking_uri,
            "data": self.data,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# --- the job -------------------------------------------------------------------------------


def _chain(hooks: list[EpochCallback]) -> EpochCallback:
    def call(stats: EpochStats) -> None:
        for hook in hooks:
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


def _input_example(series: SeriesData, lookback: int, covariates: tuple[str, ...]) -> pd.DataFrame:
    """The last `lookback` rows of a validation series, in the pyfunc input layout."""
    frame = pd.DataFrame(
        {
            "series_id": series.series_id,
            "timestamp": series.timestamps[-lookback:],  # type: ignore[index]
            "value": series.values[-lookback:].astype(np.float64),
        }
    )
    if series.covariates is not None:
        for i, name in enumerate(covariates):
            frame[name] = series.covariates[-lookback:, i].astype(np.float64)  # [L]
    return frame


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


def train(
    spec: TrainSpec,
    tracking_uri: str | None = None,
    callback: EpochCallback | None = None,
    *,
    settings: TrainSettings | None = None,
    frame: SeriesFrame | None = None,
) -> TrainResult:
    """Run one training job end to end (see the module docstring).

    Args:
        spec: what to train.
        tracking_uri: MLflow URI; None: `MLFLOW_TRACKING_URI` or the embedded SQLite store.
        callback: called after each epoch (after MLflow logged it), e.g. a progress bar; an
            exception it raises aborts the job with nothing registered.
        settings: environment settings; read fresh when None.
        frame: the data to train on (e.g. fresh rows from the series store); None loads the
            spec's dataset or file with `load_frame`.

    Raises:
        TrackingError, DataError, ExperimentError, ConfigError, ForecastInputError: user
            errors, raised before anything is registered.
    """
    tracker = Tracker(tracking_uri, settings)
    if frame is None:
        frame = load_frame(spec)
    lookback = spec.lookback or default_lookback(frame, spec)
    config = build_config(spec, frame, lookback)
    train_series, val_series = fit_series(frame, spec, lookback)
    val_windows = windows(frame, spec, lookback, "val")
    test_windows = windows(frame, spec, lookback, "test")
    base = baselines(frame, spec)
    name = spec.model_name
    fingerprint = _json_safe(frame.fingerprint())
    tags = {
        "dataset": spec.data_label,
        "family": spec.family,
        "git_commit": git_commit(),
        "protocol": spec.protocol,
        "horizon": str(spec.horizon),
        "data_sha256": str(fingerprint.get("sha256", "")),
    }
    with tracker.run(name, run_name=f"{spec.family}-h{spec.horizon}", tags=tags) as run:
        run.params(
            {
                **config.to_dict(),
                "dataset": spec.data_label,
                "protocol": spec.protocol,
                "val_fraction": spec.val_fraction,
                "test_fraction": spec.test_fraction,
                "last_rows": spec.last_rows,
                "gate_metric": spec.gate_metric,
                "gate_margin": spec.gate_margin,
                "data_rows": frame.rows,
                "n_series": frame.n_series,
                "val_windows": len(val_windows),
                "test_windows": len(test_windows),
            }
        )
        run.json(spec.to_dict(), "spec.json")
        run.json(config.to_dict(), "model_config.json")
        run.json({**fingerprint, "notes": list(frame.notes)}, "data_fingerprint.json")
        if spec.source_file:
            run.artifact(Path(spec.source_file), "config")
        model = models_io.create(config)
        hooks = [run.epoch_callback(), *([callback] if callback else [])]
        report = model.fit(train_series, val_series, callback=_chain(hooks))
        val_eval = evaluate_model(model, val_windows, spec.levels)
        test_eval = evaluate_model(model, test_windows, spec.levels)
        _log_metrics(run, "val", val_eval.scores, per_step=False)
        _log_metrics(run, "test", test_eval.scores, per_step=True)
        base_metrics = _baseline_metrics(base)
        run.metrics(
            {
                f"{b}_test_{k}": v
                for b, scores in base_metrics.items()
                for k, v in scores.items()
                if isinstance(v, int | float) and k != "season"
            }
        )
        run.metrics(
            {
                "train_seconds": report.seconds,
                "best_epoch": report.best_epoch,
                "windows_per_second": report.windows_per_second,
            }
        )
        run.json(base, "baselines.json")
        picks = np.unique(np.linspace(0, len(test_windows) - 1, PLOT_WINDOWS).astype(int))
        figure = plots.forecast_figure(
            test_windows.history[picks],
            test_windows.actual[picks],
            test_eval.mean[picks],
            {k: v[picks] for k, v in test_eval.lower.items()},
            {k: v[picks] for k, v in test_eval.upper.items()},
            title=f"{name} {spec.family} h={spec.horizon}: test windows",
            labels=[f"test window {int(i)}" for i in picks],
        )
        run.figure(figure, "forecast.png")
        with tempfile.TemporaryDirectory(prefix="forecast-train-") as tmp:
            directory = Path(tmp) / "forecaster"
            models_io.save(model, directory)
            version = run.log_model(
                directory,
                registered_name=name,
                signature=model_signature(spec.horizon, spec.levels, frame.covariates),
                input_example=_input_example(val_series[0], lookback, frame.covariates),
                horizon=spec.horizon,
            )
        metric = spec.gate_metric
        val_score = val_eval.scores.overall[metric]
        tracker.set_version_tags(
            name,
            version,
            {
                "family": spec.family,
                "val_score": f"{val_score:.6g}",
                "dataset": spec.data_label,
                "run_id": run.run_id,
                "horizon": spec.horizon,
                "lookback": lookback,
                "protocol": spec.protocol,
            },
        )
        decision = run_gate(
            tracker,
            name,
            version,
            val_score,
            metric=metric,
            margin=spec.gate_margin,
            score_champion=champion_scorer(frame, spec, metric),
            run_id=run.run_id,
        )
        run.metrics({"gate_promoted": float(decision.promoted)})
        if decision.champion_score is not None:
            run.metrics({"gate_champion_score": decision.champion_score})
    metrics = {f"test_{k}": v for k, v in test_eval.scores.overall.items()}
    metrics.update({f"val_{k}": v for k, v in val_eval.scores.overall.items()})
    return TrainResult(
        run_id=run.run_id,
        experiment=name,
        model_name=name,
        version=version,
        promoted=decision.promoted,
        champion_version=decision.champion_version,
        metrics=metrics,
        baselines=base_metrics,
        gate=decision,
        fit=report,
        tracking_uri=tracker.uri,
        data={
            "source": frame.source,
            "rows": frame.rows,
            "series": frame.n_series,
            "frequency": frame.frequency,
            "protocol": spec.protocol,
            "scale": "z-scored" if spec.protocol == "ett" else "original",
            "lookback": lookback,
            "test_windows": len(test_windows),
            "notes": list(frame.notes),
        },
    )
