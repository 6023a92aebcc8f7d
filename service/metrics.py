"""Prometheus metrics on a registry owned by one app (so apps in one process never collide).

Request metrics are recorded by a small ASGI middleware keyed by the route *template*
("/v1/models/{name}/forecast"), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ServiceMetrics:
    """Every metric the service exports, registered on `registry`."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

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
        self.served_version = Gauge(
            "forecast_served_version", "Version served under the alias.", ["model"], registry=r
        )
        self.registry_up = Gauge(
            "forecast_registry_up",
            "1 while the registry answers, 0 while degraded (pinned loads and reloads answer 503).",
            registry=r,
        )
        self.model_swaps = Counter(
            "forecast_model_swaps", "New versions swapped in.", ["model"], registry=r
        )


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
