"""Signing worker processes: the PDF work of the server on every core.

Why: pyHanko's work (parsing, stamping, serialising, hashing) is CPU-bound Python, so one
process signs on one core. ``SigningPool`` runs ``workers`` processes (fresh interpreters started
directly, not multiprocessing's ``spawn``, which re-runs the caller's ``__main__`` in the child:
a server or a test runner cannot allow that). Each builds its own ``hsm.KeyRing(workers=1)``
over the same ``KeySpec`` list (PKCS#11 state never crosses a process boundary) and its own
``SigningEngine`` with every stamp prepared, then freezes the garbage collector's view of
those long-lived objects.

Protocol (one duplex pipe per worker, messages framed by ``multiprocessing.connection``):
- parent → worker once at start: the pickled worker configuration (key specs, profiles,
  settings; PIN *sources*, never PINs);
- worker → parent once at start: ``("ready", pid)`` or ``("failed", exception)``;
- parent → worker per request: a pickled header ``(request id, SignRequest fields but the PDF)``
  then the PDF's bytes as a message of their own (no pickling of the document);
- worker → parent per request: ``(request id, True, SignedDocument fields but the PDF)`` then the
  PDF, or ``(request id, False, exception, traceback text)``.
An empty header asks the worker to stop; so does the end of the pipe (the parent is gone).

Errors keep their class and message across the boundary (``SigningError`` subclasses carry their
``field``; ``hsm`` errors their class); an exception that cannot be pickled arrives as a
``RuntimeError`` naming its type. A worker that dies fails its requests in flight with
``SignerUnavailable`` and is restarted in the background with bounded exponential backoff; the
other workers keep serving.

Invariants: the parent never blocks its event loop (a writer and a reader thread per worker do
the pipe I/O); a request is answered exactly once; ``close`` stops every worker and its key ring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import pickle
import queue
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from hsm import HsmError, KeyRing, KeySpec
from hsm.process import start_worker
from signer.engine import (
    KeyProfile,
    SignedDocument,
    SignerSettings,
    SigningEngine,
    SignRequest,
    unknown_alias,
)
from signer.errors import DocumentTooLarge, SignerUnavailable, SigningError

__all__ = ["SignerUnavailable", "SigningPool", "worker_main"]

_log = logging.getLogger(__name__)

_READY = "ready"
_FAILED = "failed"
_STOP = b""
_BACKOFF = (1.0, 30.0)
_STOP_GRACE = 10.0
_WORKER_BOOT = "import sys; from signer.pool import worker_main; worker_main(int(sys.argv[1]))"
_Outgoing = tuple[bytes, bytes] | None
"""A request for the writer thread (header, PDF), or None: send the stop message and end."""
_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(SignRequest) if f.name != "pdf")
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(SignedDocument) if f.name != "pdf")


@dataclass(frozen=True, kw_only=True)
class _WorkerConfig:
    """What a worker process needs to build its engine (pickled to the child; no PIN inside)."""

    key_specs: tuple[KeySpec, ...]
    profiles: Mapping[str, KeyProfile]
    settings: SignerSettings


class SigningPool:
    """``workers`` signing processes over ``key_specs``; see the module docstring.

    The constructor returns when every worker has started its key ring (each key signed a probe)
    and prepared its stamps; it raises the first worker's error otherwise (for instance
    ``hsm.PinSourceError``), after stopping what it started.
    """

    def __init__(
        self,
        *,
        key_specs: Sequence[KeySpec],
        profiles: Mapping[str, KeyProfile],
        settings: SignerSettings,
        workers: int,
        start_timeout: float = 120.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a signing pool needs at least one worker, not {workers}")
        by_alias = {spec.alias: spec for spec in key_specs}
        missing = sorted(set(profiles) - set(by_alias))
        if missing:
            raise ValueError(f"signing keys without a key spec: {', '.join(missing)}")
        prompts = [a for a in profiles if by_alias[a].pin.kind == "prompt"]
        if prompts:
            raise ValueError(
                f"keys {', '.join(prompts)} read their PIN from a prompt; signing workers run "
                "without a terminal: use an env: or file: PIN source"
            )
        self._config = _WorkerConfig(
            key_specs=tuple(by_alias[alias] for alias in profiles),
            profiles=dict(profiles),
            settings=settings,
        )
        self._aliases = frozenset(profiles)
        self._max_size = settings.max_document_size
        self._start_timeout = start_timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._workers: list[_Worker] = []
        slots = [_Worker(self, index) for index in range(workers)]
        try:
            for worker in slots:
                worker.launch()
            for worker in slots:
                worker.await_ready()
        except BaseException:
            for worker in slots:
                worker.stop()
            raise
        self._workers = slots

    @property
    def size(self) -> int:
        return len(self._workers)

    def pids(self) -> tuple[int | None, ...]:
        """Process ids of the workers (None for a worker being restarted)."""
        return tuple(w.pid if w.serving else None for w in self._workers)

    async def sign(self, request: SignRequest) -> SignedDocument:
        """Sign ``request`` in the least busy worker; raise its error, or SignerUnavailable."""
        if request.alias not in self._aliases:
            raise unknown_alias(request.alias, self._aliases)
        if len(request.pdf) > self._max_size:
            # Checked here too, so an oversized document is not copied to a worker at all.
            raise DocumentTooLarge(
                f"the document is {len(request.pdf):,} bytes; the limit is "
                f"{self._max_size:,} bytes. Split it or ask the operator to raise the limit."
            )
        with self._lock:
            serving = [w for w in self._workers if w.serving]
        if not serving:
            raise SignerUnavailable(
                "no signing worker is running (they are being restarted); nothing was signed, "
                "try again shortly"
            )
        worker = min(serving, key=lambda w: len(w.pending))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SignedDocument] = loop.create_future()
        worker.submit(next(self._ids), request, loop, future)
        return await future

    def close(self) -> None:
        """Stop every worker (each closes its key ring); pending requests fail."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.stop()

    def __enter__(self) -> SigningPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the workers' threads ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def restart_later(self, worker: _Worker) -> None:
        """Restart ``worker`` in the background until it serves again or the pool closes."""
        threading.Thread(
            target=self._restart, args=(worker,), name=f"signer-restart-{worker.index}", daemon=True
        ).start()

    def _restart(self, worker: _Worker) -> None:
        delay = _BACKOFF[0]
        while not self._closed:
            worker.stop()
            try:
                worker.launch()
                worker.await_ready()
            except (SigningError, HsmError, OSError) as exc:
                _log.error("signing worker %d failed to restart: %s", worker.index, exc)
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF[1])
                continue
            _log.info("signing worker %d restarted (pid %s)", worker.index, worker.pid)
            if self._closed:
                worker.stop()
            return


class _Pending:
    __slots__ = ("future", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[SignedDocument]
    ) -> None:
        self.loop = loop
        self.future = future

    def settle(self, result: SignedDocument | BaseException) -> None:
        self.loop.call_soon_threadsafe(_settle, self.future, result)


def _settle(future: asyncio.Future[SignedDocument], result: SignedDocument | BaseException) -> None:
    if future.done():  # the caller gave up (cancelled); nothing to deliver
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class _Worker:
    """The parent's side of one worker process: its pipe, its threads and its requests."""

    def __init__(self, pool: SigningPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.pending: dict[int, _Pending] = {}
        self.serving = False
        self.pid: int | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[_Outgoing] = queue.SimpleQueue()

    def launch(self) -> None:
        try:
            ours, process = start_worker(_WORKER_BOOT)
        except OSError as exc:
            raise SignerUnavailable(f"cannot start a signing worker: {exc.strerror}") from exc
        conn = Connection(ours.detach())
        self._process, self._conn, self.pid = process, conn, process.pid
        conn.send_bytes(pickle.dumps(self.pool._config, protocol=pickle.HIGHEST_PROTOCOL))

    def await_ready(self) -> None:
        conn = self._conn
        assert conn is not None
        if not conn.poll(self.pool._start_timeout):
            self.stop()
            raise SignerUnavailable(
                f"signing worker {self.index} did not start within "
                f"{self.pool._start_timeout:g} s; check the token and the logs"
            )
        try:
            kind, value = _loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self.stop()
            raise SignerUnavailable(
                f"signing worker {self.index} exited while starting; see the logs"
            ) from exc
        if kind == _FAILED:
            self.stop()
            raise value
        self._outbox = queue.SimpleQueue()
        threading.Thread(
            target=self._write,
            args=(conn, self._outbox),
            name=f"signer-{self.index}-w",
            daemon=True,
        ).start()
        reader = threading.Thread(
            target=self._read, args=(conn,), name=f"signer-{self.index}-r", daemon=True
        )
        reader.start()
        with self._lock:
            self._reader = reader
            self.serving = True

    def submit(
        self,
        request_id: int,
        request: SignRequest,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[SignedDocument],
    ) -> None:
        header = pickle.dumps(
            (request_id, {name: getattr(request, name) for name in _REQUEST_FIELDS}),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        with self._lock:
            if not self.serving:
                raise SignerUnavailable("the signing worker stopped; try again")
            self.pending[request_id] = _Pending(loop, future)
        self._outbox.put((header, request.pdf))

    def stop(self) -> None:
        """Ask the process to stop, then make sure it has (SIGKILL after a grace period)."""
        with self._lock:
            self.serving = False
            pending, self.pending = self.pending, {}
            process, conn, reader = self._process, self._conn, self._reader
            self._process = self._conn = self._reader = None
        self._outbox.put(None)  # the writer sends the stop message, then ends
        if process is not None:
            try:
                process.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Closed only once the reader has seen the end of the pipe: closing a descriptor that
        # another thread is blocked reading would not wake it (and the number could be reused).
        if reader is not None:
            reader.join(_STOP_GRACE)
        if conn is not None:
            conn.close()
        for call in pending.values():
            call.settle(SignerUnavailable("the signing worker was stopped; nothing was signed"))

    # -- threads ------------------------------------------------------------------------------

    def _write(self, conn: Connection, outbox: queue.SimpleQueue[_Outgoing]) -> None:
        while True:
            item = outbox.get()
            try:
                if item is None:
                    conn.send_bytes(_STOP)
                    return
                header, pdf = item
                conn.send_bytes(header)
                conn.send_bytes(pdf)
            except (OSError, ValueError):
                return  # the reader notices the dead pipe and fails what is pending

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                header = conn.recv_bytes()
                request_id, ok, *rest = _loads(header)
                result: SignedDocument | BaseException
                if ok:
                    pdf = conn.recv_bytes()
                    result = SignedDocument(pdf=pdf, **rest[0])
                else:
                    result = rest[0]
                    if not isinstance(result, SigningError | HsmError):
                        _log.error("signing worker %d failed a request:\n%s", self.index, rest[1])
            except (EOFError, OSError):
                break
            with self._lock:
                call = self.pending.pop(request_id, None)
            if call is not None:
                call.settle(result)
        self._lost(conn)

    def _lost(self, conn: Connection) -> None:
        with self._lock:
            if self._conn is not conn:  # stopped on purpose (stop() swapped the connection)
                return
            self.serving = False
            pending, self.pending = self.pending, {}
        code = self._process.poll() if self._process is not None else None
        _log.error("signing worker %d (pid %s) died (exit code %s)", self.index, self.pid, code)
        for call in pending.values():
            call.settle(
                SignerUnavailable(
                    "the signing worker processing this request died; nothing was signed, "
                    "send the request again"
                )
            )
        if not self.pool.closed:
            self.pool.restart_later(self)


# -- the worker process ----------------------------------------------------------------------


def worker_main(fd: int) -> None:
    """Entry point of a worker process (``fd``: its end of the pipe); not for other callers.

    Builds the engine from the configuration the parent sends, then signs until told to stop.
    """
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        config: _WorkerConfig = _loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    try:
        # A short backoff and health interval: this ring follows a token that comes back within
        # about two seconds of the server's own ring, which is what health reports.
        keyring = KeyRing(config.key_specs, workers=1, backoff=(0.2, 2.0), health_interval=1.0)
    except BaseException as exc:
        conn.send_bytes(pickle.dumps((_FAILED, _portable(exc))))
        return
    loop = asyncio.new_event_loop()
    try:
        try:
            engine = SigningEngine(keyring=keyring, keys=config.profiles, settings=config.settings)
            engine.warm_up()
        except BaseException as exc:
            conn.send_bytes(pickle.dumps((_FAILED, _portable(exc))))
            return
        conn.send_bytes(pickle.dumps((_READY, os.getpid())))
        _serve(conn, engine, loop)
    finally:
        loop.close()
        keyring.close()


def _serve(conn: Connection, engine: SigningEngine, loop: asyncio.AbstractEventLoop) -> None:
    while True:
        try:
            header = conn.recv_bytes()
            if header == _STOP:
                return
            request_id, fields = _loads(header)
            pdf = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone or closed the pipe
        try:
            signed = loop.run_until_complete(engine.sign(SignRequest(pdf=pdf, **fields)))
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc))
            conn.send_bytes(pickle.dumps((request_id, False, _portable(exc), detail)))
            continue
        result = {name: getattr(signed, name) for name in _RESULT_FIELDS}
        conn.send_bytes(pickle.dumps((request_id, True, result), protocol=pickle.HIGHEST_PROTOCOL))
        conn.send_bytes(signed.pdf)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling with its class and message, else a RuntimeError naming it."""
    try:
        _loads(pickle.dumps(exc))
    except Exception:  # any pickling failure gets the same fallback
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _loads(data: bytes) -> Any:
    # Only ever bytes from the other end of a private pipe between this package's own parent
    # and worker processes, never from a client: unpickling them is safe.
    return pickle.loads(data)  # noqa: S301
