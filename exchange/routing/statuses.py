"""Statuses: set by the recipient, relayed back towards the sender hop by hop, and tracked."""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa

from exchange.edxml.model import BusinessType, StatusCode, StatusPacket
from exchange.edxml.packages import open_status
from exchange.errors import DeliveryNotFound, InvalidStatusTransition
from exchange.routing.base import HubBase, Journal, utc
from exchange.routing.model import DeliveryState, OutboxKind, StatusEvent, TrackEntry
from exchange.routing.transitions import BUSINESS_CODES, check_transition, rank
from exchange.schema import deliveries, messages, outbox, status_events

__all__ = ["Statuses"]


class Statuses(HubBase):
    """Statuses: set by recipients, relayed back hop by hop, tracked."""

    def _find_delivery(
        self,
        conn: sa.Connection,
        *,
        recipient: str,
        document_id: str,
        sender: str | None,
        code: StatusCode,
        local_only: bool,
        through_hub: str | None = None,
    ) -> sa.RowMapping | None:
        query = (
            sa.select(
                deliveries.c.id,
                deliveries.c.status,
                messages.c.id.label("message_id"),
                messages.c.business_type,
                messages.c.sender,
                messages.c.via_hub,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.recipient == recipient, messages.c.document_id == document_id)
            .order_by(messages.c.id.desc())
            .limit(1)
        )
        if sender is not None:
            query = query.where(messages.c.sender == sender)
        if local_only:
            query = query.where(deliveries.c.next_hub.is_(None))
        if through_hub is not None:
            query = query.where(deliveries.c.next_hub == through_hub)
        if code in BUSINESS_CODES:
            query = query.where(messages.c.business_type != int(BusinessType.NEW))
        elif code is not StatusCode.ARRIVED:
            query = query.where(messages.c.business_type == int(BusinessType.NEW))
        if self._skip_locked:
            query = query.with_for_update(of=deliveries)
        return conn.execute(query).mappings().first()

    def set_status(
        self,
        unit: str,
        *,
        document_id: str,
        code: StatusCode | str,
        sender: str | None = None,
        description: str | None = None,
        staff: str | None = None,
        journal: Journal[StatusCode] | None = None,
    ) -> StatusCode:
        """The recipient ``unit`` reports a status on a document it received; return the code.

        02–06 apply to the unit's delivery of the document itself, 13/15/16 to its latest
        revoke, update or replace. 01 is set automatically and cannot be set here. A status
        the delivery already has changes nothing (``journal`` is not called).
        """
        self._check_served(unit)
        try:
            new = StatusCode(code)
        except ValueError:
            raise InvalidStatusTransition(
                f"status code {code!r} is unknown; use one of"
                f" {', '.join(c.value for c in StatusCode if c is not StatusCode.ARRIVED)}",
                field="status",
            ) from None
        if new is StatusCode.ARRIVED:
            raise InvalidStatusTransition(
                "status 01 (arrived) is recorded automatically on delivery", field="status"
            )
        now = self._clock()
        with self._deciding() as conn:
            row = self._find_delivery(
                conn,
                recipient=unit,
                document_id=document_id,
                sender=sender,
                code=new,
                local_only=True,
            )
            if row is None:
                raise DeliveryNotFound(
                    f"unit {unit} has received no document {document_id}"
                    + (" to revoke, update or replace" if new in BUSINESS_CODES else ""),
                    field="document_id",
                )
            current = StatusCode(row["status"]) if row["status"] else None
            changed = check_transition(
                business=BusinessType(row["business_type"]),
                current=current,
                new=new,
                where=f"document {document_id} at unit {unit}",
            )
            if not changed:
                return new
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == row["id"])
                .values(status=new.value, updated_at=now)
            )
            conn.execute(
                status_events.insert().values(
                    message_id=row["message_id"],
                    recipient=unit,
                    code=new.value,
                    description=description,
                    staff=staff,
                    at=now,
                )
            )
            if row["via_hub"] is not None:
                conn.execute(
                    outbox.insert().values(
                        self._outbox_row(
                            OutboxKind.STATUS,
                            row["message_id"],
                            row["via_hub"],
                            [unit],
                            now,
                            status_code=new,
                            description=description,
                        )
                    )
                )
            if journal is not None:
                journal(conn, new)
        return new

    def accept_status(
        self, packet: bytes, *, via_hub: str, journal: Journal[StatusPacket] | None = None
    ) -> StatusPacket:
        """Record a status packet relayed by ``via_hub``; pass it on towards the sender.

        Statuses may arrive out of order or twice: every new code is kept in the history and the
        current status is the furthest one seen. A code already in the history changes nothing
        (``journal`` is not called). A hub's status applies only to a delivery this hub sent on
        through that hub (``next_hub`` is ``via_hub``): a hub cannot set the status of a local
        delivery or of one that went another way (``DeliveryNotFound``).
        """
        opened = open_status(packet, policy=self._policy, limits=self._limits)
        status = opened.status
        recipient = status.from_.organ_id
        document_id = status.response_for.document_id
        now = self._clock()
        with self._deciding() as conn:
            row = self._find_delivery(
                conn,
                recipient=recipient,
                document_id=document_id,
                sender=status.response_for.organ_id,
                code=status.code,
                local_only=False,
                through_hub=via_hub,
            )
            if row is None:
                raise DeliveryNotFound(
                    f"this hub sent no delivery of document {document_id} to unit {recipient}"
                    f" through hub {via_hub}",
                    field="ResponseFor/DocumentId",
                )
            seen = conn.execute(
                sa.select(sa.func.count())
                .select_from(status_events)
                .where(
                    status_events.c.message_id == row["message_id"],
                    status_events.c.recipient == recipient,
                    status_events.c.code == status.code.value,
                )
            ).scalar_one()
            if seen:
                return status
            current = StatusCode(row["status"]) if row["status"] else None
            if rank(status.code) > rank(current):
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == row["id"])
                    .values(status=status.code.value, updated_at=now)
                )
            conn.execute(
                status_events.insert().values(
                    message_id=row["message_id"],
                    recipient=recipient,
                    code=status.code.value,
                    description=status.description,
                    staff=status.staff.staff if status.staff else None,
                    # in UTC like every stored time: the packet gives Vietnam time, SQLite no zone
                    at=status.timestamp.astimezone(UTC),
                )
            )
            if row["via_hub"] is not None:
                ref = self._store.put(packet)
                conn.execute(
                    outbox.insert().values(
                        self._outbox_row(
                            OutboxKind.STATUS,
                            row["message_id"],
                            row["via_hub"],
                            [recipient],
                            now,
                            status_code=status.code,
                            packet_ref=ref,
                        )
                    )
                )
            if journal is not None:
                journal(conn, status)
        return status

    def package_units(self, package_ref: str) -> frozenset[str]:
        """The units a stored package concerns here: its senders and its recipients."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(messages.c.sender, deliveries.c.recipient)
                .select_from(messages)
                .outerjoin(deliveries, deliveries.c.message_id == messages.c.id)
                .where(messages.c.package_ref == package_ref)
            ).all()
        return frozenset(unit for row in rows for unit in row if unit)

    def sent_package(self, *, sender: str, document_id: str) -> str | None:
        """The ref of the package a unit sent here under a DocumentId (a new document, not a
        business update), or None when it sent none."""
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(messages.c.package_ref)
                .where(messages.c.sender == sender)
                .where(messages.c.document_id == document_id)
                .where(messages.c.business_type == int(BusinessType.NEW))
            ).scalar_one_or_none()

    def track(
        self, *, document_id: str, sender: str | None = None, recipient: str | None = None
    ) -> list[TrackEntry]:
        """The document's recipients (or the one named) as this hub knows them, with history."""
        with self._engine.connect() as conn:
            query = (
                sa.select(
                    deliveries.c.message_id,
                    deliveries.c.recipient,
                    deliveries.c.state,
                    deliveries.c.next_hub,
                    deliveries.c.status,
                    deliveries.c.last_error,
                    messages.c.business_type,
                    messages.c.subject,
                )
                .join(messages, messages.c.id == deliveries.c.message_id)
                .where(messages.c.document_id == document_id)
                .order_by(messages.c.id, deliveries.c.id)
            )
            if sender is not None:
                query = query.where(messages.c.sender == sender)
            if recipient is not None:
                query = query.where(deliveries.c.recipient == recipient)
            rows = conn.execute(query).all()
            if not rows:
                raise DeliveryNotFound(
                    f"this hub knows no document {document_id}"
                    + (f" sent to unit {recipient}" if recipient else ""),
                    field="document_id",
                )
            history: dict[tuple[int, str], list[StatusEvent]] = {}
            events = conn.execute(
                sa.select(
                    status_events.c.message_id,
                    status_events.c.recipient,
                    status_events.c.code,
                    status_events.c.at,
                    status_events.c.description,
                    status_events.c.staff,
                )
                .where(status_events.c.message_id.in_({r.message_id for r in rows}))
                .order_by(status_events.c.id)
            )
            for message_id, recipient, code, at, description, staff in events:
                history.setdefault((message_id, recipient), []).append(
                    StatusEvent(
                        code=StatusCode(code), at=utc(at), description=description, staff=staff
                    )
                )
        return [
            TrackEntry(
                recipient=r.recipient,
                business_type=BusinessType(r.business_type),
                state=DeliveryState(r.state),
                next_hub=r.next_hub,
                status=StatusCode(r.status) if r.status else None,
                history=tuple(history.get((r.message_id, r.recipient), ())),
                reason=r.last_error if r.state == DeliveryState.QUARANTINED.value else None,
                subject=r.subject,
            )
            for r in rows
        ]
