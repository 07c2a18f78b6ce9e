"""The quarantine: deliveries and hops that keep failing, set aside until an operator acts.

A local delivery that Receive could not hand over (its package cannot be read from the store,
is damaged, or does not fit a message) counts a failure each time; at ``max_delivery_attempts``
failures it is quarantined: state ``quarantined``, out of the inbox, so the deliveries behind
it go on. Until then it stays leased, so it is tried again when its lease runs out, as any
delivery not acknowledged. An outbox hop the next hub refused ``max_forward_attempts`` times
is quarantined the same way (``Outbox.mark_failed``), and its recipients' deliveries with it;
hops that never reached the next hub are not counted (an absent hub is waited for, however
long).

Invariants: a quarantine and a release change the rows and call ``journal`` in one
transaction; a released item starts again with no failures counted; quarantining never loses
anything (the message, its package and its rows stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from exchange.errors import DeliveryNotFound
from exchange.routing.base import HubBase, Journal, utc
from exchange.routing.model import DeliveryState, OutboxKind, Quarantined, QuarantineKind
from exchange.schema import deliveries, messages, outbox

__all__ = ["Quarantine"]

_REASON_CHARS = 500


class Quarantine(HubBase):
    """Counting failures, setting aside, listing and releasing (see the module docstring)."""

    _max_delivery_attempts: int
    _max_forward_attempts: int

    def delivery_failed(
        self,
        delivery_id: int,
        *,
        error: str,
        journal: Journal[Quarantined] | None = None,
    ) -> Quarantined | None:
        """Receive could not hand this delivery over: count it; quarantine it at the bound.

        Returns what was quarantined, or None when the delivery stays in the inbox (leased:
        tried again when its lease runs out). ``journal`` is called only on quarantine.
        """
        now = self._clock()
        reason = error[:_REASON_CHARS]
        with self._deciding() as conn:
            query = sa.select(deliveries.c.failures, deliveries.c.state).where(
                deliveries.c.id == delivery_id, deliveries.c.next_hub.is_(None)
            )
            if self._skip_locked:
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise DeliveryNotFound(f"delivery {delivery_id} does not exist")
            if row.state != DeliveryState.DELIVERED.value:
                return None  # acknowledged or quarantined meanwhile: nothing to count
            failures = row.failures + 1
            values: dict[str, Any] = {"failures": failures, "last_error": reason}
            quarantine = failures >= self._max_delivery_attempts
            if quarantine:
                values |= {
                    "state": DeliveryState.QUARANTINED.value,
                    "quarantined_at": now,
                    "lease_until": None,
                    "updated_at": now,
                }
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(values))
            if not quarantine:
                return None
            item = self._delivery_item(conn, delivery_id)
            if journal is not None:
                journal(conn, item)
            return item

    def quarantined(self, *, limit: int = 1000) -> list[Quarantined]:
        """What is quarantined at this hub, oldest first (deliveries, then hops)."""
        with self._engine.connect() as conn:
            ids = conn.execute(
                sa.select(deliveries.c.id)
                .where(
                    deliveries.c.state == DeliveryState.QUARANTINED.value,
                    deliveries.c.next_hub.is_(None),
                )
                .order_by(deliveries.c.quarantined_at, deliveries.c.id)
                .limit(limit)
            ).scalars()
            found = [self._delivery_item(conn, delivery_id) for delivery_id in ids]
            hops = conn.execute(
                sa.select(outbox.c.id)
                .where(outbox.c.quarantined_at.is_not(None), outbox.c.done_at.is_(None))
                .order_by(outbox.c.quarantined_at, outbox.c.id)
                .limit(limit)
            ).scalars()
            found += [self._hop_item(conn, item_id) for item_id in hops]
        return found

    def quarantine_counts(self) -> dict[str, int]:
        """How many deliveries and hops are quarantined, by kind (``delivery``, ``hop``)."""
        with self._engine.connect() as conn:
            local = conn.execute(
                sa.select(sa.func.count()).where(
                    deliveries.c.state == DeliveryState.QUARANTINED.value,
                    deliveries.c.next_hub.is_(None),
                )
            ).scalar_one()
            hops = conn.execute(
                sa.select(sa.func.count()).where(
                    outbox.c.quarantined_at.is_not(None), outbox.c.done_at.is_(None)
                )
            ).scalar_one()
        return {QuarantineKind.DELIVERY.value: local, QuarantineKind.HOP.value: hops}

    def release(
        self,
        kind: QuarantineKind,
        item_id: int,
        *,
        journal: Journal[Quarantined] | None = None,
    ) -> Quarantined:
        """Put a quarantined delivery back in its unit's inbox, or a hop back in the outbox
        (due now), with no failures counted; return what was released."""
        now = self._clock()
        with self._deciding() as conn:
            if kind is QuarantineKind.DELIVERY:
                item = self._delivery_item(conn, item_id, lock=True)
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == item_id)
                    .values(
                        state=DeliveryState.QUEUED.value,
                        failures=0,
                        quarantined_at=None,
                        lease_until=None,
                        updated_at=now,
                    )
                )
            else:
                item = self._hop_item(conn, item_id, lock=True)
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id == item_id)
                    .values(failures=0, quarantined_at=None, next_attempt_at=now)
                )
                self._set_hop_deliveries(
                    conn, item_id, item.recipients, DeliveryState.QUEUED, now, reason=None
                )
            if journal is not None:
                journal(conn, item)
        return item

    # -- helpers -------------------------------------------------------------------------------

    def _quarantine_hop(
        self,
        conn: sa.Connection,
        item_id: int,
        recipients: Sequence[str],
        now: datetime,
        reason: str,
    ) -> None:
        """Mark the hop quarantined and its recipients' deliveries with it (in ``conn``)."""
        conn.execute(outbox.update().where(outbox.c.id == item_id).values(quarantined_at=now))
        self._set_hop_deliveries(
            conn, item_id, recipients, DeliveryState.QUARANTINED, now, reason=reason
        )

    @staticmethod
    def _set_hop_deliveries(
        conn: sa.Connection,
        item_id: int,
        recipients: Sequence[str],
        state: DeliveryState,
        now: datetime,
        *,
        reason: str | None,
    ) -> None:
        before = (
            DeliveryState.QUEUED
            if state is DeliveryState.QUARANTINED
            else DeliveryState.QUARANTINED
        )
        # a package hop's recipients only (a status hop's deliveries are not in its hands)
        message_id = (
            sa.select(outbox.c.message_id)
            .where(outbox.c.id == item_id, outbox.c.kind == OutboxKind.PACKAGE.value)
            .scalar_subquery()
        )
        values: dict[str, Any] = {"state": state.value, "updated_at": now}
        if reason is not None:
            values |= {"last_error": reason, "quarantined_at": now}
        else:
            values |= {"quarantined_at": None}
        conn.execute(
            deliveries.update()
            .where(
                deliveries.c.message_id == message_id,
                deliveries.c.recipient.in_(recipients),
                deliveries.c.next_hub.is_not(None),
                deliveries.c.state == before.value,
            )
            .values(values)
        )

    def _delivery_item(
        self, conn: sa.Connection, delivery_id: int, *, lock: bool = False
    ) -> Quarantined:
        query = (
            sa.select(
                deliveries.c.id,
                deliveries.c.recipient,
                deliveries.c.failures,
                deliveries.c.last_error,
                deliveries.c.quarantined_at,
                messages.c.sender,
                messages.c.document_id,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.next_hub.is_(None),
                deliveries.c.state == DeliveryState.QUARANTINED.value,
            )
        )
        if lock and self._skip_locked:
            query = query.with_for_update(of=deliveries)
        row = conn.execute(query).one_or_none()
        if row is None:
            raise DeliveryNotFound(
                f"no delivery {delivery_id} is quarantined at this hub; list them with"
                " `kyso exchange quarantine`",
                field="id",
            )
        return Quarantined(
            kind=QuarantineKind.DELIVERY,
            id=row.id,
            sender=row.sender,
            document_id=row.document_id,
            recipients=(row.recipient,),
            next_hub=None,
            failures=row.failures,
            reason=row.last_error or "",
            at=utc(row.quarantined_at),
        )

    def _hop_item(self, conn: sa.Connection, item_id: int, *, lock: bool = False) -> Quarantined:
        query = (
            sa.select(
                outbox.c.id,
                outbox.c.recipients,
                outbox.c.next_hub,
                outbox.c.failures,
                outbox.c.last_error,
                outbox.c.quarantined_at,
                messages.c.sender,
                messages.c.document_id,
            )
            .join(messages, messages.c.id == outbox.c.message_id)
            .where(
                outbox.c.id == item_id,
                outbox.c.quarantined_at.is_not(None),
                outbox.c.done_at.is_(None),
            )
        )
        if lock and self._skip_locked:
            query = query.with_for_update(of=outbox)
        row = conn.execute(query).one_or_none()
        if row is None:
            raise DeliveryNotFound(
                f"no hop {item_id} is quarantined at this hub; list them with"
                " `kyso exchange quarantine`",
                field="id",
            )
        return Quarantined(
            kind=QuarantineKind.HOP,
            id=row.id,
            sender=row.sender,
            document_id=row.document_id,
            recipients=tuple(row.recipients),
            next_hub=row.next_hub,
            failures=row.failures,
            reason=row.last_error or "",
            at=utc(row.quarantined_at),
        )
