"""The notification tables and their migrations (prefix ``notify_``).

- ``notify_events``: the transactional outbox of notifications. A row is written in the
  transaction of the change it tells about (``kyso.notify.outbox.stage``, called where the
  change's ledger events are staged), so the change and its notification commit together or
  not at all. ``id`` orders the events; ``event_id`` is the stable id receivers deduplicate by;
  ``key`` is what deliveries are ordered by (the document or the session); ``data`` is the thin
  payload (ids, codes, times), ``personal`` what only subscriptions allowing personal data get.
  ``endpoint_id`` is set for a test event meant for one endpoint only.
- ``notify_endpoints``: webhook subscriptions, per client and unit, with event-type filters,
  their secrets (several while one is rotated), ``cursor`` (the last event fanned out to it),
  and their health: ``paused_until`` (slowed down after 429/5xx or an unreachable receiver),
  ``failing_since``, ``disabled_at``/``disabled_reason`` (410, or failing for the whole
  retry window); ``lease_until``: the process delivering to it now (one at a time, so the
  order per document holds with several processes).
- ``notify_deliveries``: one row per (endpoint, event): attempts, the next attempt, the outcome.
- ``notify_cursors``: named positions in ``notify_events`` (the citizens' messages).
- ``notify_consents``: a citizen's consent, per dossier (document id), to be told by Zalo/SMS.
- ``notify_messages``: one row per (event, phone): the Zalo ZNS / SMS message and its fate.

Times are stored in UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

from kyso.db import Component, MigrationStep

__all__ = [
    "COMPONENT",
    "consents",
    "cursors",
    "deliveries",
    "endpoints",
    "events",
    "messages",
    "metadata",
]

metadata = sa.MetaData()

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)

events = sa.Table(
    "notify_events",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(40), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False, index=True),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("other_unit", sa.String(32), nullable=False, server_default=""),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("occurred_at", _Time, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("personal", sa.JSON, nullable=False),
    sa.Column("endpoint_id", sa.String(40)),
)

endpoints = sa.Table(
    "notify_endpoints",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("types", sa.JSON, nullable=False),
    sa.Column("secrets", sa.JSON, nullable=False),
    sa.Column("personal_data", sa.Boolean, nullable=False),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("cursor", _Id, nullable=False),
    sa.Column("paused_until", _Time),
    sa.Column("failing_since", _Time),
    sa.Column("disabled_at", _Time),
    sa.Column("disabled_reason", sa.String(500), nullable=False, server_default=""),
    sa.Column("lease_until", _Time),
)

deliveries = sa.Table(
    "notify_deliveries",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.String(40),
        sa.ForeignKey("notify_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event", _Id, sa.ForeignKey("notify_events.id"), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", _Time, nullable=False),
    sa.Column("last_status", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
    sa.Column("delivered_at", _Time),
    sa.UniqueConstraint("endpoint_id", "event", name="uq_notify_deliveries"),
    sa.Index("ix_notify_deliveries_pending", "endpoint_id", "state", "event"),
)

cursors = sa.Table(
    "notify_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", _Id, nullable=False),
)

consents = sa.Table(
    "notify_consents",
    metadata,
    sa.Column("document_id", sa.String(255), primary_key=True),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("given_at", _Time, nullable=False),
)

messages = sa.Table(
    "notify_messages",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("event", _Id, sa.ForeignKey("notify_events.id"), nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False, index=True),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("status", sa.String(4), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False, server_default=""),
    sa.Column("tracking_id", sa.String(64), nullable=False),
    sa.Column("provider_id", sa.String(100), nullable=False, server_default=""),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", _Time, nullable=False),
    sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("sent_at", _Time),
    sa.UniqueConstraint("event", "phone", name="uq_notify_messages"),
)

_STEPS: tuple[MigrationStep, ...] = (
    (
        1,
        "notification outbox, webhook endpoints and deliveries, citizens' consents and messages",
        lambda conn: metadata.create_all(conn),
    ),
)

COMPONENT = Component(name="notify", steps=_STEPS)
