"""`family = "auto"`: train the candidate families on the same splits, register the best.

The job a user gets when they name no family. One parent run holds the contest; each candidate
is a child run (params, derived defaults, validation and test metrics, a plot) so the MLflow UI
shows every one. The candidate with the lowest validation score on the gate metric wins; its
model is logged in the parent run, registered and gated like any other (against naive /
seasonal naive and the champion). A learned family is only eligible when it beats every
baseline candidate by the gate's margin on validation, the bar the gate would hold it to.
Candidates run cheapest first: the baselines, the ESN, then the recurrent families; ties go to
the cheaper one. When no learned family beats the random walk, the random walk (`naive`) wins,
becomes champion, and the result says so.

`time_budget` (seconds, 0 = none) bounds the whole contest: each recurrent candidate gets an
equal share of what is left when it starts, and a candidate that finds nothing left is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from models.base import EpochCallback
from models.config import BASELINE_FAMILIES
from training.data.frame import SeriesFrame
from training.errors import USER_ERRORS
from training.jobs.defaults import RECURRENT
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import baselines, load_frame
from training.jobs.steps import (
    Candidate,
    TrainResult,
    chain_hooks,
    fit_candidate,
    log_candidate,
    register_candidate,
    run_tags,
)
from training.registry.tracking import Tracker
from training.settings import TrainSettings

logger = logging.getLogger(__name__)

CANDIDATES = ("naive", "seasonal_naive", "kalman", "esn", "gru", "lstm")  # cheapest first
RANDOM_WALK = "naive"


def _summary(cand: Candidate, spec: TrainSpec, base: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One row of the contest table (test scores as ratios to the baselines' test MAE)."""
    test = cand.test_eval.scores.overall
    naive_mae = float(base["baselines"]["naive"]["mae"])
    season_mae = float(base["baselines"]["seasonal_naive"]["mae"])
    return {
        "family": cand.family,
        f"val_{spec.gate_metric}": cand.val_score(spec.gate_metric),
        "test_mae": float(test["mae"]),
        "test_mae_vs_naive": float(test["mae"]) / naive_mae if naive_mae > 0 else None,
        "test_mae_vs_seasonal_naive": float(test["mae"]) / season_mae if season_mae > 0 else None,
        **{f"coverage_{lv}": test.get(f"coverage_{lv}") for lv in spec.levels},
        "train_seconds": cand.report.seconds,
        "epochs": cand.report.epochs,
        "best_epoch": cand.report.best_epoch,
        "still_improving": cand.still_improving,
        "run_id": run_id,
        "status": "trained",
        "chosen": False,
    }


def _budget_share(time_budget: float, started: float, family: str, todo: list[str]) -> float:
    """Seconds this candidate may train: an equal share of what is left (0 = no limit)."""
    if time_budget <= 0 or family not in RECURRENT:
        return 0.0
    left = time_budget - (time.perf_counter() - started)
    recurrent_left = max(1, sum(f in RECURRENT for f in todo))
    return max(left / recurrent_left, 1e-3)


def choose(fitted: list[Candidate], metric: str, margin: float) -> Candidate:
    """The lowest validation score among the baselines and the learned families that beat
    every baseline by the gate's margin (a learned family that only ties the random walk on
    validation is not worth serving in its place); ties go to the earlier, cheaper one."""
    baseline_scores = [c.val_score(metric) for c in fitted if c.family in BASELINE_FAMILIES]
    floor = min(baseline_scores, default=float("inf"))
    eligible = [
        c
        for c in fitted
        if c.family in BASELINE_FAMILIES or c.val_score(metric) <= floor * (1.0 - margin)
    ]
    return min(eligible or fitted, key=lambda c: c.val_score(metric))


def train_auto(
    spec: TrainSpec,
    tracking_uri: str | None = None,
    callback: EpochCallback | None = None,
    *,
    settings: TrainSettings | None = None,
    frame: SeriesFrame | None = None,
    allow_worse_than_baseline: bool = False,
    time_budget: float = 0.0,
    families: tuple[str, ...] = CANDIDATES,
    allow_contract_change: bool = False,
) -> TrainResult:
    """Train every candidate family, register the best on validation (see the module docstring).

    Raises:
        DataError / ConfigError / ...: when no candidate could be trained (the first error).
    """
    tracker = Tracker(tracking_uri, settings)
    frame = frame if frame is not None else load_frame(spec)
    base = baselines(frame, spec)
    name, metric = spec.model_name, spec.gate_metric
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    fitted: list[Candidate] = []
    first_error: Exception | None = None
    tags = {**run_tags(spec, frame, "auto"), "auto": "parent"}
    with tracker.run(name, run_name=f"auto-h{spec.horizon}", tags=tags) as parent:
        for i, family in enumerate(families):
            share = _budget_share(time_budget, started, family, list(families[i:]))
            if time_budget > 0 and time.perf_counter() - started >= time_budget:
                rows.append({"family": family, "status": "skipped: time budget spent"})
                continue
            child_tags = {**run_tags(spec, frame, family), "auto": "candidate"}
            try:
                with tracker.run(
                    name, run_name=f"{family}-h{spec.horizon}", tags=child_tags, nested=True
                ) as child:
                    hook = chain_hooks(child.epoch_callback(), callback)
                    cand = fit_candidate(spec, frame, family, hook, time_budget=share)
                    log_candidate(child, cand, spec, frame, base)
            except USER_ERRORS as exc:
                logger.warning("auto: candidate %s failed: %s", family, exc)
                rows.append({"family": family, "status": f"failed: {exc}"})
                first_error = first_error or exc
                continue
            fitted.append(cand)
            rows.append(_summary(cand, spec, base, child.run_id))
        if not fitted:
            assert first_error is not None
            raise first_error
        best = choose(fitted, metric, spec.gate_margin)
        for row in rows:
            row["chosen"] = row["family"] == best.family
        note = (
            "nothing beat the random walk on the validation windows: naive is the model"
            if best.family == RANDOM_WALK
            else f"{best.family} has the lowest validation {metric}"
        )
        parent.tags({"family": best.family, "auto_choice": best.family, "auto_note": note})
        parent.json(rows, "candidates.json")
        result = register_candidate(
            parent, tracker, best, spec, frame, base,
            allow_worse_than_baseline=allow_worse_than_baseline,
            allow_contract_change=allow_contract_change,
        )  # fmt: skip
    result.data["auto_note"] = note
    return dataclasses.replace(result, candidates=tuple(rows))
