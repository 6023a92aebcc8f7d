"""Prometheus metrics on a registry owned by one app (so apps in one process never collide).

Request metrics are recorded by a small ASGI middleware keyed by the route *template*
("/v1/models/{name}/forecast"), never the raw path, so label cardinality stays bounded.

Several workers (`forecast serve --workers N`): each worker is a process with its own
values, so `forecast serve` sets PROMETHEUS_MULTIPROC_DIR before the workers start and
prometheus_client (which reads it once, at import) keeps every value in a per-process file
there. `/metrics` then reads all the files through a MultiProcessCollector: counters and
histograms are summed over the workers, gauges combined by their `multiprocess_mode`.
Without the variable (one worker, the tests) each app answers from its own registry.

Adding a metric: create it in `ServiceMetrics.__post_init__` with `registry=r`. A counter or a
histogram needs nothing more. A gauge must say how the workers' values combine, with
`multiprocess_mode=`:

    "livesum" / "livemax" / "livemin"  live workers only (a stopped worker's value is dropped):
                                       in-flight work, health flags (min of 1/0 = "all up")
    "liveall"                          one series per live worker (a `pid` label): values the
                                       workers may disagree on, such as the served version
    "mostrecent"                       the last value set by any worker: figures every worker
                                       computes alike from shared state (the store)

The default ("all": one series per pid, dead workers kept) suits none of ours. Only the mode
matters, and only with several workers: one process answers as if there were none.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class ServiceMetrics:
    """Every metric the service exports, registered on `registry`.

    `multiprocess` is the shared directory of multiprocess mode (see the module docstring), or
    None: then `registry` alone is exported.
    """

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    multiprocess: str | None = field(default_factory=lambda: os.environ.get(MULTIPROC_ENV) or None)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "forecast_http_requests", "HTTP requests.", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "forecast_http_request_duration_seconds",
            "HTTP request latency.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.forecasts = Counter(
            "forecast_series_forecasts", "Series forecast.", ["model", "version"], registry=r
        )
        self.load_failures = Counter(
            "forecast_model_load_failures",
            "Model versions refused (download, load or smoke forecast failed).",
            ["model"],
            registry=r,
        )
        self.registry_errors = Counter(
            "forecast_registry_errors", "Registry polls that failed.", registry=r
        )
        # Each worker polls the registry on its own: during a swap they may serve different
        # versions, and a series per worker shows it.
        self.served_version = Gauge(
            "forecast_served_version",
            "Version served under the alias.",
            ["model"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.registry_up = Gauge(
            "forecast_registry_up",
            "1 while the registry answers, 0 while degraded (pinned loads and reloads answer 503).",
            registry=r,
            multiprocess_mode="livemin",  # 0 as soon as one worker finds it degraded
        )
        self.model_swaps = Counter(
            "forecast_model_swaps", "New versions swapped in.", ["model"], registry=r
        )
        self.forecast_log_recorded = Counter(
            "forecast_log_recorded", "Forecasts written to the forecast log.", registry=r
        )
        self.forecast_log_dropped = Counter(
            "forecast_log_dropped",
            "Forecasts not logged: the log's buffer was full (or the store stayed down).",
            registry=r,
        )

        # Live accuracy over each version's latest FORECAST_LIVE_WINDOW scored forecasts; every
        # worker computes the same figures from the store, so any worker's latest is right.
        def live(name: str, documentation: str, *labels: str) -> Gauge:
            return Gauge(
                name,
                documentation,
                ["model", "version", *labels],
                registry=r,
                multiprocess_mode="mostrecent",
            )

        self.live_mase = live(
            "forecast_live_mase",
            "Live MAE over seasonal-naive MAE on the same scored steps (below 1 beats it).",
        )
        self.live_mae = live("forecast_live_mae", "Live MAE of scored forecast steps.")
        self.live_coverage = live(
            "forecast_live_coverage",
            "Share of scored actuals inside the interval of each level.",
            "level",
        )
        self.live_forecasts = live(
            "forecast_live_scored_forecasts",
            "Forecasts with at least one scored step in the live window.",
        )

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format: this app's registry, or in multiprocess
        mode the values of every worker, read from the shared directory at each scrape."""
        if self.multiprocess is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def close(self) -> None:
        """At shutdown: drop this worker's live gauges (its counters stay in the sums)."""
        if self.multiprocess is not None:
            mark_process_dead(os.getpid(), self.multiprocess)  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    """ASGI middleware counting requests and timing them by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            labels = (template, scope.get("method", ""), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
