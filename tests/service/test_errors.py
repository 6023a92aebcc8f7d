"""Every bad-input rule answers 4xx with {"detail", "field"} naming the field and the fix;
auth guards every route but health and readiness; nothing ever answers NaN or 500."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.service.conftest import ADMIN, HOURLY, READ, STOCK, Store

URL = f"/v1/models/{HOURLY}/forecast"


def _post(client: TestClient, body: Any, url: str = URL) -> tuple[int, dict[str, Any]]:
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        url, headers={**READ, "Content-Type": "application/json"}, content=content
    )
    return response.status_code, json.loads(response.text, parse_constant=_no_constants)


def _no_constants(name: str) -> float:
    raise AssertionError(f"response holds the non-JSON constant {name}")


def test_every_error_has_the_one_shape(client: TestClient, store: Store) -> None:
    status, body = _post(client, store.hourly.body(horizon=0))
    assert status == 422
    assert set(body) == {"detail", "field"}


def _bad(store: Store) -> list[tuple[str, Any, int, str | None, str]]:
    h = store.hourly
    n = len(h.values)
    gap = h.timestamps[:10] + h.timestamps[11:]
    swapped = [*h.timestamps[:5], h.timestamps[6], h.timestamps[5], *h.timestamps[7:]]
    marked = json.dumps({**h.body(horizon=3), "values": [*h.values[:7], 12345.5, *h.values[8:]]})
    nan_values = marked.replace("12345.5", "NaN")
    inf_values = marked.replace("12345.5", "-Infinity")
    return [
        (
            "horizon zero",
            h.body(horizon=0),
            422,
            "horizon",
            "horizon: Input should be greater than or equal to 1",
        ),
        (
            "horizon above cap",
            h.body(horizon=501),
            422,
            "horizon",
            "horizon 501 is above this service's cap of 500; ask for fewer steps",
        ),
        (
            "too short",
            {"timestamps": h.timestamps[-10:], "values": h.values[-10:], "horizon": 3},
            422,
            "values",
            "values has 10 points but model 'svc-hourly' needs at least its lookback of 24; "
            "send the last 24 or more observations",
        ),
        (
            "NaN value",
            nan_values,
            422,
            "values[7]",
            "values[7]: Input should be a finite number; send finite numbers only",
        ),
        (
            "Infinity value",
            inf_values,
            422,
            "values[7]",
            "values[7]: Input should be a finite number; send finite numbers only",
        ),
        (
            "null value",
            {**h.body(horizon=3), "values": [None, *h.values[1:]]},
            422,
            "values[0]",
            "values[0]: Input should be a valid number",
        ),
        (
            "mismatched lengths",
            {**h.body(horizon=3), "values": h.values[:-1]},
            422,
            "timestamps",
            f"timestamps has {n} entries but values has {n - 1}; send exactly one timestamp per "
            "value",
        ),
        (
            "not increasing",
            {**h.body(horizon=3), "timestamps": swapped},
            422,
            "timestamps",
            f"timestamps[6] ({swapped[6]}) is not after timestamps[5] ({swapped[5]}); sort the "
            "history oldest first and drop duplicate timestamps",
        ),
        (
            "gap",
            {"timestamps": gap, "values": h.values[1:], "horizon": 3},
            422,
            "timestamps",
            f"timestamps[10] ({gap[10]} after {gap[9]}) is not on model 'svc-hourly'"
            "'s frequency 'h'; resample the history to that frequency and fill gaps",
        ),
        (
            "bad timestamp",
            {**h.body(horizon=3), "timestamps": ["yesterday", *h.timestamps[1:]]},
            422,
            "timestamps[0]",
            "send ISO-8601 timestamps such as 2024-01-31T13:00:00",
        ),
        (
            "unknown field",
            h.body(horizon=3, colour="red"),
            422,
            "colour",
            "unknown field 'colour'; remove it; see the request schema at /docs",
        ),
        (
            "missing field",
            {"timestamps": h.timestamps, "horizon": 3},
            422,
            "values",
            "values is required; add it to the request body",
        ),
        (
            "level out of range",
            h.body(horizon=3, levels=[100]),
            422,
            "levels[0]",
            "levels[0]: Input should be less than or equal to 99",
        ),
        (
            "level not calibrated",
            h.body(horizon=3, levels=[10]),
            422,
            "levels",
            "levels: 10 is outside the calibrated levels 50..99; ask for levels within that range",
        ),
        (
            "repeated level",
            h.body(horizon=3, levels=[80, 80]),
            422,
            "levels",
            "levels: levels [80, 80] repeat a value; list each level once",
        ),
        (
            "covariates the model lacks",
            h.body(horizon=3, covariates={"HUFL": h.values}),
            422,
            "covariates",
            "model 'svc-hourly' takes no covariates but covariates has ['HUFL']; remove them",
        ),
        ("invalid JSON", '{"values": [1, 2,', 422, None, "request body is not valid JSON"),
        (
            "unknown version",
            h.body(horizon=3, version="99"),
            404,
            "version",
            "version 99 of 'svc-hourly' is not registered",
        ),
        *(
            (
                f"non-canonical version {version!r}",
                h.body(horizon=3, version=version),
                422,
                "version",
                f"version {version!r} is not a registered version number; send it as ASCII "
                'digits without leading zeros, such as "3"',
            )
            for version in ("latest", "01", "0", "\u0662", "\uff12", "", " 1")
        ),
        (
            "version beyond the registry's integers",
            h.body(horizon=3, version="99999999999999999999999"),
            404,
            "version",
            "version 99999999999999999999999 of 'svc-hourly' is not registered",
        ),
        ("horizon true", h.body(horizon=True), 422, "horizon", "horizon: Input should be"),
        ("horizon as text", h.body(horizon="3"), 422, "horizon", "horizon: Input should be"),
        (
            "value as text",
            {**h.body(horizon=3), "values": ["1.5", *h.values[1:]]},
            422,
            "values[0]",
            "values[0]: Input should be a valid number",
        ),
        (
            "value beyond float32",
            {**h.body(horizon=3), "values": [*h.values[:40], 1e39, *h.values[41:]]},
            422,
            "values[40]",
            "value 1e+39 at values[40] exceeds the float32 range (+-3.403e+38) that the models "
            "compute in; rescale the series",
        ),
        (
            "1e308 is not NaN or inf",
            {**h.body(horizon=3), "values": [-1e308, *h.values[1:]]},
            422,
            "values[0]",
            "value -1e+308 at values[0] exceeds the float32 range",
        ),
    ]


def test_bad_inputs(make_client: Any, store: Store) -> None:
    """Each rule: status, field and pinned message text (one app with small caps)."""
    client = make_client(max_horizon=500, max_points=5000, max_series=3)
    failures = []
    for name, body, status, field, message in _bad(store):
        got_status, got = _post(client, body)
        ok = got_status == status and got["field"] == field and message in got["detail"]
        if not ok:
            failures.append(f"{name}: {got_status} {got}")
    assert not failures, "\n".join(failures)

    # caps on size answer 413
    one = {"id": "x", "timestamps": store.hourly.timestamps, "values": store.hourly.values}
    too_many = {"series": [{**one, "id": str(i)} for i in range(4)], "horizon": 2}
    status, body = _post(client, too_many, f"{URL}/batch")
    assert (status, body["field"]) == (413, "series")
    assert body["detail"] == (
        "the request holds 4 series, above the cap of 3; split it into smaller batches"
    )
    long = {"timestamps": store.hourly.timestamps * 120, "values": store.hourly.values * 120}
    status, body = _post(client, {**long, "horizon": 2})
    assert (status, body["field"]) == (413, "values")
    assert body["detail"].startswith("the request holds 5760 points, above the cap of 5000")


def test_batch_errors_name_the_series(client: TestClient, store: Store) -> None:
    h = store.hourly
    series = [
        {"id": "a", "timestamps": h.timestamps, "values": h.values},
        {"id": "b", "timestamps": h.timestamps[:5], "values": h.values[:5]},
    ]
    status, body = _post(client, {"series": series, "horizon": 2}, f"{URL}/batch")
    assert (status, body["field"]) == (422, "series[1].values")
    assert body["detail"].startswith("series[1].values has 5 points but model 'svc-hourly'")
    dup = [series[0], {**series[0]}]
    status, body = _post(client, {"series": dup, "horizon": 2}, f"{URL}/batch")
    assert (status, body["field"]) == (422, "series[1].id")
    status, body = _post(client, {"series": [], "horizon": 2}, f"{URL}/batch")
    assert (status, body["field"]) == (422, "series")


def test_weekend_stamp_is_off_business_day_frequency(client: TestClient, store: Store) -> None:
    s = store.stock
    stamps = [*s.timestamps[:-1], "2020-12-12T00:00:00"]  # a Saturday
    status, body = _post(
        client,
        {"timestamps": stamps, "values": s.values, "horizon": 2},
        f"/v1/models/{STOCK}/forecast",
    )
    assert (status, body["field"]) == (422, "timestamps")
    assert "is not on model 'svc-stock''s frequency 'B'" in body["detail"]


def test_unknown_model_is_404(client: TestClient, store: Store) -> None:
    status, body = _post(client, store.hourly.body(horizon=2), "/v1/models/nope/forecast")
    assert status == 404
    assert body == {
        "detail": "model 'nope' is not served; use one of svc-hourly, svc-stock (GET /v1/models)",
        "field": "name",
    }
    got = client.get("/v1/models/nope", headers=READ)
    assert got.status_code == 404 and got.json()["field"] == "name"
    got = client.get("/v1/nothing-here", headers=READ)
    assert got.status_code == 404
    assert got.json()["detail"] == "no such route; the API lives under /v1 (see /docs)"


def _protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI schema but the two probes."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if path in ("/v1/health", "/v1/ready"):
            continue
        routes.extend((method.upper(), path.replace("{name}", HOURLY)) for method in operations)
    return routes


def test_auth_on_every_route_but_health(client: TestClient, app: FastAPI) -> None:
    routes = _protected_routes(app)
    # models x3 (list, one, versions), forecast x2, series x6 (list, put, get, observations
    # x2, forecast), live accuracy x3 (model and series performance, logged forecasts),
    # reload, metrics
    assert len(routes) == 16, sorted(routes)
    for method, path in routes:
        missing = client.request(method, path)
        assert missing.status_code == 401, (method, path)
        assert missing.json() == {
            "detail": "missing API key; send it in the X-API-Key header",
            "field": "X-API-Key",
        }
        wrong = client.request(method, path, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 403, (method, path)
        assert wrong.json()["detail"] == "unknown API key in X-API-Key; ask for a valid key"
    assert client.get("/v1/health").status_code == 200
    assert client.get("/v1/ready").status_code == 200


def test_admin_route_needs_an_admin_key(client: TestClient) -> None:
    read = client.post("/v1/admin/reload", headers=READ)
    assert read.status_code == 403
    assert read.json()["detail"] == (
        "this API key may only read; admin routes need a key from FORECAST_ADMIN_KEYS"
    )
    admin = client.post("/v1/admin/reload", headers=ADMIN)
    assert admin.status_code == 200
    assert {m["name"]: m["changed"] for m in admin.json()["models"]} == {
        HOURLY: False,
        STOCK: False,
    }
    # admin keys may also read
    assert client.get("/v1/models", headers=ADMIN).status_code == 200
