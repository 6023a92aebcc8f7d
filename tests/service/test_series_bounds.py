"""Bounds on what the service takes in, through the real app, on SQLite and on PostgreSQL.

- a frequency is at most 16 characters with a step of at most 8784h (a longer one used to
  overflow PostgreSQL's column, or be stored on SQLite and break the next ingestion);
- every timestamp lies in 1900-01-01 .. 2200-01-01 UTC (outside, datetime64[ns] overflows):
  on ingestion, in forecast histories, and in the stamps a forecast would step to;
- a value the database itself refuses answers 422, never 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.errors import InvalidInputError
from service.main import create_app
from service.store_deps import store_errors
from tests.service.conftest import ADMIN, HOURLY, READ, Store, with_series_store
from training.store import SeriesStore, schema

RANGE = "1900-01-01T00:00:00 .. 2200-01-01T00:00:00 UTC"


@pytest.fixture
def api(store: Store, database_url: str) -> Iterator[TestClient]:
    """The app with its series store on a fresh database (SQLite file or PostgreSQL schema)."""
    with with_series_store(create_app(store.settings()), database_url) as client:
        yield client


def _hourly_ending(last: str, values: list[float]) -> list[str]:
    """[T] hourly ISO stamps ending at `last`."""
    end = np.datetime64(last, "s")
    steps = np.arange(len(values) - 1, -1, -1) * np.timedelta64(1, "h")  # [T]
    stamps: list[str] = np.datetime_as_string(end - steps, unit="s").tolist()
    return stamps


def _error(response: Any) -> tuple[int, str | None, str]:
    body = response.json()
    return response.status_code, body.get("field"), body.get("detail", "")


def test_frequency_is_bounded(api: TestClient) -> None:
    long = api.put(
        "/v1/series/f-a", headers=ADMIN, json={"frequency": "999999999999999999999h", "target": "y"}
    )
    assert _error(long) == (
        422,
        "frequency",
        "frequency '999999999999999999999h' has 22 characters; the limit is 16. Fix: use one of "
        '"h", "<n>h", "<n>min", "D", "B" or "W"',
    )
    wide = api.put(
        "/v1/series/f-a", headers=ADMIN, json={"frequency": "999999999999999h", "target": "y"}
    )
    assert _error(wide)[:2] == (422, "frequency")
    assert "steps more than 8784h (366 days)" in _error(wide)[2]
    assert api.get("/v1/series/f-a", headers=READ).status_code == 404  # nothing stored

    # the longest step is stored, and observations one step apart are taken and read back
    ok = api.put("/v1/series/f-a", headers=ADMIN, json={"frequency": "8784h", "target": "y"})
    assert ok.status_code == 201, ok.text
    batch = {"timestamps": ["2020-01-01T00:00:00", "2021-01-01T00:00:00"], "values": [1.0, 2.0]}
    posted = api.post("/v1/series/f-a/observations", headers=ADMIN, json=batch)
    assert posted.status_code == 200, posted.text
    page = api.get("/v1/series/f-a/observations", headers=READ).json()
    assert page["timestamps"] == [f"{stamp}Z" for stamp in batch["timestamps"]]  # UTC


def test_ingestion_refuses_timestamps_outside_the_range(api: TestClient) -> None:
    api.put("/v1/series/r-a", headers=ADMIN, json={"frequency": "D", "target": "y"})
    url = "/v1/series/r-a/observations"
    early = {"timestamps": ["1600-01-01T00:00:00", "1600-01-02T00:00:00"], "values": [1.0, 2.0]}
    assert _error(api.post(url, headers=ADMIN, json=early)) == (
        422,
        "timestamps[0]",
        f"timestamps[0] (1600-01-01T00:00:00) is outside the supported range {RANGE}. Fix: "
        "send timestamps within that range",
    )
    late = {
        "timestamps": ["2199-12-31T00:00:00", "2200-01-01T00:00:00", "2200-01-02T00:00:00"],
        "values": [1.0, 2.0, 3.0],
    }
    assert _error(api.post(url, headers=ADMIN, json=late))[:2] == (422, "timestamps[2]")
    far = {"timestamps": ["2300-01-01T00:00:00"], "values": [1.0]}
    assert "(2300-01-01T00:00:00) is outside" in _error(api.post(url, headers=ADMIN, json=far))[2]
    assert api.get("/v1/series/r-a", headers=READ).json()["count"] == 0

    # both ends are taken and read back as sent (in UTC), in order
    for stamps in (["2199-12-31T00:00:00", "2200-01-01T00:00:00"], ["1900-01-01T00:00:00"]):
        batch = {"timestamps": stamps, "values": [5.0] * len(stamps)}
        assert api.post(url, headers=ADMIN, json=batch).status_code == 200
    page = api.get(url, headers=READ).json()
    assert page["timestamps"] == [
        "1900-01-01T00:00:00Z",
        "2199-12-31T00:00:00Z",
        "2200-01-01T00:00:00Z",
    ]


def test_forecast_histories_outside_the_range_are_refused(client: TestClient, store: Store) -> None:
    values = store.hourly.values
    old = _hourly_ending("1600-01-02T23:00:00", values)
    single = client.post(
        f"/v1/models/{HOURLY}/forecast",
        headers=READ,
        json={"timestamps": old, "values": values, "horizon": 2},
    )
    assert _error(single) == (
        422,
        "timestamps[0]",
        f"timestamps[0] (1600-01-01T00:00:00) is outside the supported range {RANGE}. Fix: "
        "send timestamps within that range",
    )
    later = _hourly_ending("2300-01-02T23:00:00", values)
    batch = client.post(
        f"/v1/models/{HOURLY}/forecast/batch",
        headers=READ,
        json={
            "horizon": 2,
            "series": [
                {"id": "ok", "timestamps": store.hourly.timestamps, "values": values},
                {"id": "late", "timestamps": later, "values": values},
            ],
        },
    )
    assert _error(batch)[:2] == (422, "series[1].timestamps[0]")


def test_forecasts_that_would_step_past_the_range_are_refused(
    api: TestClient, store: Store
) -> None:
    values = store.hourly.values
    near = _hourly_ending("2199-12-31T21:00:00", values)  # 3 hourly steps fit: 22, 23, 00
    url = f"/v1/models/{HOURLY}/forecast"
    too_far = api.post(url, headers=READ, json={"timestamps": near, "values": values, "horizon": 6})
    assert _error(too_far) == (
        422,
        "horizon",
        "horizon 6: timestamps ends at 2199-12-31T21:00:00, and 6 steps of 'h' reach "
        f"2200-01-01T03:00:00, past the supported range {RANGE}; ask for a horizon of at most 3",
    )
    fits = api.post(url, headers=READ, json={"timestamps": near, "values": values, "horizon": 3})
    assert fits.status_code == 200, fits.text
    assert fits.json()["timestamps"][-1] == "2200-01-01T00:00:00"

    at_end = _hourly_ending("2200-01-01T00:00:00", values)
    batch = api.post(
        f"{url}/batch",
        headers=READ,
        json={
            "horizon": 1,
            "series": [
                {"id": "ok", "timestamps": store.hourly.timestamps, "values": values},
                {"id": "end", "timestamps": at_end, "values": values},
            ],
        },
    )
    status, field, detail = _error(batch)
    assert (status, field) == (422, "horizon")
    assert detail.startswith("horizon 1: series[1].timestamps ends at 2200-01-01T00:00:00")
    assert detail.endswith("send a history that ends before 2200-01-01T00:00:00")

    # a stored history takes the same path
    api.put("/v1/series/near", headers=ADMIN, json={"frequency": "h", "target": "OT"})
    posted = api.post(
        "/v1/series/near/observations", headers=ADMIN, json={"timestamps": near, "values": values}
    )
    assert posted.status_code == 200, posted.text
    stored = api.post(
        "/v1/series/near/forecast", headers=READ, json={"model": HOURLY, "horizon": 6}
    )
    assert _error(stored)[:2] == (422, "horizon")
    assert "ask for a horizon of at most 3" in _error(stored)[2]


def test_values_the_database_refuses_answer_422(database_url: str) -> None:
    """Real refusals of the database (a duplicate key; on PostgreSQL also a too-long text)
    become 422 through the service's one error mapping, never a 500."""
    now = datetime(2025, 1, 1)
    row = dict(id="d-a", frequency="h", target="y", metadata="{}", created_at=now, updated_at=now)
    with SeriesStore(database_url) as opened:
        with opened.engine.begin() as conn:
            conn.execute(schema.series.insert().values(**row))
        refusals: list[dict[str, Any]] = [row]
        if opened.dialect == "postgresql":  # SQLite does not enforce VARCHAR lengths
            refusals.append({**row, "id": "d-b", "frequency": "h" * 40})
        for bad in refusals:
            with (
                pytest.raises(InvalidInputError) as caught,
                store_errors(),
                opened.engine.begin() as conn,
            ):
                conn.execute(schema.series.insert().values(**bad))
            assert caught.value.status_code == 422
            assert caught.value.message.startswith("the database refused the payload (")
            assert caught.value.message.endswith("nothing was written. Fix: check the lengths "
                                                 "and ranges of the values sent against the "
                                                 "request schema at /docs")  # fmt: skip
        with opened.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.series)).scalar() == 1
