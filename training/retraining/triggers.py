"""Drift triggers: retrain a served model when its live accuracy has fallen, not on a clock.

A schedule job with `trigger = "drift"` runs its cron as a *check*: each fire reads the live
scores of the champion version from the forecast log (the latest `drift_window` scored
forecasts) and retrains only when one of these holds:

- live MASE > `drift_ratio` x the version's reference MASE, where both are MAE over the
  seasonal-naive MAE on the same points: live on the scored forecasts, reference on the
  validation windows the version was trained with (the test windows when validation has no
  seasonal-naive score);
- the live coverage of the 80% interval lies outside `coverage_band` (when set).

Fewer than `drift_min_forecasts` scored forecasts decide nothing. The figures that fired (or
did not) go into the scheduler's run row and, when a retrain follows, into the MLflow tags of
the challenger's run (`retrain_trigger`, `drift_*`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from training.registry.gate import CHAMPION

if TYPE_CHECKING:
    from training.registry.tracking import Tracker
    from training.retraining.schedule import Job
    from training.store import SeriesStore

COVERAGE_LEVEL = 80
"""The interval level whose live coverage `coverage_band` bounds."""


@dataclass(frozen=True)
class DriftCheck:
    """The outcome of one drift check."""

    fired: bool  # retrain now
    reason: str  # one line: the figures and the rule they met or did not
    version: int | None = None  # the champion version checked (None: no champion)
    forecasts: int = 0  # scored forecasts in the window
    live_mase: float | None = None  # live MASE over the window (None: undefined)
    reference_mase: float | None = None  # the version's validation (or test) MASE, if logged
    coverage: float | None = None  # live coverage of the 80% interval (None: not recorded)

    def tags(self) -> dict[str, str]:
        """MLflow tags of the run a fired check leads to."""
        tags: dict[str, str] = {"retrain_trigger": "drift", "drift_reason": self.reason[:4000]}
        for key, value in asdict(self).items():
            if key not in ("fired", "reason"):
                tags[f"drift_{key}"] = f"{value:.6g}" if isinstance(value, float) else str(value)
        return tags

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (kept with the scheduler's run row)."""
        return {"trigger": "drift", **asdict(self)}


def reference_mase(metrics: dict[str, float]) -> float | None:
    """The version's MAE over seasonal-naive MAE from its run's metrics, or None.

    Validation windows first (`val_mae` / `seasonal_naive_val_mae`), else the test windows.
    """
    for split in ("val", "test"):
        model, naive = metrics.get(f"{split}_mae"), metrics.get(f"seasonal_naive_{split}_mae")
        if model is not None and naive:
            return float(model) / float(naive)
    return None


def check_drift(job: Job, tracker: Tracker, store: SeriesStore) -> DriftCheck:
    """Whether `job`'s champion has drifted (see the module docstring)."""
    version = tracker.aliases(job.model_name).get(CHAMPION)
    if version is None:
        return DriftCheck(False, f"{job.model_name} has no champion yet: nothing to check")
    scores = store.forecast_log.scores(
        model=job.model_name, version=str(version), last=job.drift_window
    )
    if not scores or scores[0].overall.forecasts < job.drift_min_forecasts:
        have = scores[0].overall.forecasts if scores else 0
        return DriftCheck(
            False,
            f"{have} scored forecasts of v{version}, fewer than drift_min_forecasts = "
            f"{job.drift_min_forecasts}: not decided",
            version,
            have,
        )
    overall = scores[0].overall
    info = tracker.version(job.model_name, version)
    reference = reference_mase(tracker.run_data(info.run_id).metrics) if info.run_id else None
    coverage = overall.coverage.get(COVERAGE_LEVEL)
    reasons = []
    if overall.mase is not None and reference is not None:
        limit = job.drift_ratio * reference
        verb = "above" if overall.mase > limit else "within"
        reasons.append(
            f"live MASE {overall.mase:.3f} over {overall.forecasts} forecasts is {verb} "
            f"{job.drift_ratio:g} x validation MASE {reference:.3f} = {limit:.3f}"
        )
        fired = overall.mase > limit
    else:
        reasons.append("live or validation MASE undefined")
        fired = False
    if job.coverage_band is not None and coverage is not None:
        lo, hi = job.coverage_band
        outside = not lo <= coverage <= hi
        reasons.append(
            f"80% coverage {coverage:.3f} is {'outside' if outside else 'inside'} [{lo:g}, {hi:g}]"
        )
        fired = fired or outside
    reason = ("drift: " if fired else "no drift: ") + "; ".join(reasons)
    return DriftCheck(fired, reason, version, overall.forecasts, overall.mase, reference, coverage)
