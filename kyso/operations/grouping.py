"""Group commit: concurrent requests share one blocking call (one flush, one transaction).

Why: a signed document costs three durable writes after the signature — its object, its
catalogue row, its ledger event — and each durable write waits for the disk. Done per request,
eight requests in flight queue behind eight flushes of each kind; done together, they share one.

``GroupCommit(batch, run)``: ``await submit(item)`` queues ``item``; while no batch is running,
the queued items (at most ``max_batch``) go to ``batch(items)`` through ``run`` (a
``Blocking.run`` of the caller's pool); items submitted meanwhile wait for the next batch, so a
batch is as large as the concurrency, never delayed by a timer. ``batch`` returns one result per
item, in order: a value, or the exception to raise for that item alone.

Invariants: every submitted item is answered exactly once (its value or an exception); a batch
that raises as a whole fails each of its items with that error; one batch runs at a time per
``GroupCommit`` (so batches commit in submission order). A caller that gives up (its task is
cancelled) does not stop its item: the batch it joined still commits it, as a blocking call
already running in a thread would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """See the module docstring."""

    def __init__(
        self,
        batch: Callable[[Sequence[T]], Sequence[R | BaseException]],
        run: Callable[..., Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._batch = batch
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches run so far (for tests and metrics)."""

    async def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is waiting; its result, or its error raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())
        # Shielded: the batch answers the future even if this caller is cancelled.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                taken = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self.batches += 1
                try:
                    results = await self._run(self._batch, [item for item, _ in taken])
                    if len(results) != len(taken):
                        raise RuntimeError(
                            f"a group commit answered {len(results)} results for {len(taken)} items"
                        )
                except Exception as exc:  # every item of the batch fails with it
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the loop is closing): nobody is left waiting
                    for _, future in taken + self._queue:
                        if not future.done():
                            future.cancel()
                    self._queue.clear()
                    raise
                for (_, future), value in zip(taken, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(value, BaseException):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        finally:
            self._draining = None
