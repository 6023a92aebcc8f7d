"""Forecast routes: one series, or many series in one batched forward pass.

The single-series route is `async`: it checks the request on the event loop and awaits a
micro-batcher (service.batcher) that runs the model in a worker thread, so concurrent requests
share forward passes and waiting requests hold no threads. The batch route is plain `def`
(FastAPI's threadpool): it is one forward pass already. Both call the model under
`torch.inference_mode()`. Every series is checked against the model (service.checks) before
any tensor is built.

Speed notes: responses are written with pydantic-core's JSON encoder from plain
lists and returned as a `Response`, which skips FastAPI's dump-and-revalidate of the return
value (0.5 s for 1,000 series) and, for the sync batch route, its second threadpool hop (the
documented schema is still the `response_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio.to_thread
import numpy as np
import torch
from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from models.base import Forecast, ModelMeta
from models.features import future_timestamps
from service.checks import (
    CheckedSeries,
    check_future_in_range,
    check_request,
    check_series,
    check_stamps,
)
from service.deps import CacheDep, MetricsDep, ReadAccess, SettingsDep
from service.errors import InvalidInputError, PayloadTooLargeError
from service.forecast_log import record_forecast
from service.registry import LoadedModel
from service.schemas import (
    BatchForecastRequest,
    BatchForecastResponse,
    BatchSeries,
    ForecastRequest,
    ForecastResponse,
    FutureCovariates,
    json_body_schema,
    read_json_body,
)
from training.store import SeriesStore

router = APIRouter(prefix="/v1/models", tags=["forecast"], dependencies=[ReadAccess])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing X-API-Key"},
    403: {"description": "unknown X-API-Key"},
    404: {"description": "unknown model or version"},
    413: {"description": "too many series or points"},
    422: {"description": "invalid input: {detail, field}"},
}
# Single-series requests up to this many points are checked on the event loop (~0.1 ms for a
# few hundred); longer ones in a worker thread, so they never stall the other requests.
INLINE_POINTS = 5_000


def _run(
    model: LoadedModel, series: Sequence[CheckedSeries], horizon: int, levels: Sequence[int]
) -> tuple[Forecast, list[list[str]], np.ndarray]:
    """One forward pass over every series.

    Returns:
        The forecast, the future stamps [B][H] as text, and [B] bool: rows that are finite.
    """
    lookback = model.meta.lookback
    history = np.stack([s.values for s in series])  # B x [L] -> [B, L]
    stamps = np.stack([s.stamps[-lookback:] for s in series])  # B x [L] -> [B, L]
    covs = [s.covariates for s in series if s.covariates is not None]
    covariates = np.stack(covs) if covs else None  # B x [L, C] -> [B, L, C]
    futs = [s.future for s in series if s.future is not None]
    future = np.stack(futs) if futs else None  # B x [L + H, K] -> [B, L + H, K]
    with torch.inference_mode():
        out = model.forecaster.predict(
            history, horizon, levels, timestamps=stamps, covariates=covariates,
            future_covariates=future,
        )  # fmt: skip
    finite = np.isfinite(out.mean).all(axis=1)  # [B]
    for bound in (*out.lower.values(), *out.upper.values()):
        finite &= np.isfinite(bound).all(axis=1)
    ahead = out.timestamps
    if ahead is None:
        ahead = future_timestamps(stamps[:, -1], model.meta.frequency, horizon)  # [B, H]
    text: list[list[str]] = np.datetime_as_string(ahead, unit="s").tolist()
    return out, text, finite


def _non_finite(model: LoadedModel, field: str) -> InvalidInputError:
    return InvalidInputError(
        f"model {model.name!r} version {model.version} produced non-finite values for "
        f"{field}; check the values' scale and units",
        field,
    )


_Single = tuple[CheckedSeries, int, tuple[int, ...]]  # series, horizon, levels


def _run_singles(model: LoadedModel, items: list[_Single]) -> list[dict[str, Any] | Exception]:
    """Forecast concurrent single-series requests, one forward pass per (horizon, levels).

    Every item was checked alone before it joined the batch; should a forward pass still fail,
    its items are run one by one, so the failure answers only the request that caused it.
    """
    results: list[dict[str, Any] | Exception] = [ValueError("not run")] * len(items)
    groups: dict[tuple[int, tuple[int, ...], bool], list[int]] = {}
    for i, (series, horizon, levels) in enumerate(items):
        # series without covariates never share a pass with series that have them
        inputs = series.covariates is None and series.future is None
        groups.setdefault((horizon, levels, inputs), []).append(i)
    for (horizon, levels, _), rows in groups.items():
        try:
            out, future, finite = _run(model, [items[i][0] for i in rows], horizon, levels)
        except Exception:
            if len(rows) == 1:
                raise
            for i in rows:  # isolate: one pass per item, each with its own outcome
                try:
                    results[i] = _run_singles(model, [items[i]])[0]
                except Exception as exc:
                    results[i] = exc
            continue
        means = out.mean.tolist()
        intervals = _intervals(out)
        for b, i in enumerate(rows):
            results[i] = (
                {
                    "timestamps": future[b],
                    "mean": means[b],
                    "intervals": intervals[b],
                    "rolled": out.rolled,
                }
                if finite[b]
                else _non_finite(model, "values")
            )
    return results


def _intervals(out: Forecast) -> list[dict[str, dict[str, list[float]]]]:
    """Per series: level -> {"lower", "upper"} lists."""
    lowers = {level: out.lower[level].tolist() for level in sorted(out.lower)}
    uppers = {level: out.upper[level].tolist() for level in sorted(out.upper)}
    return [
        {str(k): {"lower": lowers[k][b], "upper": uppers[k][b]} for k in lowers}
        for b in range(out.mean.shape[0])
    ]


def _future_points(body: ForecastRequest | BatchSeries) -> int:
    """Values sent in `future_covariates` (they count toward the request's point cap)."""
    return sum(len(v) for v in (body.future_covariates or {}).values())


def stored_future_covariates(
    store: SeriesStore,
    series_id: str,
    meta: ModelMeta,
    stamps: np.ndarray,
    given: FutureCovariates | None,
    horizon: int,
) -> FutureCovariates | None:
    """The series route's future covariates: the store's history of each one (at `stamps`,
    the stored look-back) followed by the request's `horizon` values ahead.

    A column sent with history and horizon already, or one the store lacks at some stamp, is
    passed on as sent: the forecast checks then name what is missing.
    """
    if not given or not meta.future_covariates:
        return given
    _, _, stored = store.latest(series_id, len(stamps))  # name -> [L]
    out: FutureCovariates = dict(given)
    for key, ahead in given.items():
        history = stored.get(key)
        if history is None or len(history) != len(stamps) or np.isnan(history).any():
            continue
        if len(ahead) == horizon:  # only the horizon was sent
            out[key] = [*history.tolist(), *ahead]
    return out


def _json(payload: dict[str, Any]) -> Response:
    return Response(content=to_json(payload), media_type="application/json")


def forecast(
    name: str,
    body: ForecastRequest,
    cache: CacheDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> ForecastResponse:
    """The forecast of POST /v1/models/{name}/forecast as a model, for sync callers (the series
    routes); runs in the caller's thread, without batching."""
    model, item = _single_item(name, body, cache, settings)
    result = _run_singles(model, [item])[0]
    if isinstance(result, Exception):
        raise result
    metrics.forecasts.labels(name, model.version).inc()
    return ForecastResponse.model_validate({"model": name, "version": model.version, **result})


@router.post(
    "/{name}/forecast",
    summary="Forecast one series",
    response_model=ForecastResponse,
    responses=_ERRORS,
    openapi_extra=json_body_schema(ForecastRequest),
)
async def forecast_one(
    name: str,
    request: Request,
    cache: CacheDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """Forecast `horizon` steps after the history, with central intervals per level."""
    body = await read_json_body(request, ForecastRequest)
    # A pinned version not loaded yet is awaited here without holding a thread, and for a
    # bounded time (service.registry): a slow registry never takes threads from the others.
    model = await cache.get_async(name, body.version)
    # Checked here on the event loop (cheap, vectorised), so a bad item fails alone before it
    # joins a batch; only the model call goes to a worker thread, batched with the other
    # requests waiting for this model (service.batcher).
    if len(body.values) <= INLINE_POINTS:
        item = _check_single(model, name, body, settings)
    else:  # a long history means long checks: not on the loop
        item = await anyio.to_thread.run_sync(_check_single, model, name, body, settings)
    result: dict[str, Any] = await model.batcher.submit(item, partial(_run_singles, model))
    metrics.forecasts.labels(name, model.version).inc()
    if body.series_id is not None:  # the caller names the stored series: log the forecast
        series = item[0]
        record_forecast(request, model, body.series_id, series.stamps[-1], series.values, result)
    # A Response, not a model: skips FastAPI's dump-and-revalidate of the return value.
    return _json({"model": name, "version": model.version, **result})


def _single_item(
    name: str, body: ForecastRequest, cache: CacheDep, settings: SettingsDep
) -> tuple[LoadedModel, _Single]:
    """The served model and the checked series of a single-series request."""
    model = cache.get(name, body.version)
    return model, _check_single(model, name, body, settings)


def _check_single(
    model: LoadedModel, name: str, body: ForecastRequest, settings: SettingsDep
) -> _Single:
    """The checked series of a single-series request, for `model`."""
    meta = model.meta
    points = len(body.values) * (1 + len(body.covariates or {})) + _future_points(body)
    check_request(settings, meta, body.horizon, body.levels, points)
    series = check_series(
        meta, name, "", body.timestamps, body.values, body.covariates,
        body.future_covariates, body.horizon,
    )  # fmt: skip
    check_stamps([series], meta, name, "")
    check_future_in_range([series], meta, body.horizon, "")
    return series, body.horizon, tuple(body.levels)


@router.post(
    "/{name}/forecast/batch",
    summary="Forecast many series at once",
    response_model=BatchForecastResponse,
    responses=_ERRORS,
)
def forecast_batch(
    name: str,
    body: BatchForecastRequest,
    cache: CacheDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """One batched model call over every series; forecasts come back in request order."""
    if len(body.series) > settings.max_series:
        raise PayloadTooLargeError(
            f"the request holds {len(body.series)} series, above the cap of "
            f"{settings.max_series}; split it into smaller batches",
            "series",
        )
    model = cache.get(name, body.version)
    meta = model.meta
    points = sum(
        len(s.values) * (1 + len(s.covariates or {})) + _future_points(s) for s in body.series
    )
    check_request(settings, meta, body.horizon, body.levels, points, len(body.series))
    seen: set[str] = set()
    series = []
    for i, s in enumerate(body.series):
        if s.id in seen:
            raise InvalidInputError(
                f"series[{i}].id {s.id!r} repeats an earlier id; give every series its own id",
                f"series[{i}].id",
            )
        seen.add(s.id)
        where = f"series[{i}]."
        checked = check_series(
            meta, name, where, s.timestamps, s.values, s.covariates,
            s.future_covariates, body.horizon,
        )  # fmt: skip
        series.append(checked)
    check_stamps(series, meta, name, "series")
    check_future_in_range(series, meta, body.horizon, "series")
    out, future, finite = _run(model, series, body.horizon, body.levels)
    if not finite.all():
        raise _non_finite(model, f"series[{int(np.flatnonzero(~finite)[0])}].values")
    metrics.forecasts.labels(name, model.version).inc(len(series))
    means = out.mean.tolist()
    intervals = _intervals(out)
    forecasts = [
        {"id": s.id, "timestamps": future[b], "mean": means[b], "intervals": intervals[b]}
        for b, s in enumerate(body.series)
    ]
    return _json(
        {"model": name, "version": model.version, "forecasts": forecasts, "rolled": out.rolled}
    )
