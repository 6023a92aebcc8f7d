"""The /v1/series routes on the real app: a real SQLite series store in a temp dir, the real
MLflow store and tiny models of conftest, real HTTP through TestClient.

Covers create/update, ingestion (idempotent re-post, counts, read-back = write), every bad
payload with its status, field and message and nothing written, paging, auth on every route,
an unreachable or busy database (503), and forecasts from stored history that equal forecasts
through POST /v1/models/{name}/forecast on the same history.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.main import create_app
from service.store_deps import StoreHandle, StoreSettings
from tests.service.conftest import (
    ADMIN,
    HORIZON,
    HOURLY,
    LOOKBACK,
    READ,
    STOCK,
    History,
    Store,
    with_series_store,
)

MAX_BATCH = 60
PAGE = 30


@pytest.fixture(scope="module")
def series_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("series") / "series.db"


@pytest.fixture(scope="module")
def series_app(store: Store, series_db: Path) -> Iterator[FastAPI]:
    """The service with the series routes on a fresh SQLite series store, started once."""
    application = create_app(store.settings())
    url = f"sqlite:///{series_db}"
    options = {"ingest_max_batch": MAX_BATCH, "read_max_points": PAGE}
    with with_series_store(application, url, database_busy_timeout=0.2, **options):
        yield application


@pytest.fixture
def api(series_app: FastAPI) -> TestClient:
    return TestClient(series_app)


def _create(api: TestClient, series_id: str, frequency: str = "h") -> None:
    response = api.put(
        f"/v1/series/{series_id}", headers=ADMIN, json={"frequency": frequency, "target": "OT"}
    )
    assert response.status_code == 201, response.text


def _seed(api: TestClient, series_id: str, history: History, frequency: str = "h") -> None:
    _create(api, series_id, frequency)
    response = api.post(
        f"/v1/series/{series_id}/observations",
        headers=ADMIN,
        json={"timestamps": history.timestamps, "values": history.values},
    )
    assert response.status_code == 200, response.text


def _count(api: TestClient, series_id: str) -> int:
    response = api.get(f"/v1/series/{series_id}", headers=READ)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


# ---------------------------------------------------------------- series metadata


def test_put_creates_then_updates(api: TestClient) -> None:
    body = {"frequency": "h", "target": "OT", "metadata": {"site": "etth1", "unit": "C"}}
    created = api.put("/v1/series/meta-a", headers=ADMIN, json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/series/meta-a"
    first = created.json()
    assert {k: first[k] for k in ("id", "frequency", "target", "metadata", "count")} == {
        "id": "meta-a",
        "frequency": "h",
        "target": "OT",
        "metadata": {"site": "etth1", "unit": "C"},
        "count": 0,
    }
    assert first["first_timestamp"] is None and first["last_timestamp"] is None

    updated = api.put(
        "/v1/series/meta-a", headers=ADMIN, json={**body, "metadata": {"unit": "degC"}}
    )
    assert updated.status_code == 200, updated.text
    second = updated.json()
    assert second["metadata"] == {"unit": "degC"}
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]
    assert api.get("/v1/series/meta-a", headers=READ).json() == second


def test_bad_series_payloads_write_nothing(api: TestClient, store: Store) -> None:
    cases: list[tuple[str, str, Any, int, str | None, str]] = [
        (
            "bad frequency",
            "meta-bad",
            {"frequency": "fortnightly", "target": "OT"},
            422,
            "frequency",
            "frequency: ",
        ),
        (
            "bad id",
            "bad%20id",
            {"frequency": "h", "target": "OT"},
            422,
            "series_id",
            "series id 'bad id' is not valid: use 1-128 letters, digits, '.', '_', ':' or '-'",
        ),
        (
            "empty target",
            "meta-bad",
            {"frequency": "h", "target": " "},
            422,
            "target",
            "target must be a non-empty name of at most 200 printable characters, got ' '",
        ),
        (
            "unknown field",
            "meta-bad",
            {"frequency": "h", "target": "OT", "unit": "MW"},
            422,
            "unit",
            "unknown field 'unit'; remove it",
        ),
        (
            "NaN in metadata",
            "meta-bad",
            '{"frequency": "h", "target": "OT", "metadata": {"x": NaN}}',
            422,
            "metadata",
            "metadata cannot be stored as JSON",
        ),
    ]
    failures = []
    for name, series_id, body, status, field, message in cases:
        content = body if isinstance(body, str) else json.dumps(body)
        response = api.put(
            f"/v1/series/{series_id}",
            headers={**ADMIN, "Content-Type": "application/json"},
            content=content,
        )
        got = response.json()
        if (response.status_code, got["field"]) != (status, field) or message not in got["detail"]:
            failures.append(f"{name}: {response.status_code} {got}")
    assert not failures, "\n".join(failures)
    missing = api.get("/v1/series/meta-bad", headers=READ)
    assert missing.status_code == 404
    assert missing.json() == {
        "detail": "series 'meta-bad' does not exist. Fix: create it first "
        "(SeriesStore.upsert_series, PUT /v1/series/{id}, or forecast load-series)",
        "field": "series_id",
    }


def test_frequency_is_fixed_once_there_are_observations(api: TestClient, store: Store) -> None:
    _seed(api, "freq-a", store.hourly)
    response = api.put("/v1/series/freq-a", headers=ADMIN, json={"frequency": "D", "target": "OT"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "series 'freq-a' has 48 observations at frequency 'h'; frequency cannot "
        "change to 'D'. Fix: create a new series id",
        "field": "frequency",
    }
    assert api.get("/v1/series/freq-a", headers=READ).json()["frequency"] == "h"


# ---------------------------------------------------------------- observations


def utc(stamp: str) -> str:
    """A naive UTC stamp as the series routes answer it: with its offset."""
    return f"{stamp}Z"


def utcs(stamps: list[str]) -> list[str]:
    return [utc(stamp) for stamp in stamps]


def test_ingest_is_idempotent_and_reads_back(api: TestClient, store: Store) -> None:
    h = store.hourly
    _create(api, "obs-a")
    url = "/v1/series/obs-a/observations"
    batch = {"timestamps": h.timestamps, "values": h.values}
    first = api.post(url, headers=ADMIN, json=batch)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "series_id": "obs-a",
        "inserted": 48,
        "updated": 0,
        "count": 48,
        "last_timestamp": utc(h.timestamps[-1]),
    }
    again = api.post(url, headers=ADMIN, json=batch)
    assert again.json() == {**first.json(), "inserted": 0, "updated": 48}

    # overlap: the last 10 again (changed) plus 5 new hours
    last = np.datetime64(h.timestamps[-1])
    new = [str(last + np.timedelta64(i, "h")) for i in range(1, 6)]
    overlap = {"timestamps": h.timestamps[-10:] + new, "values": [1.5] * 15}
    third = api.post(url, headers=ADMIN, json=overlap)
    assert third.json() == {
        "series_id": "obs-a",
        "inserted": 5,
        "updated": 10,
        "count": 53,
        "last_timestamp": utc(new[-1]),
    }
    info = api.get("/v1/series/obs-a", headers=READ).json()
    assert (info["count"], info["first_timestamp"], info["last_timestamp"]) == (
        53,
        utc(h.timestamps[0]),
        utc(new[-1]),
    )

    # read-back equals write, across pages of PAGE observations
    stamps: list[str] = []
    values: list[float] = []
    start: str | None = None
    while True:
        params = {} if start is None else {"start": start}
        page = api.get(url, headers=READ, params=params).json()
        assert len(page["values"]) <= PAGE
        stamps += page["timestamps"]
        values += page["values"]
        start = page["next_start"]
        if start is None:
            break
    assert stamps == utcs(h.timestamps + new)
    assert values == h.values[:-10] + [1.5] * 15


def test_covariates_and_time_zones(api: TestClient) -> None:
    _create(api, "cov-a")
    body = {
        "timestamps": ["2024-03-01T01:00:00+01:00", "2024-03-01T01:00:00Z"],
        "values": [1.0, 2.0],
        "covariates": {"temp": [3.5, 4.5]},
    }
    response = api.post("/v1/series/cov-a/observations", headers=ADMIN, json=body)
    assert response.status_code == 200, response.text
    # a second batch without covariates keeps the stored ones; a new stamp has none
    body = {"timestamps": ["2024-03-01T01:00:00", "2024-03-01T02:00:00"], "values": [5.0, 6.0]}
    assert api.post("/v1/series/cov-a/observations", headers=ADMIN, json=body).status_code == 200
    page = api.get("/v1/series/cov-a/observations", headers=READ).json()
    assert page == {
        "series_id": "cov-a",
        "timestamps": ["2024-03-01T00:00:00Z", "2024-03-01T01:00:00Z", "2024-03-01T02:00:00Z"],
        "values": [1.0, 5.0, 6.0],
        "covariates": {"temp": [3.5, 4.5, None]},
        "next_start": None,
    }


def _bad_batches(h: History) -> list[tuple[str, Any, int, str | None, str]]:
    swapped = [*h.timestamps[:5], h.timestamps[6], h.timestamps[5], *h.timestamps[7:]]
    gap = h.timestamps[:10] + h.timestamps[11:]
    ok = {"timestamps": h.timestamps, "values": h.values}
    nan = json.dumps({**ok, "values": [*h.values[:7], 12345.5, *h.values[8:]]})
    return [
        (
            "mismatched lengths",
            {**ok, "values": h.values[:-1]},
            422,
            "timestamps",
            "timestamps has 48 entries but values has 47. Fix: send exactly one value per "
            "timestamp",
        ),
        ("empty", {"timestamps": [], "values": []}, 422, "values", "values is empty"),
        (
            "NaN value",
            nan.replace("12345.5", "NaN"),
            422,
            "values[7]",
            "values[7]: Input should be a finite number; send finite numbers only",
        ),
        (
            "not increasing",
            {**ok, "timestamps": swapped},
            422,
            "timestamps[6]",
            f"timestamps[6] ({swapped[6]}) is not after timestamps[5] ({swapped[5]}); a batch "
            "must be strictly increasing. Fix: sort the batch and drop duplicate timestamps",
        ),
        (
            "gap",
            {"timestamps": gap, "values": h.values[1:]},
            422,
            "timestamps[10]",
            f"timestamps[10] ({gap[10]}) is not one step of 'h' after timestamps[9] ({gap[9]})",
        ),
        (
            "off the grid",
            {"timestamps": ["2024-01-01T00:30:00"], "values": [1.0]},
            422,
            "timestamps[0]",
            "timestamps[0] (2024-01-01T00:30:00) is not on the 'h' grid of series 'bad-a'",
        ),
        (
            "bad covariate length",
            {**ok, "covariates": {"temp": [1.0]}},
            422,
            "covariates.temp",
            "covariates.temp has 1 entries but values has 48",
        ),
        (
            "bad timestamp",
            {**ok, "timestamps": ["soon", *h.timestamps[1:]]},
            422,
            "timestamps[0]",
            "send ISO-8601 timestamps",
        ),
        (
            "unknown field",
            {**ok, "unit": "MW"},
            422,
            "unit",
            "unknown field 'unit'; remove it; see the request schema at /docs",
        ),
        (
            "too many",
            {"timestamps": h.timestamps * 2, "values": h.values * 2},
            413,
            "values",
            "the batch holds 96 observations, above the cap of 60; split it into consecutive "
            "batches (FORECAST_INGEST_MAX_BATCH sets the cap)",
        ),
    ]


def test_bad_batches_are_rejected_and_write_nothing(api: TestClient, store: Store) -> None:
    h = store.hourly
    _seed(api, "bad-a", History(h.timestamps[:3], h.values[:3]))
    failures = []
    for name, body, status, field, message in _bad_batches(h):
        content = body if isinstance(body, str) else json.dumps(body)
        response = api.post(
            "/v1/series/bad-a/observations",
            headers={**ADMIN, "Content-Type": "application/json"},
            content=content,
        )
        got = response.json()
        if (response.status_code, got["field"]) != (status, field) or message not in got["detail"]:
            failures.append(f"{name}: {response.status_code} {got}")
    assert not failures, "\n".join(failures)
    page = api.get("/v1/series/bad-a/observations", headers=READ).json()
    assert (page["timestamps"], page["values"]) == (utcs(h.timestamps[:3]), h.values[:3])

    unknown = api.post(
        "/v1/series/nobody/observations", headers=ADMIN, json={"timestamps": [], "values": []}
    )
    assert (unknown.status_code, unknown.json()["field"]) == (422, "values")
    unknown = api.post(
        "/v1/series/nobody/observations",
        headers=ADMIN,
        json={"timestamps": h.timestamps[:2], "values": h.values[:2]},
    )
    assert (unknown.status_code, unknown.json()["field"]) == (404, "series_id")


def test_reading_is_bounded_and_checked(api: TestClient, store: Store) -> None:
    h = store.hourly
    _seed(api, "read-a", h)
    url = "/v1/series/read-a/observations"
    page = api.get(url, headers=READ, params={"limit": 5, "start": h.timestamps[10]}).json()
    assert page["timestamps"] == utcs(h.timestamps[10:15])
    assert page["next_start"] == utc(h.timestamps[15])
    window = {"start": h.timestamps[3], "end": h.timestamps[6]}
    assert api.get(url, headers=READ, params=window).json()["values"] == h.values[3:7]
    assert api.get(url, headers=READ).json()["timestamps"] == utcs(h.timestamps[:PAGE])

    too_big = api.get(url, headers=READ, params={"limit": PAGE + 1})
    assert (too_big.status_code, too_big.json()) == (
        422,
        {
            "detail": f"limit {PAGE + 1} is above this service's page size of {PAGE}; ask for "
            f"at most {PAGE} and read on from next_start (FORECAST_READ_MAX_POINTS sets the "
            "size)",
            "field": "limit",
        },
    )
    reversed_ = api.get(
        url, headers=READ, params={"start": h.timestamps[6], "end": h.timestamps[3]}
    )
    assert (reversed_.status_code, reversed_.json()["field"]) == (422, "start")
    assert reversed_.json()["detail"].startswith(f"start {h.timestamps[6]} is after end")
    assert api.get(url, headers=READ, params={"limit": 0}).status_code == 422
    assert api.get("/v1/series/nobody/observations", headers=READ).status_code == 404


# ---------------------------------------------------------------- auth


def test_auth_on_every_route(api: TestClient, store: Store) -> None:
    _seed(api, "auth-a", store.hourly)
    batch = {"timestamps": store.hourly.timestamps[:1], "values": [1.0]}
    routes: list[tuple[str, str, Any, bool]] = [
        ("PUT", "/v1/series/auth-a", {"frequency": "h", "target": "OT"}, True),
        ("POST", "/v1/series/auth-a/observations", batch, True),
        ("GET", "/v1/series/auth-a", None, False),
        ("GET", "/v1/series/auth-a/observations", None, False),
        ("POST", "/v1/series/auth-a/forecast", {"model": HOURLY, "horizon": 2}, False),
    ]
    for method, url, body, write in routes:
        none = api.request(method, url, json=body)
        assert none.status_code == 401, (method, url)
        assert none.json()["detail"] == "missing API key; send it in the X-API-Key header"
        wrong = api.request(method, url, json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 403, (method, url)
        read = api.request(method, url, json=body, headers=READ)
        if write:
            assert read.status_code == 403, (method, url)
            assert read.json()["detail"].startswith("this API key may only read")
        else:
            assert read.status_code == 200, (method, url, read.text)
        assert api.request(method, url, json=body, headers=ADMIN).status_code in (200, 201)
    # nothing the refused writes sent reached the store
    assert _count(api, "auth-a") == len(store.hourly.values)


# ---------------------------------------------------------------- forecast from the store


@pytest.mark.parametrize(
    ("model", "frequency", "attr"), [(HOURLY, "h", "hourly"), (STOCK, "B", "stock")]
)
def test_forecast_from_store_equals_model_endpoint(
    api: TestClient, store: Store, model: str, frequency: str, attr: str
) -> None:
    history: History = getattr(store, attr)
    series_id = f"fc-{attr}"
    _seed(api, series_id, history, frequency)
    stored = api.post(
        f"/v1/series/{series_id}/forecast",
        headers=READ,
        json={"model": model, "horizon": HORIZON + 2, "levels": [80, 95]},
    )
    assert stored.status_code == 200, stored.text
    direct = api.post(
        f"/v1/models/{model}/forecast",
        headers=READ,
        json=history.body(horizon=HORIZON + 2, levels=[80, 95]),
    )
    assert direct.status_code == 200, direct.text
    assert stored.json() == direct.json()
    assert stored.json()["version"] == "1"
    assert stored.json()["rolled"] is True


def test_forecast_rejects_unusable_history(api: TestClient, store: Store) -> None:
    h = store.hourly
    _seed(api, "fc-short", History(h.timestamps[:10], h.values[:10]))
    # two unbroken runs with a 5-hour hole: each batch is regular, the history is not
    _seed(api, "fc-gap", History(h.timestamps[:20], h.values[:20]))
    later = {"timestamps": h.timestamps[25:], "values": h.values[25:]}
    assert api.post("/v1/series/fc-gap/observations", headers=ADMIN, json=later).status_code == 200
    _seed(api, "fc-rej", h)

    def post(series_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
        response = api.post(f"/v1/series/{series_id}/forecast", headers=READ, json=body)
        return response.status_code, response.json()

    assert post("fc-short", model=HOURLY, horizon=3) == (
        422,
        {
            "detail": f"series 'fc-short' has 10 stored observations but model '{HOURLY}' needs "
            f"its lookback of {LOOKBACK}; ingest at least {LOOKBACK - 10} more with "
            "POST /v1/series/fc-short/observations",
            "field": "series_id",
        },
    )
    assert post("fc-gap", model=HOURLY, horizon=3) == (
        422,
        {
            "detail": f"the latest {LOOKBACK} observations of series 'fc-gap' are not regular "
            f"at 'h': the first gap is between {h.timestamps[19]} and {h.timestamps[25]}; "
            "ingest the missing observations in between with "
            "POST /v1/series/fc-gap/observations",
            "field": "series_id",
        },
    )
    assert post("fc-rej", model=STOCK, horizon=3) == (
        422,
        {
            "detail": f"series 'fc-rej' is at frequency 'h' but model '{STOCK}' forecasts "
            "at 'B'; pick a model trained at 'h' (GET /v1/models)",
            "field": "model",
        },
    )
    status, body = post("fc-rej", model="no-such-model", horizon=3)
    assert (status, body["field"]) == (404, "model")
    assert body["detail"].startswith("model 'no-such-model' is not served; use one of")
    status, body = post("fc-rej", model=HOURLY, horizon=3, version="99")
    assert (status, body["field"]) == (404, "version")
    status, body = post("nobody", model=HOURLY, horizon=3)
    assert (status, body["field"]) == (404, "series_id")
    status, body = post("fc-rej", model=HOURLY, horizon=0)
    assert (status, body["field"]) == (422, "horizon")
    status, body = post("fc-rej", model=HOURLY, horizon=3, levels=[10])
    assert (status, body["field"]) == (422, "levels")
    status, body = post("fc-rej", model=HOURLY, horizon=3, values=[1.0])
    assert (status, body) == (
        422,
        {
            "detail": "unknown field 'values'; remove it; see the request schema at /docs",
            "field": "values",
        },
    )


# ---------------------------------------------------------------- database trouble


def test_busy_database_answers_503_and_writes_nothing(
    api: TestClient, store: Store, series_db: Path
) -> None:
    _create(api, "busy-a")
    blocker = sqlite3.connect(series_db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock past the 0.2 s busy timeout
        batch = {"timestamps": store.hourly.timestamps[:2], "values": [1.0, 2.0]}
        response = api.post("/v1/series/busy-a/observations", headers=ADMIN, json=batch)
        assert response.status_code == 503
        assert response.json() == {
            "detail": "the series store database is unreachable or busy; nothing was written. "
            "Retry in a few seconds",
            "field": None,
        }
        assert _count(api, "busy-a") == 0  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert api.post("/v1/series/busy-a/observations", headers=ADMIN, json=batch).status_code == 200


def test_store_that_cannot_open_answers_503(
    series_app: FastAPI,
    api: TestClient,
    store: Store,
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    handle = StoreHandle(StoreSettings(database_url=SecretStr(f"sqlite:///{blocked}/series.db")))
    assert handle.try_open() is False
    working = series_app.state.series_store
    series_app.state.series_store = handle
    try:
        response = api.get("/v1/series/anything", headers=READ)
        assert response.status_code == 503
        assert response.json()["detail"].startswith("the series store is unavailable")
        # model forecasts do not need the store
        assert api.get("/v1/health").status_code == 200
        body = store.hourly.body(horizon=2)
        ok = api.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body)
        assert ok.status_code == 200, ok.text
    finally:
        series_app.state.series_store = working


def test_openapi_documents_series_routes_with_examples(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    assert {
        "/v1/series/{series_id}",
        "/v1/series/{series_id}/observations",
        "/v1/series/{series_id}/forecast",
    } <= set(schema["paths"])
    components = schema["components"]["schemas"]
    for name in ("SeriesUpsert", "ObservationBatch", "SeriesForecastRequest", "IngestResult"):
        assert components[name]["examples"], name
