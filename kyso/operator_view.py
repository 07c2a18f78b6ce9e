"""What an operator sees of a running server, built from what the server publishes: its health
answer (with the reason of each dependency down) and its metrics endpoint.

``kyso admin status`` and the console's operator page (``/van-hanh``) both call :func:`build`
on the same inputs, so they show the same thing: dependencies, tokens, certificate expiry (keys,
TLS, TSA), the ledger and the age of its last signed tree head, the backlogs, and the hubs of
the exchange with their links and the hops waiting for each (from ``kyso_exchange_hub_info``).

Invariants: nothing here talks to the database or reads the server's configuration — a view is
a function of (health, reasons, metrics text, now), so a client on another machine builds the
same one. Imports are standard library only at module level (the CLI starts fast); the
Prometheus parser is imported when metrics are parsed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SOON_DAYS",
    "Certificate",
    "Hub",
    "Ledger",
    "MetricsUnavailable",
    "OperatorView",
    "Sample",
    "build",
    "down_reasons",
    "parse_metrics",
    "render_text",
    "scrape",
]

SOON_DAYS = 30
"""A certificate that ends within this many days is shown as ending soon."""


class MetricsUnavailable(Exception):
    """The metrics endpoint could not be read; the message says which URL and why."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of the metrics text: name (with suffix), labels, value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate's end of validity: ``keys.ALIAS``, ``tls.certificate`` or ``tsa URL``
    (the certificate that signed that TSA's last time-stamp)."""

    name: str
    not_after: datetime
    days_left: float

    @property
    def expired(self) -> bool:
        return self.days_left < 0

    @property
    def soon(self) -> bool:
        """Ends within :data:`SOON_DAYS` days (and has not ended yet)."""
        return 0 <= self.days_left < SOON_DAYS


@dataclass(frozen=True, slots=True)
class Hub:
    """A hub of ``[exchange.hubs]`` as the server describes it, with the hops waiting for it."""

    id: str
    root_unit: str
    parent: str
    address: str
    peers: tuple[str, ...]
    this_hub: bool
    hops_waiting: int

    @property
    def links(self) -> tuple[str, ...]:
        """The hubs it sends to directly: ``parent X`` first, then its peers."""
        return (*((f"parent {self.parent}",) if self.parent else ()), *self.peers)


@dataclass(frozen=True, slots=True)
class Ledger:
    """The ledger's size and its last signed tree head (None: not published or none yet)."""

    entries: int | None = None
    head_tree_size: int | None = None
    head_signed_at: datetime | None = None
    head_age_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class OperatorView:
    """One look at a server. ``health`` is the status name (``SERVING``, ``NOT_SERVING``) or
    ``UNREACHABLE (CODE)``; ``down`` its ``dependency: reason`` lines. Without metrics
    (``metrics_read`` false) only the health part is filled."""

    server: str
    health: str
    down: tuple[str, ...] = ()
    metrics_read: bool = False
    dependencies: Mapping[str, bool] = field(default_factory=dict)
    """Each probed dependency: True while it answers."""
    tokens: Mapping[str, bool] = field(default_factory=dict)
    """Each PKCS#11 token: True while its signing workers serve."""
    certificates: tuple[Certificate, ...] = ()
    ledger: Ledger = field(default_factory=Ledger)
    backlogs: Mapping[str, int] = field(default_factory=dict)
    hubs: tuple[Hub, ...] = ()

    @property
    def serving(self) -> bool:
        return self.health == "SERVING"

    def reason(self, dependency: str) -> str:
        """Why ``dependency`` is down, from the health answer ("" when it does not say)."""
        prefix = f"{dependency}: "
        return next((line[len(prefix) :] for line in self.down if line.startswith(prefix)), "")

    def to_json(self) -> dict[str, Any]:
        """The ``kyso admin status --json`` object."""
        ledger: dict[str, Any] = {}
        if self.ledger.entries is not None:
            ledger["entries"] = self.ledger.entries
        if self.ledger.head_tree_size is not None:
            ledger["head_tree_size"] = self.ledger.head_tree_size
        if self.ledger.head_signed_at is not None:
            ledger["head_signed_at"] = _iso(self.ledger.head_signed_at)
            ledger["head_age_seconds"] = self.ledger.head_age_seconds
        return {
            "server": self.server,
            "health": self.health,
            "down": list(self.down),
            "dependencies": {k: "up" if up else "DOWN" for k, up in self.dependencies.items()},
            "tokens": {k: "serving" if up else "DOWN" for k, up in self.tokens.items()},
            "certificates": {
                c.name: {"not_after": _iso(c.not_after), "days_left": c.days_left}
                for c in self.certificates
            },
            "ledger": ledger,
            "backlogs": dict(self.backlogs),
            "hubs": [
                {
                    "id": hub.id,
                    "root_unit": hub.root_unit,
                    "parent": hub.parent,
                    "address": hub.address,
                    "peers": list(hub.peers),
                    "this_hub": hub.this_hub,
                    "hops_waiting": hub.hops_waiting,
                }
                for hub in self.hubs
            ],
        }


def down_reasons(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, ...]:
    """The ``dependency: reason`` lines of a health answer's trailing metadata."""
    from kyso.health import FAILING_METADATA

    return tuple(
        value if isinstance(value, str) else value.decode()
        for key, value in metadata or ()
        if key == FAILING_METADATA
    )


def scrape(address: str, timeout: float) -> str:
    """The metrics text of ``http://ADDRESS/metrics`` (blocking); ``MetricsUnavailable``."""
    url = f"http://{address}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise MetricsUnavailable(f"{url}: cannot read the metrics ({exc})") from exc


def parse_metrics(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition; ``MetricsUnavailable`` if it is not one."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return [
            Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except ValueError as exc:
        raise MetricsUnavailable(f"not Prometheus metrics text ({exc})") from exc


_BACKLOG_ORDER = (
    "audit_outbox",
    "hops",
    "deliveries_queued",
    "quarantined_delivery",
    "quarantined_hop",
    "webhooks_pending",
    "webhooks_failed",
    "webhook_endpoints_disabled",
    "citizen_messages_pending",
    "citizen_messages_failed",
)
"""The order backlogs are shown in: the ledger, the exchange, then notifications."""


def _backlog_key(name: str) -> tuple[int, str]:
    return (_BACKLOG_ORDER.index(name) if name in _BACKLOG_ORDER else len(_BACKLOG_ORDER), name)


_NOTIFY = {"kyso_notify_deliveries": "webhooks", "kyso_notify_messages": "citizen_messages"}


def build(
    *,
    server: str,
    health: str,
    down: Iterable[str] = (),
    samples: Iterable[Sample] | None = None,
    now: datetime | None = None,
) -> OperatorView:
    """The view of ``server`` from its health answer and, when given, its metrics samples
    (None: metrics not read). ``now`` (default: the clock) is what days left and head age are
    counted from."""
    down = tuple(down)
    if samples is None:
        return OperatorView(server=server, health=health, down=down)
    now = now or datetime.now(UTC)
    dependencies: dict[str, bool] = {}
    tokens: dict[str, bool] = {}
    certificates: dict[str, Certificate] = {}
    ledger: dict[str, Any] = {}
    backlogs: dict[str, int] = {}
    hops: dict[str, int] = {}
    hubs: dict[str, Mapping[str, str]] = {}
    for sample in samples:
        name, labels, value = sample.name, sample.labels, sample.value
        if name == "kyso_dependency_up":
            dependencies[labels["dependency"]] = bool(value)
        elif name == "kyso_token_up":
            tokens[labels["token"]] = bool(value)
        elif name == "kyso_certificate_expiry_timestamp_seconds":
            certificates[labels["certificate"]] = _certificate(labels["certificate"], value, now)
        elif name == "kyso_tsa_certificate_expiry_timestamp_seconds":
            label = f"tsa {labels['url']}"
            certificates[label] = _certificate(label, value, now)
        elif name == "kyso_ledger_entries":
            ledger["entries"] = int(value)
        elif name == "kyso_ledger_head_tree_size":
            ledger["head_tree_size"] = int(value)
        elif name == "kyso_ledger_head_timestamp_seconds" and value:
            signed = datetime.fromtimestamp(value, UTC)
            ledger["head_signed_at"] = signed
            ledger["head_age_seconds"] = round((now - signed).total_seconds())
        elif name == "kyso_audit_outbox_pending":
            backlogs["audit_outbox"] = int(value)
        elif name == "kyso_exchange_outbox_pending":
            hops[labels["hub"]] = int(value)
            backlogs["hops"] = backlogs.get("hops", 0) + int(value)
        elif name == "kyso_exchange_deliveries_queued":
            backlogs["deliveries_queued"] = int(value)
        elif name == "kyso_exchange_quarantined":
            backlogs[f"quarantined_{labels['kind']}"] = int(value)
        elif name in _NOTIFY:
            backlogs[f"{_NOTIFY[name]}_{labels['state']}"] = int(value)
        elif name == "kyso_notify_endpoints_disabled":
            backlogs["webhook_endpoints_disabled"] = int(value)
        elif name == "kyso_exchange_hub_info" and value:
            hubs[labels["hub"]] = labels
    return OperatorView(
        server=server,
        health=health,
        down=down,
        metrics_read=True,
        dependencies=dict(sorted(dependencies.items())),
        tokens=dict(sorted(tokens.items())),
        certificates=tuple(certificates[k] for k in sorted(certificates)),
        ledger=Ledger(**ledger),
        backlogs={name: backlogs[name] for name in sorted(backlogs, key=_backlog_key)},
        hubs=tuple(
            Hub(
                id=hub,
                root_unit=labels.get("root_unit", ""),
                parent=labels.get("parent", ""),
                address=labels.get("address", ""),
                peers=tuple(p for p in labels.get("peers", "").split(",") if p),
                this_hub=labels.get("this_hub") == "true",
                hops_waiting=hops.get(hub, 0),
            )
            for hub, labels in sorted(hubs.items())
        ),
    )


def render_text(view: OperatorView) -> str:
    """The ``kyso admin status`` screen: one line per fact, a fixed first column."""
    lines = [f"server        {view.server}: {view.health}"]
    lines += [f"  down        {line}" for line in view.down]
    for name, up in view.dependencies.items():
        lines.append(f"dependency    {name:<24} {'up' if up else 'DOWN'}")
    for name, up in view.tokens.items():
        lines.append(f"token         {name:<24} {'serving' if up else 'DOWN'}")
    for cert in view.certificates:
        flag = "  EXPIRED" if cert.expired else ("  expires soon" if cert.soon else "")
        lines.append(
            f"certificate   {cert.name:<24} until {_iso(cert.not_after)}"
            f" ({cert.days_left} days){flag}"
        )
    ledger = view.ledger
    if ledger.entries is not None or ledger.head_tree_size is not None:
        head = (
            f"head {ledger.head_tree_size if ledger.head_tree_size is not None else '-'}"
            f" signed {_iso(ledger.head_signed_at)} ({ledger.head_age_seconds} s ago)"
            if ledger.head_signed_at is not None
            else "no head signed yet"
        )
        entries = ledger.entries if ledger.entries is not None else "-"
        lines.append(f"ledger        {entries} entries, {head}")
    for name, count in view.backlogs.items():
        lines.append(f"backlog       {name:<24} {count}")
    for hub in view.hubs:
        here = " (this hub)" if hub.this_hub else ""
        lines.append(
            f"hub           {hub.id:<10}{here} root {hub.root_unit} at {hub.address or '-'};"
            f" links: {', '.join(hub.links) or '-'}; hops waiting {hub.hops_waiting}"
        )
    return "\n".join(lines)


def _certificate(name: str, timestamp: float, now: datetime) -> Certificate:
    not_after = datetime.fromtimestamp(timestamp, UTC)
    return Certificate(
        name=name,
        not_after=not_after,
        days_left=round((not_after - now).total_seconds() / 86400, 1),
    )


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
