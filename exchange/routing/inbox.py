"""The local units' inboxes: leased fetches, redelivery after the lease, acknowledgements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from exchange.edxml.model import BusinessType
from exchange.errors import DeliveryNotFound
from exchange.routing.base import HubBase, Journal, trace_from_json, utc
from exchange.routing.model import DeliveryState, InboxItem
from exchange.schema import deliveries, messages

__all__ = ["Inbox"]

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class Inbox(HubBase):
    """The units' inboxes: leases and acknowledgements."""

    def inbox(
        self, unit: str, *, limit: int = 100, lease: timedelta | None = None
    ) -> list[InboxItem]:
        """Lease up to ``limit`` documents waiting for ``unit`` (new ones and expired leases)."""
        self._check_served(unit)
        now = self._clock()
        until = now + (lease or self._lease)
        due = (
            sa.select(deliveries.c.id)
            .where(
                deliveries.c.recipient == unit,
                deliveries.c.next_hub.is_(None),
                sa.or_(
                    deliveries.c.state == DeliveryState.QUEUED.value,
                    sa.and_(
                        deliveries.c.state == DeliveryState.DELIVERED.value,
                        deliveries.c.lease_until < now,
                    ),
                ),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            leased = (
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(due.scalar_subquery()))
                    .values(
                        state=DeliveryState.DELIVERED.value,
                        lease_until=until,
                        fetch_count=deliveries.c.fetch_count + 1,
                        updated_at=now,
                    )
                    .returning(deliveries.c.id)
                )
                .scalars()
                .all()
            )
            if not leased:
                return []
            rows = conn.execute(
                sa.select(
                    deliveries.c.id,
                    deliveries.c.fetch_count,
                    messages.c.id.label("message_id"),
                    messages.c.sender,
                    messages.c.document_id,
                    messages.c.business_type,
                    messages.c.subject,
                    messages.c.package_ref,
                    messages.c.package_sha256,
                    messages.c.trace,
                )
                .join(messages, messages.c.id == deliveries.c.message_id)
                .where(deliveries.c.id.in_(leased))
                .order_by(deliveries.c.id)
            ).mappings()
            return [
                InboxItem(
                    delivery_id=row["id"],
                    message_id=row["message_id"],
                    sender=row["sender"],
                    document_id=row["document_id"],
                    business_type=BusinessType(row["business_type"]),
                    subject=row["subject"],
                    package_ref=row["package_ref"],
                    package_sha256=row["package_sha256"],
                    trace=trace_from_json(row["trace"]),
                    fetch_count=row["fetch_count"],
                    lease_until=until,
                )
                for row in rows
            ]

    def peek(self, unit: str, *, limit: int = 100) -> list[InboxItem]:
        """What waits for ``unit`` and is not acknowledged (queued, or delivered whoever holds
        its lease), oldest first, without leasing anything: a clerk looking at the inbox.
        ``lease_until`` is the current lease's end (the epoch when none was taken)."""
        self._check_served(unit)
        query = (
            sa.select(
                deliveries.c.id,
                deliveries.c.fetch_count,
                deliveries.c.lease_until,
                messages.c.id.label("message_id"),
                messages.c.sender,
                messages.c.document_id,
                messages.c.business_type,
                messages.c.subject,
                messages.c.package_ref,
                messages.c.package_sha256,
                messages.c.trace,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(
                deliveries.c.recipient == unit,
                deliveries.c.next_hub.is_(None),
                deliveries.c.state.in_([DeliveryState.QUEUED.value, DeliveryState.DELIVERED.value]),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            InboxItem(
                delivery_id=row["id"],
                message_id=row["message_id"],
                sender=row["sender"],
                document_id=row["document_id"],
                business_type=BusinessType(row["business_type"]),
                subject=row["subject"],
                package_ref=row["package_ref"],
                package_sha256=row["package_sha256"],
                trace=trace_from_json(row["trace"]),
                fetch_count=row["fetch_count"],
                lease_until=utc(row["lease_until"]) if row["lease_until"] else _NEVER,
            )
            for row in rows
        ]

    def ack(
        self,
        unit: str,
        *,
        delivery_ids: Sequence[int],
        journal: Journal[Sequence[int]] | None = None,
    ) -> list[int]:
        """``unit`` confirms it has these documents; they leave its inbox for good.

        Returns the ids acknowledged by this call (an id acknowledged before is not counted
        again); ``journal`` gets them, when there are any, inside the transaction.
        """
        self._check_served(unit)
        now = self._clock()
        wanted = set(delivery_ids)
        with self._engine.begin() as conn:
            mine = set(
                conn.execute(
                    sa.select(deliveries.c.id).where(
                        deliveries.c.id.in_(wanted),
                        deliveries.c.recipient == unit,
                        deliveries.c.next_hub.is_(None),
                    )
                ).scalars()
            )
            missing = sorted(wanted - mine)
            if missing:
                raise DeliveryNotFound(
                    f"unit {unit} has no delivery {missing[0]}; take ids from its inbox",
                    field="delivery_ids",
                )
            changed = sorted(
                conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.id.in_(wanted),
                        deliveries.c.state != DeliveryState.ACKNOWLEDGED.value,
                    )
                    .values(
                        state=DeliveryState.ACKNOWLEDGED.value, lease_until=None, updated_at=now
                    )
                    .returning(deliveries.c.id)
                ).scalars()
            )
            if changed and journal is not None:
                journal(conn, changed)
        return changed
