"""Model listing routes: what each name serves, its metadata and its test scores."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import CacheDep, ReadAccess
from service.registry import LoadedModel
from service.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ReadAccess])


def model_info(model: LoadedModel) -> ModelInfo:
    """The public description of a loaded model."""
    meta = model.meta
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        family=meta.family,
        frequency=meta.frequency,
        lookback=meta.lookback,
        max_horizon=meta.max_horizon,
        target=meta.target,
        covariates=list(meta.covariates),
        calendar=meta.calendar,
        levels=sorted(int(level) for level in meta.conformal),
        metrics=model.metrics,
        run_id=model.run_id,
        loaded_at=model.loaded_at,
    )


@router.get("", summary="Every served model")
async def list_models(cache: CacheDep) -> ModelList:
    """The alias version of every served model, sorted by name."""
    served = cache.served()
    return ModelList(models=[model_info(served[name]) for name in sorted(served)])


@router.get("/{name}", summary="One served model", responses={404: {"description": "unknown"}})
async def get_model(name: str, cache: CacheDep) -> ModelInfo:
    """The alias version served under `name`."""
    return model_info(cache.get(name))
