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
from service.model_loading import LoadedModel
from service.schemas import (
    BatchForecastRequest,
    BatchForecastResponse,
    BatchSeries,
    ForecastRequest,
    ForecastResponse,
    json_body_schema,
    read_json_body,
)

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
) -> tuple[list[dict[str, Any]], np.ndarray, bool]:
    """One forward pass over every series.

    Returns:
        Per series its "timestamps", "mean" and "intervals" (level -> "lower", "upper") as
        lists, [B] bool: rows that are finite, and whether the forecast was rolled.
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
    text = np.datetime_as_string(ahead, unit="s").tolist()  # [B][H]
    means = out.mean.tolist()  # [B][H]
    lowers = {str(k): out.lower[k].tolist() for k in sorted(out.lower)}  # level -> [B][H]
    uppers = {str(k): out.upper[k].tolist() for k in sorted(out.upper)}
    forecasts = [
        {
            "timestamps": text[b],
            "mean": means[b],
            "intervals": {k: {"lower": lowers[k][b], "upper": uppers[k][b]} for k in lowers},
        }
        for b in range(len(means))
    ]
    return forecasts, finite, out.rolled


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
            forecasts, finite, rolled = _run(model, [items[i][0] for i in rows], horizon, levels)
        except Exception:
            if len(rows) == 1:
                raise
            for i in rows:  # isolate: one pass per item, each with its own outcome
                try:
                    results[i] = _run_singles(model, [items[i]])[0]
                except Exception as exc:
                    results[i] = exc
            continue
        for i, answer, ok in zip(rows, forecasts, finite, strict=True):
            results[i] = {**answer, "rolled": rolled} if ok else _non_finite(model, "values")
    return results


def _points(body: ForecastRequest | BatchSeries) -> int:
    """Values sent for one series, covariates and future covariates included (the point cap)."""
    future = sum(len(v) for v in (body.future_covariates or {}).values())
    return len(body.values) * (1 + len(body.covariates or {})) + future


def _json(payload: dict[str, Any]) -> Response:
    return Response(content=to_json(payload), media_type="application/json")


def forecast(
    name: str, body: ForecastRequest, cache: CacheDep, settings: SettingsDep, metrics: MetricsDep
) -> ForecastResponse:
    """The forecast of POST /v1/models/{name}/forecast as a model, for sync callers (the series
    routes); runs in the caller's thread, without batching."""
    model = cache.get(name, body.version)
    result = _run_singles(model, [_check_single(model, name, body, settings)])[0]
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
    name: str, request: Request, cache: CacheDep, settings: SettingsDep, metrics: MetricsDep
) -> Response:
    """Forecast `horizon` steps after the history, with central intervals per level."""
    body = await read_json_body(request, ForecastRequest)
    # A pinned version not loaded yet is awaited here without holding a thread, and for a
    # bounded time (service.registry): a slow registry never takes threads from the others.
    model = await cache.get_async(name, body.version)
    # Checked before it joins a batch (service.batcher), so that a bad item fails alone.
    if len(body.values) <= INLINE_POINTS:
        item = _check_single(model, name, body, settings)
    else:  # a long history means long checks: not on the loop
        item = await anyio.to_thread.run_sync(_check_single, model, name, body, settings)
    result: dict[str, Any] = await model.batcher.submit(item, partial(_run_singles, model))
    metrics.forecasts.labels(name, model.version).inc()
    if body.series_id is not None:  # the caller names the stored series: log the forecast
        series = item[0]
        record_forecast(request, model, body.series_id, series.stamps[-1], series.values, result)
    return _json({"model": name, "version": model.version, **result})


def _check_single(
    model: LoadedModel, name: str, body: ForecastRequest, settings: SettingsDep
) -> _Single:
    """The checked series of a single-series request, for `model`."""
    meta = model.meta
    check_request(settings, meta, body.horizon, body.levels, _points(body))
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
    points = sum(_points(s) for s in body.series)
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
        checked = check_series(
            meta, name, f"series[{i}].", s.timestamps, s.values, s.covariates,
            s.future_covariates, body.horizon,
        )  # fmt: skip
        series.append(checked)
    check_stamps(series, meta, name, "series")
    check_future_in_range(series, meta, body.horizon, "series")
    forecasts, finite, rolled = _run(model, series, body.horizon, body.levels)
    if not finite.all():
        raise _non_finite(model, f"series[{int(np.flatnonzero(~finite)[0])}].values")
    metrics.forecasts.labels(name, model.version).inc(len(series))
    forecasts = [{"id": s.id, **f} for s, f in zip(body.series, forecasts, strict=True)]
    return _json(
        {"model": name, "version": model.version, "forecasts": forecasts, "rolled": rolled}
    )
