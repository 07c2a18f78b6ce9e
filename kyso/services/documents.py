"""DocumentService: streaming upload and download of content-addressed documents.

Upload streams into the store without holding the document in memory: the gRPC stream feeds a
bounded pipe that the store's ``put`` (run in a thread) reads. A declared SHA-256 or size that
the bytes do not match aborts the put: nothing is stored. The catalogue row is written after
the object (storage first), then the ledger records ``document.stored``.

Download pulls verified chunks from the store in a worker thread (the socket read and the
hashing happen there, off the event loop) and sends each as one message. The reader withholds
an object's last chunk until its digest is checked, so a corrupt object ends the stream with an
error, never with all its bytes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import audit
import storage
from kyso.app import Application
from kyso.catalogue import CatalogueEntry
from kyso.errors import RequestInvalid
from kyso.interceptors import current_identity
from kyso.services.convert import document_info, stored_document
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

__all__ = ["DocumentServicer"]

# One reader chunk per message (no re-slicing; a quarter of the per-message work of 256 KiB),
# and 1 MiB stays well under gRPC's default 4 MiB receive limit of any client.
DOWNLOAD_CHUNK = storage.reader.CHUNK_SIZE
_PIPE_DEPTH = 8


class _End:
    """Marks the end of the upload stream (or its failure, with the reason)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ChunkPipe:
    """A bounded hand-over of byte chunks from the event loop to a reading thread.

    The reader calls :meth:`abandon` when it stops (the store failed: disk full, S3 down);
    from then on sends return at once, so the sender never blocks on a pipe nobody reads.
    A send that finds room is done on the event loop, without a thread hop.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | _End] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._abandoned = threading.Event()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    async def send(self, chunk: bytes) -> None:
        await self._put(chunk)

    async def finish(self, error: BaseException | None = None) -> None:
        await self._put(_End(error))

    async def _put(self, item: bytes | _End) -> None:
        if self._abandoned.is_set():
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self._put_blocking, item)

    def _put_blocking(self, item: bytes | _End) -> None:
        # abandon() drains the queue after setting the flag, so this put cannot wait forever.
        if not self._abandoned.is_set():
            self._queue.put(item)

    def abandon(self) -> None:
        """The reader is gone: drop what is queued and unblock a waiting sender."""
        self._abandoned.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


class DocumentServicer(documents_pb2_grpc.DocumentServiceServicer):
    def __init__(self, app: Application) -> None:
        self._app = app

    async def Upload(  # noqa: N802 (the gRPC method name)
        self, request_iterator: AsyncIterator[documents_pb2.UploadRequest], context: Any
    ) -> common_pb2.StoredDocument:
        identity = current_identity()
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("metadata"):
            raise RequestInvalid(
                "the first message of an upload must carry the metadata", field="metadata"
            )
        meta = first.metadata
        declared = meta.sha256.lower() or None
        if declared is not None:
            storage.model.parse_sha256(declared, what="metadata.sha256")
        pipe = ChunkPipe()
        content_type = meta.content_type or "application/octet-stream"

        def put() -> storage.StoredObject:
            try:
                return self._app.store.put(
                    pipe, content_type=content_type, metadata={}, expected_sha256=declared
                )
            finally:
                pipe.abandon()  # whatever happened, the pipe has no reader any more

        putting = asyncio.create_task(asyncio.to_thread(put))
        received = 0
        try:
            async for request in request_iterator:
                if not request.HasField("chunk"):
                    raise RequestInvalid("metadata may only come first", field="metadata")
                if pipe.abandoned:
                    break  # the store gave up mid-stream (full, unreachable): its error answers
                received += len(request.chunk)
                await pipe.send(request.chunk)
            if not pipe.abandoned and meta.size and received != meta.size:
                raise RequestInvalid(
                    f"the upload declared {meta.size} bytes but sent {received}",
                    field="metadata.size",
                )
            await pipe.finish()
        except BaseException as exc:
            await pipe.finish(exc)  # the put raises it: nothing is stored
            await asyncio.gather(putting, return_exceptions=True)
            raise
        stored = await putting
        entry = CatalogueEntry(
            ref=str(stored.ref),
            size=stored.size,
            content_type=stored.content_type,
            filename=meta.filename,
            uploader=identity.name,
            unit_code=identity.unit,
        )
        await asyncio.to_thread(self._app.catalogue.record, entry)
        await self._app.record(
            audit.EventType.DOCUMENT_STORED,
            actor=identity,
            document_sha256=stored.sha256,
            refs=(str(stored.ref),),
        )
        return stored_document(stored.ref, stored.size)

    async def Download(  # noqa: N802
        self, request: documents_pb2.DownloadRequest, context: Any
    ) -> AsyncIterator[documents_pb2.DownloadChunk]:
        ref = storage.ObjectRef.parse(request.ref.ref)
        reader = await asyncio.to_thread(self._app.store.open, ref)
        try:
            pieces = reader.chunks()
            while True:
                piece = await asyncio.to_thread(next, pieces, None)
                if piece is None:
                    return
                for start in range(0, len(piece), DOWNLOAD_CHUNK):
                    yield documents_pb2.DownloadChunk(chunk=piece[start : start + DOWNLOAD_CHUNK])
        finally:
            await asyncio.to_thread(reader.close)

    async def Stat(  # noqa: N802
        self, request: documents_pb2.StatRequest, context: Any
    ) -> documents_pb2.DocumentInfo:
        ref = storage.ObjectRef.parse(request.ref.ref)
        entry = await asyncio.to_thread(self._app.catalogue.get, str(ref))
        return document_info(entry)
