"""Turning what a caller hands to ``put`` into byte chunks, without reading it whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from storage.reader import CHUNK_SIZE

__all__ = ["PutSource", "StagedFile", "iter_chunks"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedFile:
    """Bytes already written to a staging file by ``FilesystemStore.stage`` (possibly in
    another process on the same store), with their digest and size. That store's puts adopt
    the file without copying it; any other adapter reads it like a file."""

    path: str
    sha256: str
    size: int


PutSource = BinaryIO | Iterable[bytes] | bytes | StagedFile
"""A binary file-like object, an iterable of byte chunks, (for small content) bytes, or a
staged file."""


def iter_chunks(source: PutSource) -> Iterator[bytes]:
    """Yield non-empty chunks of ``source``; a file-like object is read ``CHUNK_SIZE`` at a time."""
    if isinstance(source, StagedFile):
        with open(source.path, "rb") as staged:
            while chunk := staged.read(CHUNK_SIZE):
                yield chunk
        return
    if isinstance(source, bytes | bytearray | memoryview):
        if source:
            yield bytes(source)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while chunk := read(CHUNK_SIZE):
            yield bytes(chunk)
        return
    for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("put() needs bytes chunks; got " + type(chunk).__name__)
        if chunk:
            yield bytes(chunk)
