"""`forecast serve`: run the forecast service (service.main:create_app) under uvicorn.

The service is named by an import string, so `training` never imports `service`. Everything
else is configured by environment variables (see service/settings.py): MLFLOW_TRACKING_URI,
FORECAST_MODELS, FORECAST_API_KEYS, FORECAST_ADMIN_KEYS, FORECAST_POLL_SECONDS, FORECAST_ENV...

With `--workers` above 1, every worker is a process with its own counters, so the workers
share a PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) and `/metrics` sums
them: the directory is the one set in the environment (its metric files left by an earlier
run are deleted at start and at exit, nothing else), or a fresh temporary directory removed
at exit. One service per directory: a second service on it would wipe the first's counters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.console import fail, user_errors

APP_FACTORY = "service.main:create_app"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The files prometheus_client writes there: counter_<pid>.db, gauge_livesum_<pid>.db, ...
METRIC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


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
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.access", "service")
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


def wipe_metric_files(directory: Path) -> None:
    """Delete the prometheus_client files in `directory` (and nothing else)."""
    for path in list(directory.iterdir()):  # listed first: deleting while listing may skip
        if path.is_file() and METRIC_FILE.match(path.name):
            path.unlink(missing_ok=True)


@contextmanager
def metrics_dir(workers: int, environ: MutableMapping[str, str]) -> Iterator[Path | None]:
    """The PROMETHEUS_MULTIPROC_DIR the workers share, set in `environ` while the block runs.

    prometheus_client picks its mode when it is imported, from the environment, so this runs
    before uvicorn starts a worker (each worker is a fresh interpreter that inherits
    `environ`). Yields None for one worker with no directory set: one process, one in-memory
    registry, as in the tests.

    Raises:
        typer.Exit: (via `fail`) when the directory set cannot be created or is not a directory.
    """
    given = environ.get(MULTIPROC_ENV, "").strip()
    if not given:
        # prometheus_client switches mode on the name alone, even with an empty value.
        environ.pop(MULTIPROC_ENV, None)
    if workers == 1 and not given:
        yield None
        return
    if given:
        path = Path(given)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(
                f"{MULTIPROC_ENV}={given}: cannot create the metrics directory ({exc}); point "
                "it at a writable directory, or unset it for a temporary one"
            ) from None
        wipe_metric_files(path)  # counters of an earlier run would be summed with ours
    else:
        path = Path(tempfile.mkdtemp(prefix="forecast-metrics-"))
        environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if given:
            wipe_metric_files(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
            environ.pop(MULTIPROC_ENV, None)


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
    with metrics_dir(workers, os.environ):
        uvicorn.run(
            APP_FACTORY, factory=True, host=host, port=port, workers=workers,
            log_config=log_config(log_level), log_level=log_level.lower(), access_log=access_log,
        )  # fmt: skip
