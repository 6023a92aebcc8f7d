"""Admin routes (admin key): refresh the served models from the registry now."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import AdminAccess, CacheDep
from service.schemas import ReloadOutcome, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess])


@router.post("/reload", summary="Poll the registry now and swap in new alias versions")
def reload(cache: CacheDep) -> ReloadResponse:
    """Runs one refresh (the same the background poller runs) and reports it per model.

    A version that fails to load or to forecast is refused and the old one keeps serving; an
    unreachable registry is reported in `registry_error` within about
    FORECAST_REGISTRY_TIMEOUT_SECONDS and nothing changes.
    """
    report = cache.reload()
    return ReloadResponse(
        models=[ReloadOutcome.model_validate(o, from_attributes=True) for o in report.outcomes],
        registry_error=report.registry_error,
    )
