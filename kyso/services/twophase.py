"""Two-phase signing handlers: PrepareSignature, CompleteSignature, ListPendingSignatures,
CancelSignature (``SigningServicer`` delegates to them).

Protobuf in, domain (``signer.twophase``) in the middle, protobuf out; storage, catalogue and
ledger are composed here as for SignPdf.

Who may do what (on top of the role table in ``kyso.authz``). The configuration binds no
certificate to a client, so a caller cannot be proven to be the official; therefore:
- Complete: any caller with the role. The signature value is the proof: it must verify against
  the official's certificate recorded at prepare, which only the holder of the key can produce.
- List: by certificate fingerprint, and only the sessions requested in the caller's own unit
  (a caller configured without a unit sees every unit's). A certificate is public, so knowing
  its fingerprint proves nothing; the unit keeps one unit's titles from another.
- Cancel: the requester, or any caller of the session's unit.

Invariants: nothing is embedded unless the value verifies (the session stays open); a session
is completed at most once (``SessionStore.claim``); a failed completion releases its claim, so
the session can be completed later.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import pem, x509

import audit
import signer
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import CatalogueEntry, SignatureRecord
from kyso.errors import FailedPrecondition, NotFound, PermissionDenied, RequestInvalid
from kyso.interceptors import current_identity
from kyso.services.convert import stored_document, timestamp
from kyso.services.inputs import read_document
from kyso.v1 import signing_pb2
from signer.twophase import (
    CertificateRejected,
    PreparedDocumentAltered,
    PrepareRequest,
    SessionClosed,
    SessionNotFound,
    SessionState,
    SessionStore,
    SigningSession,
    TwoPhaseSigner,
    closed_error,
    decode_cursor,
    encode_cursor,
    new_session_id,
    verify_signature_value,
)

__all__ = ["TwoPhaseHandlers"]

T = TypeVar("T")

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_PAGE = 100
_MAX_PAGE = 500


class TwoPhaseHandlers:
    def __init__(self, app: Application) -> None:
        self._app = app
        config = app.config
        intermediates = [
            cert for key in config.keys.values() for path in key.chain for cert in _certs(path)
        ]
        settings = signer.SignerSettings(
            max_document_size=config.signing.max_document_bytes,
            tsa_urls=config.signing.tsa_urls,
            tsa_timeout=config.signing.tsa_timeout_seconds,
            trust_roots=tuple(c for path in config.trust.anchors for c in _certs(path)),
        )
        self._signer = TwoPhaseSigner(settings=settings, known_intermediates=intermediates)
        self._sessions = SessionStore(app.engine)
        self._lifetime = timedelta(hours=config.signing.session_hours)

    async def prepare(
        self, request: signing_pb2.PrepareSignatureRequest
    ) -> signing_pb2.PrepareSignatureResponse:
        identity = current_identity()
        certificate = _parse_certificate(request.certificate, "certificate")
        chain = [_parse_certificate(c, f"chain[{i}]") for i, c in enumerate(request.chain)]
        level, appearance = _level_and_appearance(request)
        which = request.placement.WhichOneof("target")
        rect = request.placement.rect
        data, source_ref = await read_document(self._app, request.document, field="document")
        try:
            intermediates = await _off_loop(
                lambda: self._signer.check_certificate(certificate, chain=chain)
            )
        except CertificateRejected as exc:
            raise FailedPrecondition(str(exc)) from exc
        job = PrepareRequest(
            pdf=data,
            certificate=certificate,
            chain=intermediates,
            level=level,
            appearance=appearance,
            reason=request.reason or None,
            location=request.location or None,
            field_name=request.placement.field_name if which == "field_name" else None,
            page=rect.page if which == "rect" else None,
            rect=(rect.x1, rect.y1, rect.x2, rect.y2) if which == "rect" else None,
        )
        prepared = await _off_loop(lambda: self._signer.prepare(job))
        stored = await asyncio.to_thread(
            self._app.store.put, prepared.pdf, content_type="application/pdf", metadata={}
        )
        now = datetime.now(UTC)
        session = SigningSession(
            id=new_session_id(),
            state=SessionState.OPEN,
            certificate=certificate.dump(),
            chain=tuple(c.dump() for c in intermediates),
            signer_name=prepared.signer_name,
            requester=identity.name,
            unit_code=identity.unit,
            title=request.title or request.document.filename,
            filename=request.document.filename,
            level=level,
            digest_algorithm=prepared.digest_algorithm,
            mechanism=prepared.mechanism,
            signed_attributes=prepared.signed_attributes,
            data_to_sign=prepared.data_to_sign,
            document_sha256=_sha256(data),
            source_ref=source_ref,
            prepared_ref=str(stored.ref),
            document_digest=prepared.document_digest,
            reserved_start=prepared.reserved_start,
            reserved_end=prepared.reserved_end,
            field_name=prepared.field_name,
            created_at=now,
            expires_at=now + self._lifetime,
        )
        await asyncio.to_thread(self._sessions.create, session)
        await self._app.record(
            audit.EventType.SIGNATURE_PREPARED,
            actor=identity,
            document_sha256=session.document_sha256,
            refs=tuple(r for r in (session.prepared_ref, source_ref) if r),
            details={
                "session": session.id,
                "level": level.value,
                "certificate_sha256": session.certificate_sha256,
                "signer": session.signer_name,
                "field": session.field_name,
            },
        )
        return signing_pb2.PrepareSignatureResponse(
            session_id=session.id,
            sign_input=signing_pb2.SIGN_INPUT_DIGEST,
            data_to_sign=session.data_to_sign,
            digest_algorithm=session.digest_algorithm,
            signature_mechanism=session.mechanism,
            expires_at=timestamp(session.expires_at),
            document_sha256=session.document_sha256,
        )

    async def complete(
        self, request: signing_pb2.CompleteSignatureRequest
    ) -> signing_pb2.CompleteSignatureResponse:
        identity = current_identity()
        if not request.signature_value:
            raise RequestInvalid("give the token's signature value", field="signature_value")
        session = await self._open_session(request.session_id, identity)
        # Checked before the claim: a wrong value leaves the session exactly as it was.
        verify_signature_value(session, request.signature_value)
        now = datetime.now(UTC)
        try:
            claim = await asyncio.to_thread(self._sessions.claim, session.id, now=now)
        except SessionClosed as exc:
            raise FailedPrecondition(str(exc)) from exc
        try:
            prepared = await asyncio.to_thread(self._read, session.prepared_ref)
            completed = await _off_loop(
                lambda: self._signer.complete(
                    session, prepared_pdf=prepared, signature_value=request.signature_value
                )
            )
            stored = await asyncio.to_thread(
                self._app.store.put,
                completed.pdf,
                content_type="application/pdf",
                metadata={},
                retention=self._app.signed_retention,
            )
            await asyncio.to_thread(
                self._app.catalogue.record,
                CatalogueEntry(
                    ref=str(stored.ref),
                    size=stored.size,
                    content_type="application/pdf",
                    filename=session.filename,
                    uploader=session.requester,
                    unit_code=session.unit_code,
                ),
                signature=SignatureRecord(
                    signer=session.signer_name,
                    key_alias="",
                    level=completed.level.value,
                    signed_at=datetime.now(UTC),
                ),
            )
            await asyncio.to_thread(
                self._sessions.finish,
                session.id,
                claim=claim,
                result_ref=str(stored.ref),
                by=identity.name,
                now=datetime.now(UTC),
            )
        except BaseException as exc:
            await asyncio.shield(asyncio.to_thread(self._sessions.release, session.id, claim=claim))
            if isinstance(exc, SessionClosed | PreparedDocumentAltered):
                raise FailedPrecondition(str(exc)) from exc
            raise
        # The session is completed: its ledger entry must be written even if the caller goes.
        ledger_index = await asyncio.shield(
            self._app.record(
                audit.EventType.SIGNATURE_COMPLETED,
                actor=identity,
                unit=session.unit_code,
                document_sha256=stored.sha256,
                refs=tuple(
                    r for r in (str(stored.ref), session.prepared_ref, session.source_ref) if r
                ),
                details={
                    "session": session.id,
                    "level": completed.level.value,
                    "certificate_sha256": session.certificate_sha256,
                    "signer": session.signer_name,
                    "requester": session.requester,
                },
            )
        )
        return signing_pb2.CompleteSignatureResponse(
            document=stored_document(stored.ref, stored.size),
            level=_level_to_proto(completed.level),
            ledger_index=ledger_index,
        )

    async def list_pending(
        self, request: signing_pb2.ListPendingSignaturesRequest
    ) -> signing_pb2.ListPendingSignaturesResponse:
        identity = current_identity()
        fingerprint = request.certificate_sha256.strip().lower()
        if not _SHA256_HEX.match(fingerprint):
            raise RequestInvalid(
                "certificate_sha256 must be the SHA-256 of the certificate (DER), 64 hex digits",
                field="certificate_sha256",
            )
        if request.page_size < 0:
            raise RequestInvalid("page_size cannot be negative", field="page_size")
        size = min(request.page_size or _DEFAULT_PAGE, _MAX_PAGE)
        after = None
        if request.page_token:
            try:
                after = decode_cursor(request.page_token)
            except (ValueError, UnicodeDecodeError) as exc:
                raise RequestInvalid(
                    "page_token is not one this server returned", field="page_token"
                ) from exc
        found = await asyncio.to_thread(
            self._sessions.list_open,
            certificate_sha256=fingerprint,
            now=datetime.now(UTC),
            unit_code=identity.unit or None,
            limit=size + 1,
            after=after,
        )
        page, more = found[:size], len(found) > size
        return signing_pb2.ListPendingSignaturesResponse(
            pending=[
                signing_pb2.PendingSignature(
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
                )
                for s in page
            ],
            next_page_token=encode_cursor(page[-1]) if more else "",
        )

    async def cancel(
        self, request: signing_pb2.CancelSignatureRequest
    ) -> signing_pb2.CancelSignatureResponse:
        identity = current_identity()
        session = await self._open_session(request.session_id, identity)
        if identity.name != session.requester and identity.unit != session.unit_code:
            raise PermissionDenied(
                f"client {identity.name!r} may not cancel session {session.id}: only its "
                f"requester or a client of unit {session.unit_code!r} may"
            )
        try:
            await asyncio.to_thread(
                self._sessions.cancel, session.id, by=identity.name, now=datetime.now(UTC)
            )
        except SessionClosed as exc:
            raise FailedPrecondition(str(exc)) from exc
        await self._app.record(
            audit.EventType.SIGNATURE_CANCELLED,
            actor=identity,
            unit=session.unit_code,
            document_sha256=session.document_sha256,
            refs=(session.prepared_ref,),
            details={
                "session": session.id,
                "reason": request.reason[:500],
                "certificate_sha256": session.certificate_sha256,
            },
        )
        return signing_pb2.CancelSignatureResponse()

    # -- internals ----------------------------------------------------------------------------

    async def _open_session(self, session_id: str, identity: Identity) -> SigningSession:
        """The session if it is open and unexpired; otherwise FAILED_PRECONDITION or NOT_FOUND.

        An open session found past its expiry is marked expired here (once) and ledgered.
        """
        if not session_id:
            raise RequestInvalid("give the session id", field="session_id")
        try:
            session = await asyncio.to_thread(self._sessions.get, session_id)
        except SessionNotFound as exc:
            raise NotFound(str(exc)) from exc
        now = datetime.now(UTC)
        if session.state is SessionState.OPEN and not session.expired(now):
            return session
        if session.state is SessionState.OPEN and await asyncio.to_thread(
            self._sessions.expire, session.id, now=now
        ):
            await self._app.record(
                audit.EventType.SIGNATURE_EXPIRED,
                actor=identity,
                unit=session.unit_code,
                document_sha256=session.document_sha256,
                refs=(session.prepared_ref,),
                details={"session": session.id},
            )
        raise FailedPrecondition(str(closed_error(session, now)))

    def _read(self, ref: str) -> bytes:
        with self._app.store.open(ref) as reader:
            data: bytes = reader.read()
            return data


async def _off_loop(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the domain coroutine on its own event loop in a worker thread: PDF parsing, stamps
    and CMS work are CPU-bound and would otherwise stall every other RPC of this process."""
    return await asyncio.to_thread(lambda: asyncio.run(work()))


def _level_and_appearance(
    request: signing_pb2.PrepareSignatureRequest,
) -> tuple[signer.Level, signer.AppearanceKind]:
    # kyso.services.signing imports this module, so its converters are imported when used.
    from kyso.services.signing import appearance_from_proto, level_from_proto

    return level_from_proto(request.level, "B-B"), appearance_from_proto(request.appearance)


def _level_to_proto(level: signer.Level) -> Any:
    from kyso.services.signing import level_to_proto

    return level_to_proto(level)


def _parse_certificate(data: bytes, field: str) -> x509.Certificate:
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


def _certs(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM (one or more) or DER file."""
    data = path.read_bytes()
    if pem.detect(data):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [x509.Certificate.load(data)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
