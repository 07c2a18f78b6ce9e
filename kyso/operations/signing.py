"""Seal a PDF on the server with a key held in the HSM.

Steps: the caller may use the key (``keys.<alias>.clients``; the ledger's key never signs
documents: PERMISSION_DENIED, recorded like every refusal) → read the document (inline or
stored) → sign in the PDF signing pool (worker processes) → store the result (content
address; object lock when configured) → catalogue row and ``signature.sealed`` event in one
transaction → the ledger index.

Invariant: nothing is stored unless the signature is complete; a stored signed document always
has its catalogue row and its event (an object whose row never committed is an orphan that the
start-up reconciliation catalogues, never a document without its record).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

import audit
import signer
import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import Catalogue, SignatureRecord, SignRequestRecord
from kyso.config import KeyConfig
from kyso.errors import (
    PLACEMENT_FIELDS,
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    RequestInvalid,
    fields_named,
)
from kyso.operations.documents import INLINE_LIMIT, Documents, DocumentSource
from kyso.operations.ledger import Staging

__all__ = ["MAX_REQUEST_ID_CHARS", "SealOrder", "Sealed", "Sealing"]

MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class SealOrder:
    """What to seal and how; ``level`` None means the key's default level."""

    document: DocumentSource
    alias: str
    level: signer.Level | None = None
    appearance: signer.AppearanceKind = signer.AppearanceKind.NONE
    reason: str | None = None
    location: str | None = None
    contact: str | None = None
    field_name: str | None = None
    page: int | None = None
    rect: tuple[float, float, float, float] | None = None
    certify: bool = False
    request_id: str = ""

    def fingerprint(self) -> str:
        """The SHA-256 of what the request asks (the document by its digest or ref): a retry
        under the same ``request_id`` must ask the same."""
        document = self.document
        content = (
            "sha256:" + hashlib.sha256(document.content).hexdigest()
            if document.content is not None
            else f"ref:{document.ref}"
        )
        asked = [
            content,
            document.filename,
            self.alias,
            self.level.value if self.level else "",
            self.appearance.value,
            self.reason,
            self.location,
            self.contact,
            self.field_name,
            self.page,
            list(self.rect) if self.rect else None,
            self.certify,
        ]
        return hashlib.sha256(json.dumps(asked, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    stored: storage.StoredObject
    pdf: bytes
    level: signer.Level
    ledger_index: int


class Sealing:
    """The seal operation (see the module docstring)."""

    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents
        self._run = app.executors.io.run

    def authorised_key(self, actor: Identity, alias: str) -> KeyConfig:
        """The key's configuration if ``actor`` may sign with it (else the error to answer)."""
        if not alias:
            raise RequestInvalid("name the key to sign with (key_alias)", field="key_alias")
        key = self._app.config.keys.get(alias)
        if key is None:
            raise NotFound(f"no signing key {alias!r} is configured on this server")
        if alias == self._app.config.ledger.key:
            # a refusal like any other key not allowed: recorded in the ledger
            raise PermissionDenied(
                f"key {alias!r} signs only the ledger's tree heads, never documents"
            )
        if actor.name not in key.clients:
            raise PermissionDenied(f"client {actor.name!r} may not sign with key {alias!r}")
        return key

    async def seal(self, actor: Identity, order: SealOrder) -> Sealed:
        key = self.authorised_key(actor, order.alias)
        pdf_signer = self._app.pdf_signer
        if pdf_signer is None:
            raise FailedPrecondition("this server has no signing keys configured")
        fingerprint = ""
        if order.request_id:
            if len(order.request_id) > MAX_REQUEST_ID_CHARS:
                raise RequestInvalid(
                    f"request_id has {len(order.request_id)} characters; at most"
                    f" {MAX_REQUEST_ID_CHARS}",
                    field="request_id",
                )
            fingerprint = order.fingerprint()
            earlier = await self._earlier(actor, order.request_id, fingerprint)
            if earlier is not None:
                return earlier
        data, source_ref = await self._documents.read(order.document)
        with fields_named(PLACEMENT_FIELDS):
            signed = await pdf_signer.sign(
                signer.SignRequest(
                    pdf=data,
                    alias=order.alias,
                    level=order.level or signer.Level(key.default_level),
                    appearance=order.appearance,
                    reason=order.reason,
                    location=order.location,
                    contact=order.contact,
                    field_name=order.field_name,
                    page=order.page,
                    rect=order.rect,
                    certify=order.certify,
                )
            )
        stored, entry = await self._documents.store_signed(
            signed.pdf,
            filename=order.document.filename,
            uploader=actor.name,
            unit_code=key.unit or actor.unit,
        )
        signature = SignatureRecord(
            signer=self._signer_name(order.alias),
            key_alias=order.alias,
            level=signed.level.value,
            signed_at=signed.signing_time.astimezone(UTC)
            if signed.signing_time.tzinfo
            else datetime.now(UTC),
        )
        event = self._app.events.event(
            audit.EventType.SIGNATURE_SEALED,
            actor=actor,
            unit=key.unit,
            document_sha256=stored.sha256,
            refs=(str(stored.ref), source_ref),
            key=order.alias,
            details={"level": signed.level.value, "field": signed.field_name},
        )
        staging = Staging()
        journal = staging.journal(event)
        if order.request_id:
            kept = SignRequestRecord(
                fingerprint=fingerprint, ref=str(stored.ref), level=signed.level.value
            )

            def journal(conn: sa.Connection) -> None:
                staging.write(conn, [event])
                Catalogue.write_sign_request(conn, actor.name, order.request_id, kept)

        try:
            await self._run(self._app.catalogue.record, entry, signature=signature, journal=journal)
        except sa.exc.IntegrityError:
            # the same key was used by a call that committed meanwhile: its result answers
            # (the object this call stored stays uncatalogued until the start-up check)
            earlier = await self._earlier(actor, order.request_id, fingerprint)
            if earlier is None:
                raise
            return earlier
        [index] = await self._app.events.settled(staging)
        if order.request_id:
            await self._run(
                self._app.catalogue.sign_request_indexed, actor.name, order.request_id, index
            )
        return Sealed(stored=stored, pdf=signed.pdf, level=signed.level, ledger_index=index)

    async def _earlier(self, actor: Identity, request_id: str, fingerprint: str) -> Sealed | None:
        """The result of the caller's earlier SignPdf under ``request_id``, or None."""
        if not request_id:
            return None
        kept = await self._run(self._app.catalogue.sign_request, actor.name, request_id)
        if kept is None:
            return None
        if kept.fingerprint != fingerprint:
            raise AlreadyExists(
                f"request_id {request_id!r} was used for another SignPdf request; give each"
                " request its own request_id and repeat it only to retry the same request",
                field="request_id",
            )
        stored = await self._run(self._app.store.stat, kept.ref)
        pdf = b""
        if stored.size <= INLINE_LIMIT:
            pdf = await self._run(self._documents.read_whole, kept.ref)
        return Sealed(
            stored=stored,
            pdf=pdf,
            level=signer.Level(kept.level),
            ledger_index=kept.ledger_index or 0,
        )

    def _signer_name(self, alias: str) -> str:
        keyring = self._app.keyring
        assert keyring is not None  # a pdf signer exists only with a key ring
        subject = keyring.certificate(alias).subject
        return str(subject.native.get("common_name", "")) or subject.human_friendly
