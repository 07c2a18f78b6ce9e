"""Conversions between protobuf messages and domain values, in one place.

Every servicer converts with these functions only; nothing else in kyso builds or reads a
protobuf message of the API (the operations never see one). A malformed request field is a
``RequestInvalid`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from asn1crypto import pem, x509
from google.protobuf import timestamp_pb2

import audit
import signer
import storage
from exchange.directory import RouteKind
from exchange.edxml import TraceHeader
from exchange.routing import DeliveryState, Quarantined, QuarantineKind, TrackEntry
from kyso.catalogue import CatalogueEntry
from kyso.errors import RequestInvalid, to_status
from kyso.operations.direct_transfer import DownloadGrant, UploadGrant
from kyso.operations.directory import ChildrenPage, NextHop, ServedUnit
from kyso.operations.documents import DocumentSource, UploadMeta
from kyso.operations.exchange import (
    AttachmentSource,
    Delivery,
    DocumentFields,
    ForwardOrder,
    SendOrder,
    Sent,
    Verdict,
)
from kyso.operations.hops import SignedReceipt
from kyso.operations.ledger_reading import DocumentHistory, RecordedEvent
from kyso.operations.signing import SealOrder
from kyso.operations.twophase import Completed, PendingPage, PrepareOrder
from kyso.operations.verifying import PackageVerdict
from kyso.v1 import (
    audit_pb2,
    common_pb2,
    directory_pb2,
    documents_pb2,
    exchange_pb2,
    signing_pb2,
    verification_pb2,
)
from signer import verify
from signer.twophase import SigningSession
from signer.verify.text import describe_finding, describe_problem

__all__ = [
    "appearance_from_proto",
    "begin_direct_upload_response",
    "children_page",
    "consistency_proof",
    "delivery",
    "direct_upload_meta",
    "directory_unit",
    "document_info",
    "document_source",
    "download_url_response",
    "forward_order",
    "forward_response",
    "inclusion_proof",
    "ledger_event",
    "level_from_proto",
    "level_to_proto",
    "package_report",
    "pdf_report",
    "pending_page",
    "prepare_order",
    "prepare_response",
    "quarantine_kind",
    "quarantined_item",
    "recipient_state",
    "report_language",
    "requested_tree_size",
    "route_response",
    "seal_order",
    "search_response",
    "send_order",
    "sent_response",
    "signed_receipt",
    "stored_document",
    "timestamp",
    "trace_from_proto",
    "trace_to_proto",
    "tree_head",
    "upload_chunks",
    "upload_meta",
]

_LEVELS: dict[int, signer.Level] = {
    signing_pb2.SIGNATURE_LEVEL_B_B: signer.Level.B_B,
    signing_pb2.SIGNATURE_LEVEL_B_T: signer.Level.B_T,
    signing_pb2.SIGNATURE_LEVEL_B_LT: signer.Level.B_LT,
    signing_pb2.SIGNATURE_LEVEL_B_LTA: signer.Level.B_LTA,
}
_APPEARANCES: dict[int, signer.AppearanceKind] = {
    signing_pb2.APPEARANCE_UNSPECIFIED: signer.AppearanceKind.NONE,
    signing_pb2.APPEARANCE_NONE: signer.AppearanceKind.NONE,
    signing_pb2.APPEARANCE_SEAL: signer.AppearanceKind.SEAL,
    signing_pb2.APPEARANCE_TEXT: signer.AppearanceKind.TEXT,
}
_STATES: dict[DeliveryState, Any] = {
    DeliveryState.FORWARDED: exchange_pb2.DELIVERY_STATE_FORWARDED,
    DeliveryState.DELIVERED: exchange_pb2.DELIVERY_STATE_DELIVERED,
    DeliveryState.ACKNOWLEDGED: exchange_pb2.DELIVERY_STATE_ACKNOWLEDGED,
    DeliveryState.QUARANTINED: exchange_pb2.DELIVERY_STATE_FAILED,
}


# -- common -------------------------------------------------------------------------------------


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def completion_result(
    session_id: str, outcome: Completed | Exception, *, request_id: str
) -> signing_pb2.CompleteSignaturesResult:
    """One item of ``CompleteSignatures``: its completion, or the status ``CompleteSignature``
    would have answered for it (from the one error table)."""
    if isinstance(outcome, Exception):
        status = to_status(outcome, request_id=request_id)
        return signing_pb2.CompleteSignaturesResult(
            session_id=session_id,
            error=signing_pb2.CompleteSignaturesError(
                code=status.code.value[0],
                message=status.message,
                field=str(getattr(outcome, "field", "") or ""),
            ),
        )
    return signing_pb2.CompleteSignaturesResult(
        session_id=session_id,
        completed=signing_pb2.CompleteSignatureResponse(
            document=stored_document(outcome.stored.ref, outcome.stored.size),
            level=level_to_proto(outcome.level),
            ledger_index=outcome.ledger_index,
        ),
    )


def stored_document(ref: storage.ObjectRef | str, size: int) -> common_pb2.StoredDocument:
    parsed = storage.ObjectRef.parse(ref)
    return common_pb2.StoredDocument(
        ref=common_pb2.DocumentRef(ref=str(parsed)), sha256=parsed.sha256, size=size
    )


def document_source(document: common_pb2.DocumentInput, *, field: str) -> DocumentSource:
    source = document.WhichOneof("source")
    return DocumentSource(
        content=document.content if source == "content" else None,
        ref=document.ref.ref if source == "ref" else None,
        filename=document.filename,
        field=field,
    )


# -- documents ----------------------------------------------------------------------------------


def upload_meta(first: documents_pb2.UploadRequest | None) -> UploadMeta:
    if first is None or not first.HasField("metadata"):
        raise RequestInvalid(
            "the first message of an upload must carry the metadata", field="metadata"
        )
    meta = first.metadata
    return UploadMeta(
        content_type=meta.content_type or "application/octet-stream",
        filename=meta.filename,
        sha256=meta.sha256.lower() or None,
        size=meta.size,
    )


def direct_upload_meta(request: documents_pb2.BeginDirectUploadRequest) -> UploadMeta:
    return UploadMeta(
        content_type=request.content_type or "application/octet-stream",
        filename=request.filename,
        sha256=request.sha256.lower() or None,
        size=request.size,
    )


def begin_direct_upload_response(grant: UploadGrant) -> documents_pb2.BeginDirectUploadResponse:
    return documents_pb2.BeginDirectUploadResponse(
        upload_id=grant.upload_id,
        url=grant.url,
        headers=dict(grant.headers),
        expires_at=timestamp(grant.expires_at),
    )


def download_url_response(grant: DownloadGrant) -> documents_pb2.GetDownloadUrlResponse:
    return documents_pb2.GetDownloadUrlResponse(
        url=grant.url, sha256=grant.sha256, size=grant.size, expires_at=timestamp(grant.expires_at)
    )


async def upload_chunks(
    requests: AsyncIterator[documents_pb2.UploadRequest],
) -> AsyncIterator[bytes]:
    """The bytes of an upload stream after its metadata message."""
    async for request in requests:
        if not request.HasField("chunk"):
            raise RequestInvalid("metadata may only come first", field="metadata")
        yield request.chunk


def document_info(entry: CatalogueEntry) -> documents_pb2.DocumentInfo:
    return documents_pb2.DocumentInfo(
        document=stored_document(entry.ref, entry.size),
        content_type=entry.content_type,
        filename=entry.filename,
        uploader=entry.uploader,
        unit_code=entry.unit_code,
        created_at=timestamp(entry.created_at),
        signatures=[
            documents_pb2.SignatureSummary(
                signer=s.signer,
                key_alias=s.key_alias,
                level=s.level,
                signed_at=timestamp(s.signed_at),
                signature_level=_level_named(s.level),
            )
            for s in entry.signatures
        ],
    )


# -- signing ------------------------------------------------------------------------------------


def level_from_proto(value: int) -> signer.Level | None:
    """The level asked for; None (unspecified) means the key's or the flow's default."""
    if value == signing_pb2.SIGNATURE_LEVEL_UNSPECIFIED:
        return None
    if value not in _LEVELS:
        raise RequestInvalid(f"unknown signature level {value}", field="level")
    return _LEVELS[value]


def level_to_proto(level: signer.Level) -> Any:
    """The SignatureLevel enum value (an int; protobuf's typing of enum values is opaque)."""
    return next(k for k, v in _LEVELS.items() if v is level)


def _level_named(text: str) -> Any:
    """The SignatureLevel of a level's text ("B-LT"); UNSPECIFIED for one kyso does not know."""
    try:
        return level_to_proto(signer.Level(text))
    except ValueError:
        return signing_pb2.SIGNATURE_LEVEL_UNSPECIFIED


def appearance_from_proto(value: int) -> signer.AppearanceKind:
    if value not in _APPEARANCES:
        raise RequestInvalid(f"unknown appearance {value}", field="appearance")
    return _APPEARANCES[value]


def _placement(
    placement: signing_pb2.Placement,
) -> tuple[str | None, int | None, tuple[float, float, float, float] | None]:
    """(field name, page, rect) of a placement; at most one of field and rect is set."""
    which = placement.WhichOneof("target")
    rect = placement.rect
    if which == "rect":
        corners = (rect.x1, rect.y1, rect.x2, rect.y2)
        if corners == (0, 0, 0, 0):  # a page alone: the appearance's default place on it
            return None, rect.page or None, None
        return None, rect.page, corners
    return (placement.field_name if which == "field_name" else None), None, None


def seal_order(request: signing_pb2.SignPdfRequest) -> SealOrder:
    field_name, page, rect = _placement(request.placement)
    return SealOrder(
        document=document_source(request.document, field="document"),
        alias=request.key_alias,
        level=level_from_proto(request.level),
        appearance=appearance_from_proto(request.appearance),
        reason=request.reason or None,
        location=request.location or None,
        contact=request.contact or None,
        field_name=field_name,
        page=page,
        rect=rect,
        certify=request.certify,
        request_id=request.request_id,
    )


def _certificate(data: bytes, field: str) -> x509.Certificate:
    if not data:
        raise RequestInvalid(f"{field}: give the official's certificate (DER)", field=field)
    try:
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        certificate = x509.Certificate.load(data)
        _ = certificate.public_key.algorithm, certificate.subject.human_friendly
    except (ValueError, TypeError, KeyError) as exc:
        raise RequestInvalid(f"{field}: not an X.509 certificate (DER)", field=field) from exc
    return certificate


def prepare_order(request: signing_pb2.PrepareSignatureRequest) -> PrepareOrder:
    field_name, page, rect = _placement(request.placement)
    return PrepareOrder(
        document=document_source(request.document, field="document"),
        certificate=_certificate(request.certificate, "certificate"),
        chain=tuple(_certificate(c, f"chain[{i}]") for i, c in enumerate(request.chain)),
        level=level_from_proto(request.level) or signer.Level.B_B,
        appearance=appearance_from_proto(request.appearance),
        reason=request.reason or None,
        location=request.location or None,
        field_name=field_name,
        page=page,
        rect=rect,
        title=request.title,
    )


def prepare_response(session: SigningSession) -> signing_pb2.PrepareSignatureResponse:
    return signing_pb2.PrepareSignatureResponse(
        session_id=session.id,
        sign_input=signing_pb2.SIGN_INPUT_DIGEST,
        data_to_sign=session.data_to_sign,
        digest_algorithm=session.digest_algorithm,
        signature_mechanism=session.mechanism,
        expires_at=timestamp(session.expires_at),
        document_sha256=session.document_sha256,
        level=level_to_proto(session.level),
    )


def pending_signature(
    s: SigningSession, people: Mapping[str, str] | None = None
) -> signing_pb2.PendingSignature:
    """A session as the official's agent sees it; ``people``: client name -> display name."""
    options = s.options
    appearance = next(
        (k for k, v in _APPEARANCES.items() if k and v.value == options.appearance), 0
    )
    pending = signing_pb2.PendingSignature(
        session_id=s.id,
        title=s.title,
        unit_code=s.unit_code,
        requester=s.requester,
        created_at=timestamp(s.created_at),
        expires_at=timestamp(s.expires_at),
        document_sha256=s.document_sha256,
        data_to_sign=s.data_to_sign,
        digest_algorithm=s.digest_algorithm,
        signature_mechanism=s.mechanism,
        prepared_ref=s.prepared_ref,
        signed_attributes=s.signed_attributes,
        filename=s.filename,
        level=level_to_proto(s.level),
        reason=options.reason or "",
        location=options.location or "",
        appearance=cast(Any, appearance),
        field_name=s.field_name,
        requester_name=(people or {}).get(s.requester, ""),
    )
    if options.rect is not None:
        x1, y1, x2, y2 = options.rect
        pending.rect.CopyFrom(
            signing_pb2.PageRect(page=options.page or 1, x1=x1, y1=y1, x2=x2, y2=y2)
        )
    return pending


def pending_page(
    page: PendingPage, people: Mapping[str, str] | None = None
) -> signing_pb2.ListPendingSignaturesResponse:
    return signing_pb2.ListPendingSignaturesResponse(
        pending=[pending_signature(s, people) for s in page.sessions],
        next_page_token=page.next_page_token,
    )


def signature_state(
    s: SigningSession, people: Mapping[str, str] | None = None
) -> signing_pb2.GetSignatureResponse:
    reply = signing_pb2.GetSignatureResponse(
        session=pending_signature(s, people),
        state=s.state.value,
        closed_by=s.closed_by or "",
        result_ref=s.result_ref or "",
    )
    closed = timestamp(s.closed_at)
    if closed is not None:
        reply.closed_at.CopyFrom(closed)
    return reply


# -- exchange -----------------------------------------------------------------------------------


def trace_to_proto(trace: Sequence[TraceHeader]) -> list[exchange_pb2.TraceHop]:
    hops = []
    for header in trace:
        hop = exchange_pb2.TraceHop(organ_id=header.organ_id)
        hop.timestamp.FromDatetime(header.timestamp.astimezone(UTC))
        hops.append(hop)
    return hops


def trace_from_proto(hops: Sequence[exchange_pb2.TraceHop]) -> tuple[TraceHeader, ...]:
    return tuple(
        TraceHeader(organ_id=hop.organ_id, timestamp=hop.timestamp.ToDatetime(tzinfo=UTC))
        for hop in hops
    )


def _attachment(item: exchange_pb2.Attachment, field: str) -> AttachmentSource:
    source = item.WhichOneof("source")
    return AttachmentSource(
        content=item.content if source == "content" else None,
        ref=item.ref.ref if source == "ref" else None,
        content_type=item.content_type,
        name=item.name,
        field=field,
    )


def send_order(request: exchange_pb2.SendRequest) -> SendOrder:
    body = request.WhichOneof("body")
    fields = request.fields
    return SendOrder(
        from_unit=request.from_unit,
        to_units=tuple(request.to_units),
        package=request.package if body == "package" else None,
        fields=DocumentFields(
            subject=fields.subject,
            code_number=fields.code_number,
            code_notation=fields.code_notation,
            document_type=fields.document_type,
            document_type_name=fields.document_type_name,
            content=fields.content,
            signer_full_name=fields.signer_full_name,
            signer_position=fields.signer_position,
            priority=fields.priority,
            attachments=tuple(
                _attachment(item, f"fields.attachments[{index}]")
                for index, item in enumerate(fields.attachments)
            ),
        )
        if body == "fields"
        else None,
        document_id=request.document_id,
    )


def recipient_state(entry: TrackEntry) -> exchange_pb2.RecipientState:
    if entry.state is DeliveryState.QUEUED:
        state = (
            exchange_pb2.DELIVERY_STATE_QUEUED
            if entry.next_hub
            else exchange_pb2.DELIVERY_STATE_DELIVERED
        )
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
        detail=_detail(entry),
        history=[
            exchange_pb2.StatusChange(
                code=e.code.value,
                at=timestamp(e.at),
                description=e.description or "",
                staff=e.staff or "",
            )
            for e in entry.history
        ],
        business_type=int(entry.business_type),
    )


def _detail(entry: TrackEntry) -> str:
    where = f"next hub {entry.next_hub}" if entry.next_hub else "served by this hub"
    if entry.state is DeliveryState.QUARANTINED:
        return f"quarantined ({where}): {entry.reason or 'no reason recorded'}"
    return where


def sent_response(sent: Sent) -> exchange_pb2.SendResponse:
    return exchange_pb2.SendResponse(
        document_id=sent.document_id,
        package=stored_document(sent.package_ref, sent.package_size),
        recipients=[recipient_state(e) for e in sent.recipients],
    )


def _verdict(verdict: Verdict) -> exchange_pb2.VerifiedItem:
    return exchange_pb2.VerifiedItem(
        name=verdict.name,
        indication=_INDICATIONS[verify.Indication(verdict.indication)],
        sub_indication=verdict.sub_indication,
        signer=verdict.signer,
        signatures=verdict.signatures,
    )


def delivery(unit: str, item: Delivery, *, leased: bool = True) -> exchange_pb2.Delivery:
    inbox = item.item
    if inbox is None:  # a heartbeat of an idle followed stream
        return exchange_pb2.Delivery(
            heartbeat=True, to_unit=unit, delivered_at=timestamp(datetime.now(UTC))
        )
    check = item.verification
    lease = inbox.lease_until if leased and inbox.lease_until.year > 1970 else None
    return exchange_pb2.Delivery(
        lease_until=timestamp(lease),
        delivery_id=str(inbox.delivery_id),
        document_id=inbox.document_id,
        from_unit=inbox.sender,
        to_unit=unit,
        subject=inbox.subject,
        package=stored_document(inbox.package_ref, len(item.package)),
        package_content=item.package,
        delivered_at=timestamp(datetime.now(UTC)),
        verification=check.text,
        verification_result=exchange_pb2.DeliveryVerification(
            package=_verdict(check.package) if check.package else None,
            attachments=[_verdict(v) for v in check.attachments],
        ),
        trace=[t.organ_id for t in inbox.trace],
    )


def forward_order(request: exchange_pb2.ForwardRequest) -> ForwardOrder:
    body = request.WhichOneof("body")
    return ForwardOrder(
        from_hub=request.from_hub,
        hop_id=request.hop_id,
        package=request.package if body == "package" else None,
        status_packet=request.status_packet if body == "status_packet" else None,
        to_units=tuple(request.to_units),
        trace=trace_from_proto(request.trace),
    )


def forward_response(receipt: SignedReceipt) -> exchange_pb2.ForwardResponse:
    return exchange_pb2.ForwardResponse(
        receipt=receipt.receipt,
        receipt_signature=receipt.signature,
        receipt_certificate=receipt.certificate_pem,
    )


def signed_receipt(response: exchange_pb2.ForwardResponse) -> SignedReceipt:
    return SignedReceipt(
        receipt=response.receipt,
        signature=response.receipt_signature,
        certificate_pem=response.receipt_certificate,
    )


# -- verification -------------------------------------------------------------------------------

_INDICATIONS = {
    verify.Indication.TOTAL_PASSED: verification_pb2.INDICATION_TOTAL_PASSED,
    verify.Indication.INDETERMINATE: verification_pb2.INDICATION_INDETERMINATE,
    verify.Indication.TOTAL_FAILED: verification_pb2.INDICATION_TOTAL_FAILED,
}


def report_language(value: str) -> verify.Language:
    if value in ("", "vi"):
        return "vi"
    if value == "en":
        return "en"
    raise RequestInvalid(f"language {value!r} is not 'vi' or 'en'", field="language")


def pdf_report(
    report: verify.VerificationReport, lang: verify.Language
) -> verification_pb2.VerificationReport:
    signatures = []
    for sig in report.signatures:
        signer = sig.signer
        algorithm = sig.algorithm
        signatures.append(
            verification_pb2.SignatureReport(
                field_name=sig.field_name,
                indication=_INDICATIONS[sig.indication],
                sub_indication=sig.sub_indication.value if sig.sub_indication else "",
                signer_subject=signer.subject if signer else "",
                signer_serial=signer.serial if signer else "",
                issuer_subject=signer.issuer if signer else "",
                claimed_signing_time=timestamp(sig.claimed_signing_time),
                timestamp_time=timestamp(sig.timestamp.time if sig.timestamp else None),
                intact=sig.intact and sig.signature_valid,
                trusted=sig.trusted,
                revocation_status=sig.revocation.status.value,
                modification_level=(sig.modification_level.value if sig.modification_level else ""),
                level_reached=sig.level_reached.value,
                algorithm=f"{algorithm.signature}/{algorithm.digest}" if algorithm else "",
                problems=[describe_problem(p, lang) for p in sig.problems],
                covers_whole_document=sig.covers_whole_document,
            )
        )
    return verification_pb2.VerificationReport(
        indication=_INDICATIONS[report.indication],
        sub_indication=report.sub_indication.value if report.sub_indication else "",
        signatures=signatures,
        findings=[describe_finding(f, lang) for f in report.findings],
        document_sha256=report.document_sha256,
        report_json=verify.report_to_json(report),
        report_text=verify.render_text(report, lang=lang),
    )


def package_report(verdict: PackageVerdict) -> verification_pb2.VerificationReport:
    """XML-DSig verdict on an edXML package, in the same report shape as PDFs."""
    digest = verdict.sha256
    opened = verdict.opened
    if opened is None:
        return _package_verdict(
            digest, _INDICATIONS[verdict.indication], verdict.sub_indication, verdict.reason
        )
    signature = opened.signature
    signer = signature.signer
    header = opened.package.header
    signer_name = signer.subject.rfc4514_string() if signer else ""
    summary = {
        "schema": "kyso.package-verification/1",
        "indication": "TOTAL-PASSED",
        "document_sha256": digest,
        "document_id": header.document_id,
        "from": header.from_.organ_id,
        "to": [r.organ_id for r in header.to],
        "subject": header.subject,
        "algorithm": signature.algorithm,
        "signer": signer_name,
    }
    return verification_pb2.VerificationReport(
        indication=verification_pb2.INDICATION_TOTAL_PASSED,
        signatures=[
            verification_pb2.SignatureReport(
                field_name="edXML Signature",
                indication=verification_pb2.INDICATION_TOTAL_PASSED,
                signer_subject=signer_name,
                signer_serial=format(signer.serial_number, "X") if signer else "",
                issuer_subject=signer.issuer.rfc4514_string() if signer else "",
                intact=True,
                trusted=True,
                algorithm=signature.algorithm or "",
                covers_whole_document=True,
            )
        ],
        document_sha256=digest,
        report_json=json.dumps(summary, ensure_ascii=False),
        report_text=(
            f"TOTAL-PASSED: {header.document_id} — {header.subject}\n"
            f"signed by {signer_name} ({signature.algorithm})"
        ),
    )


def _package_verdict(
    digest: str, indication: Any, sub_indication: str, reason: str
) -> verification_pb2.VerificationReport:
    name = (
        verification_pb2.Indication.Name(indication).removeprefix("INDICATION_").replace("_", "-")
    )
    return verification_pb2.VerificationReport(
        indication=indication,
        sub_indication=sub_indication,
        findings=[reason],
        document_sha256=digest,
        report_json=json.dumps(
            {
                "schema": "kyso.package-verification/1",
                "indication": name,
                "sub_indication": sub_indication,
                "document_sha256": digest,
                "reason": reason,
            },
            ensure_ascii=False,
        ),
        report_text=f"{name} ({sub_indication}): {reason}",
    )


# -- directory ----------------------------------------------------------------------------------

_ROUTE_KINDS: dict[RouteKind, Any] = {
    RouteKind.LOCAL: directory_pb2.ROUTE_KIND_LOCAL,
    RouteKind.UP: directory_pb2.ROUTE_KIND_UP,
    RouteKind.DOWN: directory_pb2.ROUTE_KIND_DOWN,
    RouteKind.PEER: directory_pb2.ROUTE_KIND_PEER,
}


def directory_unit(served: ServedUnit) -> directory_pb2.Unit:
    found = served.unit
    return directory_pb2.Unit(
        code=found.code,
        name=found.name,
        parent_code=found.parent_code or "",
        level=found.level,
        kind=found.kind,
        hub=served.hub or "",
    )


def children_page(page: ChildrenPage) -> directory_pb2.ListChildrenResponse:
    return directory_pb2.ListChildrenResponse(
        units=[directory_unit(u) for u in page.units], next_page_token=page.next_page_token
    )


def search_response(found: Sequence[ServedUnit]) -> directory_pb2.SearchResponse:
    return directory_pb2.SearchResponse(units=[directory_unit(u) for u in found])


def route_response(hop: NextHop) -> directory_pb2.RouteResponse:
    return directory_pb2.RouteResponse(
        kind=_ROUTE_KINDS[hop.kind], next_hub=hop.next_hub or "", next_hub_address=hop.address
    )


# -- audit --------------------------------------------------------------------------------------


def ledger_event(recorded: RecordedEvent) -> audit_pb2.LedgerEvent:
    entry = recorded.entry
    event = entry.event
    return audit_pb2.LedgerEvent(
        index=entry.index,
        entry=recorded.data,
        leaf_hash=recorded.leaf_hash,
        time=timestamp(event.time),
        actor=event.actor,
        unit_code=event.unit,
        event_type=str(event.type),
        document_sha256=event.document_sha256 or "",
        refs=list(event.refs),
        key=event.key or "",
        details=dict(event.details),
    )


def document_history(history: DocumentHistory) -> audit_pb2.DocumentHistory:
    return audit_pb2.DocumentHistory(
        tree_head=tree_head(history.head) if history.head is not None else None,
        events=[
            audit_pb2.ProvenEvent(
                event=ledger_event(proven.event),
                inclusion_proof=inclusion_proof(proven.proof) if proven.proof else None,
            )
            for proven in history.events
        ],
        truncated=history.truncated,
    )


def requested_tree_size(value: int) -> int | None:
    """The tree size a GetTreeHead names; 0 (unset) asks for the latest head (None)."""
    return value or None


def tree_head(head: audit.SignedTreeHead) -> audit_pb2.SignedTreeHead:
    return audit_pb2.SignedTreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        time=timestamp(head.time),
        signed_data=head.signed_data,
        signature=head.signature,
        signature_algorithm=str(head.algorithm.value),
        certificate=head.certificate,
    )


def inclusion_proof(proof: audit.InclusionProof) -> audit_pb2.InclusionProof:
    return audit_pb2.InclusionProof(
        index=proof.index,
        tree_size=proof.tree_size,
        audit_path=list(proof.path),
        leaf_hash=proof.leaf_hash,
    )


def consistency_proof(proof: audit.ConsistencyProof) -> audit_pb2.ConsistencyProof:
    return audit_pb2.ConsistencyProof(
        first_size=proof.old_size, second_size=proof.new_size, proof=list(proof.path)
    )


_QUARANTINE_KINDS: dict[int, str] = {
    exchange_pb2.QUARANTINE_KIND_DELIVERY: QuarantineKind.DELIVERY.value,
    exchange_pb2.QUARANTINE_KIND_HOP: QuarantineKind.HOP.value,
}


def quarantine_kind(value: int) -> str:
    """The domain's name of a quarantine kind ("" when unspecified: the operation refuses it)."""
    return _QUARANTINE_KINDS.get(value, "")


def quarantined_item(item: Quarantined) -> exchange_pb2.QuarantinedItem:
    return exchange_pb2.QuarantinedItem(
        kind=exchange_pb2.QUARANTINE_KIND_DELIVERY
        if item.kind is QuarantineKind.DELIVERY
        else exchange_pb2.QUARANTINE_KIND_HOP,
        id=str(item.id),
        document_id=item.document_id,
        from_unit=item.sender,
        to_units=item.recipients,
        next_hub=item.next_hub or "",
        failures=item.failures,
        reason=item.reason,
        quarantined_at=timestamp(item.at),
    )
