"""`forecast serve`: run the forecast service (service.main:create_app) under uvicorn.

The service is named by an import string, so `training` never imports `service`. Everything
else is configured by environment variables (see service/settings.py): MLFLOW_TRACKING_URI,
FORECAST_MODELS, FORECAST_API_KEYS, FORECAST_ADMIN_KEYS, FORECAST_POLL_SECONDS, FORECAST_ENV...
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated, Any

import typer

from training.cli.console import fail, user_errors

APP_FACTORY = "service.main:create_app"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_config(level: str) -> dict[str, Any]:
    """logging.dictConfig for uvicorn and the service: JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "service": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def check_bind(host: str, environ: dict[str, str]) -> None:
    """Refuse to expose a keyless development service beyond the loopback interface.

    Raises:
        typer.Exit: (via `fail`) when FORECAST_ENV=development, no key is set and `host` is
            not a loopback address.
    """
    keyless = not environ.get("FORECAST_API_KEYS") and not environ.get("FORECAST_ADMIN_KEYS")
    if environ.get("FORECAST_ENV") == "development" and keyless and host not in LOOPBACK:
        raise fail(
            f"--host {host}: a development service without API keys may only bind to "
            "127.0.0.1; set FORECAST_API_KEYS (and FORECAST_ADMIN_KEYS) or use --host 127.0.0.1"
        )


@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (costs speed).")] = False,
) -> None:
    """Serve the champion of each registered model over REST (docs at /docs)."""
    import uvicorn

    check_bind(host, dict(os.environ))
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_level),
        log_level=log_level.lower(),
        access_log=access_log,
    )
