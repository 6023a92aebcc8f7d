"""Request and response bodies of the /v1 API (pydantic), with the examples shown in /docs.

Requests forbid unknown fields and non-finite numbers. Timestamps are ISO-8601; naive times are
taken as the model's own clock (as in the training data), times with an offset are converted to
UTC. Response timestamps are ISO-8601 without an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.pinned import VERSION_PATTERN, check_version
from training.store import StoreError, check_series_id

Level = Annotated[int, Field(ge=1, le=99, description="central interval level in percent")]

_HOURS: list[Any] = [f"2024-03-01T{h:02d}:00:00" for h in range(6)]
_FORECAST_EXAMPLE: dict[str, Any] = {
    "timestamps": _HOURS,
    "values": [41.2, 40.8, 39.9, 40.5, 42.0, 43.1],
    "horizon": 3,
    "levels": [80, 95],
}
# A model trained with `--future-covariates temp --holidays US`: the history's temperatures
# in `covariates`, the forecast's (a weather forecast) in `future_covariates`.
_FUTURE_FORECAST_EXAMPLE: dict[str, Any] = {
    **_FORECAST_EXAMPLE,
    "covariates": {"temp": [11.0, 10.4, 10.1, 9.8, 9.9, 10.6]},
    "future_covariates": {"temp": [11.8, 13.0, 14.1]},
}
_BATCH_ITEM_EXAMPLE: dict[str, Any] = {
    "id": "a",
    "timestamps": _HOURS,
    "values": _FORECAST_EXAMPLE["values"],
}
_BATCH_FUTURE_ITEM_EXAMPLE: dict[str, Any] = {
    **_BATCH_ITEM_EXAMPLE,
    **{k: _FUTURE_FORECAST_EXAMPLE[k] for k in ("covariates", "future_covariates")},
}
_FORECAST_RESPONSE_EXAMPLE: dict[str, Any] = {
    "model": "load-etth1",
    "version": "3",
    "timestamps": ["2024-03-01T06:00:00", "2024-03-01T07:00:00", "2024-03-01T08:00:00"],
    "mean": [43.6, 44.0, 44.1],
    "intervals": {
        "80": {"lower": [42.9, 42.8, 42.6], "upper": [44.3, 45.2, 45.6]},
        "95": {"lower": [42.4, 42.1, 41.7], "upper": [44.8, 45.9, 46.5]},
    },
    "rolled": False,
}


class _Request(BaseModel):
    # strict: no `true` for a horizon, no "3" for a number (JSON ints still count as floats)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class _Levels(_Request):
    horizon: int = Field(ge=1, description="steps to forecast; capped by FORECAST_MAX_HORIZON")
    levels: list[Level] = Field(default=[80, 95], max_length=10)
    version: str | None = Field(
        default=None,
        description="serve this registered version instead of the alias",
        json_schema_extra={"pattern": VERSION_PATTERN},
    )

    @field_validator("version")
    @classmethod
    def _canonical_version(cls, version: str | None) -> str | None:
        if version is not None:
            check_version(version)
        return version

    @field_validator("horizon", "levels", mode="before")
    @classmethod
    def _whole_floats_are_integers(cls, value: object) -> object:
        # JSON Schema counts 3.0 as an integer; strict mode alone would refuse it (but `true`
        # and "3" stay refused).
        def whole(v: object) -> object:
            return int(v) if isinstance(v, float) and v.is_integer() else v

        return [whole(v) for v in value] if isinstance(value, list) else whole(value)

    @field_validator("levels")
    @classmethod
    def _unique_levels(cls, levels: list[int]) -> list[int]:
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels {levels} repeat a value; list each level once")
        return sorted(levels)


_FUTURE_DESCRIPTION = (
    "future-known covariates by name (weather forecast, promotion; GET /v1/models/{name} "
    "lists what the model needs): `horizon` values for the steps ahead, with the history's "
    "values in `covariates`; or len(values) + horizon values, history then horizon. Holiday "
    'indicators ("holiday:US") are computed from the timestamps: do not send them'
)
FutureCovariates = dict[str, list[float | None]]


class ForecastRequest(_Levels):
    """One series: its recent history, at the model's frequency, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [_FORECAST_EXAMPLE, _FUTURE_FORECAST_EXAMPLE]}
    )

    timestamps: list[str] = Field(description="ISO-8601, increasing, one per value")
    values: list[float] = Field(description="target history, at least the model's lookback")
    covariates: dict[str, list[float]] | None = Field(
        default=None, description="past covariates by name, one value per timestamp"
    )
    future_covariates: FutureCovariates | None = Field(
        default=None, description=_FUTURE_DESCRIPTION
    )
    series_id: str | None = Field(
        default=None,
        description="the stored series this history belongs to: the forecast is logged and "
        "scored as the series' actuals are ingested (GET /v1/series/{id}/performance)",
    )

    @field_validator("series_id")
    @classmethod
    def _valid_series_id(cls, series_id: str | None) -> str | None:
        if series_id is not None:
            try:
                check_series_id(series_id)
            except StoreError as exc:
                raise ValueError(str(exc)) from None
        return series_id


class BatchSeries(_Request):
    """One series of a batch request."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [_BATCH_ITEM_EXAMPLE, _BATCH_FUTURE_ITEM_EXAMPLE]}
    )

    id: str = Field(max_length=200)
    timestamps: list[str] = Field(description="ISO-8601, increasing, one per value")
    values: list[float]
    covariates: dict[str, list[float]] | None = None
    future_covariates: FutureCovariates | None = Field(
        default=None, description=_FUTURE_DESCRIPTION
    )


class BatchForecastRequest(_Levels):
    """Many series forecast in one batched model call (each uses its last `lookback` points)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "series": [
                        _BATCH_ITEM_EXAMPLE,
                        {"id": "b", "timestamps": _HOURS, "values": [5, 6, 5, 7, 6, 8]},
                    ],
                    "horizon": 3,
                    "levels": [80],
                },
                # every item of a model with future covariates carries the horizon's values
                {"series": [_BATCH_FUTURE_ITEM_EXAMPLE], "horizon": 3, "levels": [80]},
            ]
        }
    )

    series: list[BatchSeries] = Field(min_length=1)


class ErrorBody(BaseModel):
    """Every error answer: what is wrong, the value and the fix; the request field at fault."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "horizon 5000 is above this service's cap of 2000; ask for fewer "
                    "steps (FORECAST_MAX_HORIZON sets the cap)",
                    "field": "horizon",
                }
            ]
        }
    )

    detail: str
    field: str | None = Field(description='"values[3]", "series[2].timestamps", "X-API-Key"')


class Interval(BaseModel):
    """Central prediction interval per horizon step."""

    lower: list[float]
    upper: list[float]


class ForecastResponse(BaseModel):
    """A multi-step forecast; `rolled` is true when the horizon exceeded the model's own."""

    model_config = ConfigDict(json_schema_extra={"examples": [_FORECAST_RESPONSE_EXAMPLE]})

    model: str
    version: str
    timestamps: list[str]
    mean: list[float]
    intervals: dict[str, Interval]
    rolled: bool


class SeriesForecast(BaseModel):
    """The forecast of one series of a batch."""

    id: str
    timestamps: list[str]
    mean: list[float]
    intervals: dict[str, Interval]


class BatchForecastResponse(BaseModel):
    """Forecasts in the order the series were sent."""

    model: str
    version: str
    forecasts: list[SeriesForecast]
    rolled: bool


class ModelInfo(BaseModel):
    """What is served under a name: the version, its metadata and its test scores."""

    name: str
    version: str
    alias: str | None = Field(description="the alias this version is served for, if any")
    family: str
    frequency: str
    lookback: int
    max_horizon: int
    target: str
    covariates: list[str]
    future_covariates: list[str] = Field(
        default_factory=list,
        description='covariates known ahead, in input order; "holiday:US"-style ones are '
        "computed by the service, the others are sent in `future_covariates`",
    )
    calendar: bool
    levels: list[int] = Field(description="interval levels calibrated on validation windows")
    metrics: dict[str, float] = Field(description="test_* metrics of the training run")
    run_id: str | None
    loaded_at: datetime


class ModelList(BaseModel):
    """Every model served by alias."""

    models: list[ModelInfo]


class Health(BaseModel):
    """Liveness: the process answers."""

    status: str = "ok"


class RegistryState(BaseModel):
    """The MLflow registry as the service sees it."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: loaded models keep serving; pinned versions not loaded yet and "
        "reloads answer 503 / registry_error until the registry answers again"
    )
    detail: str | None = None
    since: datetime | None = Field(default=None, description="when it became degraded (UTC)")


class Readiness(BaseModel):
    """Readiness: every configured model is loaded (HTTP 503 otherwise).

    A degraded registry does not make the service unready (what is loaded keeps serving); it
    shows in `registry`.
    """

    ready: bool
    loaded: dict[str, str] = Field(description="model name -> served version")
    missing: list[str] = Field(description="configured models not loaded yet")
    registry: RegistryState


class ReloadOutcome(BaseModel):
    """What one refresh did for one model."""

    name: str
    version: str | None = Field(description="served version after the refresh")
    previous: str | None
    changed: bool
    error: str | None = None


class ReloadResponse(BaseModel):
    """Result of POST /v1/admin/reload."""

    models: list[ReloadOutcome]
    registry_error: str | None = None


M = TypeVar("M", bound=BaseModel)

INLINE_BODY_BYTES = 256 * 1024  # bodies up to this size are parsed on the event loop (~0.5 ms)


async def read_json_body(request: Request, model: type[M]) -> M:
    """Parse and validate a request body in one pass with pydantic-core's JSON parser.

    For hot routes: FastAPI's own body handling runs `json.loads` and then validates the
    Python objects, about twice the work for a 20 kB forecast request. Errors are raised as
    FastAPI's RequestValidationError (locations under "body"), so they get the same 422
    `{"detail", "field"}` answer as any other route.
    """
    body = await request.body()
    try:
        if len(body) <= INLINE_BODY_BYTES:
            return model.model_validate_json(body)
        # A big body (up to millions of points) would hold the event loop, and every other
        # request of this worker, for the whole parse: parse it in a worker thread instead.
        return await anyio.to_thread.run_sync(model.model_validate_json, body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body read by `read_json_body` (required, JSON)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
