"""Series routes: write series and observations into the store (admin key), list and read
them back, and forecast a stored series with a served model (read key; the forecast is
logged for live accuracy).

All are plain `def` (FastAPI runs them in its threadpool): every store call blocks on SQL.
Each write is one store transaction, validated completely before anything is written, so a
rejected payload leaves the store as it was. Store errors become HTTP errors in
`service.store_deps.store_errors`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from models.base import ModelMeta
from models.features import is_on_frequency
from service.deps import AdminAccess, CacheDep, MetricsDep, ReadAccess, SettingsDep
from service.errors import InvalidInputError, PayloadTooLargeError, ServiceError
from service.forecast_log import record_forecast
from service.model_loading import LoadedModel
from service.routes.forecast import forecast as forecast_history
from service.schemas import ForecastRequest, ForecastResponse, FutureCovariates
from service.series_schemas import (
    IngestResult,
    ObservationBatch,
    ObservationPage,
    SeriesForecastRequest,
    SeriesInfoResponse,
    SeriesList,
    SeriesUpsert,
)
from service.store_deps import StoreDep, StoreSettingsDep, store_errors
from training.store import SeriesInfo, SeriesStore
from training.store.timestamps import iso

router = APIRouter(prefix="/v1/series", tags=["series"])

_AUTH: dict[int | str, dict[str, str]] = {
    401: {"description": "missing X-API-Key"},
    403: {"description": "unknown X-API-Key, or a read key on a write route"},
    503: {"description": "the series store database is unreachable or busy"},
}
_READ_ERRORS = {
    **_AUTH,
    404: {"description": "unknown series"},
    422: {"description": "invalid query: {detail, field}"},
}
_WRITE_ERRORS = {
    **_READ_ERRORS,
    413: {"description": "more observations than FORECAST_INGEST_MAX_BATCH"},
    422: {"description": "invalid payload, nothing written: {detail, field}"},
}
_FORECAST_ERRORS = {
    **_READ_ERRORS,
    404: {"description": "unknown series, model or version"},
    422: {"description": "stored history unusable by the model, or invalid request"},
}


def _info(info: SeriesInfo) -> SeriesInfoResponse:
    return SeriesInfoResponse.model_validate(info, from_attributes=True)


@router.put(
    "/{series_id}",
    summary="Create a series or update its metadata",
    dependencies=[AdminAccess],
    responses={**_WRITE_ERRORS, 201: {"description": "created", "model": SeriesInfoResponse}},
)
def put_series(
    series_id: str, body: SeriesUpsert, store: StoreDep, response: Response
) -> SeriesInfoResponse:
    """Create the series (201) or replace its target and metadata (200).

    The frequency may only change while the series has no observations.
    """
    with store_errors():
        info = store.upsert_series(
            series_id, frequency=body.frequency, target=body.target, metadata=body.metadata
        )
    if info.created_at == info.updated_at:  # set in the same transaction: new row
        response.status_code = 201
        response.headers["Location"] = f"/v1/series/{series_id}"
    return _info(info)


@router.post(
    "/{series_id}/observations",
    summary="Insert or replace observations",
    dependencies=[AdminAccess],
    responses=_WRITE_ERRORS,
)
def post_observations(series_id: str, body: ObservationBatch, store: StoreDep) -> IngestResult:
    """Upsert one batch, all or nothing: re-sending a batch changes nothing but `updated`."""
    n = max(len(body.timestamps), len(body.values))
    if n > store.max_batch:
        raise PayloadTooLargeError(
            f"the batch holds {n} observations, above the cap of {store.max_batch}; split it "
            "into consecutive batches (FORECAST_INGEST_MAX_BATCH sets the cap)",
            "values",
        )
    with store_errors():
        result = store.upsert_observations(series_id, body.timestamps, body.values, body.covariates)
        info = store.get_series(series_id)
    return IngestResult(
        series_id=series_id,
        inserted=result.inserted,
        updated=result.updated,
        count=info.count,
        last_timestamp=info.last_timestamp,
    )


@router.get(
    "",
    summary="List stored series by id prefix",
    dependencies=[ReadAccess],
    responses={k: v for k, v in _READ_ERRORS.items() if k != 404},
)
def list_series(
    store: StoreDep,
    prefix: str = Query("", max_length=128, description="only ids starting with this"),
    limit: int = Query(50, ge=1, le=1000, description="most series returned"),
) -> SeriesList:
    """Series whose id starts with `prefix`, in id order, with their spans."""
    with store_errors():
        return SeriesList(series=[_info(info) for info in store.list_series(prefix, limit)])


@router.get(
    "/{series_id}",
    summary="A series and the span of its observations",
    dependencies=[ReadAccess],
    responses=_READ_ERRORS,
)
def get_series(series_id: str, store: StoreDep) -> SeriesInfoResponse:
    """Metadata, observation count, and first and last timestamps."""
    with store_errors():
        return _info(store.get_series(series_id))


@router.get(
    "/{series_id}/observations",
    summary="Read stored observations, a page at a time",
    dependencies=[ReadAccess],
    responses=_READ_ERRORS,
)
def get_observations(
    series_id: str,
    store: StoreDep,
    store_settings: StoreSettingsDep,
    start: datetime | None = Query(None, description="first timestamp to include (UTC)"),
    end: datetime | None = Query(None, description="last timestamp to include (UTC)"),
    limit: int | None = Query(
        None, ge=1, description="most observations to return (default and cap: the page size)"
    ),
) -> ObservationPage:
    """Observations in [start, end], oldest first, at most `limit` (FORECAST_READ_MAX_POINTS
    by default and at most); `next_start` continues the read."""
    cap = store_settings.read_max_points
    if limit is not None and limit > cap:
        raise InvalidInputError(
            f"limit {limit} is above this service's page size of {cap}; ask for at most {cap} "
            "and read on from next_start (FORECAST_READ_MAX_POINTS sets the size)",
            "limit",
        )
    size = cap if limit is None else limit
    with store_errors():
        stamps, values, covariates = store.observations(series_id, start, end, size + 1)
    # One row past the page: its timestamp is where the next page starts.
    following = stamps[size].astype("datetime64[us]").item() if len(values) > size else None
    stamps, values = stamps[:size], values[:size]  # [T]
    return ObservationPage(
        series_id=series_id,
        timestamps=stamps.astype("datetime64[us]").tolist(),
        values=values.tolist(),
        covariates={
            name: [None if np.isnan(x) else x for x in column[:size].tolist()]
            for name, column in covariates.items()
        },
        next_start=following,
    )


@router.post(
    "/{series_id}/forecast",
    summary="Forecast a stored series with a served model",
    dependencies=[ReadAccess],
    responses=_FORECAST_ERRORS,
)
def forecast_series(
    series_id: str,
    body: SeriesForecastRequest,
    store: StoreDep,
    cache: CacheDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Request,
) -> ForecastResponse:
    """Take the series' latest `lookback` observations from the store and forecast them
    exactly as POST /v1/models/{name}/forecast would (same checks, same response). The
    forecast is logged and scored as its actuals arrive (GET .../performance)."""
    try:
        model = cache.get(body.model, body.version)
    except ServiceError as exc:  # lookup errors name this route's field, "model"
        if exc.field == "name":
            exc.field = "model"
        raise
    stamps, values, stored = _stored_history(store, series_id, model)
    history = ForecastRequest(
        timestamps=np.datetime_as_string(stamps, unit="s").tolist(),  # as a client sends them
        values=values.tolist(),
        covariates=_stored_covariates(series_id, model, stamps, stored),
        future_covariates=_stored_future_covariates(
            model.meta, stored, body.future_covariates, body.horizon
        ),  # the store's history of each future covariate + the request's values ahead
        horizon=body.horizon,
        levels=body.levels,
        # The version checked above: a champion swapped in meanwhile cannot change the
        # lookback or frequency under this request.
        version=model.version,
    )
    answer = forecast_history(body.model, history, cache, settings, metrics)
    record_forecast(request, model, series_id, stamps[-1], values, answer.model_dump())
    return answer


def _stored_history(
    store: SeriesStore, series_id: str, model: LoadedModel
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The latest `lookback` observations, checked usable by the model.

    Returns:
        (timestamps [L] datetime64[ns], values [L] float64, covariates name -> [L] float64,
        NaN where an observation has none).
    """
    meta, name = model.meta, model.name
    with store_errors():
        info = store.get_series(series_id)
    if info.frequency != meta.frequency:
        raise InvalidInputError(
            f"series {series_id!r} is at frequency {info.frequency!r} but model {name!r} "
            f"forecasts at {meta.frequency!r}; pick a model trained at {info.frequency!r} "
            "(GET /v1/models)",
            "model",
        )
    with store_errors():
        stamps, values, covariates = store.latest(series_id, meta.lookback)  # [T] each, T <= L
    n, lookback = len(values), meta.lookback
    if n < lookback:
        raise InvalidInputError(
            f"series {series_id!r} has {n} stored observations but model {name!r} needs its "
            f"lookback of {lookback}; ingest at least {lookback - n} more with "
            f"POST /v1/series/{series_id}/observations",
            "series_id",
        )
    bad = is_on_frequency(stamps, meta.frequency)
    if bad is not None:
        raise InvalidInputError(
            f"the latest {lookback} observations of series {series_id!r} are not regular at "
            f"{meta.frequency!r}: the first gap is between {iso(stamps[bad - 1])} and "
            f"{iso(stamps[bad])}; ingest the missing observations in between with "
            f"POST /v1/series/{series_id}/observations",
            "series_id",
        )
    return stamps, values, covariates


def _stored_future_covariates(
    meta: ModelMeta, stored: dict[str, np.ndarray], given: FutureCovariates | None, horizon: int
) -> FutureCovariates | None:
    """The request's future covariates, each one sent with only its `horizon` values ahead
    preceded by its history in `stored` (name -> [L], the look-back read from the store).

    A column sent with history and horizon already, or one the store lacks at some stamp, is
    passed on as sent: the forecast checks then name what is missing.
    """
    if not given or not meta.future_covariates:
        return given
    out: FutureCovariates = dict(given)
    for key, ahead in given.items():
        history = stored.get(key)
        if len(ahead) == horizon and history is not None and not np.isnan(history).any():
            out[key] = [*history.tolist(), *ahead]
    return out


def _stored_covariates(
    series_id: str, model: LoadedModel, stamps: np.ndarray, covariates: dict[str, np.ndarray]
) -> dict[str, list[float]] | None:
    """The model's covariates over the window (name -> [L]), each present at every step."""
    meta, name = model.meta, model.name
    if not meta.covariates:
        return None
    picked: dict[str, list[float]] = {}
    for key in meta.covariates:
        column = covariates.get(key, np.full(len(stamps), np.nan))  # [L]
        missing = np.flatnonzero(np.isnan(column))
        if missing.size:
            raise InvalidInputError(
                f"model {name!r} needs covariate {key!r} but series {series_id!r} has none "
                f"stored at {iso(stamps[int(missing[0])])}; ingest observations with "
                f"covariates.{key} for the latest {meta.lookback} timestamps",
                "series_id",
            )
        picked[key] = column.tolist()
    return picked
