"""The worker side: the entry point every worker process runs, and what an owner's code returns.

A worker is a fresh interpreter (``python -c … main(FD)``), not a fork and not multiprocessing's
``spawn``: it inherits no module state or threads from the parent, and the parent's
``__main__`` is not run again. ``main`` reads the ``Boot`` message, imports the owner's entry
point and calls it with its configuration; the entry returns a ``WorkerSetup``. Then, when asked
for, the address-space limit is set (before any request is read), ``Ready`` is sent, and
requests are served until the parent says stop or goes away.

Serving is single-threaded and in order: every request of one read is handled, and replies wait
at most ``_FLUSH_AFTER_S`` to share one write (cheap for thousands of small requests a second).
A reply with data is written at once, after what was waiting. An exception raised by the
handler is sent back as itself (see ``wire.encode_error``); one of ``WorkerSetup.fatal``'s
classes also makes the worker exit after the reply, as does a ``Reply`` with ``retire=True``.
Ctrl-C is ignored: it reaches the whole process group, and the parent decides when workers stop.

``send_note`` (from the handler, on any thread) writes a note to the parent at once, outside any
answer: what the parent must learn even if this worker is killed before it answers (each write
to the socket is whole, under one lock, so a note never lands inside a reply).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import resource
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from workers import wire
from workers.errors import RemoteError
from workers.hardening import forbid_core_dumps

__all__ = ["Handler", "Reply", "WorkerSetup", "main", "send_note"]

# Replies wait at most this long to share one write: long enough to batch fast requests (an EC
# signature), short enough that the parent gets answers while this worker handles the next ones.
_FLUSH_AFTER_S = 0.0002


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A reply with data (sent as its own frame), or that retires the worker after it is sent.

    A handler that has only a payload to return returns the bytes themselves (no object).
    """

    payload: bytes = b""
    data: bytes | None = None
    retire: bool = False


Handler = Callable[[int, int, bytes, "bytes | None"], "bytes | Reply"]
"""``handle(kind, arg, payload, data)`` → the reply's payload, or a ``Reply``."""


@dataclass(frozen=True, kw_only=True)
class WorkerSetup:
    """What an entry point returns: how to handle requests, what to tell the parent when ready
    (pickled), which exceptions leave this worker unusable, and what to run when it stops."""

    handle: Handler
    ready: object = None
    fatal: tuple[type[BaseException], ...] = ()
    close: Callable[[], None] | None = None


class _Link:
    """This process's socket to its parent (a worker has one parent), and the lock that keeps
    each write whole when a note is sent from another thread than the serving one."""

    sock: socket.socket | None = None
    lock = threading.Lock()


def send_note(payload: bytes) -> None:
    """Send ``payload`` to the parent now as a note (``wire.F_NOTE``), which the pool hands to
    its ``PoolSpec.on_note``. Outside a worker process, or when the parent is gone, nothing is
    sent."""
    sock = _Link.sock
    if sock is None:
        return
    frame = wire.encode(0, 0, wire.F_NOTE, 0, payload)
    with _Link.lock, contextlib.suppress(OSError):
        sock.sendall(frame)


def main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of the socket pair with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    try:
        boot = wire.recv_object(sock)
    except (EOFError, OSError):
        return  # the parent went away before it sent anything
    assert isinstance(boot, wire.Boot)
    try:
        forbid_core_dumps()  # before the configuration (PINs included) is used
        module, _, name = boot.entry.partition(":")
        entry: Callable[[object], WorkerSetup] = getattr(importlib.import_module(module), name)
        setup = entry(boot.config)
        if boot.memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (boot.memory_bytes, boot.memory_bytes))
    except Exception as exc:  # every start failure goes to the parent, as itself
        failed = wire.StartFailed(error=exc, detail="".join(traceback.format_exception(exc)))
        try:
            wire.send_object(sock, failed)
        except Exception:  # the exception does not pickle: send what it says instead
            wire.send_object(sock, wire.StartFailed(error=_plain(exc), detail=failed.detail))
        return
    try:
        wire.send_object(sock, wire.Ready(pid=os.getpid(), value=setup.ready))
        _Link.sock = sock  # notes only after Ready: the parent reads frames from then on
        _serve(sock, setup)
    finally:
        if setup.close is not None:
            setup.close()


def _plain(exc: BaseException) -> BaseException:
    return RemoteError(f"{type(exc).__name__}: {exc}")


def _serve(sock: socket.socket, setup: WorkerSetup) -> None:
    reader = wire.Reader(sock)
    handle = setup.handle
    fatal = setup.fatal
    encode = wire.encode
    out: list[bytes] = []
    first_unsent = 0.0
    while True:
        try:
            messages = reader.read()
        except OSError:
            return
        if messages is None:
            return  # the parent is gone or closed the socket
        for request_id, kind, flags, arg, payload, data in messages:
            if flags & wire.F_STOP:
                _flush(sock, out)
                return
            retire = False
            extra: bytes | None = None
            try:
                result = handle(kind, arg, payload, data)
                if type(result) is bytes:
                    frame = encode(request_id, 0, 0, 0, result)
                else:
                    assert isinstance(result, Reply)
                    retire = result.retire
                    extra = result.data
                    flags = (wire.F_DATA if extra is not None else 0) | (
                        wire.F_RETIRE if retire else 0
                    )
                    frame = encode(request_id, 0, flags, 0, result.payload)
            except Exception as exc:  # every failure is the caller's answer, as itself
                retire = isinstance(exc, fatal)
                flags = wire.F_ERROR | (wire.F_RETIRE if retire else 0)
                frame = encode(request_id, 0, flags, 0, wire.encode_error(exc))
            if extra is not None:
                _flush(sock, out)
                with _Link.lock, contextlib.suppress(OSError):  # the parent is gone: see read
                    wire.send_parts(sock, [frame, wire.FRAME.pack(len(extra)), extra])
            else:
                if not out:
                    first_unsent = time.perf_counter()
                out.append(frame)
                if time.perf_counter() - first_unsent >= _FLUSH_AFTER_S:
                    _flush(sock, out)
            if retire:
                _flush(sock, out)
                return
        _flush(sock, out)


def _flush(sock: socket.socket, out: list[bytes]) -> None:
    if out:
        with _Link.lock, contextlib.suppress(OSError):  # the parent is gone: the read ends
            sock.sendall(b"".join(out))
        out.clear()
