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
import collections
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

import audit
import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import Catalogue, CatalogueEntry, SignatureRecord
from kyso.errors import NotFound, PermissionDenied, RequestInvalid, fields_named
from kyso.operations.grouping import GroupCommit
from kyso.operations.ledger import Staging

__all__ = [
    "INLINE_LIMIT",
    "ChunkPipe",
    "DocumentSource",
    "Documents",
    "SignedCommit",
    "UploadMeta",
    "who_metadata",
]

INLINE_LIMIT = 4 * 1024 * 1024 - 64 * 1024
"""The largest document given inline in a request, or returned inline in a reply (4 MiB less
64 KiB for the message's other fields): larger ones are uploaded and given by ref, and a
reply whose document would be larger carries only its ref. So every message of a call with an
inline document fits the 4 MiB that gRPC clients receive by default (grpc-js, grpc-java,
Grpc.Net). An inline document over it is refused before any work: INVALID_ARGUMENT, field
``document.content``."""

_PIPE_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedCommit:
    """A signed PDF to store, catalogue with its signature, and record in the ledger.

    ``pdf``: the bytes; or ``staged``: the bytes a signing worker staged in the (filesystem)
    store, adopted without a copy and discarded after the commit; or ``stored``: the object an
    earlier put already stored. ``event`` builds the ledger event once the object's address is
    known. ``within``: more of the same change, written after the catalogue row in the same
    transaction (a two-phase session marked completed, a SignPdf idempotency key); it raises to
    refuse the item (then the batch is retried without it, so only that item fails).
    """

    filename: str
    uploader: str
    unit_code: str
    signature: SignatureRecord
    event: Callable[[storage.StoredObject], audit.Event]
    pdf: bytes | None = None
    staged: storage.StagedFile | None = None
    stored: storage.StoredObject | None = None
    within: Callable[[sa.Connection, storage.StoredObject], None] | None = None


_Committed = tuple[storage.StoredObject, Staging]


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

    The sender waits for room on the event loop (an ``asyncio.Event`` the reader sets), never in
    a thread: an upload whose store is slow holds its one transfer thread, nothing more.
    The reader calls :meth:`abandon` when it stops (the store failed: disk full, S3 down);
    from then on sends return at once, so the sender never waits on a pipe nobody reads.
    Create it on the event loop that sends.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: collections.deque[bytes | _End] = collections.deque()
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)
        self._room = asyncio.Event()
        self._abandoned = threading.Event()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    async def send(self, chunk: bytes) -> None:
        await self._put(chunk)

    async def finish(self, error: BaseException | None = None) -> None:
        await self._put(_End(error))

    async def _put(self, item: bytes | _End) -> None:
        while not self._abandoned.is_set():
            with self._lock:
                if len(self._items) < _PIPE_DEPTH:
                    self._items.append(item)
                    self._filled.notify()
                    return
                # Cleared under the lock: a reader that takes an item afterwards sets it again.
                self._room.clear()
            await self._room.wait()

    def _made_room(self) -> None:
        self._loop.call_soon_threadsafe(self._room.set)

    def abandon(self) -> None:
        """The reader is gone: drop what is queued and release a waiting sender."""
        self._abandoned.set()
        with self._lock:
            self._items.clear()
        self._made_room()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._lock:
                while not self._items:
                    self._filled.wait()
                item = self._items.popleft()
            self._made_room()
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
        self._run = app.executors.io.run
        self._executors = app.executors
        self._signed_commits: GroupCommit[SignedCommit, _Committed] = GroupCommit(
            self._commit_signed_batch, self._run
        )

    async def upload(
        self, actor: Identity, meta: UploadMeta, chunks: AsyncIterator[bytes]
    ) -> storage.StoredObject:
        """Store the streamed bytes, then catalogue and ledger them together.

        At most ``[signing] max_document_bytes`` are taken: a declared size over it is refused
        before any byte is read, and a stream that goes over it is cut there; either way
        nothing is stored. The store's thread (``transfer`` pool) is taken only when the first
        chunk arrives, so a client that opens an upload and sends nothing holds no thread.
        """
        limit = self._app.config.signing.max_document_bytes
        if meta.sha256 is not None:
            with fields_named({None: "metadata.sha256"}):
                storage.model.parse_sha256(meta.sha256, what="metadata.sha256")
        if meta.size > limit:
            raise RequestInvalid(
                f"the upload declares {meta.size} bytes; this server stores documents of at "
                f"most {limit} bytes ([signing] max_document_bytes)",
                field="metadata.size",
            )
        pipe = ChunkPipe()

        def put() -> storage.StoredObject:
            try:
                return self._store.put(
                    pipe,
                    content_type=meta.content_type,
                    metadata=who_metadata(actor.name, actor.unit),
                    expected_sha256=meta.sha256,
                )
            finally:
                pipe.abandon()  # whatever happened, the pipe has no reader any more

        putting: asyncio.Future[storage.StoredObject] | None = None
        received = 0
        try:
            async for chunk in chunks:
                if putting is None:
                    putting = self._start(put, pipe)
                if pipe.abandoned:
                    break  # the store gave up mid-stream (full, unreachable): its error answers
                received += len(chunk)
                if received > limit:
                    raise RequestInvalid(
                        f"the upload is over {limit} bytes, the most this server stores "
                        "([signing] max_document_bytes); nothing was stored",
                        field="chunk",
                    )
                await pipe.send(chunk)
            if not pipe.abandoned and meta.size and received != meta.size:
                raise RequestInvalid(
                    f"the upload declared {meta.size} bytes but sent {received}",
                    field="metadata.size",
                )
            if putting is None:  # an empty document: the store still writes it
                putting = self._start(put, pipe)
            await pipe.finish()
        except BaseException as exc:
            await pipe.finish(exc)  # the put raises it: nothing is stored
            if putting is not None:
                await asyncio.gather(putting, return_exceptions=True)
            raise
        with fields_named({None: "metadata.sha256"}):  # the bytes hash to another digest
            stored = await putting
        entry, event = stored_document(
            self._app,
            actor,
            stored,
            content_type=stored.content_type,
            filename=meta.filename,
            uploader=actor.name,
            unit_code=actor.unit,
        )
        staging = Staging()
        await self._run(self._app.catalogue.record, entry, journal=staging.journal(event))
        await self._app.events.settled(staging)
        return stored

    def _start(
        self, put: Callable[[], storage.StoredObject], pipe: ChunkPipe
    ) -> asyncio.Future[storage.StoredObject]:
        putting = asyncio.ensure_future(self._executors.transfer.run(put))
        # A put that never ran (the transfer pool was full) must still release the sender.
        putting.add_done_callback(lambda _: pipe.abandon())
        return putting

    async def store_signed(
        self, pdf: bytes, *, filename: str, uploader: str, unit_code: str
    ) -> tuple[storage.StoredObject, CatalogueEntry]:
        """Store a signed PDF (object lock when configured) and the catalogue entry to record
        for it; the caller records the entry with its signature and event in one transaction."""
        stored = await self._run(
            self._store.put,
            pdf,
            content_type="application/pdf",
            metadata=who_metadata(uploader, unit_code),
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

    async def commit_signed(self, item: SignedCommit) -> tuple[storage.StoredObject, int]:
        """Store (when ``item.pdf`` is given), catalogue and ledger a signed PDF, grouped with
        the other signed documents being committed at the same time (``grouping``): one flush
        of the store when it can flush a batch, one database transaction for the rows and
        their events. Returns the stored object and the ledger index of its event."""
        if item.pdf is not None and not isinstance(self._app.store, storage.BatchObjectStore):
            # A store without batch puts (S3) is written per request, in parallel threads;
            # only the database rows are grouped.
            stored, _ = await self.store_signed(
                item.pdf, filename=item.filename, uploader=item.uploader, unit_code=item.unit_code
            )
            item = dataclasses.replace(item, pdf=None, stored=stored)
        stored, staging = await self._signed_commits.submit(item)
        [index] = await self._app.events.settled(staging)
        return stored, index

    def _commit_signed_batch(self, items: Sequence[SignedCommit]) -> list[_Committed | Exception]:
        """A batch of ``commit_signed`` (blocking); an item that fails alone fails alone."""
        try:
            try:
                return list(self._commit_signed_together(items))
            except Exception as exc:
                if len(items) == 1:
                    return [exc]
            results: list[_Committed | Exception] = []
            for item in items:  # the batch failed: each on its own, so one bad item fails alone
                try:
                    results.extend(self._commit_signed_together([item]))
                except Exception as exc:
                    results.append(exc)
            return results
        finally:
            for item in items:
                if item.staged is not None:
                    self.discard_staged(item.staged)

    def discard_staged(self, staged: storage.StagedFile) -> None:
        """Remove a signing worker's staging file (blocking; idempotent). One left behind is only
        a leftover in tmp/, never an error for the commit it belonged to."""
        if isinstance(self._store, storage.FilesystemStore):
            with contextlib.suppress(storage.StorageError, OSError):
                self._store.discard(staged)

    def _commit_signed_together(self, items: Sequence[SignedCommit]) -> list[_Committed]:
        to_put = [item for item in items if item.stored is None]
        put = iter(
            storage.put_many(
                self._store,
                [
                    storage.PutItem(
                        source=item.staged or item.pdf or b"",
                        content_type="application/pdf",
                        metadata=who_metadata(item.uploader, item.unit_code),
                        retention=self._app.signed_retention,
                    )
                    for item in to_put
                ],
            )
            if to_put
            else []
        )
        objects = [item.stored or next(put) for item in items]
        committed: list[_Committed] = []
        with self._app.engine.begin() as conn:
            for item, stored in zip(items, objects, strict=True):
                entry = CatalogueEntry(
                    ref=str(stored.ref),
                    size=stored.size,
                    content_type="application/pdf",
                    filename=item.filename,
                    uploader=item.uploader,
                    unit_code=item.unit_code,
                )
                Catalogue.write(conn, entry, signature=item.signature)
                if item.within is not None:  # after the row: it may refer to it
                    item.within(conn, stored)
                staging = Staging()
                staging.write(conn, [item.event(stored)])
                committed.append((stored, staging))
        return committed

    async def read(self, source: DocumentSource) -> tuple[bytes, str]:
        """The document's bytes and its ref ("" when inline), within the configured size."""
        if source.content is not None:
            if len(source.content) > INLINE_LIMIT:
                raise RequestInvalid(
                    f"the inline document is {len(source.content)} bytes; inline documents are"
                    f" limited to {INLINE_LIMIT} bytes (4 MiB less 64 KiB): upload it with"
                    " DocumentService.Upload and pass its ref",
                    field=f"{source.field}.content",
                )
            return source.content, ""
        ref = await self.checked_ref(source)
        return await self._run(self.read_whole, ref), ref

    async def checked_ref(self, source: DocumentSource) -> str:
        """The ref of a document given by ref, once it is known to be stored within the
        configured size (its bytes are read by whoever needs them)."""
        if source.ref is None:
            raise RequestInvalid("give the document inline (content) or by ref", field=source.field)
        limit = self._app.config.signing.max_document_bytes
        with fields_named({None: f"{source.field}.ref"}):
            ref = storage.ObjectRef.parse(source.ref)
        info = await self._run(self._store.stat, ref)
        if info.size > limit:
            raise RequestInvalid(
                f"the document is {info.size} bytes; this server accepts at most {limit}",
                field=f"{source.field}.ref",
            )
        return str(ref)

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

    def check_readable(self, actor: Identity, ref: str) -> None:
        """Raise unless ``actor`` may read the bytes of ``ref`` (see the module docstring;
        blocking)."""
        self._may_read(actor, ref, content=True)

    def check_describable(self, actor: Identity, ref: str) -> None:
        """Raise unless ``actor`` may read the description of ``ref`` (blocking)."""
        self._may_read(actor, ref, content=False)

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
        """The verified chunks of a document ``actor`` may read (see the module docstring)."""
        with fields_named({None: "ref.ref"}):
            parsed = str(storage.ObjectRef.parse(ref))
        async for piece in self._chunks(actor, parsed):
            yield piece

    async def stat(self, actor: Identity, ref: str) -> CatalogueEntry:
        """The catalogue's entry of a document whose description ``actor`` may read (see the module
        docstring)."""
        with fields_named({None: "ref.ref"}):
            parsed = str(storage.ObjectRef.parse(ref))
        # the check and the read in one trip to a thread, which waits its turn on a busy server
        return await self._run(self._described, actor, parsed)

    def _described(self, actor: Identity, ref: str) -> CatalogueEntry:
        """(blocking) The catalogue's entry of ``ref`` once ``actor`` may read its description."""
        self._may_read(actor, ref, content=False)
        return self._app.catalogue.get(ref)

    async def _chunks(self, actor: Identity, ref: str) -> AsyncIterator[bytes]:
        """A stored object's bytes, chunk by chunk, each verified before it is given, once
        ``actor`` may read them (else its refusal, before any byte).

        The last chunk is withheld until the whole object's digest checks: a corrupt object
        ends with ``IntegrityError``, never with all its bytes.
        """
        # One trip to a thread checks, opens and reads the first two pieces: a document of one
        # piece (most of them) is then sent whole, its reader already closed, instead of after
        # four more trips, each of which waits its turn for a thread on a busy server.
        reader, pieces, first, ahead_piece = await self._run(self._opened, actor, ref)
        if first is None or ahead_piece is None:
            if first is not None:
                yield first
            return
        yield first
        # One piece read ahead: the store's read and its hashing (in a thread) overlap the
        # sending of the piece before, instead of waiting for it.
        piece: bytes | None = ahead_piece
        ahead = asyncio.ensure_future(self._run(next, pieces, None))
        try:
            while piece is not None:
                yield piece
                piece = await asyncio.shield(ahead)
                if piece is not None:
                    ahead = asyncio.ensure_future(self._run(next, pieces, None))
        finally:
            # The reader is closed only once no thread reads it any more.
            await asyncio.gather(ahead, return_exceptions=True)
            await self._run(reader.close)

    def _opened(
        self, actor: Identity, ref: str
    ) -> tuple[storage.ObjectReader, Iterator[bytes], bytes | None, bytes | None]:
        """(blocking) The reader of ``ref`` once ``actor`` may read it, its pieces and the first
        two of them; the reader is already closed when there is no second piece."""
        self._may_read(actor, ref, content=True)
        reader = self._store.open(storage.ObjectRef.parse(ref))
        try:
            pieces = reader.chunks()
            first = next(pieces, None)
            second = next(pieces, None) if first is not None else None
        except BaseException:
            reader.close()
            raise
        if second is None:
            reader.close()
        return reader, pieces, first, second


def stored_document(
    app: Application,
    actor: Identity,
    stored: storage.StoredObject,
    *,
    content_type: str,
    filename: str,
    uploader: str,
    unit_code: str,
) -> tuple[CatalogueEntry, audit.Event]:
    """The catalogue row of an uploaded object and its ``document.stored`` event, which the
    caller commits together (the row with ``journal=`` the event's staging)."""
    entry = CatalogueEntry(
        ref=str(stored.ref),
        size=stored.size,
        content_type=content_type,
        filename=filename,
        uploader=uploader,
        unit_code=unit_code,
    )
    event = app.events.event(
        audit.EventType.DOCUMENT_STORED,
        actor=actor,
        document_sha256=stored.sha256,
        refs=(str(stored.ref),),
    )
    return entry, event


def who_metadata(uploader: str, unit: str) -> dict[str, str]:
    """Object metadata naming who stored it: if the call fails after the put (the database is
    away), the start-up check catalogues the object with its uploader rather than none."""
    return {k: v for k, v in (("uploader", uploader), ("unit", unit)) if v and v.isascii()}
