"""One `forecast tune` trial, as it runs inside a Ray worker.

The trial builds its spec from the sampled values (`search_space.trial_spec`), fits the
forecaster with the pipeline's own preparation functions, and reports to Tune after every
epoch: the losses and the validation score in the data's units (a point forecast of every
validation window), so ASHA compares trials with different normalisations fairly. After the
fit it reports once more with every validation metric, scored as the pipeline scores a
candidate (cross-fitted forecasts where the fit chose on the validation windows:
`preparation.cross_fitted`), and `final = 1` (Tune reserves `done`). It never talks to
MLflow: the driver logs every trial once, from these reports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from models import io as models_io
from models.base import EpochStats
from training.data.frame import SeriesFrame
from training.evaluation.backtest import evaluate_forecaster
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import (
    build_config,
    cross_fitted,
    evaluate_model,
    fit_series,
    windows,
)
from training.jobs.search_space import trial_spec

SCORE = "score"  # the reported key Tune's searcher and scheduler minimise


def run_trial(
    params: Mapping[str, Any], *, frame: SeriesFrame, base: Mapping[str, Any], metric: str
) -> None:
    """Ray Tune function trainable: fit one trial and `tune.report` after every epoch.

    Args:
        params: the sampled values (config keys and `lookback`).
        frame: the data (sent once through Ray's object store by `tune.with_parameters`).
        base: the spec as `TrainSpec.to_dict()`.
        metric: the validation metric minimised (the gate's metric).
    """
    import ray
    import torch
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    node = ray.get_runtime_context().get_node_id()
    spec = trial_spec(TrainSpec.from_dict(base), params)
    lookback = int(spec.lookback or 0)
    config = build_config(spec, frame, lookback)
    train_series, val_series = fit_series(frame, spec, lookback)
    val_windows = windows(frame, spec, lookback, "val")
    model = models_io.create(config)
    start = time.perf_counter()

    def on_epoch(stats: EpochStats) -> None:
        point = evaluate_forecaster(model.predict, val_windows, levels=())  # no intervals needed
        tune.report(
            {
                SCORE: point.overall[metric],
                "epoch": stats.epoch,
                "train_loss": stats.train_loss,
                "val_loss": stats.val_loss,
                "node_id": node,
                "final": 0,
            }
        )

    report = model.fit(train_series, val_series, callback=on_epoch)
    kept = evaluate_model(model, val_windows, spec.levels)
    scores = cross_fitted(kept, report, val_windows).scores.overall
    tune.report(
        {
            SCORE: scores[metric],
            "epoch": report.epochs,
            "best_epoch": report.best_epoch,
            "fit_seconds": time.perf_counter() - start,
            "node_id": node,
            "final": 1,
            **{f"val_{k}": v for k, v in scores.items()},
        }
    )
