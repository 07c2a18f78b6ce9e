"""Two-phase signing: prepare on the server, sign a digest on the official's token, complete.

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
the session can be completed later. Every change of a session (created, completed — with the
signed document's catalogue row —, cancelled, expired) commits with its ledger event.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from asn1crypto import x509

import audit
import signer
import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import Catalogue, SignatureRecord
from kyso.errors import (
    PLACEMENT_FIELDS,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    RequestInvalid,
    fields_named,
)
from kyso.operations.documents import Documents, DocumentSource
from kyso.operations.ledger import Staging
from signer.twophase import (
    CertificateRejected,
    PreparedDocumentAltered,
    PrepareRequest,
    SessionClosed,
    SessionNotFound,
    SessionState,
    SigningSession,
    closed_error,
    decode_cursor,
    encode_cursor,
    new_session_id,
    verify_signature_value,
)

__all__ = ["Completed", "PendingPage", "PrepareOrder", "TwoPhase"]

T = TypeVar("T")

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_PAGE = 100
_MAX_PAGE = 500
_MAX_REASON = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class PrepareOrder:
    """A signature to prepare for an official's certificate."""

    document: DocumentSource
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    level: signer.Level = signer.Level.B_B
    appearance: signer.AppearanceKind = signer.AppearanceKind.NONE
    reason: str | None = None
    location: str | None = None
    field_name: str | None = None
    page: int | None = None
    rect: tuple[float, float, float, float] | None = None
    title: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    stored: storage.StoredObject
    level: signer.Level
    ledger_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingPage:
    sessions: tuple[SigningSession, ...]
    next_page_token: str


class TwoPhase:
    """Prepare, complete, cancel and list two-phase signatures (see the module docstring)."""

    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents
        self._signer = app.two_phase
        self._sessions = app.sessions
        self._lifetime = timedelta(hours=app.config.signing.session_hours)
        self._run = app.executors.io.run
        self._pdf = app.executors.pdf.run
        self._events = app.events

    async def _off_loop(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the domain coroutine on its own event loop in a ``pdf`` pool thread: PDF parsing,
        stamps and CMS work are CPU-bound and would otherwise stall every other RPC here."""
        return await self._pdf(lambda: asyncio.run(work()))

    async def prepare(self, actor: Identity, order: PrepareOrder) -> SigningSession:
        data, source_ref = await self._documents.read(order.document)
        try:
            intermediates = await self._off_loop(
                lambda: self._signer.check_certificate(order.certificate, chain=list(order.chain))
            )
        except CertificateRejected as exc:
            raise FailedPrecondition(str(exc)) from exc
        job = PrepareRequest(
            pdf=data,
            certificate=order.certificate,
            chain=intermediates,
            level=order.level,
            appearance=order.appearance,
            reason=order.reason,
            location=order.location,
            field_name=order.field_name,
            page=order.page,
            rect=order.rect,
        )
        with fields_named(PLACEMENT_FIELDS):
            prepared = await self._off_loop(lambda: self._signer.prepare(job))
        stored = await self._run(
            self._app.store.put, prepared.pdf, content_type="application/pdf", metadata={}
        )
        now = datetime.now(UTC)
        session = SigningSession(
            id=new_session_id(),
            state=SessionState.OPEN,
            certificate=order.certificate.dump(),
            chain=tuple(c.dump() for c in intermediates),
            signer_name=prepared.signer_name,
            requester=actor.name,
            unit_code=actor.unit,
            title=order.title or order.document.filename,
            filename=order.document.filename,
            level=order.level,
            digest_algorithm=prepared.digest_algorithm,
            mechanism=prepared.mechanism,
            signed_attributes=prepared.signed_attributes,
            data_to_sign=prepared.data_to_sign,
            document_sha256=hashlib.sha256(data).hexdigest(),
            source_ref=source_ref,
            prepared_ref=str(stored.ref),
            document_digest=prepared.document_digest,
            reserved_start=prepared.reserved_start,
            reserved_end=prepared.reserved_end,
            field_name=prepared.field_name,
            created_at=now,
            expires_at=now + self._lifetime,
        )
        event = self._events.event(
            audit.EventType.SIGNATURE_PREPARED,
            actor=actor,
            document_sha256=session.document_sha256,
            refs=(session.prepared_ref, source_ref),
            details={
                "session": session.id,
                "level": order.level.value,
                "certificate_sha256": session.certificate_sha256,
                "signer": session.signer_name,
                "field": session.field_name,
            },
        )
        staging = Staging()
        await self._run(self._sessions.create, session, journal=staging.journal(event))
        await self._events.settled(staging)
        return session

    async def complete(self, actor: Identity, session_id: str, signature_value: bytes) -> Completed:
        if not signature_value:
            raise RequestInvalid("give the token's signature value", field="signature_value")
        session = await self._open_session(session_id, actor)
        # Checked before the claim: a wrong value leaves the session exactly as it was.
        verify_signature_value(session, signature_value)
        try:
            claim = await self._run(self._sessions.claim, session.id, now=datetime.now(UTC))
        except SessionClosed as exc:
            raise FailedPrecondition(str(exc)) from exc
        return await self._complete_claimed(actor, session, signature_value, claim=claim)

    async def complete_remote(
        self, actor: Identity, session: SigningSession, signature_value: bytes
    ) -> Completed:
        """Complete a session WAITING_APPROVAL with the value a remote provider returned
        (``kyso.operations.remote``; the caller has verified it). A failure puts the session
        back to waiting, so a later poll may try again; nothing half-signed is stored."""
        verify_signature_value(session, signature_value)
        try:
            claim = await self._run(
                self._sessions.claim,
                session.id,
                now=datetime.now(UTC),
                source=SessionState.WAITING_APPROVAL,
            )
        except SessionClosed as exc:
            raise FailedPrecondition(str(exc)) from exc
        return await self._complete_claimed(
            actor, session, signature_value, claim=claim, back_to=SessionState.WAITING_APPROVAL
        )

    async def _complete_claimed(
        self,
        actor: Identity,
        session: SigningSession,
        signature_value: bytes,
        *,
        claim: str,
        back_to: SessionState = SessionState.OPEN,
    ) -> Completed:
        staging = Staging()
        try:
            prepared = await self._run(self._documents.read_whole, session.prepared_ref)
            completed = await self._off_loop(
                lambda: self._signer.complete(
                    session, prepared_pdf=prepared, signature_value=signature_value
                )
            )
            stored, entry = await self._documents.store_signed(
                completed.pdf,
                filename=session.filename,
                uploader=session.requester,
                unit_code=session.unit_code,
            )
            signature = SignatureRecord(
                signer=session.signer_name,
                key_alias="",
                level=completed.level.value,
                signed_at=datetime.now(UTC),
            )
            event = self._events.event(
                audit.EventType.SIGNATURE_COMPLETED,
                actor=actor,
                unit=session.unit_code,
                document_sha256=stored.sha256,
                refs=(str(stored.ref), session.prepared_ref, session.source_ref),
                details={
                    "session": session.id,
                    "level": completed.level.value,
                    "certificate_sha256": session.certificate_sha256,
                    "signer": session.signer_name,
                    "requester": session.requester,
                },
            )

            def journal(conn: sa.Connection) -> None:
                Catalogue.write(conn, entry, signature=signature)
                staging.write(conn, [event])

            await self._run(
                self._sessions.finish,
                session.id,
                claim=claim,
                result_ref=str(stored.ref),
                by=actor.name,
                now=datetime.now(UTC),
                journal=journal,
            )
        except BaseException as exc:
            await asyncio.shield(
                self._run(self._sessions.release, session.id, claim=claim, back_to=back_to)
            )
            if isinstance(exc, SessionClosed | PreparedDocumentAltered):
                raise FailedPrecondition(str(exc)) from exc
            raise
        # The session is completed with its event staged: the index is only read back here.
        [index] = await asyncio.shield(self._events.settled(staging))
        return Completed(stored=stored, level=completed.level, ledger_index=index)

    async def list_pending(
        self, actor: Identity, *, certificate_sha256: str, page_size: int, page_token: str
    ) -> PendingPage:
        fingerprint = certificate_sha256.strip().lower()
        if not _SHA256_HEX.match(fingerprint):
            raise RequestInvalid(
                "certificate_sha256 must be the SHA-256 of the certificate (DER), 64 hex digits",
                field="certificate_sha256",
            )
        if page_size < 0:
            raise RequestInvalid("page_size cannot be negative", field="page_size")
        size = min(page_size or _DEFAULT_PAGE, _MAX_PAGE)
        after = None
        if page_token:
            try:
                after = decode_cursor(page_token)
            except (ValueError, UnicodeDecodeError) as exc:
                raise RequestInvalid(
                    "page_token is not one this server returned", field="page_token"
                ) from exc
        found = await self._run(
            self._sessions.list_open,
            certificate_sha256=fingerprint,
            now=datetime.now(UTC),
            unit_code=actor.unit or None,
            limit=size + 1,
            after=after,
        )
        page, more = found[:size], len(found) > size
        return PendingPage(
            sessions=tuple(page), next_page_token=encode_cursor(page[-1]) if more else ""
        )

    async def cancel(self, actor: Identity, session_id: str, *, reason: str = "") -> None:
        session = await self._open_session(session_id, actor)
        if actor.name != session.requester and actor.unit != session.unit_code:
            raise PermissionDenied(
                f"client {actor.name!r} may not cancel session {session.id}: only its "
                f"requester or a client of unit {session.unit_code!r} may"
            )
        event = self._events.event(
            audit.EventType.SIGNATURE_CANCELLED,
            actor=actor,
            unit=session.unit_code,
            document_sha256=session.document_sha256,
            refs=(session.prepared_ref,),
            details={
                "session": session.id,
                "reason": reason[:_MAX_REASON],
                "certificate_sha256": session.certificate_sha256,
            },
        )
        staging = Staging()
        try:
            await self._run(
                self._sessions.cancel,
                session.id,
                by=actor.name,
                now=datetime.now(UTC),
                journal=staging.journal(event),
            )
        except SessionClosed as exc:
            raise FailedPrecondition(str(exc)) from exc
        await self._events.settled(staging)

    async def _open_session(self, session_id: str, actor: Identity) -> SigningSession:
        """The session if it is open and unexpired; otherwise FAILED_PRECONDITION or NOT_FOUND.

        An open session found past its expiry is marked expired here (once, with its event).
        """
        if not session_id:
            raise RequestInvalid("give the session id", field="session_id")
        try:
            session = await self._run(self._sessions.get, session_id)
        except SessionNotFound as exc:
            raise NotFound(str(exc)) from exc
        now = datetime.now(UTC)
        if session.state is SessionState.OPEN and not session.expired(now):
            return session
        if session.state is SessionState.OPEN:
            event = self._events.event(
                audit.EventType.SIGNATURE_EXPIRED,
                actor=actor,
                unit=session.unit_code,
                document_sha256=session.document_sha256,
                refs=(session.prepared_ref,),
                details={"session": session.id},
            )
            staging = Staging()
            if await self._run(
                self._sessions.expire, session.id, now=now, journal=staging.journal(event)
            ):
                await self._events.settled(staging)
        raise FailedPrecondition(str(closed_error(session, now)))
