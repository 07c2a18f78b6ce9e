"""Documents: store an uploaded stream, read a document given inline or by ref, describe one.

Upload streams into the store without holding the document in memory: the chunks feed a bounded
pipe that the store's ``put`` (run in a blocking-pool thread) reads. A declared SHA-256 or size
that the bytes do not match aborts the put: nothing is stored. The object is stored first (it is
content-addressed and immutable: an object without a row is only an orphan, catalogued by the
start-up reconciliation), then its catalogue row and its ``document.stored`` event commit in one
transaction.

Who reads a stored document (``Download``: its bytes; ``Stat``: its metadata): a client acting
for one of the document's units — the unit that stored it (its catalogue row), the units of the
keys that signed it, for an exchanged package its sender and recipients, and for a PDF prepared
for an official's signature (or its source) the unit that asked for it — where acting for
a unit means being configured with that unit or one above it. Auditors read every document's
metadata, and its bytes only with ``[documents] auditors_download = true``. Everyone else,
hubs included, is refused (PERMISSION_DENIED, recorded like every refusal); a ref that nothing
stored is NOT_FOUND.

Invariants: an upload that fails leaves no object, no row and no event; every stored document has
its catalogue row and exactly one ``document.stored`` event per upload that catalogued it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import audit
import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import CatalogueEntry
from kyso.errors import NotFound, PermissionDenied, RequestInvalid
from kyso.operations.ledger import Staging

__all__ = ["INLINE_LIMIT", "ChunkPipe", "DocumentSource", "Documents", "UploadMeta"]

INLINE_LIMIT = 4 * 1024 * 1024
"""The largest document given inline in a request; larger ones are uploaded and given by ref."""

_PIPE_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentSource:
    """A document given inline (``content``) or as a stored document's ``ref``.

    ``field`` is the request field it came from, named in errors.
    """

    content: bytes | None = None
    ref: str | None = None
    filename: str = ""
    field: str = "document"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadMeta:
    """What an upload declares before its bytes (sha256 and size are checked when given)."""

    content_type: str = "application/octet-stream"
    filename: str = ""
    sha256: str | None = None
    size: int = 0


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


class Documents:
    """Store, read and describe documents."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._store = app.store
        self._run = app.blocking.run

    async def upload(
        self, actor: Identity, meta: UploadMeta, chunks: AsyncIterator[bytes]
    ) -> storage.StoredObject:
        """Store the streamed bytes, then catalogue and ledger them together."""
        if meta.sha256 is not None:
            storage.model.parse_sha256(meta.sha256, what="metadata.sha256")
        pipe = ChunkPipe()

        def put() -> storage.StoredObject:
            try:
                return self._store.put(
                    pipe, content_type=meta.content_type, metadata={}, expected_sha256=meta.sha256
                )
            finally:
                pipe.abandon()  # whatever happened, the pipe has no reader any more

        putting = asyncio.create_task(self._run(put))
        received = 0
        try:
            async for chunk in chunks:
                if pipe.abandoned:
                    break  # the store gave up mid-stream (full, unreachable): its error answers
                received += len(chunk)
                await pipe.send(chunk)
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
            uploader=actor.name,
            unit_code=actor.unit,
        )
        event = self._app.events.event(
            audit.EventType.DOCUMENT_STORED,
            actor=actor,
            document_sha256=stored.sha256,
            refs=(str(stored.ref),),
        )
        staging = Staging()
        await self._run(self._app.catalogue.record, entry, journal=staging.journal(event))
        await self._app.events.settled(staging)
        return stored

    async def store_signed(
        self, pdf: bytes, *, filename: str, uploader: str, unit_code: str
    ) -> tuple[storage.StoredObject, CatalogueEntry]:
        """Store a signed PDF (object lock when configured) and the catalogue entry to record
        for it; the caller records the entry with its signature and event in one transaction."""
        stored = await self._run(
            self._store.put,
            pdf,
            content_type="application/pdf",
            metadata={},
            retention=self._app.signed_retention,
        )
        entry = CatalogueEntry(
            ref=str(stored.ref),
            size=stored.size,
            content_type="application/pdf",
            filename=filename,
            uploader=uploader,
            unit_code=unit_code,
        )
        return stored, entry

    async def read(self, source: DocumentSource) -> tuple[bytes, str]:
        """The document's bytes and its ref ("" when inline), within the configured size."""
        limit = self._app.config.signing.max_document_bytes
        if source.content is not None:
            if len(source.content) > INLINE_LIMIT:
                raise RequestInvalid(
                    f"inline documents are limited to {INLINE_LIMIT} bytes; upload it with "
                    "DocumentService.Upload and pass its ref",
                    field=f"{source.field}.content",
                )
            return source.content, ""
        if source.ref is None:
            raise RequestInvalid("give the document inline (content) or by ref", field=source.field)
        ref = storage.ObjectRef.parse(source.ref)
        info = await self._run(self._store.stat, ref)
        if info.size > limit:
            raise RequestInvalid(
                f"the document is {info.size} bytes; this server accepts at most {limit}",
                field=f"{source.field}.ref",
            )
        return await self._run(self.read_whole, str(ref)), str(ref)

    def read_whole(self, ref: str) -> bytes:
        """A stored object's bytes, verified against its address (blocking)."""
        with self._store.open(ref) as reader:
            data: bytes = reader.read()
            return data

    def units_of(self, ref: str) -> frozenset[str]:
        """The units a stored document belongs to (see the module docstring; blocking)."""
        units: set[str] = set()
        try:
            entry = self._app.catalogue.get(ref)
        except NotFound:
            pass
        else:
            units.add(entry.unit_code)
            keys = self._app.config.keys
            units.update(keys[s.key_alias].unit for s in entry.signatures if s.key_alias in keys)
        if self._app.router is not None:
            units |= self._app.router.package_units(ref)
        # a prepared PDF (or its source) belongs to the unit that asked for the signature: its
        # clients, the official's agent among them, check it before the official signs
        units |= self._app.sessions.units_of_document(ref)
        return frozenset(u for u in units if u)

    def _may_read(self, actor: Identity, ref: str, *, content: bool) -> None:
        if "auditor" in actor.roles and (
            not content or self._app.config.documents.auditors_download
        ):
            return
        directory = self._app.directory
        if actor.unit:
            for unit in self.units_of(ref):
                lineage = directory.lineage(unit) if directory is not None else (unit,)
                if actor.unit in lineage:
                    return
        self._store.stat(storage.ObjectRef.parse(ref))  # NOT_FOUND when nothing is stored
        what = "the bytes of" if content else "the description of"
        raise PermissionDenied(
            f"client {actor.name!r} (unit {actor.unit or 'none'}) may not read {what} document"
            f" {ref}: it acts for none of the units that stored, signed, sent or received it"
        )

    async def download(self, actor: Identity, ref: str) -> AsyncIterator[bytes]:
        """``chunks`` of a document ``actor`` may read (see the module docstring)."""
        parsed = str(storage.ObjectRef.parse(ref))
        await self._run(lambda: self._may_read(actor, parsed, content=True))
        async for piece in self.chunks(parsed):
            yield piece

    async def stat(self, actor: Identity, ref: str) -> CatalogueEntry:
        """``describe`` a document ``actor`` may read (see the module docstring)."""
        parsed = str(storage.ObjectRef.parse(ref))
        await self._run(lambda: self._may_read(actor, parsed, content=False))
        return await self.describe(parsed)

    async def chunks(self, ref: str) -> AsyncIterator[bytes]:
        """A stored object's bytes, chunk by chunk, each verified before it is given.

        The last chunk is withheld until the whole object's digest checks: a corrupt object
        ends with ``IntegrityError``, never with all its bytes.
        """
        reader = await self._run(self._store.open, storage.ObjectRef.parse(ref))
        try:
            pieces = reader.chunks()
            while (piece := await self._run(next, pieces, None)) is not None:
                yield piece
        finally:
            await self._run(reader.close)

    async def describe(self, ref: str) -> CatalogueEntry:
        """The catalogue's entry for a stored document."""
        return await self._run(self._app.catalogue.get, str(storage.ObjectRef.parse(ref)))
