"""Group commit: concurrent submissions share batches; every item gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from kyso.operations.grouping import GroupCommit
from kyso.operations.running import Blocking


class _Recorder:
    def __init__(self, *, fail_items: frozenset[int] = frozenset(), fail_all: bool = False):
        self.batches: list[list[int]] = []
        self.fail_items = fail_items
        self.fail_all = fail_all
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.release.wait(10)
        self.batches.append(list(items))
        if self.fail_all:
            raise OSError("the disk is gone")
        return [ValueError(f"bad {i}") if i in self.fail_items else i * 10 for i in items]


@pytest.fixture
def pool():
    blocking = Blocking(threads=4, name="io")
    yield blocking
    blocking.close()


async def test_concurrent_items_share_batches_in_order(pool):
    batch = _Recorder()
    batch.release.clear()  # the first batch waits, so the others queue behind it
    group = GroupCommit(batch, pool.run)
    tasks = [asyncio.create_task(group.submit(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    batch.release.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(20)]
    assert [i for b in batch.batches for i in b] == list(range(20))  # each once, in order
    assert len(batch.batches) < 20  # shared
    assert len(batch.batches) == group.batches


async def test_an_item_that_fails_fails_alone(pool):
    group = GroupCommit(_Recorder(fail_items=frozenset({3})), pool.run)
    results = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]
    assert isinstance(results[3], ValueError)
    assert str(results[3]) == "bad 3"


async def test_a_batch_that_fails_fails_each_of_its_items_and_the_next_batch_runs(pool):
    batch = _Recorder(fail_all=True)
    group = GroupCommit(batch, pool.run)
    results = await asyncio.gather(*(group.submit(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    batch.fail_all = False
    assert await group.submit(7) == 70


async def test_max_batch_bounds_a_batch(pool):
    batch = _Recorder()
    batch.release.clear()
    group = GroupCommit(batch, pool.run, max_batch=3)
    tasks = [asyncio.create_task(group.submit(i)) for i in range(10)]
    await asyncio.sleep(0.05)
    batch.release.set()
    await asyncio.gather(*tasks)
    assert max(len(b) for b in batch.batches) <= 3
    assert sorted(i for b in batch.batches for i in b) == list(range(10))


async def test_a_cancelled_caller_does_not_cancel_its_item(pool):
    batch = _Recorder()
    batch.release.clear()
    group = GroupCommit(batch, pool.run)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0.02)
    first.cancel()
    second = asyncio.create_task(group.submit(2))
    batch.release.set()
    assert await second == 20
    assert [i for b in batch.batches for i in b] == [1, 2]  # 1 was still committed
