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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import io as models_io
from models.base import EpochCallback, EpochStats, FitReport, Forecaster, SeriesData
from models.features import season_length
from training import backtest, plots, splits
from training.backtest import Windows
from training.datasets import load_dataset, load_file
from training.errors import DataError
from training.experiment import TrainSpec
from training.frame import SeriesFrame
from training.metrics import Scores, evaluate, seasonal_naive_scale
from training.promotion import GateDecision, run_gate
from training.protocols import ett_problem
from training.settings import TrainSettings
from training.tracking import Tracker, model_signature

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
BASELINES = ("naive", "seasonal_naive", "kalman")
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


# --- data ----------------------------------------------------------------------------------


def load_frame(spec: TrainSpec, database_url: str | None = None) -> SeriesFrame:
    """The spec's data as a SeriesFrame, trimmed to `last_rows` per series when set.

    Args:
        spec: the training spec.
        database_url: the series store for store-backed specs; None: $FORECAST_DATABASE_URL,
            else sqlite:///./data/series.db.

    Raises:
        DataError: unknown dataset or series, missing file or column, irregular data.
    """
    if spec.series:
        from training.sources.store import load_store
        from training.store import SeriesStore

        store = SeriesStore(database_url) if database_url else SeriesStore.from_env()
        try:
            frame = load_store(store, spec.series, covariates=spec.covariates, fill=spec.fill)
        finally:
            store.close()
    elif spec.dataset is not None:
        frame = load_dataset(spec.dataset, covariates=spec.covariates)
    else:
        frame = load_file(
            str(spec.data),
            time_col=str(spec.time_col),
            target_col=str(spec.target_col),
            id_col=spec.id_col,
            freq=spec.freq,
            covariates=spec.covariates,
            fill=spec.fill,
        )
    if spec.last_rows is not None:
        table = frame.table.groupby("series_id", sort=False).tail(spec.last_rows)
        if len(table) < len(frame.table):
            note = f"kept the last {spec.last_rows} rows of each series"
            frame = replace(frame, table=table.reset_index(drop=True), notes=(*frame.notes, note))
    return frame


def default_lookback(frame: SeriesFrame, spec: TrainSpec) -> int:
    """Two seasons or four horizons (at least 8), capped so every series keeps train windows."""
    wanted = max(2 * season_length(frame.frequency), 4 * spec.horizon, 8)
    if spec.protocol == "ett":
        return min(wanted, splits.ETT_SPLIT.train_end // 2)
    shortest = min(
        splits.ratio_split(
            len(s.values), spec.val_fraction, spec.test_fraction, horizon=spec.horizon
        ).train_end
        for s in frame.to_series()
    )
    return max(2, min(wanted, (shortest - spec.horizon) // 2))


def _segment_length(lookback: int) -> int:
    """The largest divisor of `lookback` up to 24 (SegRNN's day-long segments on hourly data)."""
    return max(d for d in range(1, min(24, lookback) + 1) if lookback % d == 0)


def build_config(spec: TrainSpec, frame: SeriesFrame, lookback: int) -> Any:
    """The forecaster config: data-derived fields, spec fields, then `spec.model` overrides.

    Raises:
        ConfigError: an unknown [model] key or a bad value (named by models.config).
    """
    data: dict[str, Any] = {
        "family": spec.family,
        "lookback": lookback,
        "max_horizon": spec.horizon,
        "frequency": frame.frequency,
        "target": frame.target,
        "covariates": list(frame.covariates),
        "device": spec.device,
        "levels": list(spec.levels),
    }
    if spec.family == "esn":
        data["washout"] = min(96, lookback)  # the ESN warms up over at most `lookback` steps
    else:
        data["segment_length"] = _segment_length(lookback)
        if spec.epochs is not None:
            data["epochs"] = spec.epochs
    data.update(spec.model)
    return models_io.config_from_dict(data)


def _slice(s: SeriesData, lo: int, hi: int) -> SeriesData:
    return SeriesData(
        values=s.values[lo:hi],  # [T'] of [T]
        timestamps=None if s.timestamps is None else s.timestamps[lo:hi],
        covariates=None if s.covariates is None else s.covariates[lo:hi],  # [T', C]
        series_id=s.series_id,
    )


def _context_start(train_end: int, lookback: int, series_id: str) -> int:
    if train_end < lookback:
        raise DataError(
            f"series {series_id!r}: lookback={lookback} but only {train_end} training rows come "
            f"before the first validation target. Fix: use --lookback <= {train_end}"
        )
    return train_end - lookback


def _ett_series(frame: SeriesFrame, horizon: int) -> tuple[SeriesData, splits.Split, np.ndarray]:
    """The z-scored ETT target (+ covariates) as one series, its split and test origins."""
    problem = ett_problem(frame, horizon, mode="S", target=frame.target)
    sp = problem.split
    target = problem.values[:, problem.target_index].astype(np.float32)  # [N]
    cov_idx = [problem.columns.index(c) for c in frame.covariates]
    covs = problem.values[:, cov_idx].astype(np.float32) if cov_idx else None  # [N, C]
    stamps = frame.table["timestamp"].to_numpy(dtype="datetime64[ns]")[: sp.end]  # [N]
    return SeriesData(target, stamps, covs, frame.series_ids()[0]), sp, problem.origins


def fit_series(
    frame: SeriesFrame, spec: TrainSpec, lookback: int
) -> tuple[list[SeriesData], list[SeriesData]]:
    """Training series (rows [0, train_end)) and validation series (with look-back context).

    Raises:
        DataError: a series too short for the split or for `lookback`.
    """
    if spec.protocol == "ett":
        whole, sp, _ = _ett_series(frame, spec.horizon)
        start = _context_start(sp.train_end, lookback, whole.series_id)
        return [_slice(whole, 0, sp.train_end)], [_slice(whole, start, sp.val_end)]
    train, val = [], []
    for s in frame.to_series():
        sp = splits.ratio_split(
            len(s.values), spec.val_fraction, spec.test_fraction, horizon=spec.horizon,
            series_id=s.series_id,
        )  # fmt: skip
        train.append(_slice(s, 0, sp.train_end))
        val.append(_slice(s, _context_start(sp.train_end, lookback, s.series_id), sp.val_end))
    return train, val


def windows(frame: SeriesFrame, spec: TrainSpec, lookback: int, part: str) -> Windows:
    """Every validation or test window for a model with this `lookback` (same origins for all).

    Raises:
        DataError: when `lookback` reaches before the first row of some window.
    """
    if spec.protocol != "ett":
        return backtest.frame_windows(
            frame, spec.horizon, lookback, part=part,
            val_fraction=spec.val_fraction, test_fraction=spec.test_fraction,
        )  # fmt: skip
    whole, sp, test_origins = _ett_series(frame, spec.horizon)
    origins = test_origins if part == "test" else splits.val_origins(sp, spec.horizon)
    hist, act = splits.window_stack(whole.values, origins, lookback, spec.horizon)  # [N, L], [N, H]
    assert whole.timestamps is not None  # set by _ett_series
    stamps, _ = splits.window_stack(whole.timestamps, origins, lookback, spec.horizon)  # [N, L]
    covs = None
    if whole.covariates is not None:
        c, _ = splits.window_stack(whole.covariates, origins, lookback, spec.horizon)  # [N, C, L]
        covs = c.transpose(0, 2, 1)  # [N, C, L] -> [N, L, C]
    scale = seasonal_naive_scale(whole.values[: sp.train_end], season_length(frame.frequency))
    return Windows(hist.astype(np.float64), act.astype(np.float64), scale, stamps, covs)


def baselines(frame: SeriesFrame, spec: TrainSpec) -> dict[str, Any]:
    """`backtest.run_baselines` on the same protocol, split and test origins as the model."""
    if spec.protocol == "ett":
        return backtest.run_baselines(
            frame, spec.horizon, "ett", spec.levels, mode="S", dataset=spec.data_label
        )
    return backtest.run_baselines(
        frame, spec.horizon, "ratio", spec.levels,
        val_fraction=spec.val_fraction, test_fraction=spec.test_fraction,
        dataset=spec.data_label,
    )  # fmt: skip


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one window stack, with its predictions (for plots)."""

    scores: Scores
    mean: np.ndarray  # [N, H]
    lower: dict[int, np.ndarray]  # level -> [N, H]
    upper: dict[int, np.ndarray]  # level -> [N, H]


def evaluate_model(model: Forecaster, stack: Windows, levels: tuple[int, ...]) -> Evaluation:
    """Predict every window of `stack` and score it with the shared metrics."""
    mean, lower, upper = backtest.predict_windows(model.predict, stack, levels)
    scores = evaluate(stack.actual, mean, lower, upper, mase_scale=stack.mase_scale)
    return Evaluation(scores, mean, lower, upper)


def champion_scorer(frame: SeriesFrame, spec: TrainSpec, metric: str) -> Callable[[Path], float]:
    """Scores a saved forecaster on this job's validation windows, built for its own look-back."""

    def score(directory: Path) -> float:
        model = models_io.load(directory, device="cpu")
        stack = windows(frame, spec, model.meta.lookback, "val")
        return evaluate_model(model, stack, spec.levels).scores.overall[metric]

    return score


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
