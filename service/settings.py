"""Service settings, read from the environment (prefix FORECAST_) and built once in create_app().

Every variable, with its default:

    MLFLOW_TRACKING_URI          tracking and registry store (or FORECAST_TRACKING_URI; default:
                                 the embedded SQLite store `forecast train` uses)
    FORECAST_MODELS              comma-separated registered model names ("" = every registered
                                 model that has the alias)
    FORECAST_ALIAS               alias served for each model ("champion")
    FORECAST_API_KEYS            comma-separated read keys, sent as header X-API-Key
    FORECAST_ADMIN_KEYS          comma-separated admin keys (admin keys may also read)
    FORECAST_ENV                 "production" | "development"; only development may run keyless
    FORECAST_POLL_SECONDS        registry poll interval (30)
    FORECAST_STARTUP_WAIT_SECONDS how long start-up waits for the first load (30)
    FORECAST_MAX_HORIZON         largest horizon a request may ask for (2000)
    FORECAST_MAX_SERIES          most series in one batch request (10000)
    FORECAST_MAX_POINTS          most history points in one request, all series together (5000000)
    FORECAST_MAX_RESPONSE_POINTS most points in one forecast answer: series x horizon x (2 + 2 x
                                 levels), a timestamp, a mean and two bounds per level a step
                                 (5000000, about 100 MB of JSON)
    FORECAST_MAX_PINNED          most pinned (non-alias) versions kept loaded per service (8)
    FORECAST_MAX_BODY_BYTES      largest request body, enforced while reading (default: 48
                                 bytes per point of FORECAST_MAX_POINTS, plus 1 MiB)
    FORECAST_REGISTRY_TIMEOUT_SECONDS  a registry call unanswered this long marks the registry
                                 degraded: pinned loads and reloads stop waiting (1)
    FORECAST_PIN_WAIT_SECONDS    longest wait for a pinned version to load while the registry
                                 answers; then 503 "still loading", and the load goes on (10)
    FORECAST_NEGATIVE_CACHE_SECONDS  how long a failed pinned load is answered from memory (10)
    FORECAST_RELOAD_WAIT_SECONDS longest wait of POST /v1/admin/reload for its refresh (4)
    FORECAST_TORCH_THREADS       torch intra-op threads per forward pass (1: concurrent
                                 requests already use the cores; raise for big batches)
    FORECAST_REQUEST_THREADS     worker threads for sync routes and batched forward passes (8);
                                 single-series requests wait on the event loop, holding no
                                 thread, and share forward passes (service.batcher)
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from training.settings import DEFAULT_TRACKING_URI, resolve_tracking_uri

BYTES_PER_POINT = 48
S = TypeVar("S", bound=BaseSettings)


class ServiceSettings(BaseSettings):
    """Configuration of one service process. Unsafe combinations are refused at construction."""

    model_config = SettingsConfigDict(
        env_prefix="FORECAST_", extra="ignore", frozen=True, populate_by_name=True
    )

    env: Literal["production", "development"] = "production"
    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "FORECAST_TRACKING_URI", "tracking_uri"
        ),
    )
    models: Annotated[tuple[str, ...], NoDecode] = ()
    alias: str = "champion"
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    admin_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    poll_seconds: float = Field(default=30.0, gt=0)
    startup_wait_seconds: float = Field(default=30.0, ge=0)
    max_horizon: int = Field(default=2000, ge=1)
    max_series: int = Field(default=10_000, ge=1)
    max_points: int = Field(default=5_000_000, ge=1)
    max_response_points: int = Field(default=5_000_000, ge=1)
    max_pinned: int = Field(default=8, ge=0)
    max_body_bytes: int | None = Field(default=None, ge=1024)
    registry_timeout_seconds: float = Field(default=1.0, gt=0)
    pin_wait_seconds: float = Field(default=10.0, gt=0)
    negative_cache_seconds: float = Field(default=10.0, ge=0)
    reload_wait_seconds: float = Field(default=4.0, gt=0)
    torch_threads: int = Field(default=1, ge=1)
    request_threads: int = Field(default=8, ge=1)

    @field_validator("models", "api_keys", "admin_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        """Turn "a, b,,c" into ["a", "b", "c"]; lists pass through (constructor use)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tracking_uri")
    @classmethod
    def _absolute_uri(cls, value: str) -> str:
        return resolve_tracking_uri(value)

    @field_validator("alias")
    @classmethod
    def _alias_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("FORECAST_ALIAS is empty; set it to a registry alias such as champion")
        return value.strip()

    @model_validator(mode="after")
    def _refuse_keyless_production(self) -> ServiceSettings:
        if self.env != "development" and not self.api_keys and not self.admin_keys:
            raise ValueError(
                "no API keys configured (FORECAST_API_KEYS and FORECAST_ADMIN_KEYS are empty) "
                "with FORECAST_ENV=production; set FORECAST_API_KEYS (and FORECAST_ADMIN_KEYS), "
                "or FORECAST_ENV=development to run without authentication on 127.0.0.1"
            )
        return self

    @property
    def body_limit(self) -> int:
        """Largest request body in bytes: FORECAST_MAX_BODY_BYTES, or sized from the point cap
        (a point as JSON is a value and a timestamp string: under 48 bytes)."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_points * BYTES_PER_POINT + 1024 * 1024

    @property
    def auth_enabled(self) -> bool:
        """True when any key is configured; keyless is only possible in development."""
        return bool(self.api_keys or self.admin_keys)


class SettingsError(ValueError):
    """The environment does not describe a safe, valid service configuration."""


def load_settings(**overrides: object) -> ServiceSettings:
    """Build settings from the environment (plus explicit overrides), with readable errors.

    Raises:
        SettingsError: one line per bad variable, naming it and the fix; input values are
            left out of the message so keys and URIs with passwords never reach a log.
    """
    return build_settings(ServiceSettings, **overrides)


def build_settings(cls: type[S], **overrides: object) -> S:
    """`cls` from the environment plus `overrides`; errors as `load_settings` raises them."""
    from pydantic import ValidationError

    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            name = f"FORECAST_{where.upper()}: " if where else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}{message}")
        raise SettingsError("; ".join(lines)) from None
