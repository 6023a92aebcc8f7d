"""Request and response bodies of the /v1/series routes (pydantic), with the examples in /docs.

Requests forbid unknown fields and non-finite numbers. Timestamps are ISO-8601; the store keeps
UTC: naive times are taken as UTC, times with an offset are converted. Response timestamps are
ISO-8601 UTC with their offset ("2024-03-01T00:00:00Z"), as `date-time` requires.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.schemas import FutureCovariates, _Levels
from training.store.schema import FREQUENCY_LENGTH
from training.store.timestamps import range_text
from training.store.validation import MAX_STEP

_HOURS: list[Any] = [f"2024-03-01T{h:02d}:00:00" for h in range(4)]


def _as_utc(value: datetime) -> datetime:
    """The store's naive UTC -> aware UTC, so that the JSON carries the offset ("Z")."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _all_as_utc(values: list[datetime]) -> list[datetime]:
    return [_as_utc(v) for v in values]  # one call per list, not per item: pages are long


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
UtcDatetimes = Annotated[list[datetime], AfterValidator(_all_as_utc)]

_SERIES_EXAMPLE: dict[str, Any] = {
    "frequency": "h",
    "target": "load_mw",
    "metadata": {"site": "substation-7", "unit": "MW"},
}
_INFO_EXAMPLE: dict[str, Any] = {
    "id": "substation-7",
    **_SERIES_EXAMPLE,
    "count": 8760,
    "first_timestamp": "2023-03-01T00:00:00Z",
    "last_timestamp": "2024-02-29T23:00:00Z",
    "created_at": "2024-03-01T00:05:12.123456Z",
    "updated_at": "2024-03-01T00:05:12.123456Z",
}
_INGEST_EXAMPLE: dict[str, Any] = {
    "timestamps": _HOURS,
    "values": [41.2, 40.8, 39.9, 40.5],
    "covariates": {"temperature": [3.1, 2.8, 2.6, 2.9]},
}
_INGEST_RESULT_EXAMPLE: dict[str, Any] = {
    "series_id": "substation-7",
    "inserted": 3,
    "updated": 1,
    "count": 8763,
    "last_timestamp": "2024-03-01T03:00:00Z",
}
_OBSERVATIONS_EXAMPLE: dict[str, Any] = {
    "series_id": "substation-7",
    "timestamps": [f"{stamp}Z" for stamp in _HOURS[:2]],
    "values": [41.2, 40.8],
    "covariates": {"temperature": [3.1, None]},
    "next_start": "2024-03-01T02:00:00Z",
}
_FORECAST_EXAMPLE: dict[str, Any] = {
    "model": "load-etth1",
    "horizon": 24,
    "levels": [80, 95],
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SeriesUpsert(_Request):
    """Create a series or replace its target and metadata (the frequency is fixed once it
    has observations)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SERIES_EXAMPLE]})

    frequency: str = Field(
        description='"h", "<n>h", "<n>min", "D", "B" (business days) or "W"; at most '
        f"{FREQUENCY_LENGTH} characters, and a step of at most {MAX_STEP.astype(int)} days"
    )
    target: str = Field(description="what the values measure, e.g. load_mw")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="free-form JSON object (at most 64 KiB); replaced"
    )


class SeriesInfoResponse(BaseModel):
    """A stored series and the span of its observations."""

    model_config = ConfigDict(json_schema_extra={"examples": [_INFO_EXAMPLE]})

    id: str
    frequency: str
    target: str
    metadata: dict[str, Any]
    count: int = Field(description="stored observations")
    first_timestamp: UtcDatetime | None = Field(description="earliest observation; null when none")
    last_timestamp: UtcDatetime | None = Field(description="latest observation; null when none")
    created_at: UtcDatetime
    updated_at: UtcDatetime = Field(description="last write of frequency, target or metadata")


class SeriesList(BaseModel):
    """Stored series in id order."""

    series: list[SeriesInfoResponse]


class ObservationBatch(_Request):
    """Observations of one series, oldest first, at the series' frequency with no gap inside
    the batch. A timestamp already stored has its value (and the covariates sent) replaced."""

    model_config = ConfigDict(json_schema_extra={"examples": [_INGEST_EXAMPLE]})

    timestamps: list[datetime] = Field(
        description=f"ISO-8601, strictly increasing, within {range_text()}"
    )
    values: list[float] = Field(description="one finite number per timestamp")
    covariates: dict[str, list[float]] | None = Field(
        default=None, description="optional covariates by name, one value per timestamp"
    )


class IngestResult(BaseModel):
    """What one batch did, and the series after it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_INGEST_RESULT_EXAMPLE]})

    series_id: str
    inserted: int = Field(description="observations at timestamps the series did not have")
    updated: int = Field(description="observations that replaced a stored one")
    count: int = Field(description="observations stored for the series now")
    last_timestamp: UtcDatetime | None = Field(description="latest stored observation now")


class ObservationPage(BaseModel):
    """Stored observations in time order; `next_start` is set when more lie in the range."""

    model_config = ConfigDict(json_schema_extra={"examples": [_OBSERVATIONS_EXAMPLE]})

    series_id: str
    timestamps: UtcDatetimes
    values: list[float]
    covariates: dict[str, list[float | None]] = Field(
        description="covariates by name; null where an observation has none"
    )
    next_start: UtcDatetime | None = Field(
        description="pass as `start` to read the next page; null when this page is the last"
    )


class SeriesForecastRequest(_Levels):
    """Forecast a stored series with a served model, from its latest `lookback` observations."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _FORECAST_EXAMPLE,
                {
                    **_FORECAST_EXAMPLE,  # 24 hours of a weather forecast ahead
                    "future_covariates": {"temp": [round(11.8 + 0.2 * h, 1) for h in range(24)]},
                },
            ]
        }
    )

    model: str = Field(description="served model name (GET /v1/models)")
    future_covariates: FutureCovariates | None = Field(
        default=None,
        description="future-known covariates by name, `horizon` values each (their history "
        "is read from the store's covariates); holiday indicators are computed, not sent",
    )
