"""Forecasts through the real app on real registered models: shapes, timestamps, intervals,
batch = singles, pinned versions, model listing, readiness and metrics."""

from __future__ import annotations

import json
import threading

import numpy as np
from fastapi.testclient import TestClient

from service.routes.forecast import INLINE_POINTS
from service.schemas import INLINE_BODY_BYTES
from tests.service.conftest import HORIZON, HOURLY, LOOKBACK, READ, STOCK, Store


def _intervals_ordered(body: dict) -> None:
    mean = np.asarray(body["mean"])
    i80, i95 = body["intervals"]["80"], body["intervals"]["95"]
    assert (np.asarray(i95["lower"]) <= np.asarray(i80["lower"])).all()
    assert (np.asarray(i80["lower"]) <= mean).all()
    assert (mean <= np.asarray(i80["upper"])).all()
    assert (np.asarray(i80["upper"]) <= np.asarray(i95["upper"])).all()


def test_health_needs_no_key_and_ready_lists_versions(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "loaded": {HOURLY: "1", STOCK: "1"},
        "missing": [],
        "registry": {"status": "ok", "detail": None, "since": None},
    }


def test_hourly_forecast_shape_timestamps_and_intervals(client: TestClient, store: Store) -> None:
    response = client.post(
        f"/v1/models/{HOURLY}/forecast", headers=READ, json=store.hourly.body(horizon=4)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["rolled"]) == (HOURLY, "1", False)
    last = np.datetime64(store.hourly.timestamps[-1])
    expected = [str(last + np.timedelta64(h, "h")) for h in range(1, 5)]
    assert body["timestamps"] == expected
    assert len(body["mean"]) == 4
    assert set(body["intervals"]) == {"80", "95"}
    _intervals_ordered(body)


def test_business_day_forecast_skips_the_weekend(client: TestClient, store: Store) -> None:
    # AAPL's last row is Friday 2020-12-11: the next business days are Mon 14 .. Fri 18.
    assert store.stock.timestamps[-1] == "2020-12-11T00:00:00"
    response = client.post(
        f"/v1/models/{STOCK}/forecast", headers=READ, json=store.stock.body(horizon=HORIZON)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timestamps"] == [
        "2020-12-14T00:00:00",
        "2020-12-15T00:00:00",
        "2020-12-16T00:00:00",
        "2020-12-17T00:00:00",
        "2020-12-18T00:00:00",
        "2020-12-21T00:00:00",
    ]
    _intervals_ordered(body)
    # a stock model forecasts near the last price, not some training-era level
    assert abs(body["mean"][0] - store.stock.values[-1]) < 0.2 * store.stock.values[-1]


def test_horizon_beyond_the_model_rolls_forward(client: TestClient, store: Store) -> None:
    body = client.post(
        f"/v1/models/{HOURLY}/forecast", headers=READ, json=store.hourly.body(horizon=15)
    ).json()
    assert body["rolled"] is True
    assert len(body["mean"]) == len(body["timestamps"]) == 15
    _intervals_ordered(body)


def test_batch_equals_singles(client: TestClient, store: Store) -> None:
    h = store.hourly
    series = [
        {"id": "full", "timestamps": h.timestamps, "values": h.values},
        {"id": "short", "timestamps": h.timestamps[-LOOKBACK:], "values": h.values[-LOOKBACK:]},
        {
            "id": "scaled",
            "timestamps": h.timestamps[:-3],
            "values": [10 * v + 5 for v in h.values[:-3]],
        },
    ]
    batch = client.post(
        f"/v1/models/{HOURLY}/forecast/batch",
        headers=READ,
        json={"series": series, "horizon": HORIZON, "levels": [90]},
    )
    assert batch.status_code == 200, batch.text
    forecasts = batch.json()["forecasts"]
    assert [f["id"] for f in forecasts] == ["full", "short", "scaled"]
    for s, f in zip(series, forecasts, strict=True):
        single = client.post(
            f"/v1/models/{HOURLY}/forecast",
            headers=READ,
            json={
                "timestamps": s["timestamps"],
                "values": s["values"],
                "horizon": HORIZON,
                "levels": [90],
            },
        ).json()
        assert f["timestamps"] == single["timestamps"]
        np.testing.assert_allclose(f["mean"], single["mean"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            f["intervals"]["90"]["upper"], single["intervals"]["90"]["upper"], rtol=1e-5, atol=1e-5
        )
    assert forecasts[0]["timestamps"] == forecasts[1]["timestamps"]
    assert forecasts[0]["mean"] != forecasts[2]["mean"]


def test_timestamps_with_offsets_are_taken_as_utc(client: TestClient, store: Store) -> None:
    shifted = [t + "+02:00" for t in store.hourly.timestamps]
    body = client.post(
        f"/v1/models/{HOURLY}/forecast",
        headers=READ,
        json={"timestamps": shifted, "values": store.hourly.values, "horizon": 1},
    ).json()
    last = np.datetime64(store.hourly.timestamps[-1]) - np.timedelta64(2, "h")
    assert body["timestamps"] == [str(last + np.timedelta64(1, "h"))]


def test_models_listing_shows_metadata_and_test_metrics(client: TestClient) -> None:
    listing = client.get("/v1/models", headers=READ).json()["models"]
    assert [m["name"] for m in listing] == [HOURLY, STOCK]
    hourly = client.get(f"/v1/models/{HOURLY}", headers=READ).json()
    assert hourly == listing[0]
    assert hourly["version"] == "1"
    assert hourly["alias"] == "champion"
    assert (hourly["family"], hourly["frequency"], hourly["target"]) == ("gru", "h", "OT")
    assert (hourly["lookback"], hourly["max_horizon"]) == (LOOKBACK, HORIZON)
    assert {80, 95} <= set(hourly["levels"])
    assert "test_mae" in hourly["metrics"] and "test_coverage_80" in hourly["metrics"]
    assert listing[1]["frequency"] == "B"


def test_pinned_version_is_served_and_cached(client: TestClient, store: Store) -> None:
    body = client.post(
        f"/v1/models/{HOURLY}/forecast",
        headers=READ,
        json=store.hourly.body(horizon=2, version="1"),
    ).json()
    assert body["version"] == "1"


def test_metrics_count_requests_by_route_and_status(client: TestClient, store: Store) -> None:
    client.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json=store.hourly.body(horizon=2))
    client.post(f"/v1/models/{HOURLY}/forecast", headers=READ, json={"horizon": 2})
    text = client.get("/metrics", headers=READ).text

    def value(prefix: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        assert lines, f"no metric line starts with {prefix}"
        return float(lines[0].rsplit(" ", 1)[1])

    route = 'route="/v1/models/{name}/forecast"'
    assert value(f'forecast_http_requests_total{{method="POST",{route},status="200"}}') >= 1
    assert value(f'forecast_http_requests_total{{method="POST",{route},status="422"}}') >= 1
    assert value(f'forecast_series_forecasts_total{{model="{HOURLY}",version="1"}}') >= 1
    assert value(f'forecast_served_version{{model="{HOURLY}"}}') == 1.0
    assert 'forecast_http_request_duration_seconds_bucket{le="0.005",method="POST"' in text


def test_concurrent_singles_equal_sequential_ones(client: TestClient, store: Store) -> None:
    h = store.hourly
    bodies = [
        {**h.body(horizon=3 + i % 2), "values": [v * (1 + i / 10) for v in h.values]}
        for i in range(12)
    ]
    url = f"/v1/models/{HOURLY}/forecast"
    sequential = [client.post(url, headers=READ, json=b).json() for b in bodies]
    concurrent: list[dict] = [{}] * len(bodies)

    def send(i: int) -> None:
        concurrent[i] = client.post(url, headers=READ, json=bodies[i]).json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one, other in zip(sequential, concurrent, strict=True):
        assert one["timestamps"] == other["timestamps"]
        np.testing.assert_allclose(one["mean"], other["mean"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            one["intervals"]["95"]["lower"], other["intervals"]["95"]["lower"], rtol=1e-5, atol=1e-5
        )


def test_long_histories_are_checked_off_the_event_loop_with_the_same_answers(
    client: TestClient, store: Store
) -> None:
    # Above both inline limits: checked and parsed in worker threads.
    h = store.hourly
    n = 12_000
    last = np.datetime64(h.timestamps[-1])
    stamps = [str(last - np.timedelta64(n - 1 - i, "h")) for i in range(n)]  # [n]
    values = [*([h.values[0]] * (n - len(h.values))), *h.values]  # same last `lookback` values
    payload = {"timestamps": stamps, "values": values, "horizon": 3}
    assert n > INLINE_POINTS and len(json.dumps(payload)) > INLINE_BODY_BYTES
    url = f"/v1/models/{HOURLY}/forecast"
    long = client.post(url, headers=READ, json=payload)
    short = client.post(url, headers=READ, json=h.body(horizon=3))
    assert long.status_code == 200, long.text
    assert long.json() == short.json()
    bad = client.post(
        url,
        headers={**READ, "Content-Type": "application/json"},
        content=json.dumps(
            {"timestamps": stamps, "values": [*values[:10], 12345.5, *values[11:]], "horizon": 3}
        ).replace("12345.5", "NaN"),
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "values[10]"


def test_horizon_past_the_roll_cap_is_a_422_naming_horizon(
    client: TestClient, store: Store
) -> None:
    from models.rollout import MAX_ROLL

    url = f"/v1/models/{HOURLY}/forecast"
    ok = client.post(url, headers=READ, json=store.hourly.body(horizon=MAX_ROLL * HORIZON))
    assert ok.status_code == 200, ok.text
    bad = client.post(url, headers=READ, json=store.hourly.body(horizon=MAX_ROLL * HORIZON + 1))
    assert bad.status_code == 422
    assert f"horizon {MAX_ROLL * HORIZON + 1} is beyond what this model forecasts" in bad.text
    assert f"ask for horizon <= {MAX_ROLL * HORIZON}" in bad.text
