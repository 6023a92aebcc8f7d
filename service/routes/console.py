"""The web console: three static files (service/console/) served at /console/; / sends there.

The page holds no data and needs no key (service.guard lets these paths through): everything
it shows comes from the /v1 routes, called with the read key the user types into it, sent as
X-API-Key and kept in the tab's sessionStorage. It is served with a strict
Content-Security-Policy: scripts, styles and requests from this origin only, so nothing is
fetched from a CDN and no injected inline script could run.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from service.errors import ServiceError

CONSOLE = "/console"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


class AssetNotFoundError(ServiceError):
    """A console path that is not one of its files."""

    status_code = 404


@cache
def _read(name: str) -> bytes:
    """One file of the console, read once from the installed package."""
    return (files("service.console") / name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_read(name), media_type=ASSETS[name], headers=HEADERS)


@router.get("/")
@router.get(CONSOLE)
async def console_redirect() -> RedirectResponse:
    """/ and /console -> /console/: the console is the home page, and its relative asset
    paths resolve only under the trailing slash."""
    return RedirectResponse(f"{CONSOLE}/")


@router.get(f"{CONSOLE}/")
async def console_page() -> Response:
    """The console's page."""
    return _serve("index.html")


@router.get(f"{CONSOLE}/{{asset}}")
async def console_asset(asset: str) -> Response:
    """The console's stylesheet and script; nothing else under /console/ exists."""
    if asset not in ASSETS:
        raise AssetNotFoundError(f"no console file {asset!r}; the console is at {CONSOLE}/", "path")
    return _serve(asset)
