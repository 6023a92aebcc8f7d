"""Operational routes: liveness and readiness (no key) and Prometheus metrics (read key)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import CacheDep, MetricsDep, ReadAccess
from service.schemas import Health, Readiness, RegistryState

router = APIRouter(tags=["health"])


@router.get("/v1/health", summary="Liveness: the process answers")
async def health() -> Health:
    """Always 200 while the process runs; needs no key."""
    return Health()


@router.get(
    "/v1/ready",
    summary="Readiness: every configured model is loaded",
    responses={503: {"model": Readiness, "description": "some model is not loaded yet"}},
)
async def ready(cache: CacheDep, response: Response) -> Readiness:
    """200 once every configured model is loaded, 503 before; needs no key. `registry` says
    whether the MLflow registry answers (loaded models serve either way)."""
    is_ready, loaded, missing = cache.readiness()
    if not is_ready:
        response.status_code = 503
    state = cache.health.status()
    registry = RegistryState(
        status="ok" if state.up else "degraded", detail=state.detail, since=state.since
    )
    return Readiness(ready=is_ready, loaded=loaded, missing=missing, registry=registry)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[ReadAccess],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Request counts and latency by route and status, forecasts by model and version, load
    failures and the served version per model, in the Prometheus text format; with several
    workers, summed over all of them."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
