"""Prometheus metrics, served on their own port (``server.metrics_address``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]


class Metrics:
    """Requests by RPC and code, latency histograms and calls in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kyso_grpc_requests",
            "RPCs finished, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kyso_grpc_request_seconds",
            "RPC latency in seconds, by method",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "kyso_grpc_in_flight", "RPCs in progress", ["method"], registry=self.registry
        )

    def watch_quarantine(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """``kyso_exchange_quarantined{kind}``: deliveries and hops in quarantine, read from
        ``counts`` (kind → number) when scraped."""
        gauge = Gauge(
            "kyso_exchange_quarantined",
            "Deliveries and hops set aside after failing too often, by kind",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("delivery", "hop"):
            gauge.labels(kind=kind).set_function(functools.partial(_count, counts, kind))

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


def _count(counts: Callable[[], Mapping[str, int]], kind: str) -> float:
    return float(counts().get(kind, 0))
