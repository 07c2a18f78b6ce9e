"""The transactional outbox: events commit or roll back with their change, and are appended
to the ledger in order, exactly once, across threads, processes and crashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import GroupCommitAppender, InvalidEvent, Ledger, LedgerClosed, verify_database
from audit.entry import encode_entry
from audit.outbox import stage
from tests.audit.conftest import make_event

ROOT = Path(__file__).resolve().parents[2]

_changes = sa.Table("test_changes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))


@pytest.fixture
def changes(ledger: Ledger) -> sa.Table:
    """A table standing for some component's state."""
    _changes.create(ledger.engine)
    return _changes


def test_staged_events_commit_with_their_change(ledger: Ledger, changes: sa.Table) -> None:
    events = [make_event(n) for n in range(3)]
    with ledger.engine.begin() as conn:
        conn.execute(changes.insert().values(id=1))
        ids = stage(conn, events)
    assert ledger.pending_outbox() == 3
    assert ledger.size() == 0
    with GroupCommitAppender(ledger) as appender:
        indexes = appender.drained(ids).result(timeout=60)
    assert indexes == [0, 1, 2]
    assert ledger.pending_outbox() == 0
    for index, event in zip(indexes, events, strict=True):
        entry = ledger.get_entry(index)
        assert entry.event == event
        assert encode_entry(entry) == encode_entry(type(entry)(index=index, event=event))


def _change_then(ledger: Ledger, changes: sa.Table, events: list, *, fail: bool) -> None:
    """A change and its staged events in one transaction; ``fail`` aborts it after staging."""
    with ledger.engine.begin() as conn:
        conn.execute(changes.insert().values(id=1))
        stage(conn, events)
        if fail:
            raise RuntimeError("the change failed after staging")


def test_a_rolled_back_change_leaves_no_event(ledger: Ledger, changes: sa.Table) -> None:
    with pytest.raises(RuntimeError):
        _change_then(ledger, changes, [make_event(1)], fail=True)
    assert ledger.pending_outbox() == 0
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(changes)).scalar() == 0


def test_an_invalid_event_stages_nothing_and_rolls_the_change_back(
    ledger: Ledger, changes: sa.Table
) -> None:
    too_long = make_event(2, details={"document_id": "x" * 70_000})
    with pytest.raises(InvalidEvent, match="65536-byte limit"):
        _change_then(ledger, changes, [make_event(1), too_long], fail=False)
    assert ledger.pending_outbox() == 0
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(changes)).scalar() == 0


def test_rows_left_by_a_crash_are_appended_at_the_next_start(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        ids = stage(conn, [make_event(n) for n in range(4)])
    # no drainer ran (the process that staged them died); a new one appends them on start
    with GroupCommitAppender(ledger):
        pass
    assert ledger.pending_outbox() == 0
    assert ledger.outbox_indexes(ids) == dict(zip(ids, range(4), strict=True))


def test_direct_events_and_staged_events_share_one_dense_ledger(ledger: Ledger) -> None:
    with GroupCommitAppender(ledger, max_batch=3) as appender:
        direct = [appender.submit(make_event(100 + n)) for n in range(5)]
        staged: list[int] = []
        for n in range(5):
            with ledger.engine.begin() as conn:
                staged += stage(conn, [make_event(n)])
        from_outbox = appender.drained(staged).result(timeout=60)
        indexes = [f.result(timeout=60) for f in direct] + from_outbox
    assert sorted(indexes) == list(range(10))
    assert from_outbox == sorted(from_outbox)  # staged events keep their order
    report = verify_database(ledger.engine, trusted_certs=[])
    assert report.ok, report.first_inconsistency


def test_a_closed_appender_refuses_waiters_but_keeps_the_rows(ledger: Ledger) -> None:
    appender = GroupCommitAppender(ledger)
    appender.close()
    with ledger.engine.begin() as conn:
        ids = stage(conn, [make_event(1)])
    with pytest.raises(LedgerClosed):
        appender.drained(ids).result(timeout=10)
    assert ledger.pending_outbox() == 1


@pytest.mark.slow
def test_several_processes_drain_each_row_exactly_once(ledger: Ledger, db_url: str) -> None:
    count, workers = 60, 3
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit._drainer", db_url, str(w), str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    mapping: dict[int, int] = {}
    for child in children:
        out, _ = child.communicate(timeout=240)
        assert child.returncode == 0
        pairs = [tuple(map(int, pair.split(":"))) for pair in out.split()]
        # one process's changes, committed one after another, are ledgered in that order
        assert [index for _, index in pairs] == sorted(index for _, index in pairs)
        mapping.update(pairs)
    total = count * workers
    assert len(mapping) == total
    assert sorted(mapping.values()) == list(range(total))
    assert ledger.pending_outbox() == 0
    report = verify_database(ledger.engine, trusted_certs=[])
    assert report.ok, report.first_inconsistency
    assert report.entries_checked == total
