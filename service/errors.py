"""Every error the service answers with, and the one place that maps them to HTTP.

Bodies always have the shape {"detail": str, "field": str | null}. User input never gets a
500: request validation errors become 422 with the offending field, our ValueError subclasses
carry their own status, and errors raised by models/ for bad input become 422.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import ConfigError, ForecastInputError

logger = logging.getLogger("service.errors")


class ServiceError(ValueError):
    """Base of the service's user-facing errors; `status_code` is the HTTP status sent back.

    Args:
        message: what is wrong, the value received and how to fix it.
        field: the request field at fault ("values", "series[3].timestamps"), when there is one.
    """

    status_code = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(ServiceError):
    """The request is well-formed JSON but its content breaks a rule of the model (422)."""

    status_code = 422


class ModelNotFoundError(ServiceError):
    """The model name or pinned version is not served or not registered (404)."""

    status_code = 404


class PayloadTooLargeError(ServiceError):
    """More series or points than the configured caps allow (413)."""

    status_code = 413


class UnsupportedMediaTypeError(ServiceError):
    """A request body that is not sent as JSON (415)."""

    status_code = 415


class BodyTooLargeError(StarletteHTTPException):
    """A body sent without Content-Length grew past the limit while it was read (413).

    An HTTPException, not a ServiceError: it is raised while FastAPI reads a route's body,
    and FastAPI passes only HTTPExceptions through from there (anything else becomes a 400).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(f"more than {limit}", limit))
        self.field = "body"


class BodyEncodingError(StarletteHTTPException):
    """A request body that is not UTF-8, found while it is read (422, field "body").

    JSON is exchanged as UTF-8 (RFC 8259); checked as the body streams in, so every route
    answers alike, whichever parser it uses. An HTTPException for the reason given above.
    """

    def __init__(self, offset: int, byte: int) -> None:
        super().__init__(
            422,
            f"the request body is not UTF-8: byte 0x{byte:02x} at offset {offset} does not "
            "decode; send the JSON encoded as UTF-8",
        )
        self.field = "body"


def too_large_message(size: str, limit: int) -> str:
    """The 413 text of a body above the limit."""
    return (
        f"the request body has {size} bytes, above this service's limit of {limit}; send only "
        "the last lookback points of each series, or split the request "
        "(FORECAST_MAX_BODY_BYTES sets the limit)"
    )


class MissingKeyError(ServiceError):
    """No X-API-Key header was sent to a protected route (401)."""

    status_code = 401


class ForbiddenKeyError(ServiceError):
    """The X-API-Key is unknown, or lacks the admin right the route needs (403)."""

    status_code = 403


class NotReadyError(ServiceError):
    """The model is known but not loaded yet, or the registry cannot be reached (503)."""

    status_code = 503


def error_body(detail: str, field: str | None = None) -> dict[str, str | None]:
    """The one JSON error shape."""
    return {"detail": detail, "field": field}


def _field_name(loc: Sequence[int | str]) -> str | None:
    """("body", "series", 2, "values", 5) -> "series[2].values[5]"; the "body" root is dropped."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return text.removeprefix(".") or None


_FIXES = {
    "missing": "add it to the request body",
    "extra_forbidden": "remove it; see the request schema at /docs",
    "finite_number": "send finite numbers only; fill or drop missing values (NaN, Infinity)",
    **dict.fromkeys(("float_parsing", "float_type"), "send a JSON number"),
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float"), "send a whole JSON number"),
    **dict.fromkeys(
        ("datetime_parsing", "datetime_from_date_parsing", "datetime_type"),
        "send ISO-8601 timestamps such as 2024-01-31T13:00:00",
    ),
    "json_invalid": "send a valid JSON document",
    "model_attributes_type": "send a JSON object with Content-Type: application/json",
    "dict_type": "send a JSON object",
    "list_type": "send a JSON array",
}


def describe_validation_error(error: dict[str, Any]) -> tuple[str, str | None]:
    """Turn one pydantic error into (detail, field) naming the field, the rule and the fix."""
    field = _field_name(error.get("loc", ()))
    kind = str(error.get("type", ""))
    where = field or "request body"
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "decode error")
        return f"request body is not valid JSON ({reason}); {_FIXES[kind]}", None
    if kind == "extra_forbidden":
        detail = f"unknown field {where!r}; {_FIXES[kind]}"
    elif kind == "missing":
        detail = f"{where} is required; {_FIXES[kind]}"
    else:
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        fix = _FIXES.get(kind)
        detail = f"{where}: {message}" + (f"; {fix}" if fix else "")
    return detail, field


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    detail, field = describe_validation_error(errors[0]) if errors else ("invalid request", None)
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem(s))"
    return JSONResponse(error_body(detail, field), status_code=422)


def service_error_response(exc: ServiceError) -> JSONResponse:
    """The answer to one of our errors: its status and body (a 401 names the auth scheme)."""
    headers = {"WWW-Authenticate": "APIKey"} if isinstance(exc, MissingKeyError) else None
    return JSONResponse(
        error_body(exc.message, exc.field), status_code=exc.status_code, headers=headers
    )


async def _on_service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return service_error_response(exc)


async def _on_model_input_error(_: Request, exc: Exception) -> JSONResponse:
    # models/ validated something the service's own checks did not catch: still the caller's
    # input, so 422, with the model's message (it names the argument and the fix).
    return JSONResponse(error_body(str(exc), None), status_code=422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's 405 names only the methods of the first route matching the path, so a path
    served by two routes (GET and PUT /v1/series/{id}) would advertise one of them. Each
    method is tried against the app's routes (a 405 is rare: the cost does not matter).
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    field = getattr(exc, "field", None)
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route; the API lives under /v1 (see /docs)"
    elif exc.status_code == 405:
        allowed = allowed_methods(request) or headers.get("Allow", "").split(", ")
        headers["Allow"] = ", ".join(allowed)
        detail = (
            f"method {request.method} is not allowed on {request.url.path}; use "
            f"{' or '.join(allowed)} (see /docs)"
        )
        field = "method"
    return JSONResponse(error_body(detail, field), status_code=exc.status_code, headers=headers)


class UnexpectedErrors:
    """ASGI middleware: any exception no handler mapped answers 500 with the error body.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes the
    connection under the client (and its other requests on it); here the exception stops, so
    the connection stays usable. Only an exception after the response started still
    propagates: nothing valid can be sent then.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = error_body("internal error; the service logged the details")
            await JSONResponse(body, status_code=500)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping above on `app` (UnexpectedErrors is added as a middleware)."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(ForecastInputError, _on_model_input_error)
    app.add_exception_handler(ConfigError, _on_model_input_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
