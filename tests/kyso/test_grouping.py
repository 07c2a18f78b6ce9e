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


async def test_signed_commits_share_a_batch_and_a_bad_item_fails_alone(config):
    """``Documents.commit_signed``: concurrent commits are grouped; an item refused inside the
    shared transaction leaves nothing of itself (no row, no event) and the others commit."""
    from datetime import UTC, datetime

    import audit
    from kyso.app import Application
    from kyso.authz import Identity
    from kyso.catalogue import SignatureRecord
    from kyso.errors import NotFound
    from kyso.operations.documents import Documents, SignedCommit
    from kyso.server import Server

    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        documents = Documents(app)
        actor = Identity(name="workflow", roles=frozenset({"workflow"}), unit="000.00.21.H49")

        def item(n: int, *, refuse: bool = False) -> SignedCommit:
            def within(conn, stored):
                if refuse:
                    raise RuntimeError("taken over")

            return SignedCommit(
                pdf=b"%PDF-1.7 signed " + str(n).encode(),
                filename=f"{n}.pdf",
                uploader="workflow",
                unit_code="000.00.21.H49",
                signature=SignatureRecord(
                    signer="x", key_alias="seal", level="B-B", signed_at=datetime.now(UTC)
                ),
                event=lambda stored: app.events.event(
                    audit.EventType.SIGNATURE_SEALED,
                    actor=actor,
                    document_sha256=stored.sha256,
                    refs=(str(stored.ref),),
                ),
                within=within,
            )

        outcomes = await asyncio.gather(
            *(documents.commit_signed(item(n, refuse=n == 2)) for n in range(5)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[2], RuntimeError)
        good = [o for n, o in enumerate(outcomes) if n != 2]
        assert len({index for _, index in good}) == 4
        for stored, _ in good:
            assert app.catalogue.get(str(stored.ref)).signatures[0].key_alias == "seal"
        bad = app.store.put(b"%PDF-1.7 signed 2", content_type="application/pdf", metadata={})
        with pytest.raises(NotFound):  # stored maybe (an orphan), never catalogued
            app.catalogue.get(str(bad.ref))
    finally:
        await server.stop()


def test_each_event_loop_has_its_own_batches():
    """Two loops (two threads) submitting at the same time: every item is answered on its own
    loop, and no batch mixes the two."""
    import threading

    blocking = Blocking(threads=2, name="io")
    batch = _Recorder()
    group = GroupCommit(batch, blocking.run)
    answers: dict[int, list[int]] = {}

    def loop_thread(base: int) -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(group.submit(base + i) for i in range(20))))

        answers[base] = asyncio.run(main())

    try:
        threads = [threading.Thread(target=loop_thread, args=(b,)) for b in (0, 100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        blocking.close()
    assert answers[0] == [i * 10 for i in range(20)]
    assert answers[100] == [(100 + i) * 10 for i in range(20)]
    assert all(len({i // 100 for i in b}) == 1 for b in batch.batches)
