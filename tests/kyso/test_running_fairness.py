"""The blocking pools share their threads between clients in turn (kyso.operations.running)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kyso.errors import Overloaded
from kyso.operations.running import Blocking, work_owner


async def _queue(pool: Blocking, owner: str, tag: str, work: object) -> None:
    work_owner.set(owner)  # a task runs in its own copy of the context
    assert callable(work)
    await pool.run(work, tag)


async def _wait_for(condition: object, *, what: str) -> None:
    assert callable(condition)
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def test_a_client_with_a_long_queue_delays_another_by_one_call_not_by_its_queue() -> None:
    pool = Blocking(threads=1, name="test")
    started: list[str] = []
    gate = threading.Event()

    def work(tag: str) -> None:
        started.append(tag)
        gate.wait(10)

    try:
        flood = [
            asyncio.create_task(_queue(pool, "flooder", f"flood-{i}", work)) for i in range(20)
        ]
        await _wait_for(lambda: pool.waiting == 19, what="the flooder's queue")
        other = asyncio.create_task(_queue(pool, "clerk", "clerk", work))
        await _wait_for(lambda: pool.waiting == 20, what="the clerk's call queued")
        gate.set()
        await asyncio.gather(*flood, other)
    finally:
        pool.close()
    # One flood call held the thread, the flooder was first in turn, then the clerk: third at
    # worst, where one queue in arrival order made it wait for all twenty.
    assert started.index("clerk") <= 2, started
    assert sorted(started) == sorted([f"flood-{i}" for i in range(20)] + ["clerk"])


async def test_a_client_alone_uses_every_thread() -> None:
    pool = Blocking(threads=4, name="test")
    inside = threading.Semaphore(0)
    gate = threading.Event()

    def work(_: str) -> None:
        inside.release()
        gate.wait(10)

    try:
        tasks = [asyncio.create_task(_queue(pool, "alone", str(i), work)) for i in range(6)]
        await _wait_for(lambda: pool.running == 4 and pool.waiting == 2, what="4 running")
        gate.set()
        await asyncio.gather(*tasks)
    finally:
        pool.close()
    assert pool.running == 0
    assert pool.waiting == 0


async def test_a_caller_that_stops_waiting_keeps_its_thread_until_the_work_ends() -> None:
    pool = Blocking(threads=1, name="test")
    gate = threading.Event()
    started: list[str] = []

    def work(tag: str) -> None:
        started.append(tag)
        gate.wait(10)

    try:
        first = asyncio.create_task(_queue(pool, "a", "first", work))
        await _wait_for(lambda: pool.running == 1, what="the first call running")
        second = asyncio.create_task(_queue(pool, "b", "second", work))
        waiting_then_cancelled = asyncio.create_task(_queue(pool, "c", "never", work))
        await _wait_for(lambda: pool.waiting == 2, what="two calls waiting")
        first.cancel()
        waiting_then_cancelled.cancel()
        await asyncio.sleep(0.05)
        # The first call's thread is still busy: the second call must not have started on
        # a thread the pool does not have (nothing waits inside the executor's own queue).
        assert started == ["first"]
        assert pool.running == 1
        assert pool.waiting == 1
        gate.set()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(asyncio.CancelledError):
            await waiting_then_cancelled
    finally:
        pool.close()
    assert started == ["first", "second"]
    assert pool.running == 0
    assert pool.waiting == 0


async def test_a_full_queue_refuses_at_once() -> None:
    pool = Blocking(threads=1, name="test", queue_limit=2)
    gate = threading.Event()

    def work(_: str) -> None:
        gate.wait(10)

    try:
        tasks = [asyncio.create_task(_queue(pool, "a", str(i), work)) for i in range(3)]
        await _wait_for(lambda: pool.running == 1 and pool.waiting == 2, what="a full queue")
        with pytest.raises(Overloaded, match="the server is busy"):
            await pool.run(work, "one too many")
        gate.set()
        await asyncio.gather(*tasks)
    finally:
        pool.close()
