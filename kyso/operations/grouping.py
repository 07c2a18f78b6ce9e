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
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True, weakref_slot=False)
class _Lane(Generic[T, R]):
    """One event loop's queue and the task draining it."""

    queue: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    draining: asyncio.Task[None] | None = None


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
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane[T, R]] = (
            weakref.WeakKeyDictionary()
        )
        self.batches = 0
        """Batches run so far (for tests and metrics)."""

    async def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is waiting; its result, or its error raised."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane()
        future: asyncio.Future[R] = loop.create_future()
        lane.queue.append((item, future))
        if lane.draining is None:
            lane.draining = asyncio.ensure_future(self._drain(lane))
        # Shielded: the batch answers the future even if this caller is cancelled.
        return await asyncio.shield(future)

    async def _drain(self, lane: _Lane[T, R]) -> None:
        try:
            while lane.queue:
                taken = lane.queue[: self._max_batch]
                del lane.queue[: self._max_batch]
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
                    for _, future in taken + lane.queue:
                        if not future.done():
                            future.cancel()
                    lane.queue.clear()
                    raise
                for (_, future), value in zip(taken, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(value, BaseException):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        finally:
            lane.draining = None
