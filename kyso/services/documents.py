"""DocumentService: streaming upload and download of content-addressed documents
(``kyso.operations.documents``), and direct transfer through presigned URLs
(``kyso.operations.direct_transfer``).

Download sends each verified chunk the operation reads as messages of at most
``DOWNLOAD_CHUNK`` bytes; a corrupt object ends the stream with an error, never with all its
bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import storage
from kyso.interceptors import current_identity
from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

__all__ = ["DocumentServicer"]

# One reader chunk per message (no re-slicing; a quarter of the per-message work of 256 KiB),
# and 1 MiB stays well under gRPC's default 4 MiB receive limit of any client.
DOWNLOAD_CHUNK = storage.reader.CHUNK_SIZE


class DocumentServicer(documents_pb2_grpc.DocumentServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._documents = operations.documents
        self._direct = operations.direct_transfer

    async def Upload(  # noqa: N802 (the gRPC method name)
        self, request_iterator: AsyncIterator[documents_pb2.UploadRequest], context: Any
    ) -> common_pb2.StoredDocument:
        meta = convert.upload_meta(await anext(aiter(request_iterator), None))
        chunks = convert.upload_chunks(request_iterator)
        stored = await self._documents.upload(current_identity(), meta, chunks)
        return convert.stored_document(stored.ref, stored.size)

    async def Download(  # noqa: N802
        self, request: documents_pb2.DownloadRequest, context: Any
    ) -> AsyncIterator[documents_pb2.DownloadChunk]:
        async for piece in self._documents.download(current_identity(), request.ref.ref):
            for start in range(0, len(piece), DOWNLOAD_CHUNK):
                yield documents_pb2.DownloadChunk(chunk=piece[start : start + DOWNLOAD_CHUNK])

    async def Stat(  # noqa: N802
        self, request: documents_pb2.StatRequest, context: Any
    ) -> documents_pb2.DocumentInfo:
        info = await self._documents.stat(current_identity(), request.ref.ref)
        return convert.document_info(info)

    async def BeginDirectUpload(  # noqa: N802
        self, request: documents_pb2.BeginDirectUploadRequest, context: Any
    ) -> documents_pb2.BeginDirectUploadResponse:
        grant = await self._direct.begin(current_identity(), convert.direct_upload_meta(request))
        return convert.begin_direct_upload_response(grant)

    async def CompleteDirectUpload(  # noqa: N802
        self, request: documents_pb2.CompleteDirectUploadRequest, context: Any
    ) -> documents_pb2.CompleteDirectUploadResponse:
        stored = await self._direct.complete(current_identity(), request.upload_id)
        return documents_pb2.CompleteDirectUploadResponse(
            document=convert.stored_document(stored.ref, stored.size)
        )

    async def GetDownloadUrl(  # noqa: N802
        self, request: documents_pb2.GetDownloadUrlRequest, context: Any
    ) -> documents_pb2.GetDownloadUrlResponse:
        grant = await self._direct.download_url(current_identity(), request.ref.ref)
        return convert.download_url_response(grant)
