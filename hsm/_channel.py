"""The parent's side of one signing worker process: a socket, calls in flight, a reader thread.

Used by ``hsm.keyring`` only. Requests are framed as ``hsm._worker`` describes; answers are
completed by a reader thread, in batches: a waiting thread is released through a held lock,
and an asyncio task's future is settled on its own loop with one ``call_soon_threadsafe`` per
batch. Requests from asyncio tasks of one loop iteration go out in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import subprocess
import threading
import time
from typing import Protocol

from hsm import _worker as proto
from hsm.errors import HsmError, TokenUnavailable
from hsm.process import start_worker

__all__ = ["WATCHDOG_PERIOD", "Call", "PoolLike", "WorkerChannel"]

WATCHDOG_PERIOD = 1.0
"""How often the ring looks for requests older than the request timeout."""
_WORKER_BOOT = "import sys; from hsm._worker import main; main(int(sys.argv[1]))"


class PoolLike(Protocol):
    """What a channel needs from the pool that owns it."""

    name: str
    start_timeout: float

    def mark_down(self, reason: str) -> None: ...


class Call:
    """One request in flight: completed by the reader thread, awaited by a thread or a task."""

    __slots__ = ("_future", "_lock", "error", "request_id", "started", "value", "worker")

    def __init__(
        self, worker: WorkerChannel, request_id: int, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.worker = worker
        self.request_id = request_id
        self.started = time.monotonic()  # read by the ring's watchdog
        self.value = b""
        self.error: HsmError | None = None
        # A held lock is the cheapest one-shot event for a waiting thread.
        self._lock: threading.Lock | None = None
        self._future: asyncio.Future[bytes] | None = None
        if loop is None:
            self._lock = threading.Lock()
            self._lock.acquire()
        else:
            self._future = loop.create_future()

    def complete(self, value: bytes, error: HsmError | None) -> None:
        """Called by the reader thread (async calls are settled on their loop by the reader)."""
        self.value, self.error = value, error
        if self._lock is not None:
            self._lock.release()

    @property
    def future(self) -> asyncio.Future[bytes] | None:
        return self._future

    def wait(self, timeout: float) -> bytes:
        assert self._lock is not None
        # The watchdog fails overdue calls; this timeout is only a backstop behind it.
        if not self._lock.acquire(timeout=timeout + WATCHDOG_PERIOD * 2):
            raise self.worker.timed_out(self, timeout)
        if self.error is not None:
            raise self.error
        return self.value

    async def wait_async(self) -> bytes:
        """Await the answer. No timer per call (costly at this rate): the ring's watchdog
        fails calls older than the request timeout by resetting their token's workers."""
        assert self._future is not None
        return await self._future


_Settlement = tuple["asyncio.Future[bytes]", bytes, HsmError | None]
"""An answer for a task: its future, the signature, or the error."""


def _settle(items: list[_Settlement]) -> None:
    """Runs on an event loop: complete that loop's futures answered in one read."""
    for future, value, error in items:
        if future.done():
            continue  # timed out (cancelled) meanwhile
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


class WorkerChannel:
    """The parent's side of one worker process: a socket, calls in flight and a reader thread."""

    def __init__(self, pool: PoolLike, number: int) -> None:
        self.pool = pool
        self.number = number
        self.pending: dict[int, Call] = {}
        self.ids = itertools.count(1)
        self.send_lock = threading.Lock()
        self.outbox: list[bytes] = []
        self.flush_scheduled = False
        self.sock: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        self.stopping = False

    def start(self, config: proto.WorkerConfig) -> proto.Ready:
        self.launch(config)
        return self.await_ready()

    def launch(self, config: proto.WorkerConfig) -> None:
        try:
            ours, process = start_worker(_WORKER_BOOT)
        except OSError as exc:
            raise TokenUnavailable(f"cannot start a signing worker: {exc.strerror}") from exc
        self.sock, self.process = ours, process
        proto.send_object(ours, config)

    def await_ready(self) -> proto.Ready:
        sock = self.sock
        assert sock is not None
        sock.settimeout(self.pool.start_timeout)
        try:
            reply = proto.recv_object(sock)
        except TimeoutError:
            raise TokenUnavailable(
                f"token {self.pool.name}: a signing worker did not start within"
                f" {self.pool.start_timeout:g} s"
            ) from None
        except (EOFError, OSError) as exc:
            raise TokenUnavailable(
                f"token {self.pool.name}: a signing worker died while starting"
                f" (exit code {self.process.poll() if self.process else None})"
            ) from exc
        finally:
            sock.settimeout(None)
        if isinstance(reply, proto.StartFailed):
            raise proto.ERROR_CLASSES[reply.status](reply.message)
        assert isinstance(reply, proto.Ready)
        self.reader = threading.Thread(
            target=self._read, name=f"hsm-reader-{self.pool.name}-{self.number}", daemon=True
        )
        self.reader.start()
        return reply

    def submit(
        self,
        index: int,
        code: int,
        payload: bytes,
        *,
        op: int = proto.OP_SIGN,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Call:
        request_id = next(self.ids)
        call = Call(self, request_id, loop)
        self.pending[request_id] = call
        frame = proto.request(request_id, op, index, code, payload)
        if loop is not None:
            # Tasks of one loop iteration share one write (flushed by the loop right after).
            with self.send_lock:
                self.outbox.append(frame)
                schedule = not self.flush_scheduled
                self.flush_scheduled = True
            if schedule:
                loop.call_soon(self._flush_outbox)
            return call
        try:
            with self.send_lock:
                assert self.sock is not None
                self.sock.sendall(frame)
        except (OSError, AssertionError) as exc:
            self.pending.pop(request_id, None)
            raise TokenUnavailable(
                f"token {self.pool.name}: the signing worker is gone; retry shortly"
            ) from exc
        return call

    def _flush_outbox(self) -> None:
        try:
            with self.send_lock:
                frames, self.outbox = self.outbox, []
                self.flush_scheduled = False
                assert self.sock is not None
                self.sock.sendall(b"".join(frames))
        except (OSError, AssertionError):
            # The calls are pending: resetting the pool fails them with TokenUnavailable.
            self.pool.mark_down("a signing worker is gone")
            self._fail_pending()

    def oldest_started(self) -> float | None:
        try:
            # Calls are kept in submission order; other threads may add or remove meanwhile.
            return next(iter(self.pending.values())).started
        except (StopIteration, RuntimeError):
            return None

    def timed_out(self, call: Call, timeout: float) -> TokenUnavailable:
        self.pending.pop(call.request_id, None)
        self.pool.mark_down(f"a request took longer than {timeout:g} s")
        return TokenUnavailable(
            f"token {self.pool.name} did not answer within {timeout:g} s; it is being reset"
        )

    def _read(self) -> None:
        sock = self.sock
        assert sock is not None
        buffer = bytearray()
        header = proto.RESPONSE
        while True:
            try:
                chunk = sock.recv(1 << 18)
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            frames, consumed = proto.iter_frames(buffer)
            del buffer[:consumed]
            by_loop: dict[
                asyncio.AbstractEventLoop,
                list[_Settlement],
            ] = {}
            unavailable = ""
            for frame in frames:
                _, request_id, status = header.unpack_from(frame)
                payload = frame[header.size :]
                error: HsmError | None = None
                if status != proto.STATUS_OK:
                    text = payload.decode("utf-8", "replace")
                    error = proto.ERROR_CLASSES.get(status, HsmError)(
                        f"token {self.pool.name}: {text}"
                    )
                    payload = b""
                    if status == proto.STATUS_UNAVAILABLE:
                        unavailable = text
                call = self.pending.pop(request_id, None)
                if call is None:
                    continue  # timed out meanwhile
                future = call.future
                if future is None:
                    call.complete(payload, error)
                else:
                    by_loop.setdefault(future.get_loop(), []).append((future, payload, error))
            for loop, items in by_loop.items():
                _call_soon(loop, items)
            if unavailable:
                self.pool.mark_down(unavailable)
        # The worker exited or the socket closed: nothing pending can complete any more.
        if not self.stopping:
            self.pool.mark_down("a signing worker exited")
        self._fail_pending()

    def _fail_pending(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settlement]] = {}
        while self.pending:
            _, call = self.pending.popitem()
            error = TokenUnavailable(f"token {self.pool.name} became unavailable; retry shortly")
            future = call.future
            if future is None:
                call.complete(b"", error)
            else:
                by_loop.setdefault(future.get_loop(), []).append((future, b"", error))
        for loop, items in by_loop.items():
            _call_soon(loop, items)

    def stop(self) -> None:
        self.stopping = True
        sock, process = self.sock, self.process
        if sock is not None:
            try:
                with self.send_lock:
                    sock.sendall(proto.request(0, proto.OP_STOP, 0, 0, b""))
            except OSError:
                pass
        if process is not None:
            try:
                process.wait(2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(2.0)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the worker's exit
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self.reader is not None and self.reader is not threading.current_thread():
            self.reader.join(2.0)
        self._fail_pending()


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    items: list[_Settlement],
) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits these any more
        loop.call_soon_threadsafe(_settle, items)
