"""The durable outbox: claiming due hops, closing them, retrying them.

A hop the next hub answered with an error is retried with the router's ``Backoff``
(exponential, capped). A hop that never reached the next hub is retried after the delay its
caller gives (``mark_failed(retry_after=…)``): the dispatcher paces those hub by hub, and
leaves an unreachable hub's hops unclaimed (``skip_hubs``) until it can reach that hub again,
so they move as soon as it is back however long it was away. A hop the next hub refused
``max_forward_attempts`` times is quarantined (``quarantine``) instead of retried.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from exchange.edxml.dsig import SigningKey
from exchange.edxml.model import BusinessType, Organization, ResponseFor, StatusCode, StatusPacket
from exchange.edxml.packages import build_status
from exchange.errors import DeliveryNotFound, PackageInvalid
from exchange.routing.base import Journal, trace_from_json
from exchange.routing.model import DeliveryState, OutboxItem, OutboxKind, Quarantined
from exchange.routing.quarantine import Quarantine
from exchange.schema import deliveries, messages, outbox

__all__ = ["Outbox"]


class Outbox(Quarantine):
    """The durable outbox: hops to other hubs, retried until they are taken."""

    def pending_outbox(
        self,
        *,
        limit: int = 100,
        claim_for: timedelta = timedelta(seconds=60),
        skip_hubs: Collection[str] = (),
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` due hops for ``claim_for`` (others won't get them meanwhile),
        the longest due first; hops to the hubs in ``skip_hubs`` stay due, unclaimed.

        A claimed item that is neither marked forwarded nor failed comes due again when the
        claim runs out: at-least-once, across crashes.
        """
        now = self._clock()
        due = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.done_at.is_(None),
                outbox.c.quarantined_at.is_(None),
                outbox.c.next_attempt_at <= now,
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        if skip_hubs:
            due = due.where(outbox.c.next_hub.not_in(skip_hubs))
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            claimed = (
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_(due.scalar_subquery()))
                    .values(next_attempt_at=now + claim_for)
                    .returning(outbox.c.id)
                )
                .scalars()
                .all()
            )
            if not claimed:
                return []
            rows = conn.execute(
                sa.select(
                    outbox,
                    messages.c.sender,
                    messages.c.document_id,
                    messages.c.business_type,
                    messages.c.package_ref,
                    messages.c.trace,
                )
                .join(messages, messages.c.id == outbox.c.message_id)
                .where(outbox.c.id.in_(claimed))
                .order_by(outbox.c.id)
            ).mappings()
            return [
                OutboxItem(
                    id=row["id"],
                    kind=OutboxKind(row["kind"]),
                    next_hub=row["next_hub"],
                    message_id=row["message_id"],
                    sender=row["sender"],
                    document_id=row["document_id"],
                    business_type=BusinessType(row["business_type"]),
                    package_ref=row["package_ref"],
                    trace=trace_from_json(row["trace"]),
                    recipients=tuple(row["recipients"]),
                    status_code=StatusCode(row["status_code"]) if row["status_code"] else None,
                    description=row["description"],
                    packet_ref=row["packet_ref"],
                    attempts=row["attempts"],
                )
                for row in rows
            ]

    def mark_forwarded(
        self, item_ids: Sequence[int], *, journal: Journal[Sequence[int]] | None = None
    ) -> None:
        """The next hub took these items (it answered with its receipt): close them.

        ``journal`` gets the ids this call closed (none when another dispatcher closed them
        first: then it is not called), inside the transaction.
        """
        now = self._clock()
        with self._engine.begin() as conn:
            rows = conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(item_ids), outbox.c.done_at.is_(None))
                .values(done_at=now)
                .returning(outbox.c.id, outbox.c.kind, outbox.c.message_id, outbox.c.recipients)
            ).all()
            for _, kind, message_id, recipients in rows:
                if kind == OutboxKind.PACKAGE.value:
                    conn.execute(
                        deliveries.update()
                        .where(
                            deliveries.c.message_id == message_id,
                            deliveries.c.recipient.in_(recipients),
                            deliveries.c.state == DeliveryState.QUEUED.value,
                        )
                        .values(state=DeliveryState.FORWARDED.value, updated_at=now)
                    )
            if rows and journal is not None:
                journal(conn, sorted(row.id for row in rows))

    def mark_failed(
        self,
        item_id: int,
        *,
        error: str,
        retry_after: timedelta | None = None,
        journal: Journal[Quarantined] | None = None,
    ) -> datetime | None:
        """The hop failed: schedule the next attempt; return when it is due, or None when it
        was quarantined.

        Due after ``retry_after`` when given (the hop never reached the next hub: not counted
        towards the quarantine), else after the backoff for this attempt (the next hub answered
        with an error: counted; at ``max_forward_attempts`` such failures the hop and its
        recipients' deliveries are quarantined, and ``journal`` is called in the transaction).
        """
        now = self._clock()
        reason = error[:500]
        with self._deciding() as conn:
            query = sa.select(
                outbox.c.attempts, outbox.c.failures, outbox.c.recipients, outbox.c.done_at
            ).where(outbox.c.id == item_id)
            if self._skip_locked:
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise DeliveryNotFound(f"outbox item {item_id} does not exist")
            refused = retry_after is None
            delay = self._backoff.delay(row.attempts + 1) if retry_after is None else retry_after
            due = now + delay
            if row.done_at is not None:
                return due  # another dispatcher closed it meanwhile: nothing to count
            failures = row.failures + (1 if refused else 0)
            conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id, outbox.c.done_at.is_(None))
                .values(
                    attempts=row.attempts + 1,
                    failures=failures,
                    next_attempt_at=due,
                    last_error=reason,
                )
            )
            if not refused or failures < self._max_forward_attempts:
                return due
            self._quarantine_hop(conn, item_id, row.recipients, now, reason)
            item = self._hop_item(conn, item_id)
            if journal is not None:
                journal(conn, item)
        return None

    def status_packets(self, item: OutboxItem, *, key: SigningKey | None) -> list[bytes]:
        """The status packets an originated status item carries, one per recipient, signed by
        ``key`` (this hub's key); for a relayed item, the stored packet unchanged."""
        if item.kind is not OutboxKind.STATUS:
            raise PackageInvalid(f"outbox item {item.id} carries a package, not a status")
        if item.packet_ref is not None:
            return [self._store.get(item.packet_ref)]
        assert item.status_code is not None
        now = self._clock()
        return [
            build_status(
                StatusPacket(
                    response_for=ResponseFor(organ_id=item.sender, document_id=item.document_id),
                    from_=Organization(organ_id=recipient),
                    code=item.status_code,
                    timestamp=now,
                    description=item.description,
                    signed_by_hub=self.hub.id if key is not None else None,
                ),
                key=key,
            )
            for recipient in item.recipients
        ]
