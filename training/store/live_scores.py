"""Live accuracy of logged forecasts: the figures, computed from arrays of scored steps.

Per model version (on one series or all): MAE, RMSE, MASE (the model's MAE over the
seasonal-naive MAE on the same origins and steps; below 1 beats seasonal naive), and the
coverage and mean width of each interval level, overall and per horizon step. The seasonal
naive reference of each forecast is computed from the same history it was made from
(`naive_reference`) and logged with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from models.features import season_length


def naive_reference(history: np.ndarray, horizon: int, frequency: str) -> list[float]:
    """The seasonal-naive forecast of `history` ([T] -> [H]) that live MASE is measured against.

    One season of the frequency (a day of hourly data, a week of daily) when the history holds
    one, else the last value (a random walk).
    """
    values = np.asarray(history, dtype=np.float64)  # [T]
    season = season_length(frequency)
    if len(values) < season:
        season = 1
    steps = np.arange(horizon) % season  # [H]
    reference: list[float] = values[len(values) - season + steps].tolist()  # [H]
    return reference


@dataclass
class LiveScores:
    """Accuracy of scored forecast steps, overall or for one horizon step.

    Attributes:
        forecasts: logged forecasts with at least one scored step.
        points: scored steps.
        mae, rmse: of the mean; None with no scored step.
        mase: MAE over the seasonal-naive MAE on the same steps; None when undefined.
        coverage: level -> share of actuals inside the interval.
        width: level -> mean interval width.
    """

    forecasts: int
    points: int
    mae: float | None
    rmse: float | None
    mase: float | None
    coverage: dict[int, float] = field(default_factory=dict)
    width: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: levels as text keys."""
        return {
            **asdict(self),
            "coverage": {str(k): v for k, v in sorted(self.coverage.items())},
            "width": {str(k): v for k, v in sorted(self.width.items())},
        }


@dataclass
class VersionScores:
    """Live accuracy of one model version (on one series, or all)."""

    model: str
    version: str
    since: datetime | None
    until: datetime | None
    overall: LiveScores
    by_step: list[LiveScores]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, datetimes as ISO 8601 with a UTC offset."""
        return {
            "model": self.model,
            "version": self.version,
            "forecasts": self.overall.forecasts,
            "points": self.overall.points,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "overall": self.overall.to_dict(),
            "by_step": [
                {"step": step, **scores.to_dict()}
                for step, scores in enumerate(self.by_step, start=1)
            ],
        }


@dataclass(frozen=True)
class ScoredSteps:
    """Every scored step of one model version's forecasts, as flat arrays ([N] each).

    Attributes:
        forecast: which forecast each step belongs to (any id, equal within one forecast).
        step: horizon step, 1..H.
        mean, actual: the forecast and the observation.
        naive: the seasonal-naive forecast of the step (NaN when not logged).
        bounds: level -> [N, 2] lower and upper (NaN where the forecast lacks the level).
    """

    forecast: np.ndarray
    step: np.ndarray
    mean: np.ndarray
    actual: np.ndarray
    naive: np.ndarray
    bounds: dict[int, np.ndarray]

    def version_scores(
        self, model: str, version: str, since: datetime | None, until: datetime | None
    ) -> VersionScores:
        """Overall and per-step scores of these steps."""
        horizon = int(self.step.max()) if len(self.step) else 0
        return VersionScores(
            model=model,
            version=version,
            since=since,
            until=until,
            overall=self.scores(np.ones(len(self.step), dtype=bool)),
            by_step=[self.scores(self.step == h) for h in range(1, horizon + 1)],
        )

    def scores(self, mask: np.ndarray) -> LiveScores:
        """The scores of the steps selected by `mask` ([N] bool)."""
        n = int(mask.sum())
        if n == 0:
            return LiveScores(0, 0, None, None, None)
        actual = self.actual[mask]  # [n]
        error = actual - self.mean[mask]  # [n]
        naive = self.naive[mask]  # [n]
        known = ~np.isnan(naive)
        scale = float(np.abs(actual[known] - naive[known]).sum())
        mase = float(np.abs(error[known]).sum()) / scale if known.any() and scale > 0 else None
        coverage, width = {}, {}
        for level, pair in self.bounds.items():
            lo, hi = pair[mask, 0], pair[mask, 1]  # [n] each
            has = ~np.isnan(lo)
            if has.any():
                inside = (actual[has] >= lo[has]) & (actual[has] <= hi[has])
                coverage[level] = float(inside.mean())
                width[level] = float((hi[has] - lo[has]).mean())
        return LiveScores(
            forecasts=len(np.unique(self.forecast[mask])),
            points=n,
            mae=_finite(float(np.abs(error).mean())),
            rmse=_finite(math.sqrt(float((error**2).mean()))),
            mase=None if mase is None else _finite(mase),
            coverage=coverage,
            width=width,
        )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "+00:00"
