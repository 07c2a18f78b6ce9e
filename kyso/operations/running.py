"""Where an operation's blocking work runs: bounded pools of threads, one per kind of work.

Why not ``asyncio.to_thread``: it shares the loop's default pool (cores + 4 threads) with every
library that uses it, so a few slow calls of one kind (idle uploads, slow verifications) starve
all the others, the health probes included. Each kind of work has its own pool here:

- ``io``: database and object-store calls (``[server] io_threads``);
- ``transfer``: streamed uploads, one thread per upload in progress (``[limits] transfer_threads``);
- ``xml``: parsing and checking edXML packages (``[limits] xml_threads``);
- ``pdf``: waiting on the signing and verifying worker processes (``[limits] pdf_threads``);
- ``health``: the dependency probes, never shared, so the health check answers when every
  other pool is full.

Admission: a pool lets at most ``queue_limit`` calls wait for a thread; one more is refused at
once with :class:`~kyso.errors.Overloaded` (RESOURCE_EXHAUSTED with a retry delay), so a flood
queues nothing unbounded. A pool whose oldest waiting call has waited longer than
``saturated_after`` seconds is *saturated*; the health monitor reports it (NOT_SERVING).

Fairness: calls waiting for a thread wait in one queue per client (:data:`work_owner`, set by
the interceptor when it admits a call) and a freed thread goes to the clients in turn, one call
each. A client with 60 calls queued therefore delays another client's call by at most one call
per client ahead of it, not by its whole queue, which a single first-in-first-out queue did.
The pool stays work-conserving: a client alone may use every thread.

Invariants: a call runs with the caller's context variables (the request id for logs); at most
``threads`` calls hold a thread at once (a slot is given back when the thread's work ends, even
if its caller stopped waiting), so nothing waits inside the executor's own queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from kyso.errors import Overloaded

__all__ = ["Blocking", "Executors", "work_owner"]

P = ParamSpec("P")
T = TypeVar("T")

_RETRY_AFTER_SECONDS = 1.0

work_owner: contextvars.ContextVar[str] = contextvars.ContextVar("kyso_work_owner", default="")
"""Whose work a blocking call is: the client's name for an RPC (set at admission), "" for the
server's own background work. Pools share their threads fairly between owners."""


class _FairSlots:
    """``slots`` places handed out to waiting owners in turn; used from the event loop only.

    Invariant: a place is free only when no owner waits (a released place goes straight to
    the next waiter), so a call never waits while a place is free.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        # Owners in the order they will next be served; each with its waiters, oldest first.
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, owner: str) -> None:
        if self._free > 0 and not self._queues:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(owner, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # given a place just as the caller stopped waiting: pass it on
            else:
                queue = self._queues.get(owner)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._queues[owner]
            raise

    def release(self) -> None:
        while self._queues:
            owner = next(iter(self._queues))
            queue = self._queues.pop(owner)
            waiter = queue.popleft()
            if queue:
                self._queues[owner] = queue  # to the back of the turn
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Blocking:
    """A bounded thread pool for blocking calls from coroutines, with a bounded queue."""

    def __init__(
        self,
        *,
        threads: int,
        name: str = "io",
        queue_limit: int | None = None,
        saturated_after: float = 5.0,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.name = name
        self.threads = threads
        self._queue_limit = queue_limit
        self._saturated_after = saturated_after
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"kyso-{name}")
        self._slots = _FairSlots(threads)
        self._running = 0
        self._waiting: dict[int, float] = {}  # call number → when it started waiting (monotonic)
        self._numbers = itertools.count()

    @property
    def waiting(self) -> int:
        """Calls waiting for a thread now."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Calls holding a thread now."""
        return self._running

    def longest_wait(self) -> float:
        """Seconds the oldest waiting call has waited (0 when none waits)."""
        if not self._waiting:
            return 0.0
        return time.monotonic() - min(self._waiting.values())

    @property
    def saturated(self) -> bool:
        return self.longest_wait() > self._saturated_after

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool and await its result.

        Raises :class:`Overloaded` at once when the pool's queue is full.
        """
        if (
            self._queue_limit is not None
            and self._running >= self.threads
            and len(self._waiting) >= self._queue_limit
        ):
            raise Overloaded(
                f"the server is busy ({self.name} work: {self._running} running, "
                f"{len(self._waiting)} waiting); retry in {_RETRY_AFTER_SECONDS:g} s",
                retry_after=_RETRY_AFTER_SECONDS,
            )
        number = next(self._numbers)
        self._waiting[number] = time.monotonic()
        try:
            await self._slots.acquire(work_owner.get())
        finally:
            del self._waiting[number]
        self._running += 1
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def call() -> T:
            return context.run(fn, *args, **kwargs)

        try:
            work = self._pool.submit(call)
        except BaseException:
            self._finished()
            raise

        def finished(_: concurrent.futures.Future[T]) -> None:
            # The place is given back when the thread is done, not when the caller stops
            # waiting: a cancelled caller's work still holds its thread until it ends.
            # A closed loop has nobody waiting for a place any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finished)

        work.add_done_callback(finished)
        return await asyncio.wrap_future(work)

    def _finished(self) -> None:
        self._running -= 1
        self._slots.release()

    def close(self) -> None:
        """Let running calls finish; refuse new ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Executors:
    """The application's pools, one per kind of blocking work (see the module docstring)."""

    io: Blocking
    transfer: Blocking
    xml: Blocking
    pdf: Blocking
    health: Blocking

    def __iter__(self) -> Iterator[Blocking]:
        return iter((self.io, self.transfer, self.xml, self.pdf, self.health))

    def saturated(self) -> list[str]:
        """A line per saturated pool, saying how long its oldest call has waited."""
        return [
            f"{pool.name} pool saturated: {pool.running} running, {pool.waiting} waiting, "
            f"the oldest for {pool.longest_wait():.1f} s"
            for pool in self
            if pool.saturated
        ]

    def close(self) -> None:
        for pool in self:
            pool.close()
