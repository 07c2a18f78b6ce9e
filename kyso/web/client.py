"""The console's calls to kyso: its own identity (a bearer token), over one grpc.aio channel.

Every call carries a deadline; an unreachable kyso or a refusal is raised as ``ServiceError``
with the gRPC code and kyso's message (written for a person), which the pages show.
Documents over kyso's inline limit travel by ``DocumentService.Upload`` first.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso.operator_view import down_reasons
from kyso.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)

__all__ = ["INLINE_LIMIT", "KysoClient", "ServiceError"]

INLINE_LIMIT = 4 * 1024 * 1024 - 64 * 1024  # the server's (kyso.operations.documents)
_CHUNK = 1024 * 1024
_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class ServiceError(Exception):
    """kyso refused or could not be reached: ``code`` is the gRPC status code's name."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class KysoClient:
    """The RPCs the console uses. Open with ``open()``; close with ``close()``."""

    def __init__(self, *, server: str, token: str, ca_pem: bytes | None = None) -> None:
        self._server = server
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._ca_pem = ca_pem
        self._channel: grpc.aio.Channel | None = None

    def open(self) -> None:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
        if self._ca_pem is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=self._ca_pem)
            self._channel = grpc.aio.secure_channel(self._server, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._server, options=options)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("the client is not open")
        return self._channel

    async def _call(self, method: object, request: object) -> object:
        try:
            return await method(request, metadata=self._metadata, timeout=_TIMEOUT)  # type: ignore[operator]
        except grpc.aio.AioRpcError as exc:
            raise ServiceError(exc.code().name, exc.details() or "") from exc

    async def _document(self, data: bytes, filename: str) -> common_pb2.DocumentInput:
        if len(data) <= INLINE_LIMIT:
            return common_pb2.DocumentInput(content=data, filename=filename)
        stub = documents_pb2_grpc.DocumentServiceStub(self.channel)

        async def chunks() -> AsyncIterator[documents_pb2.UploadRequest]:
            yield documents_pb2.UploadRequest(
                metadata=documents_pb2.UploadMetadata(
                    filename=filename,
                    content_type="application/pdf",
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                )
            )
            for start in range(0, len(data), _CHUNK):
                yield documents_pb2.UploadRequest(chunk=data[start : start + _CHUNK])

        try:
            stored = await stub.Upload(chunks(), metadata=self._metadata, timeout=_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise ServiceError(exc.code().name, exc.details() or "") from exc
        return common_pb2.DocumentInput(ref=stored.ref, filename=filename)

    async def verify_pdf(
        self, data: bytes, *, language: str, filename: str = "document.pdf"
    ) -> verification_pb2.VerificationReport:
        stub = verification_pb2_grpc.VerificationServiceStub(self.channel)
        request = verification_pb2.VerifyPdfRequest(
            document=await self._document(data, filename), language=language
        )
        reply = await self._call(stub.VerifyPdf, request)
        assert isinstance(reply, verification_pb2.VerificationReport)
        return reply

    async def seal_pdf(self, data: bytes, *, key_alias: str, filename: str) -> bytes:
        """``data`` sealed by kyso with ``key_alias`` (B-T when a TSA is configured)."""
        stub = signing_pb2_grpc.SigningServiceStub(self.channel)
        request = signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(content=data, filename=filename),
            key_alias=key_alias,
            reason="Báo cáo kiểm tra chữ ký số / signature verification report",
        )
        reply = await self._call(stub.SignPdf, request)
        assert isinstance(reply, signing_pb2.SignPdfResponse)
        if reply.content:
            return bytes(reply.content)
        # a signed PDF over the inline limit comes back by ref only
        downloads = documents_pb2_grpc.DocumentServiceStub(self.channel)
        stream = downloads.Download(
            documents_pb2.DownloadRequest(ref=reply.document.ref),
            metadata=self._metadata,
            timeout=_TIMEOUT,
        )
        try:
            return b"".join([piece.chunk async for piece in stream])
        except grpc.aio.AioRpcError as exc:
            raise ServiceError(exc.code().name, exc.details() or "") from exc

    async def document_history(
        self, *, sha256: str = "", document_id: str = ""
    ) -> audit_pb2.DocumentHistory:
        stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        request = audit_pb2.GetDocumentHistoryRequest(
            document_sha256=sha256, document_id=document_id
        )
        reply = await self._call(stub.GetDocumentHistory, request)
        assert isinstance(reply, audit_pb2.DocumentHistory)
        return reply

    async def health(self, *, timeout: float) -> tuple[str, tuple[str, ...]]:
        """kyso's overall health (``SERVING``, ``NOT_SERVING``, or ``UNREACHABLE (CODE)``)
        and the ``dependency: reason`` lines of what is down (``kyso.operator_view``)."""
        call = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(), timeout=timeout
        )
        try:
            reply = await call
            metadata = await call.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            return f"UNREACHABLE ({exc.code().name})", (exc.details() or "",)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return status, down_reasons(metadata)

    async def tree_head(self, tree_size: int = 0) -> audit_pb2.SignedTreeHead:
        stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        reply = await self._call(
            stub.GetTreeHead, audit_pb2.GetTreeHeadRequest(tree_size=tree_size)
        )
        assert isinstance(reply, audit_pb2.SignedTreeHead)
        return reply

    async def consistency_proof(self, first: int, second: int) -> audit_pb2.ConsistencyProof:
        stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        request = audit_pb2.GetConsistencyProofRequest(first_size=first, second_size=second)
        reply = await self._call(stub.GetConsistencyProof, request)
        assert isinstance(reply, audit_pb2.ConsistencyProof)
        return reply
