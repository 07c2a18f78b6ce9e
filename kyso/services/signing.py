"""SigningService: seal on the server (SignPdf) and the two-phase flow (delegated).

SignPdf: check the caller may use the key, read the document (inline or stored), sign, store
the result (content address, object lock when configured), catalogue it, record it in the
ledger, reply. Nothing is stored unless the signature is complete.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import audit
import signer
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import CatalogueEntry, SignatureRecord
from kyso.errors import FailedPrecondition, NotFound, PermissionDenied, RequestInvalid
from kyso.interceptors import current_identity
from kyso.services.convert import stored_document
from kyso.services.inputs import read_document
from kyso.services.twophase import TwoPhaseHandlers
from kyso.v1 import signing_pb2, signing_pb2_grpc

__all__ = ["SigningServicer", "appearance_from_proto", "level_from_proto", "level_to_proto"]

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


def level_from_proto(value: int, default: str) -> signer.Level:
    if value == signing_pb2.SIGNATURE_LEVEL_UNSPECIFIED:
        return signer.Level(default)
    if value not in _LEVELS:
        raise RequestInvalid(f"unknown signature level {value}", field="level")
    return _LEVELS[value]


def level_to_proto(level: signer.Level) -> Any:
    """The SignatureLevel enum value (an int; protobuf's typing of enum values is opaque)."""
    return next(k for k, v in _LEVELS.items() if v is level)


def appearance_from_proto(value: int) -> signer.AppearanceKind:
    if value not in _APPEARANCES:
        raise RequestInvalid(f"unknown appearance {value}", field="appearance")
    return _APPEARANCES[value]


class SigningServicer(signing_pb2_grpc.SigningServiceServicer):
    def __init__(self, app: Application) -> None:
        self._app = app
        self._two_phase = TwoPhaseHandlers(app)

    async def SignPdf(  # noqa: N802 (the gRPC method name)
        self, request: signing_pb2.SignPdfRequest, context: Any
    ) -> signing_pb2.SignPdfResponse:
        identity = current_identity()
        alias = request.key_alias
        key = self._authorised_key(identity, alias)
        pdf_signer = self._app.pdf_signer
        if pdf_signer is None:
            raise FailedPrecondition("this server has no signing keys configured")
        data, source_ref = await read_document(self._app, request.document, field="document")
        placement = request.placement
        which = placement.WhichOneof("target")
        rect = placement.rect
        signed = await pdf_signer.sign(
            signer.SignRequest(
                pdf=data,
                alias=alias,
                level=level_from_proto(request.level, key.default_level),
                appearance=appearance_from_proto(request.appearance),
                reason=request.reason or None,
                location=request.location or None,
                contact=request.contact or None,
                field_name=placement.field_name if which == "field_name" else None,
                page=rect.page if which == "rect" else None,
                rect=(rect.x1, rect.y1, rect.x2, rect.y2) if which == "rect" else None,
                certify=request.certify,
            )
        )
        stored = await asyncio.to_thread(
            self._app.store.put,
            signed.pdf,
            content_type="application/pdf",
            metadata={},
            retention=self._app.signed_retention,
        )
        signer_name = _common_name(self._app, alias)
        await asyncio.to_thread(
            self._app.catalogue.record,
            CatalogueEntry(
                ref=str(stored.ref),
                size=stored.size,
                content_type="application/pdf",
                filename=request.document.filename,
                uploader=identity.name,
                unit_code=key.unit or identity.unit,
            ),
            signature=SignatureRecord(
                signer=signer_name,
                key_alias=alias,
                level=signed.level.value,
                signed_at=signed.signing_time.astimezone(UTC)
                if signed.signing_time.tzinfo
                else datetime.now(UTC),
            ),
        )
        ledger_index = await self._app.record(
            audit.EventType.SIGNATURE_SEALED,
            actor=identity,
            unit=key.unit,
            document_sha256=stored.sha256,
            refs=tuple(r for r in (str(stored.ref), source_ref) if r),
            key=alias,
            details={"level": signed.level.value, "field": signed.field_name},
        )
        return signing_pb2.SignPdfResponse(
            document=stored_document(stored.ref, stored.size),
            content=signed.pdf if request.document.WhichOneof("source") == "content" else b"",
            level=level_to_proto(signed.level),
            ledger_index=ledger_index,
        )

    def _authorised_key(self, identity: Identity, alias: str) -> Any:
        if not alias:
            raise RequestInvalid("name the key to sign with (key_alias)", field="key_alias")
        key = self._app.config.keys.get(alias)
        if key is None or alias == self._app.config.ledger.key:
            raise NotFound(f"no signing key {alias!r} is configured on this server")
        if identity.name not in key.clients:
            raise PermissionDenied(f"client {identity.name!r} may not sign with key {alias!r}")
        return key

    async def PrepareSignature(  # noqa: N802
        self, request: signing_pb2.PrepareSignatureRequest, context: Any
    ) -> signing_pb2.PrepareSignatureResponse:
        return await self._two_phase.prepare(request)

    async def CompleteSignature(  # noqa: N802
        self, request: signing_pb2.CompleteSignatureRequest, context: Any
    ) -> signing_pb2.CompleteSignatureResponse:
        return await self._two_phase.complete(request)

    async def ListPendingSignatures(  # noqa: N802
        self, request: signing_pb2.ListPendingSignaturesRequest, context: Any
    ) -> signing_pb2.ListPendingSignaturesResponse:
        return await self._two_phase.list_pending(request)

    async def CancelSignature(  # noqa: N802
        self, request: signing_pb2.CancelSignatureRequest, context: Any
    ) -> signing_pb2.CancelSignatureResponse:
        return await self._two_phase.cancel(request)


def _common_name(app: Application, alias: str) -> str:
    assert app.keyring is not None
    subject = app.keyring.certificate(alias).subject.native
    return (
        str(subject.get("common_name", "")) or app.keyring.certificate(alias).subject.human_friendly
    )
