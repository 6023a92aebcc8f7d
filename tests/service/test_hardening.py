"""Issue 17 findings on the HTTP surface, one test each (each failed on the code before it):

- a 405 names every method served at the path in `Allow`, with the error body;
- a body that is not UTF-8 answers the same 422 naming the body on every route;
- the answer's size is capped (series x horizon x levels) before the model runs: 413;
- the series routes' datetimes carry their UTC offset, as `date-time` requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.main import create_app
from tests.service.conftest import ADMIN, HOURLY, READ, Store, with_series_store


@pytest.fixture(scope="module")
def hard_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The service with a fresh SQLite series store and a small answer cap (600 points)."""
    application = create_app(store.settings(max_response_points=600))
    db: Path = tmp_path_factory.mktemp("hardening") / "series.db"
    with with_series_store(application, f"sqlite:///{db}"):
        yield application


@pytest.fixture
def api(hard_app: FastAPI) -> TestClient:
    return TestClient(hard_app)


def test_405_allows_every_method_of_the_path(api: TestClient) -> None:
    # GET and PUT /v1/series/{id} are two routes: Starlette named only the first one.
    response = api.patch("/v1/series/any", headers=ADMIN, json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, PUT"
    assert response.json() == {
        "detail": "method PATCH is not allowed on /v1/series/any; use GET or PUT (see /docs)",
        "field": "method",
    }
    response = api.get(f"/v1/models/{HOURLY}/forecast", headers=READ)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert response.json()["field"] == "method"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v1/models/{HOURLY}/forecast"),  # parsed by pydantic-core (read_json_body)
        ("POST", f"/v1/models/{HOURLY}/forecast/batch"),  # parsed by FastAPI
        ("PUT", "/v1/series/enc-a"),
        ("POST", "/v1/series/enc-a/observations"),
        ("POST", "/v1/series/enc-a/forecast"),
    ],
)
def test_a_body_that_is_not_utf8_answers_422_naming_the_body(
    api: TestClient, method: str, path: str
) -> None:
    body = b'{"target": "caf\xe9"}'  # Latin-1, not UTF-8
    response = api.request(
        method, path, headers={**ADMIN, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": "the request body is not UTF-8: byte 0xe9 at offset 15 does not decode; "
        "send the JSON encoded as UTF-8",
        "field": "body",
    }


def test_utf8_split_across_chunks_is_accepted(api: TestClient) -> None:
    # "é" is two bytes; sent in two chunks, the first one ends inside it.
    body = '{"frequency": "h", "target": "café"}'.encode()
    cut = body.index("é".encode()) + 1
    chunks = iter([body[:cut], body[cut:]])
    response = api.put(
        "/v1/series/enc-b",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=chunks,
    )
    assert response.status_code == 201, response.text
    assert response.json()["target"] == "café"


def _no_model_call(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    model = app.state.cache.get(HOURLY, None)

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the model ran for a request above the answer cap")

    monkeypatch.setattr(model.forecaster, "predict", refuse)


def test_answers_above_the_response_cap_are_413_before_the_model_runs(
    api: TestClient, hard_app: FastAPI, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_model_call(hard_app, monkeypatch)
    h = store.hourly
    # one series, horizon 6, levels 80 and 95: 6 x (2 + 2 x 2) = 36 points: fits 600
    # 101 series: 101 x 36 = 3,636 points: above
    url = f"/v1/models/{HOURLY}/forecast"
    series = [{"id": f"s{i}", **h.body()} for i in range(101)]
    batch = api.post(f"{url}/batch", headers=READ, json={"series": series, "horizon": 6})
    assert batch.status_code == 413, batch.text
    assert batch.json() == {
        "detail": "the answer would hold 3636 points (101 series x horizon 6 x (2 + 2 x 2 "
        "levels)), above the cap of 600; ask for at most 100 series x steps in all: a shorter "
        "horizon, fewer levels, or fewer series per request (FORECAST_MAX_RESPONSE_POINTS "
        "sets the cap)",
        "field": "series",
    }
    single = api.post(url, headers=READ, json=h.body(horizon=101))
    assert single.status_code == 413, single.text
    assert single.json()["field"] == "horizon"
    assert "the answer would hold 606 points (1 series x horizon 101" in single.json()["detail"]


def test_series_datetimes_carry_their_utc_offset(api: TestClient, store: Store) -> None:
    h = store.hourly
    created = api.put("/v1/series/utc-a", headers=ADMIN, json={"frequency": "h", "target": "y"})
    assert created.status_code == 201, created.text
    ingest = {"timestamps": h.timestamps[:3], "values": h.values[:3]}
    posted = api.post("/v1/series/utc-a/observations", headers=ADMIN, json=ingest)
    assert posted.status_code == 200, posted.text
    info = api.get("/v1/series/utc-a", headers=READ).json()
    page = api.get("/v1/series/utc-a/observations", headers=READ, params={"limit": 2}).json()
    stamps = [
        created.json()["created_at"],
        info["created_at"],
        info["updated_at"],
        info["first_timestamp"],
        info["last_timestamp"],
        posted.json()["last_timestamp"],
        *page["timestamps"],
        page["next_start"],
    ]
    for stamp in stamps:
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, stamp
    assert page["timestamps"][0] == f"{h.timestamps[0]}Z"
    # next_start, sent back as it came, reads on from there
    rest = api.get(
        "/v1/series/utc-a/observations", headers=READ, params={"start": page["next_start"]}
    )
    assert rest.json()["timestamps"] == [f"{h.timestamps[2]}Z"]
