"""Turning what a caller hands to ``put`` into byte chunks, without reading it whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from storage.reader import CHUNK_SIZE

__all__ = ["PutSource", "iter_chunks"]

PutSource = BinaryIO | Iterable[bytes] | bytes
"""A binary file-like object, an iterable of byte chunks, or (for small content) bytes."""


def iter_chunks(source: PutSource) -> Iterator[bytes]:
    """Yield non-empty chunks of ``source``; a file-like object is read ``CHUNK_SIZE`` at a time."""
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
