"""Prometheus metrics, served on their own port (``server.metrics_address``).

Request metrics are counted by the interceptor; the state gauges (dependencies, tokens,
certificates, ledger, backlogs) are set from a :class:`kyso.status.Snapshot` that the server
takes after health checks (:meth:`Metrics.observe`). Every metric name here has an alert or a
panel in ``deploy/prometheus/kyso-rules.yml`` or docs/operations.md ("Watch").
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from kyso.config import HubConfig
    from kyso.operations.archive import Archive
    from kyso.operations.running import Blocking, Executors
    from kyso.status import Snapshot
    from signer.fetches import FetchCounts

log = logging.getLogger(__name__)

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

        self.dependency_up = Gauge(
            "kyso_dependency_up",
            "1 when the dependency answered its last health probe, else 0",
            ["dependency"],
            registry=self.registry,
        )
        self.token_up = Gauge(
            "kyso_token_up",
            "1 when the PKCS#11 token's signing workers serve, else 0",
            ["token"],
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "kyso_certificate_expiry_timestamp_seconds",
            "When a configured certificate stops being valid (Unix time): tls.certificate and"
            " keys.ALIAS",
            ["certificate"],
            registry=self.registry,
        )
        self.ledger_size = Gauge(
            "kyso_ledger_entries", "Entries in the audit ledger", registry=self.registry
        )
        self.head_size = Gauge(
            "kyso_ledger_head_tree_size",
            "Tree size of the latest signed tree head",
            registry=self.registry,
        )
        self.head_time = Gauge(
            "kyso_ledger_head_timestamp_seconds",
            "When the latest tree head was signed (Unix time)",
            registry=self.registry,
        )
        self.audit_backlog = Gauge(
            "kyso_audit_outbox_pending",
            "Staged ledger events not appended yet",
            registry=self.registry,
        )
        self.hop_backlog = Gauge(
            "kyso_exchange_outbox_pending",
            "Hops to other hubs not acknowledged yet, by the hub they go to",
            ["hub"],
            registry=self.registry,
        )
        self._hubs_seen: set[str] = set()
        self.delivery_backlog = Gauge(
            "kyso_exchange_deliveries_queued",
            "Deliveries waiting for their recipient's system to fetch them",
            registry=self.registry,
        )
        self.status_errors = Gauge(
            "kyso_status_read_errors",
            "State values that could not be read at the last look (a dependency down)",
            registry=self.registry,
        )

    def observe(self, snapshot: Snapshot) -> None:
        """Set the state gauges from ``snapshot`` (values it could not read keep their last)."""
        for name, reason in snapshot.dependencies.items():
            self.dependency_up.labels(name).set(0 if reason else 1)
        for name, reason in snapshot.tokens.items():
            self.token_up.labels(name).set(0 if reason else 1)
        for name, not_after in snapshot.certificates.items():
            self.certificate_expiry.labels(name).set(not_after.timestamp())
        pairs = (
            (self.ledger_size, snapshot.ledger_size),
            (self.head_size, snapshot.head_size),
            (self.audit_backlog, snapshot.audit_backlog),
            (self.delivery_backlog, snapshot.delivery_backlog),
        )
        for gauge, value in pairs:
            if value is not None:
                gauge.set(value)
        if snapshot.hop_backlog is not None:
            for hub in self._hubs_seen - snapshot.hop_backlog.keys():
                self.hop_backlog.labels(hub).set(0)
            for hub, count in snapshot.hop_backlog.items():
                self.hop_backlog.labels(hub).set(count)
            self._hubs_seen |= snapshot.hop_backlog.keys()
        if snapshot.head_time is not None:
            self.head_time.set(snapshot.head_time.timestamp())
        self.status_errors.set(len(snapshot.errors))

    def describe_hubs(self, hubs: Mapping[str, HubConfig], *, this_hub: str) -> None:
        """``kyso_exchange_hub_info{hub,root_unit,parent,address,peers,this_hub}`` = 1 for
        each hub of ``[exchange.hubs]``: the links of the exchange for views that do not read
        the configuration (``kyso admin status``, the console's operator page)."""
        info = Gauge(
            "kyso_exchange_hub_info",
            "A hub of [exchange.hubs] (always 1): its root unit, parent, address and peers"
            " (comma-separated), and whether it is this server's hub",
            ["hub", "root_unit", "parent", "address", "peers", "this_hub"],
            registry=self.registry,
        )
        for name, hub in hubs.items():
            info.labels(
                hub=name,
                root_unit=hub.root_unit,
                parent=hub.parent,
                address=hub.address,
                peers=",".join(hub.peers),
                this_hub="true" if name == this_hub else "false",
            ).set(1)

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

    def watch_notify(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """``kyso_notify_deliveries{state}``, ``kyso_notify_endpoints_disabled`` and
        ``kyso_notify_messages{state}`` (``kyso.notify.runner.backlog``), read when scraped
        (at most once every 5 s)."""
        cached = _Cached(counts, seconds=5.0)
        deliveries = Gauge(
            "kyso_notify_deliveries",
            "Webhook deliveries not delivered yet (pending) or given up (failed), by state",
            ["state"],
            registry=self.registry,
        )
        messages = Gauge(
            "kyso_notify_messages",
            "Citizens' Zalo/SMS messages not sent yet (pending) or given up (failed), by state",
            ["state"],
            registry=self.registry,
        )
        for state in ("pending", "failed"):
            deliveries.labels(state=state).set_function(
                functools.partial(_count, cached, f"deliveries_{state}")
            )
            messages.labels(state=state).set_function(
                functools.partial(_count, cached, f"messages_{state}")
            )
        Gauge(
            "kyso_notify_endpoints_disabled",
            "Webhook endpoints disabled (410 Gone, a refused target, failing too long)",
            registry=self.registry,
        ).set_function(functools.partial(_count, cached, "endpoints_disabled"))

    def watch_pools(self, executors: Executors) -> None:
        """``kyso_pool_running{pool}``, ``kyso_pool_waiting{pool}`` and
        ``kyso_pool_longest_wait_seconds{pool}``: the work pools (``kyso.operations.running``),
        read when scraped."""
        for name, help_text, read in (
            ("kyso_pool_running", "Calls holding a thread of the pool", _running),
            ("kyso_pool_waiting", "Calls waiting for a thread of the pool", _waiting),
            (
                "kyso_pool_longest_wait_seconds",
                "How long the oldest waiting call of the pool has waited",
                _longest_wait,
            ),
        ):
            gauge = Gauge(name, help_text, ["pool"], registry=self.registry)
            for pool in executors:
                gauge.labels(pool=pool.name).set_function(functools.partial(read, pool))

    def watch_archive(self, archive: Archive) -> None:
        """The archive's gauges, read from its last status and run counters when scraped:
        ``kyso_archive_documents``, ``kyso_archive_evidence_ending{within}`` (30d, 90d, 365d,
        ended), ``kyso_archive_failing``, ``kyso_archive_renewals_total`` and
        ``kyso_archive_renewal_failures_total``."""
        documents = Gauge(
            "kyso_archive_documents",
            "Current versions of stored signed PDFs (at the last archive run)",
            registry=self.registry,
        )
        documents.set_function(functools.partial(_archive_value, archive, "documents"))
        ending = Gauge(
            "kyso_archive_evidence_ending",
            "Stored signed PDFs whose evidence ends within the period (ended: already over)",
            ["within"],
            registry=self.registry,
        )
        for label in ("30d", "90d", "365d", "ended"):
            ending.labels(within=label).set_function(
                functools.partial(_archive_value, archive, label)
            )
        failing = Gauge(
            "kyso_archive_failing",
            "Stored signed PDFs whose last renewal attempt failed (retried with growing delays)",
            registry=self.registry,
        )
        failing.set_function(functools.partial(_archive_value, archive, "failing"))
        for name, help_text, attribute in (
            ("kyso_archive_renewals_total", "Renewals stored by this process", "renewals"),
            (
                "kyso_archive_renewal_failures_total",
                "Renewal attempts that failed in this process",
                "failures",
            ),
        ):
            counter = Gauge(name, help_text, registry=self.registry)
            counter.set_function(functools.partial(_attribute, archive, attribute))

    def watch_fetches(self, totals: Callable[[], FetchCounts]) -> None:
        """``kyso_tsa_requests_total{url,outcome}``,
        ``kyso_tsa_certificate_expiry_timestamp_seconds{url}`` and
        ``kyso_revocation_requests_total{kind,url,outcome}``, read from ``totals`` (what the
        signing and renewal workers and the two-phase signer fetched) when scraped. The outcomes
        are those of ``signer.fetches``."""
        self.registry.register(_FetchCollector(totals))

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


class _FetchCollector(Collector):
    def __init__(self, totals: Callable[[], FetchCounts]) -> None:
        self._totals = totals

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self._totals()))

    @staticmethod
    def _families(counts: FetchCounts | None = None) -> list[Metric]:
        requests = CounterMetricFamily(
            "kyso_tsa_requests",
            "Time-stamp requests to each TSA by outcome (ok, failed: network or HTTP error or"
            " a malformed reply, refused: the TSA answered with a refusal)",
            labels=["url", "outcome"],
        )
        expiry = GaugeMetricFamily(
            "kyso_tsa_certificate_expiry_timestamp_seconds",
            "When the certificate that signed the TSA's last time-stamp stops being valid"
            " (Unix time)",
            labels=["url"],
        )
        revocation = CounterMetricFamily(
            "kyso_revocation_requests",
            "OCSP requests and CRL downloads (kind ocsp or crl) to each URL by outcome (ok,"
            " failed: network or HTTP error or an unreadable answer, refused: the OCSP"
            " responder answered with a status other than successful); cached answers are not"
            " counted",
            labels=["kind", "url", "outcome"],
        )
        if counts is not None:
            for (url, outcome), count in sorted(counts.tsa_requests.items()):
                requests.add_metric([url, outcome], float(count))
            for url, not_after in sorted(counts.tsa_certificate_not_after.items()):
                expiry.add_metric([url], not_after.timestamp())
            for (kind, url, outcome), count in sorted(counts.revocation_requests.items()):
                revocation.add_metric([kind, url, outcome], float(count))
        return [requests, expiry, revocation]


class _Cached:
    """``read()`` at most every ``seconds``; the last value in between (and when it fails)."""

    def __init__(self, read: Callable[[], Mapping[str, int]], *, seconds: float) -> None:
        self._read = read
        self._seconds = seconds
        self._at = float("-inf")
        self._value: Mapping[str, int] = {}

    def __call__(self) -> Mapping[str, int]:
        now = time.monotonic()
        if now - self._at >= self._seconds:
            self._at = now
            try:
                self._value = self._read()
            except Exception:  # the database is away: the health check says so; keep the last
                log.warning("cannot read the notification backlog", exc_info=True)
        return self._value


def _archive_value(archive: Archive, name: str) -> float:
    status = archive.last_status
    if status is None:
        return 0.0
    days = {"30d": 30, "90d": 90, "365d": 365}.get(name)
    if days is not None:
        return float(status.within[days])
    return float(getattr(status, name))


def _attribute(archive: Archive, name: str) -> float:
    return float(getattr(archive, name))


def _count(counts: Callable[[], Mapping[str, int]], kind: str) -> float:
    return float(counts().get(kind, 0))


def _running(pool: Blocking) -> float:
    return float(pool.running)


def _waiting(pool: Blocking) -> float:
    return float(pool.waiting)


def _longest_wait(pool: Blocking) -> float:
    return pool.longest_wait()
