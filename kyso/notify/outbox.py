"""What is notified, and its transactional outbox.

:func:`stage` is called with the ledger events an operation stages in the transaction of its
change (``kyso.operations.ledger.Staging``), with the same connection: each event someone waits
for becomes a row of ``notify_events`` that commits or rolls back with the change. Every
notification therefore has a change behind it, and every such change its notification.

Kinds (:data:`KINDS`): a document delivered to a unit, a status set (01–06, 13, 15, 16), a
two-phase session waiting for an official / completed / cancelled / expired, a PDF sealed, and
``kyso.test`` (a test event for one endpoint). Later kinds (archive renewals, …) are new rows of
:data:`_FROM_LEDGER` and need no change of schema: the type is a string, the payload JSON.

Payloads are thin: ids, codes, unit codes and times, never document bytes. The few fields that
name a person (the official's name) go into ``personal``, sent only where the subscription
allows personal data.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

import audit
from kyso.notify.schema import events as events_table

__all__ = [
    "GAP_GRACE",
    "KINDS",
    "TEST_KIND",
    "Notification",
    "committed_prefix",
    "new_event_id",
    "notifications_of",
    "stage",
]

TEST_KIND = "kyso.test"
GAP_GRACE = timedelta(seconds=10)
"""How long a gap in the outbox's ids is waited for (see :func:`committed_prefix`)."""


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    key: tuple[str, ...]
    """Detail names whose first present value orders the kind's deliveries (else the digest)."""
    data: tuple[str, ...]
    personal: tuple[str, ...] = ()
    other_unit: str = ""
    """The detail naming a second unit that may subscribe (the sender of a status)."""


_FROM_LEDGER: Mapping[audit.EventType, _Rule] = {
    audit.EventType.PACKAGE_DELIVERED: _Rule(
        "document.delivered",
        key=("document_id",),
        data=("document_id", "sender", "status"),
        other_unit="sender",
    ),
    audit.EventType.STATUS_CHANGED: _Rule(
        "status.changed",
        key=("document_id",),
        data=("document_id", "sender", "status"),
        other_unit="sender",
    ),
    audit.EventType.SIGNATURE_PREPARED: _Rule(
        "signature.waiting",
        key=("session",),
        data=("session", "level", "certificate_sha256"),
        personal=("signer",),
    ),
    audit.EventType.SIGNATURE_COMPLETED: _Rule(
        "signature.completed",
        key=("session",),
        data=("session", "level", "certificate_sha256", "requester"),
        personal=("signer",),
    ),
    audit.EventType.SIGNATURE_CANCELLED: _Rule(
        "signature.cancelled", key=("session",), data=("session", "certificate_sha256")
    ),
    audit.EventType.SIGNATURE_EXPIRED: _Rule(
        "signature.expired", key=("session",), data=("session",)
    ),
    audit.EventType.SIGNATURE_SEALED: _Rule("pdf.sealed", key=(), data=("level", "field")),
}

KINDS: tuple[str, ...] = (*(rule.kind for rule in _FROM_LEDGER.values()), TEST_KIND)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One row of the outbox, as staged."""

    event_id: str
    type: str
    unit: str
    other_unit: str
    key: str
    occurred_at: datetime
    data: dict[str, str]
    personal: dict[str, str]
    endpoint_id: str | None = None

    def row(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "unit": self.unit,
            "other_unit": self.other_unit,
            "key": self.key,
            "occurred_at": self.occurred_at,
            "data": self.data,
            "personal": self.personal,
            "endpoint_id": self.endpoint_id,
        }


def new_event_id() -> str:
    """A fresh, stable event id (``evt_`` and 26 random base32 characters)."""
    return "evt_" + secrets.token_hex(13)


def notifications_of(events: Sequence[audit.Event]) -> list[Notification]:
    """The notifications the ledger ``events`` call for (most events call for none)."""
    out = []
    for event in events:
        rule = _FROM_LEDGER.get(event.type)
        if rule is None:
            continue
        details = event.details
        key = next((details[name] for name in rule.key if details.get(name)), "")
        if not key:
            key = event.document_sha256 or event.unit
        data = {name: details[name] for name in rule.data if details.get(name)}
        if event.document_sha256:
            data["document_sha256"] = event.document_sha256
        if event.type is audit.EventType.SIGNATURE_SEALED and event.refs:
            data["document_ref"] = event.refs[0]
            data["key"] = event.key or ""
        data["unit"] = event.unit
        out.append(
            Notification(
                event_id=new_event_id(),
                type=rule.kind,
                unit=event.unit,
                other_unit=details.get(rule.other_unit, "") if rule.other_unit else "",
                key=key[:300],
                occurred_at=event.time,
                data=data,
                personal={name: details[name] for name in rule.personal if details.get(name)},
            )
        )
    return out


def stage(conn: sa.Connection, events: Sequence[audit.Event]) -> int:
    """Write the notifications of ``events`` in ``conn``'s transaction; return how many."""
    rows = [n.row() for n in notifications_of(events)]
    if rows:
        conn.execute(events_table.insert(), rows)
    return len(rows)


def committed_prefix(
    rows: Sequence[Any], position: int, now: datetime, *, grace: timedelta = GAP_GRACE
) -> list[Any]:
    """The rows (ordered by id, all after ``position``) that a reader may consume now.

    Ids are given at insert, but transactions commit in their own order (PostgreSQL): a reader
    that moved its position past a gap could miss the row of a transaction still committing.
    So a reader stops before a gap until the row after it is ``grace`` old; then the gap is
    taken for a rolled-back insert and passed. (SQLite, with one writer, leaves no such gap.)
    """
    safe = []
    expected = position + 1
    for row in rows:
        occurred = (
            row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
        )
        if row.id != expected and now - occurred < grace:
            break
        safe.append(row)
        expected = row.id + 1
    return safe
