"""Group commit: callers enqueue events, one writer thread commits them in batches.

A durable commit costs about as much for one row as for a thousand, so the writer takes
everything queued while the previous commit was running and commits it as one transaction.
Callers never touch the database: ``submit`` validates and encodes the event (microseconds)
and returns a future that resolves to the assigned index once the batch is durable. An invalid
event fails only its own future; a database failure fails every future of that batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType

from audit.entry import Event, PreparedEvent, prepare_event
from audit.errors import AuditError, HeadNotFound, LedgerClosed
from audit.heads import HeadSigner
from audit.ledger import Ledger

__all__ = ["GroupCommitAppender", "schedule_heads"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    prepared: PreparedEvent
    future: Future[int]


_STOP = object()


class GroupCommitAppender:
    """Appends events to ``ledger`` from one writer thread, in batches of up to ``max_batch``.

    Use as a context manager, or call ``close()``: it commits everything already submitted,
    then stops the writer. Events submitted after ``close()`` fail with ``LedgerClosed``.
    """

    def __init__(self, ledger: Ledger, *, max_batch: int = 1000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._ledger = ledger
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="audit-appender", daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> Future[int]:
        """Queue ``event``; the future gives its index once committed (or the error)."""
        future: Future[int] = Future()
        try:
            pending = _Pending(prepare_event(event), future)
        except AuditError as exc:
            future.set_exception(exc)
            return future
        with self._close_lock:
            if self._closed:
                future.set_exception(
                    LedgerClosed("the audit appender is closed; events can no longer be queued")
                )
                return future
            self._queue.put(pending)
        return future

    def append(self, event: Event, *, timeout: float | None = None) -> int:
        """Queue ``event`` and wait for its index (blocking)."""
        return self.submit(event).result(timeout=timeout)

    async def append_async(self, event: Event) -> int:
        """Queue ``event`` and await its index without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(event))

    def close(self, *, timeout: float | None = None) -> None:
        """Commit what is queued, then stop the writer thread (idempotent)."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)

    def __enter__(self) -> GroupCommitAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Pending)
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            indexes = self._ledger.append_prepared([pending.prepared for pending in batch])
        except Exception as exc:
            # Whatever failed, every caller must hear of it, and the writer must live on for
            # the next batch: a dead writer would leave callers waiting forever.
            log.error("audit batch failed", extra={"events": len(batch)}, exc_info=True)
            for pending in batch:
                pending.future.set_exception(exc)
            return
        for pending, index in zip(batch, indexes, strict=True):
            pending.future.set_result(index)


def schedule_heads(
    ledger: Ledger, signer: HeadSigner, *, interval: float, sign_unchanged: bool = False
) -> asyncio.Task[None]:
    """Start a task on the running loop that signs a tree head every ``interval`` seconds.

    By default a head is signed only when the ledger grew since the latest head, so an idle
    service does not fill the heads table. Failures are logged and retried at the next tick;
    cancel the task to stop it. Signing runs in a worker thread, off the event loop.
    """
    if interval <= 0:
        raise ValueError("the head-signing interval must be positive")

    def tick() -> None:
        if not sign_unchanged:
            try:
                signed_size: int | None = ledger.latest_head().tree_size
            except HeadNotFound:
                signed_size = None
            if signed_size == ledger.size():
                return
        ledger.sign_head(signer)

    async def run() -> None:
        while True:
            try:
                await asyncio.to_thread(tick)
            except AuditError:
                log.exception("signing the audit tree head failed; retrying next interval")
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(run(), name="audit-head-signer")
