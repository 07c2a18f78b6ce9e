"""The exchange package's tables and migrations (the persistence contract of docs/architecture.md).

Tables (all ``exchange_…``):
- ``exchange_units``: the directory; ``parent_code`` is data, ``folded_name`` is ``fold_name(name)``
  kept for diacritic-insensitive search, ``hub`` the hub that serves the unit when set explicitly.
- ``exchange_messages``: one row per package accepted at this hub, unique per
  (sender, document_id, business_type); the package bytes live in object storage (``package_ref``).
- ``exchange_deliveries``: one row per (message, recipient) — the dedup record, never deleted. A
  local recipient's row is its inbox entry (``next_hub`` NULL); a remote one's waits in the outbox.
- ``exchange_outbox``: durable hops to other hubs: a package for some recipients, or one status
  code of some recipients travelling back to the sender (``kind`` package | status): a status
  that originated here has ``status_code`` (its packets are built when sent); one relayed from
  another hub has ``packet_ref``, the received signed packet, forwarded unchanged.
  Statuses go back the way the message came (``exchange_messages.via_hub``).
- ``exchange_status_events``: the status history per (message, recipient): 01 … 06, 13, 15, 16;
  ``exchange_deliveries.status`` holds the current code.
- Quarantine (version 2): ``failures`` counts the times a local delivery could not be handed
  over (``exchange_deliveries``) or the next hub refused a hop (``exchange_outbox``);
  ``last_error`` says why; ``quarantined_at`` is set when the count reached the configured
  bound (a quarantined delivery has state ``quarantined``), and cleared when an operator
  releases it.

Times are stored in UTC.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

__all__ = [
    "MIGRATIONS",
    "deliveries",
    "messages",
    "metadata",
    "outbox",
    "status_events",
    "units",
]

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UnitCode = sa.String(16)
_HubId = sa.String(64)
_Time = sa.DateTime(timezone=True)

units = sa.Table(
    "exchange_units",
    metadata,
    sa.Column("code", _UnitCode, primary_key=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("folded_name", sa.String(500), nullable=False, index=True),
    sa.Column("parent_code", _UnitCode, sa.ForeignKey("exchange_units.code"), index=True),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("hub", _HubId),
)

messages = sa.Table(
    "exchange_messages",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("sender", _UnitCode, nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False),
    sa.Column("business_type", sa.SmallInteger, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("package_ref", sa.String(100), nullable=False),
    sa.Column("package_sha256", sa.String(64), nullable=False),
    sa.Column("signer", sa.String(500)),
    sa.Column("via_hub", _HubId),
    sa.Column("trace", sa.JSON, nullable=False),
    sa.Column("received_at", _Time, nullable=False),
    sa.UniqueConstraint("sender", "document_id", "business_type", name="uq_exchange_messages_doc"),
)

deliveries = sa.Table(
    "exchange_deliveries",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("message_id", _Id, sa.ForeignKey("exchange_messages.id"), nullable=False),
    sa.Column("recipient", _UnitCode, nullable=False),
    sa.Column("next_hub", _HubId),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status", sa.String(2)),
    sa.Column("lease_until", _Time),
    sa.Column("fetch_count", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500)),
    sa.Column("quarantined_at", _Time),
    sa.UniqueConstraint("message_id", "recipient", name="uq_exchange_deliveries_recipient"),
    sa.Index("ix_exchange_deliveries_inbox", "recipient", "state", "id"),
)

outbox = sa.Table(
    "exchange_outbox",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("message_id", _Id, sa.ForeignKey("exchange_messages.id"), nullable=False),
    sa.Column("next_hub", _HubId, nullable=False),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("packet_ref", sa.String(100)),
    sa.Column("status_code", sa.String(2)),
    sa.Column("description", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", _Time, nullable=False),
    sa.Column("last_error", sa.String(500)),
    sa.Column("done_at", _Time),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("quarantined_at", _Time),
    sa.Index("ix_exchange_outbox_pending", "done_at", "next_attempt_at"),
)

status_events = sa.Table(
    "exchange_status_events",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("message_id", _Id, sa.ForeignKey("exchange_messages.id"), nullable=False),
    sa.Column("recipient", _UnitCode, nullable=False),
    sa.Column("code", sa.String(2), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("staff", sa.String(200)),
    sa.Column("at", _Time, nullable=False),
    sa.Index("ix_exchange_status_events_delivery", "message_id", "recipient", "id"),
)


def _create_v1(conn: sa.Connection) -> None:
    metadata.create_all(conn)


_QUARANTINE_COLUMNS = {
    "exchange_deliveries": ("failures", "last_error", "quarantined_at"),
    "exchange_outbox": ("failures", "quarantined_at"),
}


def _quarantine_v2(conn: sa.Connection) -> None:
    """Add the quarantine columns to a version-1 database.

    Version 1 creates the tables from ``metadata``, which has these columns today: on a new
    database they exist already and only the missing ones are added.
    """
    inspector = sa.inspect(conn)
    tables = {deliveries.name: deliveries, outbox.name: outbox}
    for name, columns in _QUARANTINE_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(name)}
        for column_name in columns:
            if column_name in present:
                continue
            column = tables[name].c[column_name]
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")


MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "exchange directory, messages, deliveries, outbox, statuses", _create_v1),
    (2, "quarantine of deliveries and hops that keep failing", _quarantine_v2),
)
