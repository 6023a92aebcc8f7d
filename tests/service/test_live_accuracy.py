"""Live accuracy on the real app: forecasts from stored history (and model forecasts that name
a series) are logged off the request path, scored when the actuals are ingested, and read back
per model and per series with figures computed here independently; the gauges follow; bad
queries answer 4xx naming the field; a full buffer drops and counts; a graceful restart under
load loses nothing."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.forecast_log import ForecastRecorder
from service.main import create_app
from service.metrics import ServiceMetrics
from service.store_deps import StoreHandle, StoreSettings
from tests.service.conftest import ADMIN, HOURLY, LOOKBACK, READ, Store, live_server
from training.store import SeriesStore

SERIES = "live-a"


def _handle(path: Path, **extra: Any) -> StoreHandle:
    return StoreHandle(
        StoreSettings(database_url=SecretStr(f"sqlite:///{path}"), **extra)  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def live_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    application = create_app(store.settings())
    path = tmp_path_factory.mktemp("live") / "series.db"
    application.state.series_store = _handle(path, live_refresh_seconds=0.2)
    with TestClient(application):
        yield application
    application.state.series_store.close()


@pytest.fixture
def api(live_app: FastAPI) -> TestClient:
    return TestClient(live_app)


def _wait_logged(api: TestClient, count: int, series_id: str = SERIES) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        answer = api.get(f"/v1/series/{series_id}/forecasts", headers=READ)
        assert answer.status_code == 200, answer.text
        logged: list[dict[str, Any]] = answer.json()["forecasts"]
        if len(logged) >= count or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


def _ingest(api: TestClient, series_id: str, stamps: list[str], values: list[float]) -> None:
    answer = api.post(
        f"/v1/series/{series_id}/observations",
        headers=ADMIN,
        json={"timestamps": stamps, "values": values},
    )
    assert answer.status_code == 200, answer.text


def test_logged_forecasts_are_scored_as_actuals_arrive(api: TestClient, store: Store) -> None:
    stamps, values = store.hourly.timestamps, store.hourly.values  # 48 hours
    assert api.put(
        f"/v1/series/{SERIES}", headers=ADMIN, json={"frequency": "h", "target": "OT"}
    ).status_code in (200, 201)
    _ingest(api, SERIES, stamps[:36], values[:36])

    # One forecast from the store (origin: hour 35), one from caller history naming the series
    # (origin: hour 37), one from caller history without a series id (not logged).
    stored = api.post(
        f"/v1/series/{SERIES}/forecast", headers=READ, json={"model": HOURLY, "horizon": 6}
    )
    assert stored.status_code == 200, stored.text
    body = {"timestamps": stamps[:38], "values": values[:38], "horizon": 6}
    named = api.post(
        f"/v1/models/{HOURLY}/forecast", headers=READ, json={**body, "series_id": SERIES}
    )
    assert named.status_code == 200, named.text
    assert api.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body).status_code == 200
    logged = _wait_logged(api, 2)
    assert [f["origin"][:19] for f in logged] == [stamps[37][:19], stamps[35][:19]]
    assert logged[1]["mean"] == stored.json()["mean"]
    assert logged[0]["actuals"] == [None] * 6

    _ingest(api, SERIES, stamps[36:], values[36:])  # the actuals of both forecasts arrive
    logged = _wait_logged(api, 2)
    assert logged[0]["actuals"] == values[38:44] and logged[1]["actuals"] == values[36:42]

    # The figures, computed here from the two responses and the actuals.
    actual = np.array(values[36:42] + values[38:44])  # [12]
    answers = [stored.json(), named.json()]
    mean = np.array(answers[0]["mean"] + answers[1]["mean"])
    lower = np.array([x for a in answers for x in a["intervals"]["80"]["lower"]])
    upper = np.array([x for a in answers for x in a["intervals"]["80"]["upper"]])
    naive = np.array(values[36 - 24 : 42 - 24] + values[38 - 24 : 44 - 24])  # a day back
    error = actual - mean
    expected = {
        "mae": np.abs(error).mean(),
        "rmse": np.sqrt((error**2).mean()),
        "mase": np.abs(error).sum() / np.abs(actual - naive).sum(),
        "coverage": ((actual >= lower) & (actual <= upper)).mean(),
    }
    answer = api.get(f"/v1/models/{HOURLY}/performance", headers=READ)
    assert answer.status_code == 200, answer.text
    [version] = answer.json()["versions"]
    assert (version["version"], version["forecasts"], version["points"]) == ("1", 2, 12)
    overall = version["overall"]
    for key in ("mae", "rmse", "mase"):
        assert overall[key] == pytest.approx(expected[key], rel=1e-6), key
    assert overall["coverage"]["80"] == pytest.approx(expected["coverage"])
    assert [step["points"] for step in version["by_step"]] == [2] * 6
    first = version["by_step"][0]
    assert first["mae"] == pytest.approx(np.abs(error[[0, 6]]).mean(), rel=1e-6)

    per_series = api.get(f"/v1/series/{SERIES}/performance", headers=READ).json()
    assert per_series["models"][0]["overall"] == overall
    windowed = api.get(
        f"/v1/models/{HOURLY}/performance", headers=READ, params={"since": stamps[36]}
    ).json()
    assert windowed["versions"][0]["forecasts"] == 1  # only the origin at hour 37
    assert windowed["versions"][0]["since"].endswith("Z")  # UTC, with its offset

    # The gauges follow within the refresh interval.
    deadline = time.monotonic() + 10
    line = f'forecast_live_mase{{model="{HOURLY}",version="1"}}'
    while line not in (text := api.get("/metrics", headers=READ).text):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert line in text
    value = float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])
    assert value == pytest.approx(expected["mase"], rel=1e-6)


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/v1/series/nope/performance", {}, 404, "series_id"),
        ("/v1/series/nope/forecasts", {}, 404, "series_id"),
        (
            f"/v1/models/{HOURLY}/performance",
            {"since": "2024-02-01", "until": "2024-01-01"},
            422,
            "since",
        ),
        (f"/v1/models/{HOURLY}/performance", {"until": "last tuesday"}, 422, "until"),
        (f"/v1/series/{SERIES}/performance", {"since": "2024-13-01"}, 422, "since"),
        (f"/v1/models/{HOURLY}/performance", {"version": "01"}, 422, "version"),
        (f"/v1/series/{SERIES}/forecasts", {"limit": 100_000}, 422, "limit"),
    ],
)
def test_bad_queries_name_the_field(
    api: TestClient, path: str, params: dict[str, Any], status: int, field: str
) -> None:
    api.put(f"/v1/series/{SERIES}", headers=ADMIN, json={"frequency": "h", "target": "OT"})
    answer = api.get(path, headers=READ, params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field


@pytest.mark.parametrize(
    "path",
    [f"/v1/models/{HOURLY}/performance", f"/v1/series/{SERIES}/performance", "/v1/series"],
)
def test_live_routes_need_a_read_key(api: TestClient, path: str) -> None:
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"X-API-Key": "wrong"}).status_code == 403


def test_a_bad_series_id_on_a_model_forecast_is_refused(api: TestClient, store: Store) -> None:
    body = store.hourly.body(horizon=2, series_id="a/b")
    answer = api.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body)
    assert answer.status_code == 422 and answer.json()["field"] == "series_id"


def test_a_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    recorder = ForecastRecorder(
        _handle(tmp_path / "s.db"), metrics, buffer=2, refresh_seconds=0, window=10
    )  # not started: nothing drains the queue
    result = {"timestamps": ["2024-01-01T01:00:00"], "mean": [1.0], "intervals": {}}
    for _ in range(5):
        recorder.submit("m", "1", "a", "h", np.datetime64("2024-01-01T00:00"), np.ones(3), result)
    assert recorder.pending == 2
    assert metrics.forecast_log_dropped._value.get() == 3


def test_nothing_is_lost_across_a_restart_under_load(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "series.db"
    with SeriesStore(f"sqlite:///{path}") as seeded:
        seeded.upsert_series("r", frequency="h", target="OT")
        seeded.upsert_observations("r", store.hourly.timestamps, store.hourly.values)
    application = create_app(store.settings())
    application.state.series_store = _handle(path)
    request = {"model": HOURLY, "horizon": 3}
    with live_server(application) as port:
        url = f"http://127.0.0.1:{port}/v1/models/{HOURLY}/forecast"
        history = store.hourly

        def one(i: int) -> int:
            # Distinct origins: each request forecasts from a different cut of the history.
            cut = LOOKBACK + i
            body = {
                "timestamps": history.timestamps[:cut],
                "values": history.values[:cut],
                "horizon": 3,
                "series_id": "r",
            }
            return httpx.post(url, json=body, headers=READ, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(24)))
            stored = httpx.post(
                f"http://127.0.0.1:{port}/v1/series/r/forecast",
                json=request,
                headers=READ,
                timeout=30,
            )
        assert codes == [200] * 24 and stored.status_code == 200
    # The server stopped (lifespan shutdown ran); a new store sees every forecast.
    dropped = application.state.metrics.forecast_log_dropped._value.get()
    with SeriesStore(f"sqlite:///{path}") as reopened:
        origins = {f.origin for f in reopened.forecast_log.forecasts("r", limit=100)}
    assert dropped == 0 and len(origins) == 24 + 1  # 24 cuts, and the stored history's end


def test_a_dead_store_never_slows_or_fails_logged_forecasts(store: Store) -> None:
    """With the forecast log's database unreachable, forecasts that name a series still answer
    200 as fast as ever (the writer holds them and retries, off the request path), and those it
    never could write are counted as dropped at shutdown, not lost silently."""
    application = create_app(store.settings())
    dead = "postgresql://nobody@127.0.0.1:1/none"  # refused: the store never opens
    application.state.series_store = StoreHandle(StoreSettings(database_url=SecretStr(dead)))
    body = store.hourly.body(horizon=3, series_id="live-a")
    with TestClient(application) as api:
        recorder = application.state.forecast_recorder
        assert application.state.series_store.current is None
        started = time.monotonic()
        answers = [
            api.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=body) for _ in range(20)
        ]
        elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [200] * 20
        assert elapsed < 10, elapsed  # ~10 ms each; a wait on the database would show here
        series = api.get("/v1/series/live-a/performance", headers=READ)
        assert series.status_code == 503  # the store's own routes say it is down
    # At shutdown the writer tried again, then counted every forecast it could not write.
    metrics = application.state.metrics
    assert recorder.pending == 0 and metrics.forecast_log_recorded._value.get() == 0
    assert metrics.forecast_log_dropped._value.get() == 20
