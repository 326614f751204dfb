"""Prometheus metrics of the server, on a registry of its own.

A private ``CollectorRegistry`` per app (not the global default) lets tests and the
benchmark build several apps in one process without duplicate-metric errors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_ROUTER_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServeMetrics:
    """Requests by route/status, router and upstream latency, strong-call fraction."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "firewall_requests",
            "Requests answered, by served route and HTTP status.",
            ["endpoint", "route", "status"],
            registry=self.registry,
        )
        self.router_latency = Histogram(
            "firewall_router_latency_seconds",
            "Scoring + decision time per routed request.",
            buckets=_ROUTER_BUCKETS,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "firewall_upstream_latency_seconds",
            "Upstream exchange time, request sent to last byte (streams included).",
            ["route"],
            buckets=_UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "firewall_decisions",
            "Routing decisions by route; mode=router or forced.",
            ["route", "mode"],
            registry=self.registry,
        )
        self.strong_fraction = Gauge(
            "firewall_strong_call_fraction",
            "Share of router decisions (forced weak/strong excluded) that went strong.",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "firewall_upstream_errors",
            "Upstream failures by route and kind.",
            ["route", "kind"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "firewall_fallbacks",
            "Requests re-sent to the other upstream, by failed route.",
            ["failed_route"],
            registry=self.registry,
        )
        self._routed = {"weak": 0, "strong": 0}

    def record_decision(self, route: str, forced: bool, router_seconds: float) -> None:
        self.decisions.labels(route=route, mode="forced" if forced else "router").inc()
        if forced:
            return
        self.router_latency.observe(router_seconds)
        self._routed[route] += 1
        self.strong_fraction.set(self._routed["strong"] / sum(self._routed.values()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
