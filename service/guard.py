"""RequestGuard: what every request must pass before a byte of its body is read.

FastAPI reads and parses a route's body *before* it resolves the route's dependencies, so an
auth dependency alone lets anyone make the server parse 100 MB of JSON before the 401. This
ASGI middleware runs first, on the headers only:

1. auth (every route but the probes, the docs and the console's static files): no key -> 401,
   unknown key -> 403; the routes' own dependencies still decide read vs admin and document
   it in OpenAPI;
2. content type: a body must be JSON (`application/json`), else 415;
3. size: a Content-Length above the limit -> 413 at once; a body sent without one (chunked)
   is counted while it is read and stops with 413 at the limit;
4. encoding: the body is decoded as UTF-8 while it is read, and one that is not answers 422
   (field "body") on every route, whichever parser the route uses.

Answers are the service's one error shape, {"detail", "field"}.
"""

from __future__ import annotations

import codecs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.deps import check_key
from service.errors import (
    BodyEncodingError,
    BodyTooLargeError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
    service_error_response,
    too_large_message,
)
from service.settings import ServiceSettings

# The docs and the web console are public pages: they hold no data, and what they show comes
# from protected routes, called with the key the user gives them.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/ready", "/docs", "/openapi.json", "/", "/console"})
PUBLIC_PREFIXES = ("/docs-assets/", "/console/")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestGuard:
    """ASGI middleware: auth, JSON content type and the body limit (keys and limit from
    `settings`), before the body is read."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        try:
            self._check(scope, headers)
        except ServiceError as exc:
            await service_error_response(exc)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _check(self, scope: Scope, headers: dict[str, bytes]) -> None:
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        key = headers.get("x-api-key")
        check_key(None if key is None else key.decode("latin-1"), self.settings, admin=False)
        length = headers.get("content-length")
        chunked = b"chunked" in headers.get("transfer-encoding", b"").lower()
        has_body = chunked or (length is not None and length.strip() not in (b"", b"0"))
        if scope["method"] not in _BODY_METHODS or not has_body:
            return
        media = headers.get("content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if not (media == "application/json" or media.endswith("+json")):
            given = f"Content-Type {media!r}" if media else "no Content-Type"
            raise UnsupportedMediaTypeError(
                f"the request body was sent with {given}; send it as JSON with the header "
                "Content-Type: application/json",
                "Content-Type",
            )
        if length is not None and length.strip().isdigit() and int(length) > self.limit:
            raise PayloadTooLargeError(too_large_message(str(int(length)), self.limit), "body")

    def _counting(self, receive: Receive) -> Receive:
        limit, seen = self.limit, 0
        utf8 = codecs.getincrementaldecoder("utf-8")()  # a character may span two chunks

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                seen += len(chunk)
                if seen > limit:
                    raise BodyTooLargeError(limit)
                try:
                    utf8.decode(chunk, final=not message.get("more_body", False))
                except UnicodeDecodeError as exc:
                    # exc.object: the bytes held back from the last chunk, then this one
                    offset = seen - len(exc.object) + exc.start
                    raise BodyEncodingError(offset, exc.object[exc.start]) from None
            return message

        return counted
