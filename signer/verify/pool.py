"""``Verifier``: verification in worker processes with a memory cap and a per-document timeout.

One bad document must not take the service down. Each worker is a separate process (started
with ``spawn``: no state or threads inherited from the server) with ``RLIMIT_AS`` set before it
reads any document; a worker handles one document at a time. The parent waits for the answer at
most ``policy.limits.timeout_seconds``: past that, or when the worker dies (a parser crash, the
kernel's OOM killer), the worker is killed and replaced and the caller gets a report
(INDETERMINATE / RESOURCE_LIMIT or VERIFIER_CRASHED) instead of an exception. A worker that hit a
limit is replaced too, so a near-exhausted heap does not carry over to the next document.

``spawn`` re-imports the caller's ``__main__`` module in each worker, as multiprocessing always
does: a script that creates a Verifier needs the usual ``if __name__ == "__main__":`` guard.

Thread-safe: ``verify`` may be called from several threads (``verify_async`` runs it in one);
at most ``workers`` documents are verified at a time, the others wait for a free worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import queue
import resource
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType

from signer.verify.engine import crash_report, limit_report, verify_pdf
from signer.verify.errors import VerifierClosed
from signer.verify.policy import VerificationPolicy
from signer.verify.report import SubIndication, VerificationReport
from signer.verify.structure import install_fast_hex_reader

__all__ = ["DEFAULT_MEMORY_BYTES", "Verifier"]

_log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 1536 * 1024 * 1024
"""Address-space cap of a worker: pyHanko and its libraries need ~300 MiB of it at rest."""

_STOP_GRACE_S = 5.0
_START_TIMEOUT_S = 60.0


def _worker_main(conn: Connection, memory_bytes: int, fast_locator: bool) -> None:
    """Worker loop: receive ``(data, policy)``, send a report; ``None`` stops it."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # pyHanko logs every validation failure with a traceback; the report carries the reason.
    for name in ("pyhanko", "pyhanko_certvalidator", "signer.verify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if fast_locator:
        install_fast_hex_reader()
    gc.collect()
    gc.freeze()  # the imported modules are long-lived: keep them out of every collection
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        data, policy = message
        conn.send(verify_pdf(data, policy=policy))


class _Worker:
    def __init__(self, memory_bytes: int, fast_locator: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_worker_main,
            args=(child, memory_bytes, fast_locator),
            name="kyso-verify",
            daemon=True,
        )
        self.process.start()
        child.close()
        self._ready = False

    def wait_ready(self) -> None:
        if self._ready:
            return
        if not self.conn.poll(_START_TIMEOUT_S) or self.conn.recv() != "ready":
            raise EOFError("the verification worker did not start")
        self._ready = True

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_STOP_GRACE_S)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # already gone: kill() below reaps it
            self.conn.send(None)
        self.process.join(_STOP_GRACE_S)
        self.kill()


class Verifier:
    """Owns ``workers`` verification processes; see the module docstring.

    ``fast_locator``: install :func:`~signer.verify.structure.install_fast_hex_reader` in the
    workers (identical results, less time spent reading ``/Contents``).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        fast_locator: bool = True,
    ) -> None:
        self._count = workers or os.cpu_count() or 1
        self._memory_bytes = memory_bytes
        self._fast_locator = fast_locator
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(self._count):
            self._add_worker()

    @property
    def workers(self) -> int:
        return self._count

    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the live workers (for monitoring; they change when one is replaced)."""
        with self._lock:
            return tuple(w.process.pid for w in self._all if w.process.pid is not None)

    def verify(self, data: bytes, policy: VerificationPolicy) -> VerificationReport:
        """Verify ``data`` in a worker; returns a report for every input, raises only
        :class:`VerifierClosed`."""
        worker = self._take()
        if not worker.process.is_alive():
            # Died while idle (killed from outside): not this document's doing. Once only: a
            # worker that cannot even start is reported below, not retried forever.
            self._replace(worker)
            worker = self._take()
        timeout = policy.limits.timeout_seconds
        try:
            worker.wait_ready()
            worker.conn.send((data, policy))
            if not worker.conn.poll(timeout):
                self._replace(worker)
                return limit_report(
                    data, policy=policy, detail=f"verification took longer than {timeout:g} s"
                )
            report = worker.conn.recv()
        except (EOFError, OSError, ValueError) as exc:
            code = worker.process.exitcode
            _log.warning("verification worker died (exit code %s): %s", code, type(exc).__name__)
            self._replace(worker)
            return crash_report(
                data, policy=policy, detail=f"worker process ended (exit code {code})"
            )
        assert isinstance(report, VerificationReport)
        if report.sub_indication is SubIndication.RESOURCE_LIMIT:
            self._replace(worker)
        else:
            self._give_back(worker)
        return report

    async def verify_async(self, data: bytes, policy: VerificationPolicy) -> VerificationReport:
        """:meth:`verify` without blocking the event loop."""
        return await asyncio.to_thread(self.verify, data, policy)

    def close(self) -> None:
        """Stop every worker; idempotent. Calls after this raise :class:`VerifierClosed`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _add_worker(self) -> None:
        worker = _Worker(self._memory_bytes, self._fast_locator)
        with self._lock:
            if self._closed:
                worker.kill()
                return
            self._all.add(worker)
        self._idle.put(worker)

    def _take(self) -> _Worker:
        while True:
            if self._closed:
                raise VerifierClosed("the verifier was closed; create a new Verifier")
            try:
                worker = self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                if worker in self._all:
                    return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            alive = worker in self._all
        if alive:
            self._idle.put(worker)

    def _replace(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()
        self._add_worker()
