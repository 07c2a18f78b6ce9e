"""SigningService: seal on the server (SignPdf) and the two-phase flow, each one operation
(``kyso.operations.signing``, ``kyso.operations.twophase``)."""

from __future__ import annotations

from typing import Any

from kyso.interceptors import current_identity
from kyso.operations.documents import INLINE_LIMIT
from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import signing_pb2, signing_pb2_grpc

__all__ = ["SigningServicer"]


class SigningServicer(signing_pb2_grpc.SigningServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._sealing = operations.sealing
        self._two_phase = operations.two_phase

    async def SignPdf(  # noqa: N802 (the gRPC method name)
        self, request: signing_pb2.SignPdfRequest, context: Any
    ) -> signing_pb2.SignPdfResponse:
        sealed = await self._sealing.seal(current_identity(), convert.seal_order(request))
        # inline only when it came inline and fits the client's default receive limit
        inline = request.document.WhichOneof("source") == "content"
        fits = 0 < len(sealed.pdf) <= INLINE_LIMIT
        return signing_pb2.SignPdfResponse(
            document=convert.stored_document(sealed.stored.ref, sealed.stored.size),
            content=sealed.pdf if inline and fits else b"",
            level=convert.level_to_proto(sealed.level),
            ledger_index=sealed.ledger_index,
        )

    async def PrepareSignature(  # noqa: N802
        self, request: signing_pb2.PrepareSignatureRequest, context: Any
    ) -> signing_pb2.PrepareSignatureResponse:
        order = convert.prepare_order(request)
        session = await self._two_phase.prepare(current_identity(), order)
        return convert.prepare_response(session)

    async def CompleteSignature(  # noqa: N802
        self, request: signing_pb2.CompleteSignatureRequest, context: Any
    ) -> signing_pb2.CompleteSignatureResponse:
        completed = await self._two_phase.complete(
            current_identity(), request.session_id, request.signature_value
        )
        return signing_pb2.CompleteSignatureResponse(
            document=convert.stored_document(completed.stored.ref, completed.stored.size),
            level=convert.level_to_proto(completed.level),
            ledger_index=completed.ledger_index,
        )

    async def ListPendingSignatures(  # noqa: N802
        self, request: signing_pb2.ListPendingSignaturesRequest, context: Any
    ) -> signing_pb2.ListPendingSignaturesResponse:
        page = await self._two_phase.list_pending(
            current_identity(),
            certificate_sha256=request.certificate_sha256,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return convert.pending_page(page)

    async def CancelSignature(  # noqa: N802
        self, request: signing_pb2.CancelSignatureRequest, context: Any
    ) -> signing_pb2.CancelSignatureResponse:
        await self._two_phase.cancel(current_identity(), request.session_id, reason=request.reason)
        return signing_pb2.CancelSignatureResponse()
