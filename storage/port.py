"""The object-storage port: what the rest of kyso may ask of any store.

Invariants every adapter keeps:
- objects are addressed by content (``sha256/<hex>``) and written once: nothing in this API
  overwrites or deletes; putting content that is already stored is a no-op returning the same
  ref (the first writer's content type and metadata are kept);
- an object becomes visible only complete: a failed or interrupted put leaves nothing under
  its ref;
- content streams in and out in chunks: no adapter holds a whole object in memory;
- every read is verified against the ref's digest (``ObjectReader``); a mismatch raises
  ``IntegrityError`` and the corrupt content is never handed out whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from storage.model import ObjectRef, Retention, StoredObject
from storage.reader import ObjectReader
from storage.streams import PutSource

__all__ = [
    "BatchObjectStore",
    "DirectTransferStore",
    "ObjectStore",
    "PresignedPut",
    "PutItem",
    "put_many",
]


@runtime_checkable
class ObjectStore(Protocol):
    """A content-addressed, write-once object store."""

    def put(
        self,
        stream: PutSource,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        expected_sha256: str | None = None,
        retention: Retention | None = None,
    ) -> StoredObject:
        """Store the stream's bytes and return their description.

        ``expected_sha256`` (hex) is the digest the client declared: if the bytes differ,
        ``DeclaredHashMismatch`` is raised and nothing is stored. ``retention`` asks for an
        object lock (S3); re-putting existing content extends, never shortens, its retention.
        """
        ...

    def open(self, ref: ObjectRef | str) -> ObjectReader:
        """Open the object for a verified, streaming read (a context manager)."""
        ...

    def stat(self, ref: ObjectRef | str) -> StoredObject:
        """Describe the object; ``ObjectNotFound`` when absent."""
        ...

    def exists(self, ref: ObjectRef | str) -> bool:
        """Whether an object is stored under ``ref``."""
        ...

    def iter_refs(self) -> Iterator[ObjectRef]:
        """Every visible object's ref, in ascending order of its text (``sha256/<hex>``).

        Only complete objects are listed (never staging files or leftovers of a crashed put).
        The listing is a live scan, not a snapshot: objects stored while it runs may or may not
        appear. It streams: a store of millions of objects is never listed into memory.
        """
        ...

    def presigned_get_url(self, ref: ObjectRef | str, *, expires: timedelta) -> str:
        """A URL that downloads the object without credentials until ``expires`` has passed."""
        ...

    def check(self) -> None:
        """Health probe: return if the store can serve requests, else raise a StorageError."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PutItem:
    """One object of a batch put: the arguments ``ObjectStore.put`` takes, as data."""

    source: PutSource
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    expected_sha256: str | None = None
    retention: Retention | None = None


@runtime_checkable
class BatchObjectStore(Protocol):
    """An optional capability: a store that can make many puts durable together.

    ``put_many`` keeps every invariant of ``put`` for each item and returns their descriptions in
    order (equal content in one batch is one object). When it returns, every item is durable.
    When it raises, nothing partial is visible; items may or may not have been stored, exactly
    as if a loop of ``put`` had stopped part-way, and putting the batch again is harmless.
    """

    def put_many(self, items: Sequence[PutItem], /) -> list[StoredObject]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PresignedPut:
    """An HTTP PUT a client sends without credentials: to ``url``, with ``headers``."""

    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@runtime_checkable
class DirectTransferStore(Protocol):
    """An optional capability: clients send a document's bytes to the store themselves.

    The client PUTs to a *staging* object named by the caller (never to the content address:
    in a bucket with object lock, wrong bytes there could never be removed); ``adopt_staged``
    then checks the staged bytes against the declared size and SHA-256 and only then makes them
    the object at ``sha256/<hex>``. Invariants: nothing reaches a content address without the
    store itself having hashed it; an adoption that fails (mismatch, nothing staged) leaves
    nothing at the content address; staging objects are never listed by ``iter_refs``.
    The filesystem adapter has no such capability (clients cannot reach its disk).
    """

    def staging_put(self, name: str, *, expires: timedelta, content_type: str) -> PresignedPut:
        """A presigned PUT to the staging object ``name`` (``[A-Za-z0-9_-]{16,128}``), valid
        for ``expires`` (1 second to 7 days)."""
        ...

    def adopt_staged(
        self,
        name: str,
        *,
        sha256: str,
        size: int,
        content_type: str,
        metadata: Mapping[str, str],
        retention: Retention | None = None,
    ) -> StoredObject:
        """Store the staged bytes at their content address if they are ``size`` bytes hashing
        to ``sha256``, with the content type, metadata and retention ``put`` would give them.

        ``StagedObjectMissing`` when nothing was staged; ``DeclaredHashMismatch`` when the
        bytes are others. The staging object is left for ``discard_staged``.
        """
        ...

    def discard_staged(self, name: str) -> None:
        """Remove the staging object ``name`` (every version of it); idempotent."""
        ...


def put_many(store: ObjectStore, items: Sequence[PutItem]) -> list[StoredObject]:
    """Store ``items`` with ``store``'s batch put when it has one, else one ``put`` each.

    Works with any adapter; the guarantees are ``BatchObjectStore.put_many``'s.
    """
    if isinstance(store, BatchObjectStore):
        return store.put_many(items)
    return [
        store.put(
            item.source,
            content_type=item.content_type,
            metadata=item.metadata,
            expected_sha256=item.expected_sha256,
            retention=item.retention,
        )
        for item in items
    ]
