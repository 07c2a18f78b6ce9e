"""ExchangeService: send, receive, acknowledge, set and track statuses, and hub-to-hub Forward.

Thin: requests become ``exchange.routing.Router`` calls (run in threads: they touch the database,
storage and the HSM), results become protobuf. Errors are raised and mapped by the interceptor.

Who may act for a unit (send as it, read its inbox, set its statuses, track what it sent):
a client whose configured ``unit`` is that unit or one of its ancestors in the directory; and a
client allowed to use this hub's ``[exchange] key`` (``keys.<alias>.clients``) for every unit
this hub serves — such a client can already have packages built and signed with the hub's key
on any unit's behalf. Hubs never use Send; they use Forward, where the caller must be the hub
named in ``from_hub`` (its client's name is the hub id, or its unit is the hub's root unit).

On arrival in a local inbox (Send to a unit of this hub, or Forward): the attachments are stored
by content address, attached PDFs are verified with ``signer.verify`` against ``[trust]``, and
the result is recorded in the ledger (``package.delivered``) and given with the delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

import audit
from exchange.directory import Directory
from exchange.edxml import (
    Attachment,
    DocumentCode,
    DocumentType,
    ManifestReference,
    MessageHeader,
    OpenedPackage,
    Organization,
    OtherInfo,
    Package,
    SignerInfo,
    TraceHeader,
    build_package,
    open_package,
)
from exchange.errors import UnitNotFound
from exchange.routing import Accepted, DeliveryState, InboxItem, Router, Submission, TrackEntry
from kyso.app import Application
from kyso.authz import Identity
from kyso.errors import FailedPrecondition, PermissionDenied, RequestInvalid
from kyso.hubs import Receipt, exchange_key, sign_receipt, trace_from_proto
from kyso.interceptors import current_identity
from kyso.services.convert import stored_document, timestamp
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

__all__ = ["ExchangeServicer", "SenderPolicy", "verification_summary"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_RECEIVE_BATCH = 50
_MAX_RECIPIENTS = 5000
_STATES: dict[DeliveryState, Any] = {
    DeliveryState.FORWARDED: exchange_pb2.FORWARDED,
    DeliveryState.DELIVERED: exchange_pb2.DELIVERED,
    DeliveryState.ACKNOWLEDGED: exchange_pb2.ACKNOWLEDGED,
}


class SenderPolicy:
    """Which units a caller may act for (see the module docstring)."""

    def __init__(self, app: Application, directory: Directory, hub_id: str) -> None:
        key = app.config.keys.get(app.config.exchange.key)
        self._hub_clients = frozenset(key.clients) if key is not None else frozenset()
        self._directory = directory
        self._hub_id = hub_id

    def check(self, identity: Identity, unit: str, *, field: str) -> None:
        """Return when ``identity`` may act for ``unit``; raise ``PermissionDenied`` otherwise."""
        if not unit:
            raise RequestInvalid("name the unit (its code, e.g. 000.00.02.H49)", field=field)
        lineage = self._lineage(unit)
        if identity.unit and identity.unit in lineage:
            return
        if identity.name in self._hub_clients and self._directory.serving_hub(unit) == (
            self._hub_id
        ):
            return
        raise PermissionDenied(
            f"client {identity.name!r} (unit {identity.unit or 'none'}) may not act for unit"
            f" {unit}; configure the client with that unit or one above it"
        )

    def _lineage(self, unit: str) -> list[str]:
        chain: list[str] = []
        current: str | None = unit
        while current is not None and current not in chain:
            chain.append(current)
            current = self._directory.get(current).parent_code
        return chain


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, app: Application) -> None:
        self._app = app
        if app.router is None or app.directory is None:
            self._router: Router | None = None
            return
        self._router = app.router
        self._directory: Directory = app.directory
        self._hub_id = app.config.exchange.hub_id
        self._senders = SenderPolicy(app, app.directory, self._hub_id)
        self._policy = app.package_trust()

    def _routing(self) -> Router:
        if self._router is None:
            raise FailedPrecondition(
                "this server does not route documents: set [exchange] hub_id and hubs"
            )
        return self._router

    # -- Send ----------------------------------------------------------------------------------

    async def Send(  # noqa: N802 (the gRPC method name)
        self, request: exchange_pb2.SendRequest, context: Any
    ) -> exchange_pb2.SendResponse:
        router = self._routing()
        identity = current_identity()
        await asyncio.to_thread(self._senders.check, identity, request.from_unit, field="from_unit")
        if len(request.to_units) > _MAX_RECIPIENTS:
            raise RequestInvalid(f"at most {_MAX_RECIPIENTS} recipients per Send", field="to_units")
        body = request.WhichOneof("body")
        if body == "package":
            data = request.package
            recipients: tuple[str, ...] | None = tuple(request.to_units) or None
        elif body == "fields":
            if not request.to_units:
                raise RequestInvalid("name at least one recipient unit", field="to_units")
            data = await self._build(request)
            recipients = None
        else:
            raise RequestInvalid("give the package or the fields to build one from", field="body")
        accepted, opened = await asyncio.to_thread(self._accept_sent, data, recipients, request)
        if accepted.forwarded:
            self._app.outbox_written()
        refs = await asyncio.to_thread(self._store_attachments, opened)
        await self._app.record(
            audit.EventType.PACKAGE_SENT,
            actor=identity,
            unit=accepted.sender,
            document_sha256=opened.sha256,
            refs=(f"sha256/{opened.sha256}", *refs),
            details={
                "document_id": accepted.document_id,
                "recipients": str(len(accepted.local) + sum(map(len, accepted.forwarded.values()))),
                "duplicate": "yes" if accepted.duplicate else "no",
            },
        )
        if accepted.local:
            await self._arrived(accepted, opened, refs, actor=identity)
        entries = await asyncio.to_thread(
            router.track, document_id=accepted.document_id, sender=accepted.sender
        )
        wanted = set(recipients or (o.organ_id for o in opened.package.header.to))
        return exchange_pb2.SendResponse(
            document_id=accepted.document_id,
            package=stored_document(f"sha256/{opened.sha256}", len(data)),
            recipients=[_recipient_state(e) for e in entries if e.recipient in wanted],
        )

    def _accept_sent(
        self, data: bytes, recipients: tuple[str, ...] | None, request: exchange_pb2.SendRequest
    ) -> tuple[Accepted, OpenedPackage]:
        router = self._routing()
        opened = open_package(data, policy=self._policy)
        sender = opened.package.header.from_.organ_id
        if sender != request.from_unit:
            raise RequestInvalid(
                f"the package is from unit {sender}, not from_unit {request.from_unit}",
                field="from_unit",
            )
        accepted = router.accept(Submission(package=data, recipients=recipients))
        return accepted, opened

    async def _build(self, request: exchange_pb2.SendRequest) -> bytes:
        fields = request.fields
        if not fields.subject.strip():
            raise RequestInvalid("the document needs a subject (trích yếu)", field="fields.subject")
        attachments = []
        for index, item in enumerate(fields.attachments):
            where = f"fields.attachments[{index}]"
            if item.WhichOneof("source") == "ref":
                content = await asyncio.to_thread(self._read, item.ref.ref)
            elif item.WhichOneof("source") == "content":
                content = item.content
            else:
                raise RequestInvalid("give the attachment's content or ref", field=where)
            attachments.append(
                Attachment(
                    content_id=f"att{index + 1}",
                    content=content,
                    content_type=item.content_type or "application/octet-stream",
                    name=item.name or f"attachment-{index + 1}",
                )
            )
        units = await asyncio.to_thread(self._units, [request.from_unit, *request.to_units])
        now = datetime.now(UTC)
        document_id = request.document_id or _document_id(request.from_unit, fields, now)
        package = Package(
            header=MessageHeader(
                from_=units[0],
                to=tuple(dict.fromkeys(units[1:])),
                document_id=document_id,
                subject=fields.subject.strip(),
                code=DocumentCode(number=fields.code_number, notation=fields.code_notation or None)
                if fields.code_number
                else None,
                document_type=DocumentType(
                    type=fields.document_type or None, name=fields.document_type_name or None
                )
                if fields.document_type or fields.document_type_name
                else None,
                content=fields.content or None,
                signer=SignerInfo(
                    full_name=fields.signer_full_name or None,
                    position=fields.signer_position or None,
                )
                if fields.signer_full_name or fields.signer_position
                else None,
                other_info=OtherInfo(priority=fields.priority) if fields.priority else None,
            ),
            traces=(TraceHeader(organ_id=request.from_unit, timestamp=now),),
            manifest=tuple(
                ManifestReference(
                    content_id=a.content_id, content_type=a.content_type, attachment_name=a.name
                )
                for a in attachments
            ),
            attachments=tuple(attachments),
        )
        key = exchange_key(self._app)
        return await asyncio.to_thread(build_package, package, key=key)

    def _units(self, codes: Sequence[str]) -> list[Organization]:
        organizations = []
        for index, code in enumerate(codes):
            try:
                unit = self._directory.get(code)
            except UnitNotFound as exc:
                where = "from_unit" if index == 0 else f"to_units[{index - 1}]"
                raise UnitNotFound(str(exc), field=where) from exc
            organizations.append(Organization(organ_id=unit.code, organ_name=unit.name))
        return organizations

    def _read(self, ref: str) -> bytes:
        with self._app.store.open(ref) as reader:
            return reader.read()

    def _store_attachments(self, opened: OpenedPackage) -> tuple[str, ...]:
        refs = []
        for attachment in opened.package.attachments:
            stored = self._app.store.put(
                attachment.content,
                content_type=attachment.content_type or "application/octet-stream",
                metadata={},
            )
            refs.append(str(stored.ref))
        return tuple(refs)

    # -- arrival -------------------------------------------------------------------------------

    async def _arrived(
        self, accepted: Accepted, opened: OpenedPackage, refs: tuple[str, ...], *, actor: Identity
    ) -> None:
        """Documents that reached local inboxes: verify attached PDFs, ledger each delivery."""
        verification = await asyncio.to_thread(self._verification, opened)
        await asyncio.gather(
            *(
                self._app.record(
                    audit.EventType.PACKAGE_DELIVERED,
                    actor=actor,
                    unit=recipient,
                    document_sha256=opened.sha256,
                    refs=(f"sha256/{opened.sha256}", *refs),
                    details={
                        "document_id": accepted.document_id,
                        "sender": accepted.sender,
                        "status": "01",
                        "verification": verification,
                    },
                )
                for recipient in accepted.local
            )
        )

    def _verification(self, opened: OpenedPackage) -> str:
        """The package's verification, made once on arrival and kept in the catalogue."""
        catalogue = self._app.catalogue
        known = catalogue.verification(opened.sha256)
        if known is not None:
            return known
        summary = verification_summary(opened, anchors=self._app.config.trust.anchors)
        catalogue.record_verification(opened.sha256, summary)
        return summary

    # -- Receive and Ack -----------------------------------------------------------------------

    async def Receive(  # noqa: N802
        self, request: exchange_pb2.ReceiveRequest, context: Any
    ) -> AsyncIterator[exchange_pb2.Delivery]:
        router = self._routing()
        unit = request.unit_code
        await asyncio.to_thread(self._senders.check, current_identity(), unit, field="unit_code")
        if request.max_deliveries < 0 or request.lease_seconds < 0:
            raise RequestInvalid("max_deliveries and lease_seconds cannot be negative")
        lease = timedelta(seconds=request.lease_seconds) if request.lease_seconds else None
        sent = 0
        while True:
            want = _RECEIVE_BATCH
            if request.max_deliveries:
                want = min(want, request.max_deliveries - sent)
            items = await asyncio.to_thread(router.inbox, unit, limit=want, lease=lease)
            for item in items:
                yield await asyncio.to_thread(self._delivery, unit, item)
                sent += 1
            if request.max_deliveries and sent >= request.max_deliveries:
                return
            if len(items) < want:
                if not request.follow:
                    return
                await asyncio.sleep(_POLL_SECONDS)

    def _delivery(self, unit: str, item: InboxItem) -> exchange_pb2.Delivery:
        data = self._read(item.package_ref)
        opened = open_package(data, policy=self._policy)
        return exchange_pb2.Delivery(
            delivery_id=str(item.delivery_id),
            document_id=item.document_id,
            from_unit=item.sender,
            to_unit=unit,
            subject=item.subject,
            package=stored_document(item.package_ref, len(data)),
            package_content=data,
            delivered_at=timestamp(datetime.now(UTC)),
            verification=self._verification(opened),
            trace=[t.organ_id for t in item.trace],
        )

    async def Ack(  # noqa: N802
        self, request: exchange_pb2.AckRequest, context: Any
    ) -> exchange_pb2.AckResponse:
        router = self._routing()
        identity = current_identity()
        unit = request.unit_code
        await asyncio.to_thread(self._senders.check, identity, unit, field="unit_code")
        try:
            ids = sorted({int(d) for d in request.delivery_ids})
        except ValueError:
            raise RequestInvalid(
                "delivery ids are the numbers Receive gave", field="delivery_ids"
            ) from None
        if not ids:
            raise RequestInvalid("name the deliveries to acknowledge", field="delivery_ids")
        await asyncio.to_thread(router.ack, unit, delivery_ids=ids)
        await self._app.record(
            audit.EventType.PACKAGE_ACKNOWLEDGED,
            actor=identity,
            unit=unit,
            details={"deliveries": ",".join(map(str, ids))},
        )
        return exchange_pb2.AckResponse(acknowledged=len(ids))

    # -- statuses ------------------------------------------------------------------------------

    async def UpdateStatus(  # noqa: N802
        self, request: exchange_pb2.UpdateStatusRequest, context: Any
    ) -> exchange_pb2.UpdateStatusResponse:
        router = self._routing()
        identity = current_identity()
        unit = request.unit_code
        await asyncio.to_thread(self._senders.check, identity, unit, field="unit_code")
        if not request.document_id:
            raise RequestInvalid("name the document", field="document_id")
        code = await asyncio.to_thread(
            lambda: router.set_status(
                unit,
                document_id=request.document_id,
                code=request.status_code,
                sender=request.from_unit or None,
                description=request.description or None,
                staff=request.staff or None,
            )
        )
        self._app.outbox_written()  # the status travels back to the sender
        await self._app.record(
            audit.EventType.STATUS_CHANGED,
            actor=identity,
            unit=unit,
            details={
                "document_id": request.document_id,
                "sender": request.from_unit,
                "status": code.value,
            },
        )
        return exchange_pb2.UpdateStatusResponse()

    async def Track(  # noqa: N802
        self, request: exchange_pb2.TrackRequest, context: Any
    ) -> exchange_pb2.TrackResponse:
        router = self._routing()
        identity = current_identity()
        if not request.document_id:
            raise RequestInvalid("name the document", field="document_id")
        if "auditor" not in identity.roles:
            await asyncio.to_thread(
                self._senders.check, identity, request.from_unit, field="from_unit"
            )
        entries = await asyncio.to_thread(
            router.track, document_id=request.document_id, sender=request.from_unit or None
        )
        return exchange_pb2.TrackResponse(
            document_id=request.document_id, recipients=[_recipient_state(e) for e in entries]
        )

    # -- Forward (hub to hub) ------------------------------------------------------------------

    async def Forward(  # noqa: N802
        self, request: exchange_pb2.ForwardRequest, context: Any
    ) -> exchange_pb2.ForwardResponse:
        router = self._routing()
        identity = current_identity()
        self._check_hub(identity, request.from_hub)
        if not request.hop_id:
            raise RequestInvalid("a hop needs its hop_id (the idempotency key)", field="hop_id")
        body = request.WhichOneof("body")
        if body == "package":
            data = request.package
            submission = Submission(
                package=data,
                via_hub=request.from_hub,
                recipients=tuple(request.to_units) or None,
                trace=trace_from_proto(request.trace),
            )
            accepted = await asyncio.to_thread(router.accept, submission)
            if accepted.forwarded:
                self._app.outbox_written()
            digest = hashlib.sha256(data).hexdigest()
            if accepted.local:
                opened = await asyncio.to_thread(open_package, data, policy=self._policy)
                refs = await asyncio.to_thread(self._store_attachments, opened)
                await self._arrived(accepted, opened, refs, actor=identity)
            await self._app.record(
                audit.EventType.PACKAGE_RECEIVED,
                actor=identity,
                unit=accepted.sender,
                document_sha256=digest,
                details={
                    "document_id": accepted.document_id,
                    "hop": request.hop_id,
                    "from_hub": request.from_hub,
                    "duplicate": "yes" if accepted.duplicate else "no",
                },
            )
        elif body == "status_packet":
            data = request.status_packet
            status = await asyncio.to_thread(router.accept_status, data, via_hub=request.from_hub)
            self._app.outbox_written()  # a relayed status goes on towards the sender
            digest = hashlib.sha256(data).hexdigest()
            await self._app.record(
                audit.EventType.STATUS_CHANGED,
                actor=identity,
                unit=status.from_.organ_id,
                details={
                    "document_id": status.response_for.document_id,
                    "sender": status.response_for.organ_id,
                    "status": status.code.value,
                    "hop": request.hop_id,
                },
            )
        else:
            raise RequestInvalid("give the package or the status packet", field="body")
        receipt = Receipt(
            hop_id=request.hop_id, sha256=digest, hub=self._hub_id, at=datetime.now(UTC)
        )
        return await asyncio.to_thread(self._signed, receipt)

    def _check_hub(self, identity: Identity, hub_id: str) -> None:
        hubs = {h.id: h for h in self._directory.topology.hubs()}
        hub = hubs.get(hub_id)
        if hub is None:
            raise PermissionDenied(f"hub {hub_id!r} is not one of this hub's configured hubs")
        if identity.name != hub_id and identity.unit != hub.root_unit:
            raise PermissionDenied(
                f"client {identity.name!r} may not forward as hub {hub_id}; its client name must"
                f" be {hub_id} or its unit {hub.root_unit}"
            )

    def _signed(self, receipt: Receipt) -> exchange_pb2.ForwardResponse:
        key = exchange_key(self._app)
        assert self._app.keyring is not None  # exchange_key checked it
        chain = [
            x509.load_der_x509_certificate(c.dump())
            for c in self._app.keyring.chain(self._app.config.exchange.key)
        ]
        return sign_receipt(receipt, key=key, chain=chain)


def _document_id(unit: str, fields: exchange_pb2.DocumentFields, now: datetime) -> str:
    """``OrganId,yyyy/MM/dd,Số/KýHiệu`` when the document has a number, else a fresh UUID."""
    if fields.code_number:
        code = fields.code_number + (f"/{fields.code_notation}" if fields.code_notation else "")
        return f"{unit},{now:%Y/%m/%d},{code}"
    return str(uuid.uuid4())


def _recipient_state(entry: TrackEntry) -> exchange_pb2.RecipientState:
    if entry.state is DeliveryState.QUEUED:
        state = exchange_pb2.QUEUED if entry.next_hub else exchange_pb2.DELIVERED
    else:
        state = _STATES[entry.state]
    last = entry.history[-1] if entry.history else None
    return exchange_pb2.RecipientState(
        unit_code=entry.recipient,
        state=state,
        status_code=entry.status.value if entry.status else "",
        status_description=next(
            (e.description or "" for e in reversed(entry.history) if e.code == entry.status), ""
        ),
        updated_at=timestamp(last.at) if last else None,
        detail=f"next hub {entry.next_hub}" if entry.next_hub else "served by this hub",
    )


def verification_summary(opened: OpenedPackage, *, anchors: Iterable[Path]) -> str:
    """One line per check: the package signature, then each attached PDF's indication."""
    signature = opened.signature
    lines = [
        f"package: signed by {signature.signer_subject} ({signature.algorithm})"
        if signature.signed
        else "package: not signed"
    ]
    pdfs = [
        a
        for a in opened.package.attachments
        if a.content.startswith(b"%PDF") or (a.content_type or "").lower() == "application/pdf"
    ]
    if not pdfs:
        return "\n".join(lines)
    from signer.verify import TrustProfile, VerificationPolicy, verify_pdf

    policy = VerificationPolicy(
        trust=(TrustProfile.from_sources(name="configured", pem_files=tuple(anchors)),)
    )
    for attachment in pdfs:
        report = verify_pdf(attachment.content, policy=policy)
        sub = f"/{report.sub_indication.value}" if report.sub_indication else ""
        lines.append(
            f"{attachment.name or attachment.content_id}: {report.indication.value}{sub}"
            f" ({len(report.signatures)} signature(s))"
        )
    return "\n".join(lines)
