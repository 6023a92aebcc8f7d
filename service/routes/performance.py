"""Live accuracy routes (read key): how served forecasts fared against the actuals that came.

Forecasts made from stored history are logged (service.forecast_log) and scored as their
actuals are ingested (training.store.forecast_log). These routes read the scores per model
version, overall and per horizon step, over a window of forecast origins, and the logged
forecasts of a series with their actuals. All are plain `def`: they block on SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from service.deps import ReadAccess
from service.errors import InvalidInputError
from service.pinned import check_version
from service.series_schemas import UtcDatetime, UtcDatetimes
from service.store_deps import StoreDep, store_errors
from training.store.forecast_log import LoggedForecast, VersionScores, parse_window

router = APIRouter(tags=["live accuracy"], dependencies=[ReadAccess])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing X-API-Key"},
    403: {"description": "unknown X-API-Key"},
    404: {"description": "unknown series"},
    422: {"description": "invalid query (since after until, a malformed date): {detail, field}"},
    503: {"description": "the series store database is unreachable or busy"},
}
_MODEL = Query(None, description="one registered model only")
_LAST = Query(None, ge=1, le=100_000, description="only each version's latest N forecasts")
MAX_LISTED = 200
"""Most logged forecasts one GET /v1/series/{id}/forecasts returns."""


def _window(
    since: str | None = Query(None, description="earliest forecast origin (ISO 8601, UTC)"),
    until: str | None = Query(None, description="latest forecast origin (ISO 8601, UTC)"),
) -> tuple[datetime | None, datetime | None]:
    """The `since`/`until` query as naive UTC bounds (422 naming the field when bad)."""
    with store_errors():
        return parse_window(since, until)


Window = Annotated[tuple[datetime | None, datetime | None], Depends(_window)]


class Scores(BaseModel):
    """Accuracy of scored steps (null where undefined: no step, or a zero naive error)."""

    forecasts: int = Field(description="forecasts with at least one scored step")
    points: int = Field(description="scored forecast steps")
    mae: float | None
    rmse: float | None
    mase: float | None = Field(description="MAE over seasonal-naive MAE on the same steps")
    coverage: dict[str, float] = Field(description="level -> share of actuals inside")
    width: dict[str, float] = Field(description="level -> mean interval width")


class StepScores(Scores):
    """Scores of one horizon step."""

    step: int


class VersionPerformance(BaseModel):
    """Live accuracy of one model version."""

    model: str
    version: str
    forecasts: int
    points: int
    since: datetime | None = Field(description="window start (forecast origin), UTC")
    until: datetime | None = Field(description="window end (forecast origin), UTC")
    overall: Scores
    by_step: list[StepScores]


class ModelPerformance(BaseModel):
    """Live accuracy of each version of a registered model that has scored forecasts."""

    model: str
    versions: list[VersionPerformance]


class SeriesPerformance(BaseModel):
    """Live accuracy on one series, per model version."""

    series_id: str
    models: list[VersionPerformance]


class LoggedInterval(BaseModel):
    lower: list[float]
    upper: list[float]


class RecordedForecast(BaseModel):
    """A logged forecast with the actuals that have arrived (null where not yet)."""

    model: str
    version: str
    origin: UtcDatetime = Field(description="last history timestamp it was made from, UTC")
    created_at: UtcDatetime
    horizon: int
    timestamps: UtcDatetimes
    mean: list[float]
    intervals: dict[str, LoggedInterval]
    actuals: list[float | None]


class RecordedForecasts(BaseModel):
    """The latest logged forecasts of a series, newest origin first."""

    series_id: str
    forecasts: list[RecordedForecast]


@router.get(
    "/v1/models/{name}/performance",
    summary="Live accuracy of a model's versions",
    responses=_ERRORS,
)
def model_performance(
    name: str,
    store: StoreDep,
    window: Window,
    version: str | None = Query(None, description="one version only (1, 2, ...)"),
    last: int | None = _LAST,
) -> ModelPerformance:
    """MAE, RMSE, MASE, coverage and width of the logged forecasts whose actuals arrived,
    per version, overall and per horizon step. Versions without scored forecasts are left
    out (an empty list when none has any)."""
    if version is not None:
        check_version(version)
    since, until = window
    with store_errors():
        scores = store.forecast_log.scores(
            model=name, version=version, since=since, until=until, last=last
        )
    return ModelPerformance(model=name, versions=[_version(s) for s in scores])


@router.get(
    "/v1/series/{series_id}/performance", summary="Live accuracy on one series", responses=_ERRORS
)
def series_performance(
    series_id: str,
    store: StoreDep,
    window: Window,
    model: str | None = _MODEL,
    last: int | None = _LAST,
) -> SeriesPerformance:
    """The live accuracy of every model version that forecast this series."""
    since, until = window
    with store_errors():
        store.get_series(series_id)  # 404 for an unknown series
        scores = store.forecast_log.scores(
            model=model, series_id=series_id, since=since, until=until, last=last
        )
    return SeriesPerformance(series_id=series_id, models=[_version(s) for s in scores])


@router.get(
    "/v1/series/{series_id}/forecasts",
    summary="Logged forecasts of a series, with their actuals",
    responses=_ERRORS,
)
def series_forecasts(
    series_id: str,
    store: StoreDep,
    window: Window,
    model: str | None = _MODEL,
    limit: int = Query(20, ge=1, description=f"most forecasts returned (at most {MAX_LISTED})"),
) -> RecordedForecasts:
    """The latest `limit` logged forecasts (newest origin first) and the actuals so far."""
    if limit > MAX_LISTED:
        raise InvalidInputError(
            f"limit {limit} is above the cap of {MAX_LISTED}; ask for fewer and narrow the "
            "window with since/until",
            "limit",
        )
    since, until = window
    with store_errors():
        store.get_series(series_id)
        logged = store.forecast_log.forecasts(
            series_id, model=model, since=since, until=until, limit=limit
        )
    return RecordedForecasts(series_id=series_id, forecasts=[_logged(f) for f in logged])


def _version(scores: VersionScores) -> VersionPerformance:
    return VersionPerformance.model_validate(scores.to_dict())


def _logged(forecast: LoggedForecast) -> RecordedForecast:
    return RecordedForecast(
        model=forecast.model,
        version=forecast.version,
        origin=forecast.origin,
        created_at=forecast.created_at,
        horizon=len(forecast.mean),
        timestamps=forecast.timestamps,
        mean=forecast.mean,
        intervals={
            str(level): LoggedInterval(lower=lower, upper=upper)
            for level, (lower, upper) in forecast.intervals.items()
        },
        actuals=forecast.actuals,
    )
