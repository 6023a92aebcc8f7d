"""The OpenAPI document and /docs, true to what the service does.

- Every error response of every route carries the one error body, {"detail", "field"}
  (FastAPI's default 422 shape is not what the service answers); every protected route
  documents 401 and 403, every route with a body 413, 415 and 422, every route 500.
- Request examples are generated from a served model (its look-back, frequency, covariates and
  calibrated levels), so "Try it out" sends a request the model accepts.
- /docs loads Swagger UI from the `swagger-ui-bundle` package, served under /docs-assets: no
  CDN, so the page works offline.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from models.features import future_timestamps, season_length
from service.guard import PUBLIC_PATHS
from service.model_loading import LoadedModel
from service.schemas import ErrorBody
from training.data.known import supplied_columns

ASSETS = "/docs-assets"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_DESCRIPTIONS = {
    401: "missing X-API-Key",
    403: "unknown X-API-Key, or a read key on an admin route",
    404: "not found",
    413: "body above FORECAST_MAX_BODY_BYTES, or more series or points than the caps",
    415: "body not sent with Content-Type: application/json",
    422: "invalid input; `field` names it",
    500: "internal error (logged); the connection stays usable",
}


def install_docs(app: FastAPI) -> None:
    """Serve /docs from local assets and build the OpenAPI document described above."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = with_error_bodies(base)
        schema = copy.deepcopy(app.openapi_schema)
        cache = getattr(app.state, "cache", None)
        served = cache.served() if cache is not None else {}
        if served:
            add_examples(schema, served[sorted(served)[0]])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_error_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the error body on every error response of every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = {500}
            if path not in PUBLIC_PATHS:
                codes |= {401, 403}
            if "requestBody" in operation or method in ("post", "put", "patch"):
                codes |= {413, 415, 422}
            if "parameters" in operation:
                codes.add(422)
            for code in codes:
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                content = response.get("content", {}).get("application/json", {})
                ref = content.get("schema", {}).get("$ref", "")
                if not ref or ref.endswith("/HTTPValidationError"):
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def add_examples(schema: dict[str, Any], model: LoadedModel) -> None:
    """Request examples that `model` accepts: its look-back of points on its frequency."""
    single = example_request(model)
    per_series = ("timestamps", "values", "covariates", "future_covariates")
    batch = {
        "series": [{"id": "a", **{k: single[k] for k in per_series if k in single}}],
        **{k: single[k] for k in ("horizon", "levels")},
    }
    components = schema["components"]["schemas"]
    for name, example in (("ForecastRequest", single), ("BatchForecastRequest", batch)):
        if name in components:
            components[name]["examples"] = [example]
    paths = schema.get("paths", {})
    for path, example in (
        ("/v1/models/{name}/forecast", single),
        ("/v1/models/{name}/forecast/batch", batch),
    ):
        operation = paths.get(path, {}).get("post")
        if operation is None:
            continue
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            content["example"] = example
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "name":
                parameter["example"] = model.name


def example_request(model: LoadedModel) -> dict[str, Any]:
    """A single-series request for `model`: one look-back of a seasonal series, with the
    past covariates it reads and, for future covariates, their history (in `covariates`) and
    horizon values (holiday indicators are computed by the service and not sent)."""
    meta = model.meta
    lookback = meta.lookback
    start = np.array(["2024-01-01T00:00:00"], dtype="datetime64[s]")  # a Monday
    stamps = future_timestamps(start, meta.frequency, lookback)[0]  # [L]
    t = np.arange(lookback)  # [L]
    values = 100.0 + 10.0 * np.sin(2.0 * np.pi * t / season_length(meta.frequency))  # [L]
    levels = sorted(int(level) for level in meta.conformal)
    wanted = [level for level in (80, 95) if not levels or levels[0] <= level <= levels[-1]]
    horizon = min(3, meta.max_horizon)
    ahead = supplied_columns(meta.future_covariates)
    request: dict[str, Any] = {
        "timestamps": np.datetime_as_string(stamps, unit="s").tolist(),
        "values": [round(float(v), 3) for v in values],
    }
    covariates = {name: [0.0] * lookback for name in [*meta.covariates, *ahead]}
    if covariates:
        request["covariates"] = covariates
    if ahead:
        request["future_covariates"] = {name: [0.0] * horizon for name in ahead}
    return {**request, "horizon": horizon, "levels": wanted or levels[:1]}
