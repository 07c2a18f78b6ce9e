"""What an operator watches, collected in one place: dependencies, tokens, certificate expiry,
the ledger, and the backlogs of the audit outbox, of hops to other hubs and of deliveries.

:func:`collect` reads it (blocking: run it off the event loop); the metrics (``kyso.metrics``)
publish it; ``kyso admin status`` shows it. Invariants: collecting never raises because a
dependency is down — what cannot be read is None and the reason is in ``errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

import audit
from exchange import schema as exchange_schema
from exchange.routing.model import DeliveryState
from kyso.app import Application

__all__ = ["Snapshot", "certificate_expiry", "collect"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One look at the server. Times are UTC; None means "could not be read" (see ``errors``)."""

    taken_at: datetime
    dependencies: Mapping[str, str]
    """Every probed dependency: "" when it answers, else why not."""
    tokens: Mapping[str, str]
    """Every token: "" when serving, else its state and reason."""
    certificates: Mapping[str, datetime]
    """``tls.certificate`` and ``keys.ALIAS``: when each stops being valid."""
    ledger_size: int | None = None
    head_size: int | None = None
    head_time: datetime | None = None
    audit_backlog: int | None = None
    hop_backlog: Mapping[str, int] | None = None
    """Hops not acknowledged yet, by the hub they go to."""
    delivery_backlog: int | None = None
    errors: Mapping[str, str] = field(default_factory=dict)


def certificate_expiry(app: Application) -> dict[str, datetime]:
    """When each configured certificate stops being valid: the TLS server certificate and
    every key's (from the token, or the file ``keys.ALIAS.certificate``)."""
    from cryptography import x509

    expiry: dict[str, datetime] = {}
    tls = app.config.tls
    if tls.enabled and tls.certificate is not None:
        first = x509.load_pem_x509_certificates(tls.certificate.read_bytes())[0]
        expiry["tls.certificate"] = first.not_valid_after_utc
    if app.keyring is not None:
        for alias in app.keyring.aliases():
            expiry[f"keys.{alias}"] = app.keyring.certificate(alias).not_valid_after
    return expiry


def collect(app: Application, failing: Mapping[str, str], probed: frozenset[str]) -> Snapshot:
    """A snapshot of ``app``; ``failing``/``probed`` are the health monitor's last results."""
    errors: dict[str, str] = {}
    tokens: dict[str, str] = {}
    if app.keyring is not None:
        tokens = {name: "" if ok is True else str(ok) for name, ok in app.keyring.health().items()}
    values: dict[str, object] = {}

    def read(name: str, query: object) -> None:
        try:
            values[name] = query() if callable(query) else None
        except Exception as exc:  # a dependency down is what this reports, not a failure
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]

    read("ledger_size", app.ledger.size)
    read("audit_backlog", app.ledger.pending_outbox)
    read("head", lambda: _latest_head(app.ledger))
    if app.router is not None:
        read("hop_backlog", lambda: _hops_by_hub(app.engine))
        read("delivery_backlog", lambda: _count(app.engine, _queued_deliveries()))
    head = values.get("head")
    return Snapshot(
        taken_at=datetime.now(UTC),
        dependencies={name: failing.get(name, "") for name in sorted(probed)},
        tokens=tokens,
        certificates=certificate_expiry(app),
        ledger_size=_int(values.get("ledger_size")),
        head_size=head.tree_size if isinstance(head, audit.SignedTreeHead) else None,
        head_time=head.time if isinstance(head, audit.SignedTreeHead) else None,
        audit_backlog=_int(values.get("audit_backlog")),
        hop_backlog=_hops(values.get("hop_backlog")),
        delivery_backlog=_int(values.get("delivery_backlog")),
        errors=errors,
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _latest_head(ledger: audit.Ledger) -> audit.SignedTreeHead | None:
    try:
        return ledger.latest_head()
    except audit.HeadNotFound:
        return None


def _hops_by_hub(engine: sa.Engine) -> dict[str, int]:
    outbox = exchange_schema.outbox
    query = (
        sa.select(outbox.c.next_hub, sa.func.count())
        .where(outbox.c.done_at.is_(None))
        .group_by(outbox.c.next_hub)
    )
    with engine.connect() as conn:
        return {str(hub): int(count) for hub, count in conn.execute(query)}


def _hops(value: object) -> dict[str, int] | None:
    return value if isinstance(value, dict) else None


def _queued_deliveries() -> sa.Select[int]:
    deliveries = exchange_schema.deliveries
    return (
        sa.select(sa.func.count())
        .select_from(deliveries)
        .where(deliveries.c.state == DeliveryState.QUEUED.value)
    )


def _count(engine: sa.Engine, query: sa.Select[int]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
