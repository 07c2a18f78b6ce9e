"""A readable stream that checks an object's SHA-256 while it is read.

Invariant: the caller never receives the complete content of a corrupt object. The most recent
chunk read from the backend is withheld until the next chunk arrives or the backend reports the
end; at the end the size and the digest are checked, and only then is the withheld chunk
released. On a mismatch ``IntegrityError`` is raised instead, so a consumer that reads to the end
(copying to a client, hashing, parsing) always sees the error before it could treat the bytes as
whole.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Callable, Iterator

from storage.errors import IntegrityError
from storage.model import StoredObject

__all__ = ["CHUNK_SIZE", "ObjectReader"]

CHUNK_SIZE = 1024 * 1024


class ObjectReader(io.RawIOBase):
    """Verified, read-only, forward-only stream over one stored object.

    Use as a context manager (``with store.open(ref) as reader:``); ``info`` describes the
    object. ``read()``/``readinto()`` follow ``io.RawIOBase``; ``chunks()`` yields pieces of at
    most ``CHUNK_SIZE`` bytes.
    """

    def __init__(
        self,
        *,
        info: StoredObject,
        read_chunk: Callable[[int], bytes],
        close_source: Callable[[], None],
    ) -> None:
        super().__init__()
        self.info = info
        self._read_chunk = read_chunk
        self._close_source = close_source
        self._hash = hashlib.sha256()
        self._received = 0
        self._ready: deque[bytes] = deque()  # chunks the caller may take (never the latest)
        self._offset = 0  # bytes of _ready[0] already handed out by readinto()
        self._held = b""  # the latest chunk from the backend, released only after the next
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed ObjectReader")
        view = memoryview(buffer).cast("B")
        while not self._ready and not self._verified:
            self._pull()
        if not self._ready:
            return 0
        head = self._ready[0]
        n = min(len(view), len(head) - self._offset)
        view[:n] = head[self._offset : self._offset + n]
        self._offset += n
        if self._offset == len(head):
            self._ready.popleft()
            self._offset = 0
        return n

    def readall(self) -> bytes:
        """Read to the end (the whole object in memory: only for objects known to be small)."""
        parts = list(self.chunks())
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes]:
        """Yield the rest of the object in pieces; raises IntegrityError before the last one."""
        while True:
            while not self._ready and not self._verified:
                self._pull()
            if not self._ready:
                return
            piece = self._ready.popleft()
            if self._offset:
                piece, self._offset = piece[self._offset :], 0
            yield piece

    def close(self) -> None:
        if not self.closed:
            try:
                self._close_source()
            finally:
                super().close()

    def _pull(self) -> None:
        chunk = self._read_chunk(CHUNK_SIZE)
        if chunk:
            self._received += len(chunk)
            if self._received > self.info.size:
                raise IntegrityError(
                    f"{self.info.ref} is longer than its recorded size {self.info.size}: "
                    "the stored copy is corrupt; restore it from a replica or backup"
                )
            self._hash.update(chunk)
            if self._held:
                self._ready.append(self._held)
            self._held = chunk
            return
        self._finish()

    def _finish(self) -> None:
        if self._received != self.info.size:
            raise IntegrityError(
                f"{self.info.ref} ended after {self._received} of {self.info.size} bytes: "
                "the stored copy is truncated; restore it from a replica or backup"
            )
        if self._hash.hexdigest() != self.info.sha256:
            raise IntegrityError(
                f"{self.info.ref} does not hash to its reference: the stored copy is corrupt; "
                "restore it from a replica or backup"
            )
        if self._held:
            self._ready.append(self._held)
        self._held = b""
        self._verified = True
