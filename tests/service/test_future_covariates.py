"""Future covariates over REST: a tiny ESN trained on bike hourly with temp and hum known ahead
and US holidays, served by the real app; forecasts with future covariates on the single,
batch and stored-series routes, and every bad input answers 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import ServiceSettings
from tests.service.conftest import ADMIN, ADMIN_KEY, READ, READ_KEY, with_series_store

NAME = "svc-future"
LOOKBACK, HORIZON = 24, 6


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    """An ESN with future covariates registered in its own MLflow store, and the app."""
    from training.jobs.experiment import TrainSpec
    from training.jobs.pipeline import train
    from training.jobs.preparation import load_frame

    root = tmp_path_factory.mktemp("mlflow-future")
    uri = f"sqlite:///{root}/mlflow.db"
    spec = TrainSpec(
        family="esn", horizon=HORIZON, dataset="demand/bike-hourly", last_rows=600,
        lookback=LOOKBACK, device="cpu", model={"reservoir_size": 20, "washout": 24},
        future_covariates=("temp", "hum"), holidays="US", name=NAME,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        result = train(spec, tracking_uri=uri, allow_worse_than_baseline=True)
        assert result.champion_version == 1, result.gate
    table = load_frame(spec).table.iloc[-(48 + HORIZON) :]
    stamps = np.datetime_as_string(table["timestamp"].to_numpy().astype("datetime64[s]"))
    data = {
        "timestamps": stamps[:48].tolist(),
        "values": table["value"].iloc[:48].tolist(),
        "temp": table["temp"].tolist(),  # 48 + H
        "hum": table["hum"].tolist(),
    }
    settings = ServiceSettings(
        tracking_uri=uri, models=(NAME,), api_keys=(READ_KEY,), admin_keys=(ADMIN_KEY,),
        poll_seconds=3600.0, startup_wait_seconds=60.0,
    )  # fmt: skip
    application = create_app(settings)
    with with_series_store(application, f"sqlite:///{Path(root) / 'series.db'}"):
        yield application, data


@pytest.fixture
def api(served: tuple[FastAPI, dict[str, Any]]) -> TestClient:
    return TestClient(served[0])


@pytest.fixture
def data(served: tuple[FastAPI, dict[str, Any]]) -> dict[str, Any]:
    return served[1]


def _body(data: dict[str, Any], **override: Any) -> dict[str, Any]:
    """History in values/covariates, the horizon's temp and hum in future_covariates."""
    body = {
        "timestamps": data["timestamps"],
        "values": data["values"],
        "horizon": HORIZON,
        "covariates": {"temp": data["temp"][:48], "hum": data["hum"][:48]},
        "future_covariates": {"temp": data["temp"][48:], "hum": data["hum"][48:]},
    }
    body.update(override)
    return body


def _forecast(api: TestClient, body: dict[str, Any]) -> Any:
    return api.post(f"/v1/models/{NAME}/forecast", headers=READ, json=body)


def test_model_lists_the_covariates_it_needs(api: TestClient) -> None:
    info = api.get(f"/v1/models/{NAME}", headers=READ).json()
    assert info["future_covariates"] == ["temp", "hum", "holiday:US"]
    assert info["covariates"] == []


def test_forecast_reads_the_horizons_values(api: TestClient, data: dict[str, Any]) -> None:
    first = _forecast(api, _body(data))
    assert first.status_code == 200, first.text
    assert len(first.json()["mean"]) == HORIZON
    # the same request as one list per covariate (history then horizon) answers the same
    whole = _body(data, covariates=None,
                  future_covariates={"temp": data["temp"], "hum": data["hum"]})  # fmt: skip
    assert _forecast(api, whole).json()["mean"] == first.json()["mean"]
    warmer = _body(data)
    warmer["future_covariates"]["temp"] = [t + 0.3 for t in data["temp"][48:]]
    moved = _forecast(api, warmer)
    assert moved.status_code == 200 and moved.json()["mean"] != first.json()["mean"]


def test_batch_forecast_takes_future_covariates(api: TestClient, data: dict[str, Any]) -> None:
    one = _body(data)
    series = [{"id": "a", **{k: one[k] for k in ("timestamps", "values", "covariates",
                                                  "future_covariates")}}]  # fmt: skip
    reply = api.post(
        f"/v1/models/{NAME}/forecast/batch", headers=READ,
        json={"series": series, "horizon": HORIZON},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["forecasts"][0]["mean"] == _forecast(api, one).json()["mean"]
    series[0]["future_covariates"] = {"temp": data["temp"][48:]}
    bad = api.post(
        f"/v1/models/{NAME}/forecast/batch", headers=READ,
        json={"series": series, "horizon": HORIZON},
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["field"] == "series[0].future_covariates.hum"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"future_covariates": {"temp": [0.5] * HORIZON}}, "future_covariates.hum",
         "needs future covariate 'hum'"),
        ({"future_covariates": None}, "future_covariates.temp", "needs future covariate 'temp'"),
        ({"future_covariates": {"temp": [0.5] * 4, "hum": [0.5] * HORIZON}},
         "future_covariates.temp", "has 4 entries; send 6"),
        ({"future_covariates": {"temp": [0.5, None, 0.5, 0.5, 0.5, 0.5],
                                "hum": [0.5] * HORIZON}},
         "future_covariates.temp[1]", "is null (NaN)"),
        ({"future_covariates": {"temp": [0.5] * HORIZON, "hum": [0.5] * HORIZON,
                                "rain": [0.0] * HORIZON}},
         "future_covariates.rain", "is not one the model reads"),
        ({"future_covariates": {"temp": [0.5] * HORIZON, "hum": [0.5] * HORIZON,
                                "holiday:US": [0.0] * HORIZON}},
         "future_covariates.holiday:US", "is computed from the timestamps"),
        ({"covariates": {"temp": [0.5] * 48}}, "future_covariates.hum",
         "covariates.hum has none of the 48 past values"),
        # the values of every column are checked in one pass: each bad one is still named
        ({"future_covariates": {"temp": [0.5] * HORIZON, "hum": [0.5, 0.5, 0.5, 1e39, 0.5, 0.5]}},
         "future_covariates.hum[3]", "value 1e+39 at future_covariates.hum[3] exceeds the "
         "float32 range"),
        ({"covariates": {"temp": [0.5] * 48, "hum": [0.5] * 5 + [-1e39] + [0.5] * 42}},
         "covariates.hum[5]", "value -1e+39 at covariates.hum[5] exceeds the float32 range"),
        ({"covariates": None, "future_covariates": {"temp": [0.5] * 54,
                                                    "hum": [0.5] * 10 + [None] + [0.5] * 43}},
         "future_covariates.hum[10]", "is null (NaN)"),
        ({"covariates": None, "future_covariates": {"temp": [0.5] * 50 + [2e39] + [0.5] * 3,
                                                    "hum": [0.5] * 54}},
         "future_covariates.temp[50]", "value 2e+39 at future_covariates.temp[50] exceeds"),
        ({"covariates": None, "future_covariates": {"temp": [0.5] * 54, "hum": [0.5] * 53}},
         "future_covariates.hum", "has 53 entries; send 6 (the steps ahead, with its history "
         "in covariates.hum) or 54"),
    ],
)  # fmt: skip
def test_bad_future_covariates_answer_422_with_the_field(
    api: TestClient, data: dict[str, Any], change: dict[str, Any], field: str, words: str
) -> None:
    reply = _forecast(api, _body(data, **change))
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == field and words in reply.json()["detail"]


def test_a_nan_literal_is_refused_with_its_index(api: TestClient, data: dict[str, Any]) -> None:
    body = _body(data)
    body["future_covariates"]["temp"][2] = float("nan")  # json.dumps writes the NaN literal
    reply = api.post(
        f"/v1/models/{NAME}/forecast",
        headers={**READ, "Content-Type": "application/json"},
        content=json.dumps(body),
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == "future_covariates.temp[2]", reply.json()


def test_stored_series_forecast_reads_history_from_the_store(
    api: TestClient, data: dict[str, Any]
) -> None:
    put = api.put("/v1/series/bikes", headers=ADMIN, json={"frequency": "h", "target": "cnt"})
    assert put.status_code == 201, put.text
    ingest = api.post(
        "/v1/series/bikes/observations", headers=ADMIN,
        json={"timestamps": data["timestamps"], "values": data["values"],
              "covariates": {"temp": data["temp"][:48], "hum": data["hum"][:48]}},
    )  # fmt: skip
    assert ingest.status_code == 200, ingest.text
    ahead = {"temp": data["temp"][48:], "hum": data["hum"][48:]}
    reply = api.post(
        "/v1/series/bikes/forecast", headers=READ,
        json={"model": NAME, "horizon": HORIZON, "future_covariates": ahead},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    direct = _forecast(api, _body(data, timestamps=data["timestamps"][-LOOKBACK:],
                                  values=data["values"][-LOOKBACK:],
                                  covariates={"temp": data["temp"][48 - LOOKBACK : 48],
                                              "hum": data["hum"][48 - LOOKBACK : 48]}))  # fmt: skip
    assert np.allclose(reply.json()["mean"], direct.json()["mean"])
    missing = api.post(
        "/v1/series/bikes/forecast", headers=READ, json={"model": NAME, "horizon": HORIZON}
    )
    assert missing.status_code == 422 and missing.json()["field"] == "future_covariates.temp"


def test_openapi_shows_a_future_covariates_example(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    body = doc["paths"]["/v1/models/{name}/forecast"]["post"]["requestBody"]
    single = body["content"]["application/json"]["schema"]
    assert any("future_covariates" in e for e in single["examples"])
    assert "future_covariates" in single["properties"]
    schema = doc["components"]["schemas"]
    assert "future_covariates" in schema["BatchSeries"]["properties"]
    assert "future_covariates" in schema["SeriesForecastRequest"]["properties"]
    batch = doc["paths"]["/v1/models/{name}/forecast/batch"]["post"]["requestBody"]
    ref = batch["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[-1] == "BatchForecastRequest"
    item = schema["BatchForecastRequest"]["properties"]["series"]["items"]["$ref"]
    assert item.rsplit("/", 1)[-1] == "BatchSeries"
    [future] = [e for e in schema["BatchSeries"]["examples"] if "future_covariates" in e]
    assert future["future_covariates"] == {"temp": [11.8, 13.0, 14.1]}
    assert len(future["covariates"]["temp"]) == len(future["values"])


def test_try_it_out_examples_carry_the_served_models_future_covariates(api: TestClient) -> None:
    """The examples generated from the served model send temp and hum (history and horizon)
    but not the computed holiday indicator, and the model accepts them."""
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/v1/models/{name}/forecast", "/v1/models/{name}/forecast/batch"):
        operation = paths[path]["post"]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        item = example["series"][0] if "series" in example else example
        assert sorted(item["future_covariates"]) == ["hum", "temp"]
        assert len(item["covariates"]["temp"]) == len(item["values"]) == LOOKBACK
        response = api.post(path.replace("{name}", NAME), headers=READ, json=example)
        assert response.status_code == 200, (path, response.text)


def test_the_batch_examples_are_valid_requests() -> None:
    from service.schemas import BatchForecastRequest

    examples = BatchForecastRequest.model_json_schema()["examples"]
    requests = [BatchForecastRequest.model_validate(e) for e in examples]
    assert any(s.future_covariates for r in requests for s in r.series)
