"""Prometheus metrics of the server, on a registry of its own, correct across workers.

A private ``CollectorRegistry`` per app (not the global default) lets tests and the
benchmark build several apps in one process without duplicate-metric errors.

With ``serve --workers N`` every worker is a process with its own counters. There,
``PROMETHEUS_MULTIPROC_DIR`` is set (``serve`` creates and removes the directory) and
prometheus_client keeps each worker's values in files in it; ``/metrics``, answered by
whichever worker gets the request, sums them all. The strong-call fraction is therefore not
a per-process gauge but computed when scraped, from the summed decision counters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_ROUTER_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when running as one of several workers."""
    return os.environ.get(MULTIPROC_ENV) or None


def strong_fraction(families: Iterable[Metric]) -> GaugeMetricFamily:
    """Share of router decisions (forced excluded) that went strong, from the counters."""
    routed = {"weak": 0.0, "strong": 0.0}
    for family in families:
        if family.name != "firewall_decisions":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("mode") == "router":
                routed[sample.labels["route"]] += sample.value
    total = routed["weak"] + routed["strong"]
    return GaugeMetricFamily(
        "firewall_strong_call_fraction",
        "Share of router decisions (forced weak/strong excluded) that went strong.",
        value=routed["strong"] / total if total else 0.0,
    )


class _Snapshot:
    """Already collected families, in the shape ``generate_latest`` reads."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


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

    def record_decision(self, route: str, forced: bool, router_seconds: float) -> None:
        self.decisions.labels(route=route, mode="forced" if forced else "router").inc()
        if not forced:
            self.router_latency.observe(router_seconds)

    def render(self) -> bytes:
        """This process's metrics, or every worker's summed (multiprocess mode)."""
        if multiprocess_dir() is None:
            families = list(self.registry.collect())
        else:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            families = list(merged.collect())
        families.append(strong_fraction(families))
        return generate_latest(_Snapshot(families))
