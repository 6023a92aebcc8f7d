"""Dependencies of the routes, as `Annotated` aliases: settings, model cache, metrics, auth.

All are `async def` on purpose: they are cheap and must not cost a threadpool hop per request.
Keys travel in the `X-API-Key` header; admin keys also grant read access.
"""

from __future__ import annotations

import hmac
from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from service.errors import ForbiddenKeyError, MissingKeyError
from service.metrics import ServiceMetrics
from service.registry import ModelCache
from service.settings import ServiceSettings

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="read key, or admin key for /v1/admin"
)


async def get_settings(request: Request) -> ServiceSettings:
    """The settings the app was created with."""
    return cast(ServiceSettings, request.app.state.settings)


async def get_cache(request: Request) -> ModelCache:
    """The app's model cache."""
    return cast(ModelCache, request.app.state.cache)


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's Prometheus metrics."""
    return cast(ServiceMetrics, request.app.state.metrics)


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def _matches(key: str, keys: tuple[SecretStr, ...]) -> bool:
    """Constant-time comparison against every configured key."""
    given = key.encode()
    found = False
    for secret in keys:
        found |= hmac.compare_digest(given, secret.get_secret_value().encode())
    return found


def check_key(key: str | None, settings: ServiceSettings, *, admin: bool) -> None:
    """Raise MissingKeyError (401) or ForbiddenKeyError (403) unless `key` may read (or, with
    `admin`, administer); a keyless development service lets everything through."""
    if not settings.auth_enabled:
        return  # development without keys (settings refuse this anywhere else)
    if not key:
        raise MissingKeyError("missing API key; send it in the X-API-Key header", "X-API-Key")
    if _matches(key, settings.admin_keys):
        return
    if admin:
        if _matches(key, settings.api_keys):
            raise ForbiddenKeyError(
                "this API key may only read; admin routes need a key from FORECAST_ADMIN_KEYS",
                "X-API-Key",
            )
    elif _matches(key, settings.api_keys):
        return
    raise ForbiddenKeyError("unknown API key in X-API-Key; ask for a valid key", "X-API-Key")


async def require_read(
    settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]
) -> None:
    """Allow read keys and admin keys."""
    check_key(key, settings, admin=False)


async def require_admin(
    settings: SettingsDep, key: Annotated[str | None, Security(api_key_header)]
) -> None:
    """Allow admin keys only."""
    check_key(key, settings, admin=True)


ReadAccess = Depends(require_read)
AdminAccess = Depends(require_admin)
