"""From a TrainSpec to what `training.jobs.pipeline.train` fits and scores.

The data (a bundled dataset, a user file or the series store, trimmed to `last_rows`), the
default look-back and the family's config, the fit series (training rows, and validation rows
with their look-back context), the validation and test window stacks, the baselines' scores on
the test windows, and the evaluation of a forecaster on a stack (also used to re-score the
champion for the gate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models import io as models_io
from models.base import FitReport, Forecaster, SeriesData
from models.baselines import naive_forecast, seasonal_naive_forecast
from models.features import season_length
from training.data.catalogue import load_dataset, load_file
from training.data.fill import CONFIG_KEYS, KEYWORDS, OptionNames
from training.data.frame import SeriesFrame
from training.data.known import with_future_covariates
from training.errors import DataError
from training.evaluation import backtest, splits
from training.evaluation.metrics import Scores, evaluate
from training.evaluation.protocols import ett_problem
from training.evaluation.windows import Windows, ett_windows, frame_windows
from training.jobs import defaults
from training.jobs.experiment import TrainSpec

logger = logging.getLogger(__name__)

BASELINES = ("naive", "seasonal_naive", "kalman")

# --- data ----------------------------------------------------------------------------------


def load_frame(
    spec: TrainSpec, database_url: str | None = None, names: OptionNames | None = None
) -> SeriesFrame:
    """The spec's data as a SeriesFrame, trimmed to `last_rows` per series when set.

    Args:
        database_url: the series store for store-backed specs; None: $FORECAST_DATABASE_URL,
            else sqlite:///./data/series.db.
        names: how data messages spell freq/fill/max_gap/fill_limit (the CLI passes its
            flags); None: the experiment file's [data] keys, or keyword arguments.

    Returns:
        The frame; its `notes` list every fill and policy applied, for the caller to show.

    Raises:
        DataError: unknown dataset or series, missing file or column, irregular data, a
            given frequency the timestamps disagree with, or a fill above `fill_limit`.
    """
    if names is None:
        names = CONFIG_KEYS if spec.source_file else KEYWORDS
    fill = {key: getattr(spec, key) for key in ("fill", "max_gap", "fill_limit")}
    # future covariates load as covariate columns (same fill policies and errors), then move
    columns = (*spec.covariates, *spec.future_covariates)
    if spec.series:
        from training.data.sources.store import load_store
        from training.store import SeriesStore

        with SeriesStore(database_url) if database_url else SeriesStore.from_env() as store:
            frame = load_store(store, spec.series, covariates=columns, names=names, **fill)
    elif spec.dataset is not None:
        frame = load_dataset(spec.dataset, covariates=columns)
    else:
        frame = load_file(
            str(spec.data),
            time_col=str(spec.time_col),
            target_col=str(spec.target_col),
            id_col=spec.id_col,
            freq=spec.freq,
            covariates=columns,
            names=names,
            **fill,
        )
    frame = with_future_covariates(frame, spec.future_covariates, spec.holidays)
    if spec.last_rows is not None:
        table = frame.table.groupby("series_id", sort=False).tail(spec.last_rows)
        if len(table) < len(frame.table):
            note = f"kept the last {spec.last_rows} rows of each series"
            frame = replace(frame, table=table.reset_index(drop=True), notes=(*frame.notes, note))
    return frame


def default_lookback(frame: SeriesFrame, spec: TrainSpec, family: str | None = None) -> int:
    """The derived look-back (training.jobs.defaults): the frequency's cycles, bounded by data."""
    return defaults.lookback_for(frame, spec, family or spec.family)[0]


def build_config(
    spec: TrainSpec, frame: SeriesFrame, lookback: int, family: str | None = None
) -> Any:
    """The forecaster config: data-derived fields, derived defaults, then `spec.model`.

    `family` overrides the spec's (the `auto` job builds one config per candidate; then
    `[model]` keys that the candidate's config does not know are left out).

    Raises:
        ConfigError: an unknown [model] key or a bad value (named by models.config).
    """
    family = family or spec.family
    data: dict[str, Any] = {
        "family": family,
        "lookback": lookback,
        "max_horizon": spec.horizon,
        "frequency": frame.frequency,
        "target": frame.target,
        "covariates": list(frame.covariates),
        "future_covariates": list(frame.future_covariates),
        "device": spec.device,
        "levels": list(spec.levels),
    }
    if family in defaults.RECURRENT and spec.epochs is not None:
        data["epochs"] = spec.epochs
    derived = defaults.derive(spec, frame, family)
    derived.values.pop("lookback", None)
    model = dict(spec.model)
    if family != spec.family:
        known = set(models_io.config_from_dict({"family": family}).to_dict())
        model = {k: v for k, v in model.items() if k in known}
    if "washout" not in model and family == "esn":
        derived.values["washout"] = min(int(derived.values.get("washout", 96)), lookback)
    if "segment_length" not in model and family in defaults.RECURRENT:
        derived.values["segment_length"] = defaults.segment_for(lookback, frame.frequency)
    return models_io.config_from_dict({**data, **derived.values, **model})  # `[model]` wins


def _slice(s: SeriesData, lo: int, hi: int) -> SeriesData:
    return SeriesData(
        values=s.values[lo:hi],  # [T'] of [T]
        timestamps=None if s.timestamps is None else s.timestamps[lo:hi],
        covariates=None if s.covariates is None else s.covariates[lo:hi],  # [T', C]
        series_id=s.series_id,
        future_covariates=None if s.future_covariates is None else s.future_covariates[lo:hi],
    )


def _context_start(train_end: int, lookback: int, series_id: str) -> int:
    if train_end < lookback:
        raise DataError(
            f"series {series_id!r}: lookback={lookback} but only {train_end} training rows come "
            f"before the first validation target. Fix: use --lookback <= {train_end}"
        )
    return train_end - lookback


def _ett_series(frame: SeriesFrame, horizon: int) -> tuple[SeriesData, splits.Split]:
    """The z-scored ETT target (+ covariates) as one series, and its split."""
    problem = ett_problem(frame, horizon, mode="S", target=frame.target)
    target = problem.values[:, problem.target_index].astype(np.float32)  # [N]
    cov_idx = [problem.columns.index(c) for c in frame.covariates]
    covs = problem.values[:, cov_idx].astype(np.float32) if cov_idx else None  # [N, C]
    return SeriesData(target, problem.timestamps, covs, frame.series_ids()[0]), problem.split


def fit_series(
    frame: SeriesFrame, spec: TrainSpec, lookback: int
) -> tuple[list[SeriesData], list[SeriesData]]:
    """Training series (rows [0, train_end)) and validation series (with look-back context).

    Raises:
        DataError: a series too short for the split or for `lookback`.
    """
    if spec.protocol == "ett":
        whole, sp = _ett_series(frame, spec.horizon)
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
        return frame_windows(
            frame, spec.horizon, lookback, part=part,
            val_fraction=spec.val_fraction, test_fraction=spec.test_fraction,
        )  # fmt: skip
    problem = ett_problem(frame, spec.horizon, mode="S", target=frame.target)
    return ett_windows(problem, lookback, part=part, covariates=frame.covariates)


def baselines(frame: SeriesFrame, spec: TrainSpec) -> dict[str, Any]:
    """`backtest.run_baselines` on the same protocol, split and test origins as the model."""
    return backtest.run_baselines(
        frame, spec.horizon, spec.protocol, spec.levels,
        val_fraction=spec.val_fraction, test_fraction=spec.test_fraction, dataset=spec.data_label,
    )  # fmt: skip


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one window stack, with its predictions (for plots).

    `cross_fitted`: the forecasts are the fit's cross-fitted validation forecasts (see the
    function `cross_fitted`), not the kept model's.
    """

    scores: Scores
    mean: np.ndarray  # [N, H]
    lower: dict[int, np.ndarray]  # level -> [N, H]
    upper: dict[int, np.ndarray]  # level -> [N, H]
    cross_fitted: bool = False


def evaluate_model(model: Forecaster, stack: Windows, levels: tuple[int, ...]) -> Evaluation:
    """Predict every window of `stack` and score it with the shared metrics."""
    mean, lower, upper = backtest.predict_windows(model.predict, stack, levels)
    scores = evaluate(stack.actual, mean, lower, upper, mase_scale=stack.mase_scale)
    return Evaluation(scores, mean, lower, upper)


def cross_fitted(evaluation: Evaluation, report: FitReport, stack: Windows) -> Evaluation:
    """The kept model's `evaluation` on the validation windows `stack`, rescored on the fit's
    cross-fitted forecasts (FitReport.val_forecasts), so the windows that chose the epoch or
    the ridge do not also score the choice (the gate, `auto`, val_* metrics).

    Intervals keep their half-widths around the cross-fitted forecasts. When the report has no
    such forecasts, or they are not for these windows (another count, other values), the
    evaluation is returned as it was.
    """
    if report.val_forecasts is None or report.val_actual is None:
        return evaluation
    h = stack.horizon
    mean, actual = report.val_forecasts[:, :h], report.val_actual[:, :h]  # [N, H]
    tolerance = 1e-5 * float(np.max(np.abs(stack.actual), initial=1.0))
    if mean.shape != stack.actual.shape or not np.allclose(actual, stack.actual, atol=tolerance):
        logger.warning(
            "cross-fitted validation forecasts %s do not match the %s validation windows; "
            "scoring the kept model's forecasts instead",
            mean.shape,
            stack.actual.shape,
        )
        return evaluation
    shift = mean - evaluation.mean  # [N, H]
    lower = {level: v + shift for level, v in evaluation.lower.items()}
    upper = {level: v + shift for level, v in evaluation.upper.items()}
    scores = evaluate(stack.actual, mean, lower, upper, mase_scale=stack.mase_scale)
    return Evaluation(scores, mean, lower, upper, cross_fitted=True)


def baseline_val_scores(stack: Windows, frequency: str, metric: str) -> dict[str, float]:
    """Naive and seasonal naive scored on `stack` (the gate's validation windows) by `metric`.

    Seasonal naive needs a full season in each window's look-back; it is left out when the
    look-back is shorter (so the gate then compares with naive alone).
    """
    none: dict[int, np.ndarray] = {}
    out = {"naive": naive_forecast(stack.history, stack.horizon)}  # [N, L] -> [N, H]
    season = season_length(frequency)
    if stack.history.shape[1] >= season > 1:
        out["seasonal_naive"] = seasonal_naive_forecast(stack.history, stack.horizon, season)
    return {
        name: float(
            evaluate(stack.actual, mean, none, none, mase_scale=stack.mase_scale).overall[metric]
        )
        for name, mean in out.items()
    }


def champion_scorer(frame: SeriesFrame, spec: TrainSpec, metric: str) -> Callable[[Path], float]:
    """Scores a saved forecaster on this job's validation windows, built for its own look-back."""

    def score(directory: Path) -> float:
        model = models_io.load(directory, device="cpu")
        stack = windows(frame, spec, model.meta.lookback, "val")
        return evaluate_model(model, stack, spec.levels).scores.overall[metric]

    return score
