"""The one framing between a parent and its worker processes, used by both sides.

Over one duplex Unix socket pair:

1. parent → worker: a pickled ``Boot`` (the entry point, its configuration — secrets such as
   PINs travel here, never in argv — and an optional address-space limit);
2. worker → parent: a pickled ``Ready`` or ``StartFailed``;
3. then messages both ways. A message is a ``HEADER`` frame (length, request id, kind, flags,
   arg) followed by its payload, and, when ``F_DATA`` is set, a second frame holding only the
   data bytes (a whole document travels as its own frame: never pickled, never sliced out of a
   larger buffer, and a large one is read straight from the socket into one object).

Every frame starts with its length (``FRAME``). A reply has the request's id; ``F_ERROR`` marks a
payload that is a pickled ``(exception, traceback text)``; ``F_RETIRE`` says the worker exits
after this reply (its state is stale, or it chose to be recycled). ``F_STOP`` on a request asks
the worker to exit. ``F_NOTE`` (request id 0) marks a worker's note: no answer to any request,
sent while a request is being worked on (what a worker must not lose if it is killed before it
answers), and handed to the pool's ``on_note``. Readers take every complete message of one
``recv`` at once, so that both sides can work in batches.

Invariant: pickles only ever come from the other end of a private socket pair between a parent
and the worker it started, never from a client.
"""

from __future__ import annotations

import pickle
import socket
import struct
import traceback
from dataclasses import dataclass

from workers.errors import RemoteError

__all__ = [
    "FRAME",
    "F_DATA",
    "F_ERROR",
    "F_NOTE",
    "F_RETIRE",
    "F_STOP",
    "HEADER",
    "Boot",
    "Message",
    "Reader",
    "Ready",
    "StartFailed",
    "decode_error",
    "encode",
    "encode_error",
    "recv_object",
    "send_object",
    "send_parts",
]

FRAME = struct.Struct("!I")
"""Length of the frame that follows."""
HEADER = struct.Struct("!IIBBI")
"""Frame length, request id, kind (the owner's), flags, arg (the owner's)."""

F_DATA = 1
F_STOP = 2
F_ERROR = 4
F_RETIRE = 8
F_NOTE = 16

Message = tuple[int, int, int, int, bytes, bytes | None]
"""Request id, kind, flags, arg, payload, data (``None`` when the message has none)."""

_READ_SIZE = 1 << 18
# A message whose data still misses more than this is read straight from the socket into one
# bytes object, instead of growing the read buffer and copying it out again.
_DIRECT_READ = 1 << 16
# Up to this size, the pieces of a write are joined (one small copy, one system call);
# above it they are handed to sendmsg as they are (no copy of a document).
_JOIN_LIMIT = 1 << 16
_IOV_MAX = 512
_HEADER_REST = HEADER.size - FRAME.size


@dataclass(frozen=True, kw_only=True)
class Boot:
    """What a worker needs to start: ``entry`` (``"package.module:function"``) is called with
    ``config`` and returns the worker's ``WorkerSetup``."""

    entry: str
    config: object
    memory_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class Ready:
    pid: int
    value: object


@dataclass(frozen=True, kw_only=True)
class StartFailed:
    error: BaseException
    detail: str


def encode(request_id: int, kind: int, flags: int, arg: int, payload: bytes) -> bytes:
    """A header frame with its payload (data, if any, is sent as the frame after it)."""
    return HEADER.pack(_HEADER_REST + len(payload), request_id, kind, flags, arg) + payload


def encode_error(exc: BaseException) -> bytes:
    """``(exc, traceback text)`` pickled; ``exc`` replaced by a ``RemoteError`` naming it when
    it does not survive a pickle round trip with its class and attributes."""
    detail = "".join(traceback.format_exception(exc))
    try:
        blob = pickle.dumps((exc, detail), protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)  # noqa: S301  # our own bytes, checked before they leave
    except Exception:  # any pickling failure gets the same fallback
        blob = pickle.dumps((RemoteError(f"{type(exc).__name__}: {exc}"), detail))
    return blob


def decode_error(payload: bytes) -> tuple[BaseException, str]:
    error, detail = pickle.loads(payload)  # noqa: S301  # see the module's invariant
    assert isinstance(error, BaseException)
    return error, str(detail)


def send_object(sock: socket.socket, obj: object) -> None:
    """Send one pickled frame (start-up messages only)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(FRAME.pack(len(data)) + data)


def recv_object(sock: socket.socket) -> object:
    """Receive one pickled frame; ``EOFError`` when the other end closed."""
    (length,) = FRAME.unpack(_recv_exact(sock, FRAME.size))
    return pickle.loads(_recv_exact(sock, length))  # noqa: S301  # see the module's invariant


def send_parts(sock: socket.socket, parts: list[bytes]) -> None:
    """Write ``parts`` in order, completely (``OSError`` when the other end is gone)."""
    if len(parts) == 1:
        sock.sendall(parts[0])
        return
    if sum(map(len, parts)) <= _JOIN_LIMIT:
        sock.sendall(b"".join(parts))
        return
    views = [memoryview(p) for p in parts if p]
    while views:
        sent = sock.sendmsg(views[:_IOV_MAX])
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = sock.recv(size, socket.MSG_WAITALL) if size else b""
    if len(data) == size:
        return data
    if not data:
        raise EOFError("the other end closed the connection")
    chunks = [data]
    got = len(data)
    while got < size:
        chunk = sock.recv(size - got, socket.MSG_WAITALL)
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class Reader:
    """Reads messages from one socket, every complete one of a read at once."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read(self) -> list[Message] | None:
        """The next messages (at least one), or ``None`` at the end of the stream.

        Raises ``OSError`` when the socket fails.
        """
        buffer = self._buffer
        while True:
            chunk = self._sock.recv(_READ_SIZE)
            if not chunk:
                return None
            buffer += chunk
            messages, consumed = _parse(buffer)
            if consumed:
                del buffer[:consumed]
            if not messages:
                large = self._read_large()
                if large is not None:
                    return [large]
                continue
            return messages

    def _read_large(self) -> Message | None:
        """Complete a message whose data is mostly still in the socket, reading the rest of
        the data straight into one object."""
        buffer = self._buffer
        if len(buffer) < HEADER.size:
            return None
        length, request_id, kind, flags, arg = HEADER.unpack_from(buffer)
        end = FRAME.size + length
        if not flags & F_DATA or len(buffer) < end + FRAME.size:
            return None
        (size,) = FRAME.unpack_from(buffer, end)
        start = end + FRAME.size
        missing = start + size - len(buffer)
        if missing < _DIRECT_READ:
            return None
        payload = bytes(buffer[HEADER.size : end])
        head = bytes(buffer[start:])
        buffer.clear()
        try:
            rest = _recv_exact(self._sock, missing)
        except EOFError:
            raise OSError("the other end closed the connection mid-message") from None
        return request_id, kind, flags, arg, payload, head + rest


def _parse(buffer: bytearray) -> tuple[list[Message], int]:
    """Complete messages at the start of ``buffer``, and the bytes they took."""
    messages: list[Message] = []
    offset = 0
    available = len(buffer)
    view = memoryview(buffer)
    try:
        while available - offset >= HEADER.size:
            length, request_id, kind, flags, arg = HEADER.unpack_from(buffer, offset)
            end = offset + FRAME.size + length
            if end > available:
                break
            data: bytes | None = None
            following = end
            if flags & F_DATA:
                if end + FRAME.size > available:
                    break
                (size,) = FRAME.unpack_from(buffer, end)
                following = end + FRAME.size + size
                if following > available:
                    break
                data = bytes(view[end + FRAME.size : following])
            payload = bytes(view[offset + HEADER.size : end])
            messages.append((request_id, kind, flags, arg, payload, data))
            offset = following
    finally:
        view.release()
    return messages, offset
