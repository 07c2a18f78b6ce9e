"""Group commit, several processes on one database, and the head-signing schedule."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from audit import (
    GroupCommitAppender,
    InvalidEvent,
    Ledger,
    LedgerClosed,
    LedgerUnavailable,
    schedule_heads,
    verify_database,
)
from audit.outbox import stage
from audit.schema import tree
from tests.audit.conftest import SoftwareHeadSigner, make_event

ROOT = Path(__file__).resolve().parents[2]


def test_group_commit_assigns_dense_indexes_in_batches(ledger: Ledger) -> None:
    batches: list[int] = []
    original = ledger.append_prepared

    def recording(prepared):  # observe batch sizes without changing behaviour
        batches.append(len(prepared))
        return original(prepared)

    ledger.append_prepared = recording  # type: ignore[method-assign]
    events = [make_event(n) for n in range(600)]
    with GroupCommitAppender(ledger, max_batch=50) as appender:
        barrier = threading.Barrier(6)
        results: dict[int, int] = {}

        def produce(part: int) -> None:
            barrier.wait()
            futures = [(n, appender.submit(events[n])) for n in range(part, 600, 6)]
            for n, future in futures:
                results[n] = future.result(timeout=60)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results.values()) == list(range(600))
    for n, index in results.items():
        assert ledger.get_entry(index).event == events[n]
    assert max(batches) <= 50
    assert sum(batches) == 600


def test_invalid_event_fails_only_its_own_future(ledger: Ledger) -> None:
    with GroupCommitAppender(ledger) as appender:
        good = appender.submit(make_event(1))
        bad = appender.submit(make_event(2, details={"x": "y" * 70_000}))
        also_good = appender.submit(make_event(3))
        with pytest.raises(InvalidEvent):
            bad.result(timeout=30)
        assert {good.result(timeout=30), also_good.result(timeout=30)} == {0, 1}


def test_closed_appender_refuses_and_close_drains(ledger: Ledger) -> None:
    appender = GroupCommitAppender(ledger)
    futures = [appender.submit(make_event(n)) for n in range(300)]
    appender.close()
    assert all(f.done() for f in futures)
    assert ledger.size() == 300
    with pytest.raises(LedgerClosed):
        appender.append(make_event(1))
    appender.close()  # idempotent


def test_database_failure_fails_the_batch(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(tree.delete())
    with GroupCommitAppender(ledger) as appender, pytest.raises(LedgerUnavailable):
        appender.append(make_event(1), timeout=30)


async def test_append_async(ledger: Ledger) -> None:
    with GroupCommitAppender(ledger) as appender:
        indexes = await asyncio.gather(*(appender.append_async(make_event(n)) for n in range(50)))
    assert sorted(indexes) == list(range(50))


async def test_a_caller_that_stops_waiting_leaves_the_writer_running(ledger: Ledger) -> None:
    """An RPC whose client went away is cancelled while it awaits its index, which cancels the
    future the writer holds: the event is still appended (what it records happened), and the
    writer goes on answering everyone else."""
    writing, release = threading.Event(), threading.Event()
    original = ledger.append_prepared

    def held(prepared):
        writing.set()
        assert release.wait(timeout=60)
        return original(prepared)

    ledger.append_prepared = held  # type: ignore[method-assign]
    with GroupCommitAppender(ledger) as appender:
        waiting = asyncio.ensure_future(appender.append_async(make_event(1)))
        assert await asyncio.to_thread(writing.wait, 60)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        assert await asyncio.wait_for(appender.append_async(make_event(2)), 30) == 1
    assert ledger.get_entry(0).event == make_event(1)


async def test_a_caller_that_stops_waiting_for_a_drain_leaves_the_writer_running(
    ledger: Ledger,
) -> None:
    draining, release = threading.Event(), threading.Event()
    original = ledger.drain_outbox

    def held(**kwargs):
        draining.set()
        assert release.wait(timeout=60)
        return original(**kwargs)

    with GroupCommitAppender(ledger, poll_interval=60) as appender:
        with ledger.engine.begin() as conn:
            ids = stage(conn, [make_event(1)])
        ledger.drain_outbox = held  # type: ignore[method-assign]
        waiting = asyncio.ensure_future(appender.drained_async(ids))
        assert await asyncio.to_thread(draining.wait, 60)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        assert await asyncio.wait_for(appender.append_async(make_event(2)), 30) == 1
    assert ledger.pending_outbox() == 0
    assert ledger.get_entry(0).event == make_event(1)


@pytest.mark.slow
def test_several_processes_share_one_ledger(ledger: Ledger, db_url: str) -> None:
    count, workers = 120, 3
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit._worker", db_url, str(w), str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    claimed: list[int] = []
    for child in children:
        out, _ = child.communicate(timeout=240)
        assert child.returncode == 0
        claimed += [int(i) for i in out.split()]
    total = count * workers
    assert sorted(claimed) == list(range(total))
    assert ledger.size() == total
    report = verify_database(ledger.engine, trusted_certs=[])
    assert report.ok, report.first_inconsistency
    assert report.entries_checked == total


async def test_schedule_heads_signs_when_the_tree_grew(
    ledger: Ledger, head_signer: SoftwareHeadSigner
) -> None:
    ledger.append(make_event(1))
    task = schedule_heads(ledger, head_signer, interval=0.05)
    try:
        for _ in range(200):
            if ledger.heads():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # several more intervals: nothing new to sign
        assert [h.tree_size for h in ledger.heads()] == [1]
        ledger.append(make_event(2))
        for _ in range(200):
            if ledger.latest_head().tree_size == 2:
                break
            await asyncio.sleep(0.05)
        assert [h.tree_size for h in ledger.heads()] == [1, 2]
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_schedule_heads_survives_a_failing_signer(ledger: Ledger) -> None:
    class Broken:
        certificate = b"not a certificate"
        algorithm = "ecdsa-sha256"

        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("token removed")

    task = schedule_heads(ledger, Broken(), interval=0.02)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    assert not task.done()
    task.cancel()
    assert ledger.heads() == []
