"""`train(spec)`: data -> fit -> evaluate against baselines -> log to MLflow -> register -> gate.

One job, in order:
1. connect to the tracking URI (fail fast), load the data, build the forecaster config (keys
   the spec leaves out are derived from the data: training.jobs.defaults) and every window
   (validation windows for the gate, test windows shared with the baselines);
2. open a run, log params, spec.json, the experiment file, the data fingerprint and tags;
3. fit with a per-epoch hook that logs train/val loss as metric history (plus the caller's
   hook, e.g. a progress bar);
4. score the model on the validation and the test windows, log overall and per-step metrics
   and the baselines' test metrics, and a PNG of a few test forecasts;
5. log the pyfunc model (from code) and register a new version under `spec.model_name`;
6. gate it against naive / seasonal naive and the champion, all scored now on the same
   validation windows.

Family "auto" trains several candidates on the same splits instead (training.jobs.auto) and
goes through steps 5-6 with the best one. A recurrent fit whose best epoch was its last is
tagged `converged=false` (metric `still_improving`) and the CLI says so.

Any exception before step 5 leaves the run FAILED and the registry untouched.
"""

from __future__ import annotations

from models.base import EpochCallback
from training.data.frame import SeriesFrame
from training.jobs.auto import train_auto
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import baselines, load_frame
from training.jobs.steps import (
    TrainResult,
    chain_hooks,
    fit_candidate,
    register_candidate,
    run_tags,
)
from training.registry.tracking import Tracker
from training.settings import TrainSettings

__all__ = ["TrainResult", "train"]


def train(
    spec: TrainSpec,
    tracking_uri: str | None = None,
    callback: EpochCallback | None = None,
    *,
    settings: TrainSettings | None = None,
    frame: SeriesFrame | None = None,
    allow_worse_than_baseline: bool = False,
    time_budget: float = 0.0,
    allow_contract_change: bool = False,
) -> TrainResult:
    """Run one training job end to end (see the module docstring).

    Args:
        spec: what to train; family "auto" runs `training.jobs.auto.train_auto`.
        tracking_uri: MLflow URI; None: `MLFLOW_TRACKING_URI` or the embedded SQLite store.
        callback: called after each epoch (after MLflow logged it), e.g. a progress bar; an
            exception it raises aborts the job with nothing registered.
        settings: environment settings; read fresh when None.
        frame: the data to train on (e.g. fresh rows from the series store); None loads the
            spec's dataset or file with `load_frame`.
        allow_worse_than_baseline: let the gate promote a model that does not beat naive /
            seasonal naive on the validation windows (recorded in the gate reason).
        time_budget: seconds of training for a recurrent family (auto: for all candidates).
        allow_contract_change: let the gate promote a model whose request contract (look-back,
            frequency, covariates) differs from the champion's (recorded in the gate reason).

    Raises:
        TrackingError, DataError, ExperimentError, ConfigError, ForecastInputError: user
            errors, raised before anything is registered.
    """
    if spec.family == "auto":
        return train_auto(
            spec, tracking_uri, callback, settings=settings, frame=frame,
            allow_worse_than_baseline=allow_worse_than_baseline, time_budget=time_budget,
            allow_contract_change=allow_contract_change,
        )  # fmt: skip
    tracker = Tracker(tracking_uri, settings)
    frame = frame if frame is not None else load_frame(spec)
    base = baselines(frame, spec)
    tags = run_tags(spec, frame, spec.family)
    with tracker.run(spec.model_name, run_name=f"{spec.family}-h{spec.horizon}", tags=tags) as run:
        hook = chain_hooks(run.epoch_callback(), callback)
        cand = fit_candidate(spec, frame, spec.family, hook, time_budget=time_budget)
        return register_candidate(
            run, tracker, cand, spec, frame, base,
            allow_worse_than_baseline=allow_worse_than_baseline,
            allow_contract_change=allow_contract_change,
        )  # fmt: skip
