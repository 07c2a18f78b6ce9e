"""The parent's side of one worker process: its socket, its requests in flight, its threads.

A ``Channel`` is one incarnation of a worker: it is never restarted, a new one replaces it (so a
late event of a dead worker can never touch its successor's state). Its reader thread first
waits for the worker's ``Ready`` (at most the start timeout), then completes answers in batches:
a waiting thread is released through a held lock, an asyncio task's future is settled on its own
loop with one ``call_soon_threadsafe`` per batch.

Writes keep the order of submission and never block an event loop on a document: requests from
asyncio tasks of one loop iteration share one write made by the loop right after; a request with
data is written by the channel's writer thread (which then also takes every later request until
it is idle again); a request from a plain thread is written by that thread.

Invariants: a call is completed exactly once, by whoever removed it from ``pending`` (the reader
on an answer, the watchdog on a missed deadline, the end of the channel for what is left); the
socket is closed only by the reader, after the writer has ended, so no thread ever writes to a
closed (and possibly reused) descriptor; the worker's process is always reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workers import wire
from workers.errors import WorkerLost, WorkerStartFailed, WorkerTimedOut
from workers.hardening import minimal_environment

__all__ = ["Answer", "Call", "Channel", "ChannelSettings", "Owner"]

_log = logging.getLogger("workers")

Answer = tuple[bytes, "bytes | None"]
"""A reply's payload, and its data (``None`` when it has none)."""

_BOOT = "import sys; from workers.child import main; main(int(sys.argv[1]))"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_REAP_S = 2.0
_NO_ANSWER: Answer = (b"", None)
_STOP_FRAME = wire.encode(0, 0, wire.F_STOP, 0, b"")

_Settlement = tuple["asyncio.Future[Answer]", Answer, "BaseException | None"]


@dataclass(frozen=True, kw_only=True)
class ChannelSettings:
    """What every channel of a pool shares."""

    name: str
    start_timeout: float
    stop_grace: float
    expected_errors: tuple[type[BaseException], ...]
    bounded: bool
    """The pool limits the requests in flight per worker: tell it after every answer."""
    minimal_environment: bool = False
    """The workers get only ``hardening.MINIMAL_ENVIRONMENT`` of this process's variables."""
    on_note: Callable[[bytes], None] | None = None
    """Called on the reader thread with each note's payload (``workers.child.send_note``)."""


class Owner(Protocol):
    """The pool that owns a channel: told, from the channel's reader thread, what happens."""

    def _channel_ready(self, channel: Channel) -> None: ...
    def _channel_start_failed(self, channel: Channel, error: BaseException) -> None: ...
    def _channel_leaving(self, channel: Channel) -> None: ...
    def _channel_answered(self, channel: Channel) -> None: ...
    def _channel_lost(self, channel: Channel) -> None: ...


class Call:
    """One request: completed by a channel's thread, awaited by a thread or an asyncio task."""

    __slots__ = ("_error", "_future", "_lock", "_value", "request_id", "sent", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop | None, timeout: float | None) -> None:
        self.request_id = 0
        self.sent = 0.0  # when it was written to its worker (read by the watchdog)
        self.timeout = timeout
        self._value = _NO_ANSWER
        self._error: BaseException | None = None
        # A held lock is the cheapest one-shot event for a waiting thread.
        self._lock: threading.Lock | None = None
        self._future: asyncio.Future[Answer] | None = None
        if loop is None:
            self._lock = threading.Lock()
            self._lock.acquire()
        else:
            self._future = loop.create_future()

    def wait(self, timeout: float | None = None) -> Answer:
        """The answer (for a call made without a loop); raises the worker's or the pool's error.

        The pool's watchdog enforces deadlines; ``timeout`` is only for callers that have no
        watchdog behind them (checks made while a pool starts).
        """
        assert self._lock is not None
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise WorkerTimedOut(f"no answer within {timeout:g} s", timeout=timeout or 0.0)
        if self._error is not None:
            raise self._error
        return self._value

    async def wait_async(self) -> Answer:
        """The answer (for a call made with a loop)."""
        assert self._future is not None
        return await self._future

    def complete(self, value: Answer, error: BaseException | None) -> None:
        """Complete a thread's call (only by whoever removed it from ``pending``)."""
        self._value, self._error = value, error
        assert self._lock is not None
        self._lock.release()

    def fail(self, error: BaseException) -> None:
        """Fail the call from any thread (only by whoever removed it from ``pending``)."""
        future = self._future
        if future is None:
            self.complete(_NO_ANSWER, error)
        else:
            _call_soon(future.get_loop(), [(future, _NO_ANSWER, error)])

    @property
    def future(self) -> asyncio.Future[Answer] | None:
        return self._future


def _settle(items: list[_Settlement]) -> None:
    """Runs on an event loop: complete that loop's futures answered in one read."""
    for future, value, error in items:
        if future.done():
            continue  # the caller gave up (cancelled) meanwhile
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _call_soon(loop: asyncio.AbstractEventLoop, items: list[_Settlement]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits these any more
        loop.call_soon_threadsafe(_settle, items)


class Channel:
    """One worker process and the parent's side of its socket (see the module docstring)."""

    def __init__(self, owner: Owner, settings: ChannelSettings, slot: int, boot: wire.Boot) -> None:
        self.owner = owner
        self.settings = settings
        self.slot = slot
        self.name = f"{settings.name} worker {slot}"
        self.boot = boot
        self.pending: dict[int, Call] = {}
        self.ready = threading.Event()
        self.ready_value: object = None
        self.start_error: BaseException | None = None
        self.ready_at = 0.0
        self.last_answer = 0.0  # when the worker last answered (read by the watchdog)
        self.pid: int | None = None
        self.exit_code: int | None = None
        # Set by the pool, under its lock.
        self.installed = False
        self.serving = False
        self.loss_handled = False
        # Why the channel ended, when it was not simply the process exiting.
        self.end_reason = ""
        self.retiring = False
        self.busy_at_end = False
        self.dead = False
        self.stopping = False
        self._stop_error: Callable[[], BaseException] | None = None  # set when stopped on purpose
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._wake_writer = threading.Condition(self._send_lock)
        self._queue: deque[list[bytes] | None] = deque()
        self._writer_busy = False
        self._send_closed = False
        self._outbox: list[bytes] = []
        self._flush_scheduled = False

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and its reader; ``WorkerStartFailed`` if it cannot run at all."""
        ours, theirs = socket.socketpair()
        inherited = os.environ
        env = minimal_environment(inherited) if self.settings.minimal_environment else {**inherited}
        # The worker imports the same packages as this process, wherever it was started from.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise WorkerStartFailed(f"cannot start {self.name}: {exc.strerror}") from exc
        finally:
            theirs.close()  # the parent sees the end of the stream once the worker is gone
        self._sock, self._process, self.pid = ours, process, process.pid
        # If the worker died at once, its reader reports that as a start failure.
        with contextlib.suppress(OSError):
            wire.send_object(ours, self.boot)
        self._reader = threading.Thread(target=self._run, name=f"{self.name} reader", daemon=True)
        self._reader.start()

    def head(self) -> Call | None:
        """The oldest call in flight (the one the worker works on: it answers in order)."""
        try:
            return next(iter(self.pending.values()))
        except (StopIteration, RuntimeError):  # empty, or changed by another thread meanwhile
            return None

    def expire(self, call: Call) -> bool:
        """Fail ``call`` for its missed deadline and kill the worker (False if it was answered
        meanwhile). What else it held fails when its end is seen, as lost."""
        if self.pending.pop(call.request_id, None) is None:
            return False
        timeout = call.timeout or 0.0
        self.end_reason = f"{self.name} was killed: a request took longer than {timeout:g} s"
        self.busy_at_end = True
        self.kill()
        # Out of service before its caller hears back (the caller may retry at once).
        self.owner._channel_leaving(self)
        call.fail(
            WorkerTimedOut(
                f"{self.name} did not answer within {timeout:g} s; it was killed and is being"
                " replaced",
                timeout=timeout,
            )
        )
        return True

    def kill(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    def begin_stop(self, error: Callable[[], BaseException]) -> None:
        """Ask the worker to exit (``error`` builds what its unfinished calls fail with)."""
        if self.stopping:
            return
        self._stop_error = error
        self.stopping = True
        if not self.ready.is_set() or self.dead:
            self.kill()  # still starting (it reads no request yet), or already gone
            return
        with contextlib.suppress(OSError):
            self._send([_STOP_FRAME], background=False)

    def end_stop(self) -> None:
        """Wait for the worker to exit (killed after the grace period) and fail what is left."""
        process = self._process
        if process is not None:
            try:
                process.wait(self.settings.stop_grace)
            except subprocess.TimeoutExpired:
                self.kill()
                process.wait()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(self.settings.stop_grace)
        self._fail_pending()

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        call: Call,
        kind: int,
        arg: int,
        payload: bytes,
        data: bytes | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        """Put ``call`` in flight; ``WorkerLost`` if this worker is already gone."""
        request_id = next(self._ids)
        call.request_id = request_id
        call.sent = time.monotonic()
        pending = self.pending
        pending[request_id] = call
        if self.dead:  # ended meanwhile: whoever removes the call from pending fails it
            if pending.pop(request_id, None) is not None:
                raise WorkerLost(f"{self.name} is gone", exit_code=self.exit_code)
            return
        try:
            if data is not None:
                self._send(
                    [
                        wire.encode(request_id, kind, wire.F_DATA, arg, payload),
                        wire.FRAME.pack(len(data)),
                        data,
                    ],
                    background=True,
                )
            elif loop is not None:
                self._send_soon(wire.encode(request_id, kind, 0, arg, payload), loop)
            else:
                self._send([wire.encode(request_id, kind, 0, arg, payload)], background=False)
        except OSError as exc:
            if pending.pop(request_id, None) is not None:
                raise WorkerLost(f"{self.name} is gone", exit_code=self.exit_code) from exc

    def _send(self, parts: list[bytes], *, background: bool) -> None:
        with self._send_lock:
            if self._send_closed:
                raise OSError("the channel is closed")
            if self._outbox:  # submitted earlier from a loop: they go first
                parts = [*self._outbox, *parts]
                self._outbox = []
            if background or self._writer_busy:
                self._queue.append(parts)
                self._writer_busy = True
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write, name=f"{self.name} writer", daemon=True
                    )
                    self._writer.start()
                self._wake_writer.notify()
                return
            assert self._sock is not None
            wire.send_parts(self._sock, parts)

    def _send_soon(self, frame: bytes, loop: asyncio.AbstractEventLoop) -> None:
        with self._send_lock:
            if self._send_closed:
                raise OSError("the channel is closed")
            self._outbox.append(frame)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            loop.call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        with self._send_lock:
            self._flush_scheduled = False
            frames, self._outbox = self._outbox, []
            if not frames or self._send_closed:
                return  # taken by another write, or the end fails them
            if self._writer_busy:
                self._queue.append(frames)
                self._wake_writer.notify()
                return
            assert self._sock is not None
            with contextlib.suppress(OSError):  # the reader sees the end and fails them
                self._sock.sendall(b"".join(frames))

    def _write(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            with self._send_lock:
                while not self._queue:
                    self._writer_busy = False
                    self._wake_writer.wait()
                parts = self._queue.popleft()
            if parts is None:
                return
            try:
                wire.send_parts(sock, parts)
            except OSError:
                return  # the reader sees the end and fails what is pending

    # -- reading --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._handshake()
        except BaseException as exc:
            self.start_error = exc
            self.dead = True
            self.kill()
            self.exit_code = self._reap()
            self._close()
            self.ready.set()
            self.owner._channel_start_failed(self, exc)
            return
        self.ready_at = self.last_answer = time.monotonic()
        self.ready.set()
        self.owner._channel_ready(self)
        self._serve()
        self._end()

    def _handshake(self) -> None:
        sock = self._sock
        assert sock is not None
        timeout = self.settings.start_timeout
        sock.settimeout(timeout)
        try:
            reply = wire.recv_object(sock)
        except TimeoutError:
            raise WorkerStartFailed(f"{self.name} did not start within {timeout:g} s") from None
        except (EOFError, OSError) as exc:
            raise WorkerStartFailed(
                f"{self.name} exited while starting (exit code {self._reap()})"
            ) from exc
        sock.settimeout(None)
        if isinstance(reply, wire.StartFailed):
            if not isinstance(reply.error, self.settings.expected_errors):
                _log.error("%s failed to start:\n%s", self.name, reply.detail)
            raise reply.error
        assert isinstance(reply, wire.Ready)
        self.ready_value = reply.value

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        reader = wire.Reader(sock)
        pending = self.pending
        owner = self.owner
        expected = self.settings.expected_errors
        bounded = self.settings.bounded
        special = wire.F_ERROR | wire.F_RETIRE
        on_note = self.settings.on_note
        while True:
            try:
                messages = reader.read()
            except OSError:
                break
            if messages is None:
                break
            by_loop: dict[asyncio.AbstractEventLoop, list[_Settlement]] = {}
            answered = False
            for request_id, _, flags, _, payload, data in messages:
                if flags & wire.F_NOTE:
                    # Before the answers that follow it: whoever hears an answer sees the
                    # notes sent while it was worked on. A note is no answer, so it does not
                    # move the watchdog's deadline.
                    if on_note is not None:
                        try:
                            on_note(payload)
                        except Exception:  # the owner's bug must not end this reader
                            _log.exception("%s: a note could not be taken", self.name)
                    continue
                answered = True
                error: BaseException | None = None
                call = pending.pop(request_id, None)
                if flags & special:
                    if flags & wire.F_ERROR:
                        error, detail = wire.decode_error(payload)
                        payload = b""
                        if not isinstance(error, expected):
                            _log.error("%s failed a request:\n%s", self.name, detail)
                    if flags & wire.F_RETIRE and not self.retiring:
                        # Out of service before its caller hears back: the next request must
                        # not be sent to a worker that is exiting.
                        self.retiring = self.busy_at_end = True
                        self.end_reason = str(error) if error else f"{self.name} retired"
                        owner._channel_leaving(self)
                if call is None:
                    continue  # failed meanwhile (deadline, or the pool was reset)
                future = call.future
                if future is None:
                    call.complete((payload, data), error)
                else:
                    by_loop.setdefault(future.get_loop(), []).append(
                        (future, (payload, data), error)
                    )
            if not answered:
                continue
            self.last_answer = time.monotonic()
            for loop, items in by_loop.items():
                _call_soon(loop, items)
            if bounded:
                owner._channel_answered(self)

    def _end(self) -> None:
        """The worker is gone: reap it, close the socket, tell the pool, fail what is left."""
        self.dead = True
        self.busy_at_end = self.busy_at_end or bool(self.pending)
        self.exit_code = self._reap()
        self._close()
        if not self.end_reason:
            self.end_reason = f"{self.name} exited (exit code {self.exit_code})"
        self.owner._channel_lost(self)  # first: the pool stops using it before callers hear
        self._fail_pending()

    def _fail_pending(self) -> None:
        while True:
            try:
                _, call = self.pending.popitem()
            except KeyError:
                return
            if self._stop_error is not None:
                call.fail(self._stop_error())
            else:
                call.fail(WorkerLost(self.end_reason, exit_code=self.exit_code))

    def _reap(self) -> int | None:
        process = self._process
        if process is None:
            return None
        try:
            return process.wait(_REAP_S)
        except subprocess.TimeoutExpired:
            # The socket ended but the process lingers: it is of no use any more.
            self.kill()
            return process.wait()

    def _close(self) -> None:
        with self._send_lock:
            self._send_closed = True
            self._queue.append(None)
            self._writer_busy = True
            self._wake_writer.notify()
            writer = self._writer
        if writer is not None:
            writer.join()  # its writes fail at once: the worker's end is closed
        with self._send_lock:
            if self._sock is not None:
                self._sock.close()
