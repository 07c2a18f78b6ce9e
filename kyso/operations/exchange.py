"""Exchange operations: send, forward, receive, acknowledge, set and track statuses.

Who may act for a unit (send as it, read its inbox, acknowledge and set its statuses, track
what it sent): a client whose configured ``unit`` is that unit or one of its ancestors in the
directory — nothing else. Being allowed to use this hub's ``[exchange] key`` is not a pass to
every unit: it only lets a client have packages built from fields and signed with that key
(``Send`` with ``fields``), and a client not in ``keys.<alias>.clients`` must send a package it
signed itself. Hubs never use Send; they use Forward, where the caller must be the hub named in
``from_hub`` (its client's name is the hub id, or its unit is the hub's root unit) and the
package's route must reach this hub directly from that hub (``bindings.check_route``).

Order of a package's arrival (Send, or Forward from another hub): verify and route it (the
router stores its bytes) → store its attachments (content addresses) → when it has local
recipients, verify its attached PDFs in the verifier pool with the same policy as VerifyPdf →
commit the deliveries, statuses and outbox rows *with* their ledger events (``package.sent`` /
``package.received`` and one ``package.delivered`` per local recipient) in one transaction.

Limits at the door (``[exchange]``, see ``kyso.app.package_limits``): a package is read within
its total size, attachment count, size of each attachment and size of all attachments decoded
and unpacked together; attachments given by ref are counted and sized (``stat``) before any is
read. A package is accepted only when it can be delivered: its bytes and the fields a Delivery
or a Forward carries beside them fit ``[server] max_message_bytes`` (``deliverable``).

Quarantine: a delivery Receive cannot hand over (its package cannot be read or opened, or
does not fit a message) is counted and skipped, so the deliveries behind it go on; after
``[exchange] max_delivery_attempts`` it is quarantined with its reason (``package.quarantined``
in the same transaction), shown by Track and by ``quarantined``, until an operator releases it
(``package.released``). A store that cannot be reached at all fails the Receive instead: that
says nothing about the delivery.

Invariants: every change of routing state that this hub makes for a request (a package
accepted, a status set or relayed, deliveries acknowledged, quarantined or released) commits
with its ledger event; a request that would make an event invalid (too many attachments, an
over-long document or hop id) or break a limit is refused before anything is stored, naming
the field and the limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from cryptography import x509

import audit
import storage
from exchange.directory import Directory
from exchange.edxml import (
    MAX_DOCUMENT_ID_CHARS,
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
    StatusPacket,
    TraceHeader,
    build_package,
    open_package,
)
from exchange.edxml.model import StatusCode
from exchange.errors import DuplicateDocument, ExchangeError, PackageTooLarge
from exchange.routing import (
    Accepted,
    InboxItem,
    Quarantined,
    QuarantineKind,
    Router,
    Submission,
    TrackEntry,
)
from exchange.routing.model import Prepared
from kyso.app import Application, package_limits
from kyso.authz import Identity
from kyso.errors import FailedPrecondition, PermissionDenied, RequestInvalid, fields_named
from kyso.operations.bindings import check_route
from kyso.operations.documents import Documents
from kyso.operations.hops import (
    Receipt,
    SignedReceipt,
    exchange_key,
    exchange_key_for,
    sign_receipt,
)
from kyso.operations.ledger import Staging

__all__ = [
    "AttachmentSource",
    "Delivery",
    "DocumentFields",
    "Exchange",
    "ForwardOrder",
    "PackageCheck",
    "SendOrder",
    "SenderPolicy",
    "Sent",
    "Verdict",
    "deliverable",
]

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 5000
MAX_HOP_ID_CHARS = 128
# A Delivery's fields beside the package that are not in it (ids, unit codes, times, the
# first verification line with the signer's name), and per attachment its verification line.
_DELIVERY_FIXED_BYTES = 4096
_LINE_BYTES = 96
_RECEIVE_BATCH = 50
_POLL_SECONDS = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentSource:
    """An attachment given inline or by a stored document's ref; ``field`` names it in errors."""

    content: bytes | None = None
    ref: str | None = None
    content_type: str = ""
    name: str = ""
    field: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentFields:
    """What a unit's system gives to have a package built and signed for it."""

    subject: str
    code_number: str = ""
    code_notation: str = ""
    document_type: int = 0
    document_type_name: str = ""
    content: str = ""
    signer_full_name: str = ""
    signer_position: str = ""
    priority: int = 0
    attachments: tuple[AttachmentSource, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendOrder:
    """A Send: a signed ``package``, or ``fields`` to build one from (exactly one of them)."""

    from_unit: str
    to_units: tuple[str, ...] = ()
    package: bytes | None = None
    fields: DocumentFields | None = None
    document_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    document_id: str
    package_ref: str
    package_size: int
    recipients: tuple[TrackEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardOrder:
    """A hop from another hub: a package for ``to_units`` or a status packet."""

    from_hub: str
    hop_id: str
    package: bytes | None = None
    status_packet: bytes | None = None
    to_units: tuple[str, ...] = ()
    trace: tuple[TraceHeader, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The verdict on one signed item of a package (EN 319 102-1 indication, as its text)."""

    name: str
    indication: str
    sub_indication: str = ""
    signer: str = ""
    signatures: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageCheck:
    """A package's verification on arrival: ``text`` for people (also in the ledger), and the
    same verdicts for programs (none for a verification recorded before they were kept)."""

    text: str
    package: Verdict | None = None
    attachments: tuple[Verdict, ...] = ()

    def stored(self) -> str:
        """The catalogue's form (JSON, read back by ``PackageCheck.loaded``)."""
        return json.dumps(
            {
                "schema": _CHECK_SCHEMA,
                "text": self.text,
                "package": dataclasses.asdict(self.package) if self.package else None,
                "attachments": [dataclasses.asdict(v) for v in self.attachments],
            },
            ensure_ascii=False,
        )

    @classmethod
    def loaded(cls, stored: str) -> PackageCheck:
        """Read ``stored()``'s form; older rows hold only the text."""
        try:
            data = json.loads(stored)
        except ValueError:
            return cls(text=stored)
        if not isinstance(data, dict) or data.get("schema") != _CHECK_SCHEMA:
            return cls(text=stored)
        package = data.get("package")
        return cls(
            text=data["text"],
            package=Verdict(**package) if package else None,
            attachments=tuple(Verdict(**v) for v in data.get("attachments", ())),
        )


_CHECK_SCHEMA = "kyso.delivery-verification/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A document handed to a unit's system from its inbox; or, with ``heartbeat``, nothing:
    a sign of life on an idle followed stream."""

    item: InboxItem | None
    package: bytes
    verification: PackageCheck
    heartbeat: bool = False


class SenderPolicy:
    """Which units a caller may act for (see the module docstring)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def check(self, identity: Identity, unit: str, *, field: str) -> None:
        """Return when ``identity`` may act for ``unit``; raise ``PermissionDenied`` otherwise."""
        if not unit:
            raise RequestInvalid("name the unit (its code, e.g. 000.00.02.H49)", field=field)
        with fields_named({None: field, "code": field}):
            lineage = self._directory.lineage(unit)
        if identity.unit and identity.unit in lineage:
            return
        raise PermissionDenied(
            f"client {identity.name!r} (unit {identity.unit or 'none'}) may not act for unit"
            f" {unit}; configure the client with that unit or one above it"
        )


class Exchange:
    """The exchange operations of this hub (see the module docstring)."""

    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents
        self._run = app.executors.io.run
        self._xml = app.executors.xml.run
        self._pdf = app.executors.pdf.run
        self._events = app.events
        self._router = app.router
        self._directory = app.directory
        self._hub_id = app.config.exchange.hub_id
        self._policy = app.package_trust()
        self._limits = package_limits(app.config)
        self._max_message = app.config.server.max_message_bytes
        self._senders = SenderPolicy(app.directory) if app.directory is not None else None
        self.min_heartbeat_seconds = app.config.server.min_heartbeat_seconds

    # -- authority -----------------------------------------------------------------------------

    def _routing(self) -> tuple[Router, Directory, SenderPolicy]:
        if self._router is None or self._directory is None or self._senders is None:
            raise FailedPrecondition(
                "this server does not route documents: set [exchange] hub_id and hubs"
            )
        return self._router, self._directory, self._senders

    async def _act_for(self, actor: Identity, unit: str, *, field: str) -> Router:
        router, _, senders = self._routing()
        await self._run(senders.check, actor, unit, field=field)
        return router

    def _check_hub(self, actor: Identity, hub_id: str) -> None:
        _, directory, _ = self._routing()
        hub = {h.id: h for h in directory.topology.hubs()}.get(hub_id)
        if hub is None:
            raise PermissionDenied(f"hub {hub_id!r} is not one of this hub's configured hubs")
        if actor.name != hub_id and actor.unit != hub.root_unit:
            raise PermissionDenied(
                f"client {actor.name!r} may not forward as hub {hub_id}; its client name must"
                f" be {hub_id} or its unit {hub.root_unit}"
            )

    # -- Send ----------------------------------------------------------------------------------

    async def send(self, actor: Identity, order: SendOrder) -> Sent:
        router = await self._act_for(actor, order.from_unit, field="from_unit")
        if len(order.to_units) > MAX_RECIPIENTS:
            raise RequestInvalid(f"at most {MAX_RECIPIENTS} recipients per Send", field="to_units")
        if order.package is not None:
            data = order.package
        elif order.fields is not None:
            fields = order.fields
            exchange_key_for(self._app, actor)
            if not order.document_id and fields.code_number:
                # the id kyso gives a numbered document is the same for a retry the same day
                order = dataclasses.replace(
                    order, document_id=_document_id(order.from_unit, fields, datetime.now(UTC))
                )
            if order.document_id:
                again = await self._sent_before(router, order, fields)
                if again is not None:
                    return again
            data = await self._build(order, fields)
        else:
            raise RequestInvalid("give the package or the fields to build one from", field="body")
        recipients = order.to_units if order.package is not None and order.to_units else None
        field = "package" if order.package is not None else "fields"
        opened = await self._open(data, field=field)
        self._check_deliverable(data, opened, field=field)
        sender = opened.package.header.from_.organ_id
        if sender != order.from_unit:
            raise RequestInvalid(
                f"the package is from unit {sender}, not from_unit {order.from_unit}",
                field="from_unit",
            )
        prepared = await self._run(router.prepare, Submission(package=data, recipients=recipients))
        try:
            accepted = await self._arrive(
                actor, prepared, opened, first=audit.EventType.PACKAGE_SENT, details={}
            )
        except DuplicateDocument:
            # the same fields sent twice at once: the call that committed first answers both
            if order.fields is not None and order.document_id:
                again = await self._sent_before(router, order, order.fields)
                if again is not None:
                    return again
            raise
        entries = await self._run(
            router.track, document_id=accepted.document_id, sender=accepted.sender
        )
        wanted = set(recipients or (o.organ_id for o in opened.package.header.to))
        return Sent(
            document_id=accepted.document_id,
            package_ref=f"sha256/{opened.sha256}",
            package_size=len(data),
            recipients=tuple(e for e in entries if e.recipient in wanted),
        )

    async def _sent_before(
        self, router: Router, order: SendOrder, fields: DocumentFields
    ) -> Sent | None:
        """The answer to a Send with ``fields`` that repeats an earlier one, or None when the
        document id is new.

        Send is idempotent by (sender, document_id, what the client gave): the package kyso
        built the first time carries its own time, so its bytes cannot be compared; its
        contents can. The stored package is opened and its fields (recipients, subject, code,
        type, content, signer, priority, and each attachment's name, type and SHA-256) compared
        with the request's: the same ones answer the original result, other ones are
        ALREADY_EXISTS (``DuplicateDocument``)."""
        ref = await self._run(
            lambda: router.sent_package(sender=order.from_unit, document_id=order.document_id)
        )
        if ref is None:
            return None
        data = await self._run(self._documents.read_whole, ref)
        opened = await self._xml(open_package, data, policy=self._policy, limits=self._limits)
        if _built_fields(opened.package) != await self._run(self._asked_fields, order, fields):
            raise DuplicateDocument(
                f"document {order.document_id} from {order.from_unit} was already sent with"
                " different content; give a changed document a new document_id, or send it"
                " as an update",
                field="document_id",
            )
        entries = await self._run(
            router.track, document_id=order.document_id, sender=order.from_unit
        )
        wanted = {o.organ_id for o in opened.package.header.to}
        return Sent(
            document_id=order.document_id,
            package_ref=ref,
            package_size=len(data),
            recipients=tuple(e for e in entries if e.recipient in wanted),
        )

    def _asked_fields(self, order: SendOrder, fields: DocumentFields) -> tuple[object, ...]:
        """What a Send with fields asks for, in the shape of ``_built_fields``."""
        attachments = []
        for index, item in enumerate(fields.attachments):
            if item.ref is not None:
                digest = storage.ObjectRef.parse(item.ref).sha256
            else:
                digest = hashlib.sha256(item.content or b"").hexdigest()
            attachments.append(
                (
                    item.name or f"attachment-{index + 1}",
                    item.content_type or "application/octet-stream",
                    digest,
                )
            )
        return (
            tuple(dict.fromkeys(order.to_units)),
            fields.subject.strip(),
            fields.code_number,
            fields.code_notation if fields.code_number else "",
            fields.document_type,
            fields.document_type_name,
            fields.content,
            fields.signer_full_name,
            fields.signer_position,
            fields.priority,
            tuple(attachments),
        )

    async def _build(self, order: SendOrder, fields: DocumentFields) -> bytes:
        if not order.to_units:
            raise RequestInvalid("name at least one recipient unit", field="to_units")
        if not fields.subject.strip():
            raise RequestInvalid("the document needs a subject (trích yếu)", field="fields.subject")
        if len(fields.attachments) > self._limits.max_attachments:
            raise RequestInvalid(
                f"{len(fields.attachments)} attachments; at most"
                f" {self._limits.max_attachments} are accepted in one package",
                field="fields.attachments",
            )
        if len(order.document_id) > MAX_DOCUMENT_ID_CHARS:
            raise RequestInvalid(
                f"the document id has {len(order.document_id)} characters; at most"
                f" {MAX_DOCUMENT_ID_CHARS} are accepted",
                field="document_id",
            )
        await self._size_attachments(fields.attachments)
        attachments = []
        for index, item in enumerate(fields.attachments):
            if item.ref is not None:
                content = await self._run(self._documents.read_whole, item.ref)
            elif item.content is not None:
                content = item.content
            else:
                raise RequestInvalid("give the attachment's content or ref", field=item.field)
            attachments.append(
                Attachment(
                    content_id=f"att{index + 1}",
                    content=content,
                    content_type=item.content_type or "application/octet-stream",
                    name=item.name or f"attachment-{index + 1}",
                )
            )
        units = await self._run(self._units, [order.from_unit, *order.to_units])
        now = datetime.now(UTC)
        package = Package(
            header=MessageHeader(
                from_=units[0],
                to=tuple(dict.fromkeys(units[1:])),
                document_id=order.document_id or _document_id(order.from_unit, fields, now),
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
            traces=(TraceHeader(organ_id=order.from_unit, timestamp=now),),
            manifest=tuple(
                ManifestReference(
                    content_id=a.content_id, content_type=a.content_type, attachment_name=a.name
                )
                for a in attachments
            ),
            attachments=tuple(attachments),
        )
        return await self._xml(build_package, package, key=exchange_key(self._app))

    async def _size_attachments(self, items: Sequence[AttachmentSource]) -> None:
        """Refuse attachments over the limits from their sizes alone: a ref is ``stat``-ed,
        never read, before every attachment is known to fit (base64 takes 4/3 of the bytes)."""
        limits = self._limits
        room = limits.max_package_bytes // 4 * 3
        total = 0
        for item in items:
            if item.ref is not None:
                ref = storage.ObjectRef.parse(item.ref)
                size = (await self._run(self._app.store.stat, ref)).size
                where = f"{item.field}.ref"
            else:
                size = len(item.content or b"")
                where = f"{item.field}.content"
            if size > limits.max_attachment_bytes:
                raise PackageTooLarge(
                    f"the attachment is {size} bytes; at most {limits.max_attachment_bytes}"
                    " are accepted ([exchange] max_attachment_bytes)",
                    field=where,
                )
            total += size
            if total > room:
                raise PackageTooLarge(
                    f"the attachments come to {total} bytes or more; a package holds at most"
                    f" {room} bytes of attachments ([exchange] max_package_bytes"
                    f" {limits.max_package_bytes}, base64-encoded)",
                    field=where,
                )

    async def _open(self, data: bytes, *, field: str) -> OpenedPackage:
        """Open (verify and read) a package arriving here, within the limits."""
        if len(data) > self._limits.max_package_bytes:
            raise PackageTooLarge(
                f"the package is {len(data)} bytes; at most {self._limits.max_package_bytes}"
                " are accepted ([exchange] max_package_bytes)",
                field=field,
            )
        return await self._xml(open_package, data, policy=self._policy, limits=self._limits)

    def _check_deliverable(self, data: bytes, opened: OpenedPackage, *, field: str) -> None:
        """Refuse a package whose Delivery (or Forward) would not fit a message."""
        size = deliverable(data, opened)
        if size > self._max_message:
            raise PackageTooLarge(
                f"the package and the fields delivered with it (subject, attachment names,"
                f" trace) come to {size} bytes; a delivery holds at most {self._max_message}"
                " ([server] max_message_bytes)",
                field=field,
            )

    def _units(self, codes: Sequence[str]) -> list[Organization]:
        _, directory, _ = self._routing()
        organizations = []
        for index, code in enumerate(codes):
            where = "from_unit" if index == 0 else f"to_units[{index - 1}]"
            with fields_named({None: where, "code": where}):  # malformed or unknown
                unit = directory.get(code)
            organizations.append(Organization(organ_id=unit.code, organ_name=unit.name))
        return organizations

    # -- arrival (Send and Forward) ------------------------------------------------------------

    async def _arrive(
        self,
        actor: Identity,
        prepared: Prepared,
        opened: OpenedPackage,
        *,
        first: audit.EventType,
        details: dict[str, str],
    ) -> Accepted:
        """Commit a prepared package with its events (see the module docstring)."""
        router, _, _ = self._routing()
        refs = await self._run(self._store_attachments, opened)
        verification = (await self.verification(opened)).text if prepared.local else ""
        package_ref = f"sha256/{opened.sha256}"
        staging = Staging()

        def journal(conn: sa.Connection, accepted: Accepted) -> None:
            recipients = len(accepted.local) + sum(map(len, accepted.forwarded.values()))
            events = [
                self._events.event(
                    first,
                    actor=actor,
                    unit=accepted.sender,
                    document_sha256=opened.sha256,
                    refs=(package_ref, *refs),
                    details={
                        "document_id": accepted.document_id,
                        "recipients": str(recipients),
                        "duplicate": "yes" if accepted.duplicate else "no",
                        **details,
                    },
                ),
                *(
                    self._events.event(
                        audit.EventType.PACKAGE_DELIVERED,
                        actor=actor,
                        unit=recipient,
                        document_sha256=opened.sha256,
                        refs=(package_ref, *refs),
                        details={
                            "document_id": accepted.document_id,
                            "sender": accepted.sender,
                            "status": StatusCode.ARRIVED.value,
                            "verification": verification,
                        },
                    )
                    for recipient in accepted.local
                ),
            ]
            staging.write(conn, events)

        accepted = await self._run(router.commit_one, prepared, journal=journal)
        if accepted.forwarded:
            self._app.outbox_written()
        await self._events.settled(staging)
        return accepted

    def _store_attachments(self, opened: OpenedPackage) -> tuple[str, ...]:
        return tuple(
            str(
                self._app.store.put(
                    attachment.content,
                    content_type=attachment.content_type or "application/octet-stream",
                    metadata={},
                ).ref
            )
            for attachment in opened.package.attachments
        )

    async def verification(self, opened: OpenedPackage) -> PackageCheck:
        """The package's verification: its signature, then each attached PDF's indication.

        Attached PDFs go through the verifier pool (memory and time limits) with the policy of
        VerifyPdf; the result is made once per package and kept in the catalogue.
        """
        catalogue = self._app.catalogue
        known = await self._run(catalogue.verification, opened.sha256)
        if known is not None:
            return PackageCheck.loaded(known)
        signature = opened.signature
        lines = [
            f"package: signed by {signature.signer_subject} ({signature.algorithm})"
            if signature.signed
            else "package: not signed"
        ]
        # the package opened: its signature verified and is trusted (or it is unsigned and
        # the policy accepts that)
        package = Verdict(
            name="package",
            indication="TOTAL-PASSED" if signature.signed else "INDETERMINATE",
            sub_indication="" if signature.signed else "SIGNED_DATA_NOT_FOUND",
            signer=signature.signer_subject or "",
            signatures=1 if signature.signed else 0,
        )
        verdicts: list[Verdict] = []
        verifier = self._app.verifier
        policy = self._app.verification_policy()
        for attachment in opened.package.attachments:
            is_pdf = attachment.content.startswith(b"%PDF") or (
                (attachment.content_type or "").lower() == "application/pdf"
            )
            if not is_pdf or verifier is None:
                continue
            report = await self._pdf(verifier.verify, attachment.content, policy)
            sub = f"/{report.sub_indication.value}" if report.sub_indication else ""
            lines.append(
                f"{attachment.name or attachment.content_id}: {report.indication.value}{sub}"
                f" ({len(report.signatures)} signature(s))"
            )
            last = report.signatures[-1].signer if report.signatures else None
            verdicts.append(
                Verdict(
                    name=attachment.name or attachment.content_id,
                    indication=report.indication.value,
                    sub_indication=report.sub_indication.value if report.sub_indication else "",
                    signer=last.subject if last else "",
                    signatures=len(report.signatures),
                )
            )
        check = PackageCheck(text="\n".join(lines), package=package, attachments=tuple(verdicts))
        await self._run(catalogue.record_verification, opened.sha256, check.stored())
        return check

    # -- Receive and Ack -----------------------------------------------------------------------

    async def receive(
        self,
        actor: Identity,
        unit: str,
        *,
        max_deliveries: int = 0,
        lease_seconds: int = 0,
        follow: bool = False,
        heartbeat_seconds: int = 0,
    ) -> AsyncIterator[Delivery]:
        """The unit's inbox, leased to the caller; with ``follow``, new documents as they come,
        and after ``heartbeat_seconds`` (at least ``[server] min_heartbeat_seconds``) without one a
        heartbeat (``Delivery.heartbeat``) so that the idle stream carries something."""
        router = await self._act_for(actor, unit, field="unit_code")
        if max_deliveries < 0 or lease_seconds < 0:
            raise RequestInvalid(
                "max_deliveries and lease_seconds cannot be negative",
                field="max_deliveries" if max_deliveries < 0 else "lease_seconds",
            )
        if heartbeat_seconds < 0:
            raise RequestInvalid("heartbeat_seconds cannot be negative", field="heartbeat_seconds")
        beat = max(heartbeat_seconds, self.min_heartbeat_seconds) if heartbeat_seconds else 0.0
        lease = timedelta(seconds=lease_seconds) if lease_seconds else None
        sent = 0
        quiet_since = asyncio.get_running_loop().time()
        while True:
            want = _RECEIVE_BATCH
            if max_deliveries:
                want = min(want, max_deliveries - sent)
            items = await self._run(router.inbox, unit, limit=want, lease=lease)
            for item in items:
                delivery = await self._hand_over(actor, router, unit, item)
                if delivery is None:
                    continue  # counted (or quarantined): the ones behind it go on
                yield delivery
                sent += 1
                quiet_since = asyncio.get_running_loop().time()
            if max_deliveries and sent >= max_deliveries:
                return
            if len(items) < want:
                if not follow:
                    return
                now = asyncio.get_running_loop().time()
                if beat and now - quiet_since >= beat:
                    quiet_since = now
                    yield Delivery(
                        item=None, package=b"", verification=PackageCheck(text=""), heartbeat=True
                    )
                await asyncio.sleep(_POLL_SECONDS)

    async def _hand_over(
        self, actor: Identity, router: Router, unit: str, item: InboxItem
    ) -> Delivery | None:
        """The delivery of ``item``, or None when it cannot be handed over (then counted)."""
        try:
            data = await self._run(self._documents.read_whole, item.package_ref)
            opened = await self._xml(open_package, data, policy=self._policy, limits=self._limits)
            verification = await self.verification(opened)
            size = deliverable(data, opened) + 2 * len(verification.stored().encode())
            if size > self._max_message:
                raise PackageTooLarge(
                    f"its delivery is {size} bytes, over [server] max_message_bytes"
                    f" ({self._max_message})"
                )
        except (
            storage.ObjectNotFound,
            storage.IntegrityError,
            storage.InvalidRef,
            ExchangeError,
        ) as exc:  # this delivery's own fault; a store that is down fails the call instead
            staging = Staging()
            reason = f"{type(exc).__name__}: {exc}"

            def journal(conn: sa.Connection, quarantined: Quarantined) -> None:
                staging.write(conn, [self._quarantine_event(actor, quarantined)])

            await self._run(router.delivery_failed, item.delivery_id, error=reason, journal=journal)
            await self._events.settled(staging)
            log.warning(
                "delivery could not be handed over",
                extra={"delivery_id": item.delivery_id, "unit": unit, "reason": reason},
            )
            return None
        return Delivery(item=item, package=data, verification=verification)

    def _quarantine_event(self, actor: Identity, item: Quarantined) -> audit.Event:
        return self._events.event(
            audit.EventType.PACKAGE_QUARANTINED,
            actor=actor,
            unit=item.sender,
            details={
                "document_id": item.document_id,
                "kind": item.kind.value,
                "id": str(item.id),
                "recipients": ",".join(item.recipients),
                "failures": str(item.failures),
                "reason": item.reason,
            },
        )

    # -- quarantine (operators) ----------------------------------------------------------------

    async def quarantined(self) -> list[Quarantined]:
        """What is quarantined at this hub (deliveries and hops), oldest first."""
        router, _, _ = self._routing()
        return await self._run(router.quarantined)

    async def release(self, actor: Identity, kind: str, item_id: str) -> Quarantined:
        """Give a quarantined delivery back to its inbox, or a hop back to the outbox."""
        router, _, _ = self._routing()
        try:
            chosen = QuarantineKind(kind)
        except ValueError:
            raise RequestInvalid(
                f"kind is {kind or 'not given'}; give delivery or hop", field="kind"
            ) from None
        if not item_id.isdigit():
            raise RequestInvalid(
                "the id is the number `kyso exchange quarantine` lists", field="id"
            )
        staging = Staging()

        def journal(conn: sa.Connection, item: Quarantined) -> None:
            event = self._events.event(
                audit.EventType.PACKAGE_RELEASED,
                actor=actor,
                unit=item.sender,
                details={
                    "document_id": item.document_id,
                    "kind": item.kind.value,
                    "id": str(item.id),
                    "recipients": ",".join(item.recipients),
                },
            )
            staging.write(conn, [event])

        released = await self._run(lambda: router.release(chosen, int(item_id), journal=journal))
        if chosen is QuarantineKind.HOP:
            self._app.outbox_written()
        await self._events.settled(staging)
        return released

    async def ack(self, actor: Identity, unit: str, delivery_ids: Sequence[str]) -> int:
        """Acknowledge deliveries of ``unit``; return how many were named."""
        router = await self._act_for(actor, unit, field="unit_code")
        try:
            ids = sorted({int(d) for d in delivery_ids})
        except ValueError:
            raise RequestInvalid(
                "delivery ids are the numbers Receive gave", field="delivery_ids"
            ) from None
        if not ids:
            raise RequestInvalid("name the deliveries to acknowledge", field="delivery_ids")
        staging = Staging()

        def journal(conn: sa.Connection, changed: Sequence[int]) -> None:
            event = self._events.event(
                audit.EventType.PACKAGE_ACKNOWLEDGED,
                actor=actor,
                unit=unit,
                details={"deliveries": ",".join(map(str, changed))},
            )
            staging.write(conn, [event])

        await self._run(router.ack, unit, delivery_ids=ids, journal=journal)
        await self._events.settled(staging)
        return len(ids)

    # -- statuses ------------------------------------------------------------------------------

    async def set_status(
        self,
        actor: Identity,
        unit: str,
        *,
        document_id: str,
        code: str,
        sender: str = "",
        description: str = "",
        staff: str = "",
    ) -> None:
        """The recipient ``unit`` reports a status; it travels back to the sender."""
        router = await self._act_for(actor, unit, field="unit_code")
        if not document_id:
            raise RequestInvalid("name the document", field="document_id")
        settable = [c.value for c in StatusCode if c is not StatusCode.ARRIVED]
        if code not in settable:
            raise RequestInvalid(
                f"status code {code!r} is not one a recipient sets; use one of"
                f" {', '.join(settable)} (01, arrived, is recorded on delivery)",
                field="status_code",
            )
        staging = Staging()

        def journal(conn: sa.Connection, new: StatusCode) -> None:
            event = self._events.event(
                audit.EventType.STATUS_CHANGED,
                actor=actor,
                unit=unit,
                details={"document_id": document_id, "sender": sender, "status": new.value},
            )
            staging.write(conn, [event])

        with fields_named({"status": "status_code"}):  # a transition the state refuses
            await self._run(
                lambda: router.set_status(
                    unit,
                    document_id=document_id,
                    code=code,
                    sender=sender or None,
                    description=description or None,
                    staff=staff or None,
                    journal=journal,
                )
            )
        self._app.outbox_written()  # the status travels back to the sender
        await self._events.settled(staging)

    async def track(
        self, actor: Identity, *, document_id: str, sender: str = ""
    ) -> list[TrackEntry]:
        """Where each recipient's copy of a document is, and its status history."""
        router, _, senders = self._routing()
        if not document_id:
            raise RequestInvalid("name the document", field="document_id")
        if "auditor" not in actor.roles:
            await self._run(senders.check, actor, sender, field="from_unit")
        return await self._run(router.track, document_id=document_id, sender=sender or None)

    # -- Forward (hub to hub) ------------------------------------------------------------------

    async def forward(self, actor: Identity, order: ForwardOrder) -> SignedReceipt:
        """Take a hop from another hub and answer with this hub's signed receipt."""
        router, directory, _ = self._routing()
        self._check_hub(actor, order.from_hub)
        if not order.hop_id:
            raise RequestInvalid("a hop needs its hop_id (the idempotency key)", field="hop_id")
        if len(order.hop_id) > MAX_HOP_ID_CHARS:
            raise RequestInvalid(
                f"hop_id has {len(order.hop_id)} characters; at most {MAX_HOP_ID_CHARS}",
                field="hop_id",
            )
        if order.package is not None:
            data = order.package
            opened = await self._open(data, field="package")
            self._check_deliverable(data, opened, field="package")
            header = opened.package.header
            await self._run(
                lambda: check_route(
                    directory,
                    here=self._hub_id,
                    via_hub=order.from_hub,
                    sender=header.from_.organ_id,
                    recipients=order.to_units or [org.organ_id for org in header.to],
                )
            )
            submission = Submission(
                package=data,
                via_hub=order.from_hub,
                recipients=order.to_units or None,
                trace=order.trace,
            )
            prepared = await self._run(router.prepare, submission)
            with fields_named({"document_id": "package"}):  # a Forward names no document id
                await self._arrive(
                    actor,
                    prepared,
                    opened,
                    first=audit.EventType.PACKAGE_RECEIVED,
                    details={"hop": order.hop_id, "from_hub": order.from_hub},
                )
        elif order.status_packet is not None:
            data = order.status_packet
            await self._relay_status(actor, order, data)
        else:
            raise RequestInvalid("give the package or the status packet", field="body")
        receipt = Receipt(
            hop_id=order.hop_id,
            sha256=hashlib.sha256(data).hexdigest(),
            hub=self._hub_id,
            at=datetime.now(UTC),
        )
        return await self._run(self._sign, receipt)

    async def _relay_status(self, actor: Identity, order: ForwardOrder, packet: bytes) -> None:
        router, _, _ = self._routing()
        staging = Staging()

        def journal(conn: sa.Connection, status: StatusPacket) -> None:
            event = self._events.event(
                audit.EventType.STATUS_CHANGED,
                actor=actor,
                unit=status.from_.organ_id,
                details={
                    "document_id": status.response_for.document_id,
                    "sender": status.response_for.organ_id,
                    "status": status.code.value,
                    "hop": order.hop_id,
                },
            )
            staging.write(conn, [event])

        await self._run(router.accept_status, packet, via_hub=order.from_hub, journal=journal)
        self._app.outbox_written()  # a relayed status goes on towards the sender
        await self._events.settled(staging)

    def _sign(self, receipt: Receipt) -> SignedReceipt:
        key = exchange_key(self._app)
        assert self._app.keyring is not None  # exchange_key checked it
        chain = [
            x509.load_der_x509_certificate(c.dump())
            for c in self._app.keyring.chain(self._app.config.exchange.key)
        ]
        return sign_receipt(receipt, key=key, chain=chain)


def deliverable(data: bytes, opened: OpenedPackage) -> int:
    """A bound on the bytes of the Delivery (or Forward) message that carries this package:
    the package, then what is sent beside it — the subject, the document id, a verification
    line per attachment (with its name), the trace, the recipients a Forward names, and a fixed
    allowance for the rest."""
    header = opened.package.header
    lines = sum(
        _LINE_BYTES + len((a.name or a.content_id or "").encode())
        for a in opened.package.attachments
    )
    return (
        len(data)
        + len(header.subject.encode())
        + len(header.document_id.encode())
        + lines
        + 64 * len(opened.package.traces)
        + 24 * len(header.to)  # a Forward's to_units
        + _DELIVERY_FIXED_BYTES
    )


def _built_fields(package: Package) -> tuple[object, ...]:
    """The fields a package built by ``Exchange._build`` was built from (see ``_sent_before``)."""
    header = package.header
    kind = header.document_type
    signer = header.signer
    return (
        tuple(o.organ_id for o in header.to),
        header.subject,
        header.code.number if header.code else "",
        (header.code.notation or "") if header.code else "",
        (kind.type or 0) if kind else 0,
        (kind.name or "") if kind else "",
        header.content or "",
        (signer.full_name or "") if signer else "",
        (signer.position or "") if signer else "",
        (header.other_info.priority or 0) if header.other_info else 0,
        tuple(
            (
                a.name or "",
                a.content_type or "",
                hashlib.sha256(a.content).hexdigest(),
            )
            for a in package.attachments
        ),
    )


def _document_id(unit: str, fields: DocumentFields, now: datetime) -> str:
    """``OrganId,yyyy/MM/dd,Số/KýHiệu`` when the document has a number, else a fresh UUID."""
    if fields.code_number:
        code = fields.code_number + (f"/{fields.code_notation}" if fields.code_notation else "")
        return f"{unit},{now:%Y/%m/%d},{code}"
    return str(uuid.uuid4())
