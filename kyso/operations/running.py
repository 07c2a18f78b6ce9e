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

Invariant: a call runs with the caller's context variables (the request id for logs).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from kyso.errors import Overloaded

__all__ = ["Blocking", "Executors"]

P = ParamSpec("P")
T = TypeVar("T")

_RETRY_AFTER_SECONDS = 1.0


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
        context = contextvars.copy_context()

        def call() -> T:
            # Counted from the thread's side: the loop's bookkeeping runs on the loop thread, so
            # the start is handed over with call_soon_threadsafe, keeping the dicts loop-owned.
            loop.call_soon_threadsafe(self._started, number)
            return context.run(fn, *args, **kwargs)

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, call)
        finally:
            if self._waiting.pop(number, None) is None:
                self._running -= 1

    def _started(self, number: int) -> None:
        if self._waiting.pop(number, None) is not None:
            self._running += 1

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
