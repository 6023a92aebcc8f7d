"""Settings from the environment, the refusal of unsafe configurations, the app factory and
the `forecast serve` command."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.settings import SettingsError, load_settings
from tests.service.conftest import HOURLY, READ, Store


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FORECAST_ENV",
        "FORECAST_MODELS",
        "FORECAST_API_KEYS",
        "FORECAST_ADMIN_KEYS",
        "FORECAST_POLL_SECONDS",
        "FORECAST_TRACKING_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/never-opened/mlflow.db")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_MODELS", "load-etth1, stock-aapl,,")
    monkeypatch.setenv("FORECAST_API_KEYS", "k1,k2")
    monkeypatch.setenv("FORECAST_ADMIN_KEYS", "root")
    monkeypatch.setenv("FORECAST_POLL_SECONDS", "2.5")
    monkeypatch.setenv("FORECAST_ALIAS", "challenger")
    settings = load_settings()
    assert settings.models == ("load-etth1", "stock-aapl")
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.poll_seconds == 2.5
    assert settings.alias == "challenger"
    assert settings.tracking_uri == "sqlite:////tmp/never-opened/mlflow.db"
    assert "k1" not in repr(settings) and "root" not in str(settings)


def test_no_keys_is_refused_outside_development() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        "no API keys configured (FORECAST_API_KEYS and FORECAST_ADMIN_KEYS are empty) with "
        "FORECAST_ENV=production; set FORECAST_API_KEYS (and FORECAST_ADMIN_KEYS), or "
        "FORECAST_ENV=development to run without authentication on 127.0.0.1"
    )


def test_development_may_run_keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_ENV", "development")
    assert load_settings().auth_enabled is False


def test_bad_values_name_the_variable_and_hide_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_API_KEYS", "secret-key")
    monkeypatch.setenv("FORECAST_POLL_SECONDS", "0")
    monkeypatch.setenv("FORECAST_ENV", "staging")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "FORECAST_POLL_SECONDS: Input should be greater than 0" in message
    assert "FORECAST_ENV: Input should be 'production' or 'development'" in message
    assert "secret-key" not in message


def test_create_app_builds_nothing_at_import_and_refuses_unsafe_settings() -> None:
    import service.main

    assert not hasattr(service.main, "app")
    with pytest.raises(SettingsError, match="no API keys configured"):
        service.main.create_app()


def test_a_configured_model_that_is_missing_keeps_ready_503(
    store: Store, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(models=(HOURLY, "not-registered"))
    ready = client.get("/v1/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "ready": False,
        "loaded": {HOURLY: "1"},
        "missing": ["not-registered"],
        "registry": {"status": "ok", "detail": None, "since": None},
    }
    response = client.post(
        "/v1/models/not-registered/forecast", headers=READ, json=store.hourly.body(horizon=2)
    )
    assert response.status_code == 503
    assert response.json()["detail"].startswith(
        "model 'not-registered' is configured but not loaded yet; retry in a few seconds"
    )
    # the model that exists is served meanwhile
    ok = client.post(
        f"/v1/models/{HOURLY}/forecast", headers=READ, json=store.hourly.body(horizon=2)
    )
    assert ok.status_code == 200


def test_models_default_to_every_registered_champion(
    store: Store, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(models=())
    loaded = client.get("/v1/ready").json()["loaded"]
    assert {"svc-hourly": "1", "svc-stock": "1"}.items() <= loaded.items()


def test_serve_command_is_registered_and_guards_keyless_binds() -> None:
    from training.cli import app
    from training.cli import serve as cli_serve

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--workers" in result.output
    cli_serve.check_bind("127.0.0.1", {"FORECAST_ENV": "development"})
    cli_serve.check_bind("0.0.0.0", {"FORECAST_ENV": "development", "FORECAST_API_KEYS": "k"})
    with pytest.raises(typer.Exit):
        cli_serve.check_bind("0.0.0.0", {"FORECAST_ENV": "development"})


def test_logs_are_json_lines() -> None:
    from training.cli.serve import JsonFormatter

    record = logging.LogRecord("service", logging.INFO, "x.py", 1, "serving %s", ("v2",), None)
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "service", "serving v2")
