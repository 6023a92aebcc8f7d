"""Model listing routes: what each name serves, its metadata, its test scores and the
champion/challenger history of its registered name."""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.deps import CacheDep, ReadAccess
from service.model_loading import LoadedModel
from service.registry import RegisteredVersion
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
        future_covariates=list(meta.future_covariates),
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


class VersionInfo(BaseModel):
    """One registered version and what the champion gate decided about it."""

    version: str
    aliases: list[str] = Field(description='aliases pointing at it: "champion", "challenger"')
    served: bool = Field(description="whether this service serves it for its alias now")
    created_at: datetime | None = Field(description="when it was registered (UTC)")
    run_id: str | None
    family: str | None
    gate_decision: str | None = Field(description='"promoted", "rejected", ...')
    gate_metric: str | None = Field(description='validation metric compared ("val_mase")')
    val_score: float | None = Field(description="its validation score on that metric")
    champion_score: float | None = Field(description="the champion's score on the same windows")
    champion_version_at_gate: str | None
    gate_reason: str | None


class VersionHistory(BaseModel):
    """Every registered version of a served name, newest first."""

    model: str
    alias: str = Field(description="the alias this service serves")
    versions: list[VersionInfo]


@router.get(
    "/{name}/versions",
    summary="Champion/challenger history of a served model",
    responses={
        404: {"description": "not a served model"},
        503: {"description": "the model registry does not answer"},
    },
)
def model_versions(name: str, cache: CacheDep) -> VersionHistory:
    """Every registered version of `name` with its aliases and the gate's decision and scores,
    read from the registry now (plain `def`: it blocks on the registry)."""
    served = cache.get(name).version
    return VersionHistory(
        model=name,
        alias=cache.settings.alias,
        versions=[_version(v, served) for v in cache.versions(name)],
    )


def _version(found: RegisteredVersion, served: str) -> VersionInfo:
    texts = ("family", "gate_decision", "gate_metric", "champion_version_at_gate", "gate_reason")
    return VersionInfo.model_validate(
        {
            "version": found.version,
            "aliases": list(found.aliases),
            "served": found.version == served,
            "created_at": found.created_at,
            "run_id": found.run_id,
            **{key: found.tags.get(key) or None for key in texts},
            **{key: _finite(found.tags.get(key, "")) for key in ("val_score", "champion_score")},
        }
    )


def _finite(text: str) -> float | None:
    """A tag's number, or None when it is missing, not a number or not finite."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
