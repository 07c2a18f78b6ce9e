"""Group commit and the outbox drainer: one writer thread appends to the ledger in batches.

A durable commit costs about as much for one row as for a thousand, so the writer takes
everything queued while the previous commit was running and commits it as one transaction.
Two kinds of work reach it:

- events with no change of state of their own (an authorisation refusal): ``submit``
  validates and encodes the event (microseconds) and returns a future that resolves to the
  assigned index once the batch is durable. An invalid event fails only its own future; a
  database failure fails every future of that batch.
- events staged with a change of state (``audit.outbox.stage``): after the change commits,
  ``drained(ids)`` wakes the writer, which appends every pending outbox row in order and
  resolves the future with the indexes. The writer also drains every ``poll_interval``
  seconds, so rows staged by another process, or left by a crash before their drain, are
  appended without anyone waiting for them. A failed drain fails the waiting futures but not
  the rows: they stay pending and are appended by a later drain.

While the database is unreachable the drainer backs off (0.5 s doubling to 30 s, jittered)
instead of polling: waiters are answered at once with the last failure (their RPC answers
UNAVAILABLE), and the log gets one line per doubling of the failures, not a traceback per
poll. The first drain that succeeds again says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from audit.entry import Event, PreparedEvent, prepare_event
from audit.errors import AuditError, LedgerClosed, LedgerUnavailable
from audit.heads import HeadSigner
from audit.ledger import Ledger

__all__ = ["GroupCommitAppender", "schedule_heads"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    prepared: PreparedEvent
    future: Future[int]


@dataclass(frozen=True, slots=True)
class _Waiter:
    outbox_ids: tuple[int, ...]
    future: Future[list[int]]


_STOP = object()
_WAKE = object()
_BACKOFF = (0.5, 30.0)
"""First and longest wait between drains while the database fails (seconds)."""

_T = TypeVar("_T")


def _answer(future: Future[_T], outcome: _T | BaseException) -> None:
    """Resolve ``future`` with ``outcome`` unless its caller stopped waiting.

    A caller awaiting ``append_async``/``drained_async`` that is cancelled (an RPC whose
    client went away) cancels the future: its event is appended all the same, since what it
    records happened, and the writer must live on for every other caller.
    """
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommitAppender:
    """Appends events to ``ledger`` from one writer thread, in batches of up to ``max_batch``.

    Use as a context manager, or call ``close()``: it commits everything already submitted,
    then stops the writer. Events submitted after ``close()`` fail with ``LedgerClosed``.
    """

    def __init__(
        self, ledger: Ledger, *, max_batch: int = 1000, poll_interval: float = 1.0
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._ledger = ledger
        self._max_batch = max_batch
        self._poll_interval = poll_interval
        self._waiting: list[_Waiter] = []  # touched by the writer thread only
        self._failures = 0  # consecutive failed drains (writer thread only)
        self._retry_at = 0.0  # monotonic time before which no drain is tried
        self._last_failure: BaseException | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
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

    def drained(self, outbox_ids: Sequence[int]) -> Future[list[int]]:
        """Drain the outbox now; the future gives the ledger index of each of ``outbox_ids``.

        Call it after the transaction that staged the ids has committed.
        """
        future: Future[list[int]] = Future()
        with self._close_lock:
            if self._closed:
                future.set_exception(
                    LedgerClosed("the audit appender is closed; staged events wait for a restart")
                )
                return future
            self._queue.put(_Waiter(tuple(outbox_ids), future))
        return future

    async def drained_async(self, outbox_ids: Sequence[int]) -> list[int]:
        """``drained`` awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.drained(outbox_ids))

    def wake(self) -> None:
        """Drain the outbox now rather than at the next poll (nobody waits for the result)."""
        self._queue.put(_WAKE)

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
        self._drain()  # rows left by an earlier run of any process
        while not stopping:
            batch: list[_Pending] = []
            try:
                item = self._queue.get(timeout=self._poll_interval)
            except queue.Empty:
                item = _WAKE
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Pending):
                    batch.append(item)
                elif isinstance(item, _Waiter):
                    self._waiting.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            self._drain()
        for waiter in self._waiting:
            _answer(
                waiter.future,
                LedgerClosed("the audit appender closed; the staged events stay pending"),
            )

    def _drain_failed(self, exc: Exception) -> None:
        self._failures += 1
        self._last_failure = exc
        delay = min(_BACKOFF[0] * 2 ** (self._failures - 1), _BACKOFF[1])
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)
        self._retry_at = time.monotonic() + delay
        # One line at the 1st, 2nd, 4th, 8th … failure; a traceback only for the unexpected.
        if self._failures & (self._failures - 1) == 0:
            log.warning(
                "draining the audit outbox failed; staged events stay pending",
                extra={
                    "reason": str(exc),
                    "failed_drains": self._failures,
                    "retry_in_seconds": round(delay, 2),
                },
                exc_info=not isinstance(exc, LedgerUnavailable),
            )

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            indexes = self._ledger.append_prepared([pending.prepared for pending in batch])
        except Exception as exc:
            # Whatever failed, every caller must hear of it, and the writer must live on for
            # the next batch: a dead writer would leave callers waiting forever.
            log.error(
                "audit batch failed",
                extra={"events": len(batch), "reason": str(exc)},
                exc_info=not isinstance(exc, LedgerUnavailable),
            )
            for pending in batch:
                _answer(pending.future, exc)
            return
        for pending, index in zip(batch, indexes, strict=True):
            _answer(pending.future, index)

    @property
    def failing(self) -> str:
        """Why the last drain failed, while the drainer is backing off ("" when it is not)."""
        failure = self._last_failure
        return "" if failure is None or not self._failures else str(failure)

    def _drain(self) -> None:
        """Append every pending outbox row, then answer the waiters whose rows are in."""
        if self._failures and time.monotonic() < self._retry_at and not self._waiting:
            # Backing off the polls. A waiter drains at once instead: it has just committed
            # its change, so the database answers again, and it must not hear a stale failure.
            return
        appended: dict[int, int] = {}
        try:
            while batch := self._ledger.drain_outbox(limit=self._max_batch):
                appended.update(batch)
            if self._waiting:
                unknown = {i for w in self._waiting for i in w.outbox_ids} - appended.keys()
                if unknown:  # appended by another process's drainer
                    found = self._ledger.outbox_indexes(sorted(unknown))
                    appended.update({k: v for k, v in found.items() if v is not None})
        except Exception as exc:
            self._drain_failed(exc)
            for waiter in self._waiting:
                _answer(waiter.future, exc)
            self._waiting.clear()
            return
        if self._failures:
            log.info("draining the audit outbox again", extra={"failed_drains": self._failures})
            self._failures = 0
            self._last_failure = None
        still: list[_Waiter] = []
        for waiter in self._waiting:
            if all(i in appended for i in waiter.outbox_ids):
                _answer(waiter.future, [appended[i] for i in waiter.outbox_ids])
            else:  # not visible yet (another drainer holds it): answered at a later drain
                still.append(waiter)
        self._waiting = still


def schedule_heads(
    ledger: Ledger, signer: HeadSigner, *, interval: float, sign_unchanged: bool = False
) -> asyncio.Task[None]:
    """Start a task on the running loop that signs a tree head every ``interval`` seconds.

    By default a head is signed only when the ledger grew since the latest head, so an idle
    service does not fill the heads table, and only by one process at a time on a shared
    PostgreSQL database (``Ledger.sign_head_if_grown``): replicas take turns, whichever ticks
    first after the ledger grew. Failures are logged and retried at the next tick;
    cancel the task to stop it. Signing runs in a worker thread, off the event loop.
    """
    if interval <= 0:
        raise ValueError("the head-signing interval must be positive")

    def tick() -> None:
        if sign_unchanged:
            ledger.sign_head(signer)
        else:  # replicas on one database: about one head per interval between them
            ledger.sign_head_if_grown(signer)

    async def run() -> None:
        while True:
            try:
                await asyncio.to_thread(tick)
            except AuditError:
                log.exception("signing the audit tree head failed; retrying next interval")
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(run(), name="audit-head-signer")
