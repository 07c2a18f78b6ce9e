"""The ledger on SQLite and PostgreSQL: appends, entries, roots, proofs, heads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from audit import (
    Entry,
    Event,
    EventNotFound,
    HeadNotFound,
    InvalidEvent,
    InvalidTreeSize,
    Ledger,
    LedgerCorrupt,
    LedgerUnavailable,
    ProofInvalid,
    encode_entry,
    merkle,
    verify_head,
)
from audit.heads import TrustedCertificates
from audit.schema import entries, nodes
from tests.audit.conftest import SoftwareHeadSigner, make_event

Events = Callable[[int], list[Event]]


def _encoded(ledger: Ledger) -> list[bytes]:
    return [encode_entry(entry) for entry in ledger.entries()]


def test_new_ledger_is_empty(ledger: Ledger) -> None:
    assert ledger.size() == 0
    assert ledger.root_hash() == merkle.EMPTY_ROOT
    assert list(ledger.entries()) == []
    with pytest.raises(EventNotFound):
        ledger.get_entry(0)
    with pytest.raises(HeadNotFound):
        ledger.latest_head()


def test_append_assigns_dense_indexes_and_keeps_events(ledger: Ledger, events: Events) -> None:
    batch = events(25)
    assert ledger.append(batch[0]) == 0
    assert ledger.append_batch(batch[1:10]) == range(1, 10)
    assert [ledger.append(event) for event in batch[10:]] == list(range(10, 25))
    assert ledger.size() == 25
    assert [entry.event for entry in ledger.entries()] == batch
    assert ledger.get_entry(17) == Entry(index=17, event=batch[17])
    assert [e.index for e in ledger.entries(start=5, stop=8)] == [5, 6, 7]


def test_roots_and_proofs_agree_with_the_pure_functions(ledger: Ledger, events: Events) -> None:
    for count in (1, 1, 2, 3, 6, 13, 7):  # batches that cross subtree boundaries unevenly
        ledger.append_batch(events(count))
    leaves = _encoded(ledger)
    size = len(leaves)
    assert size == 33
    for tree_size in range(size + 1):
        root = merkle.root_hash(leaves[:tree_size])
        assert ledger.root_hash(tree_size=tree_size) == root
        for index in range(tree_size):
            proof = ledger.inclusion_proof(index=index, tree_size=tree_size)
            assert list(proof.path) == merkle.inclusion_proof(leaves[:tree_size], index)
            assert proof.leaf_hash == merkle.leaf_hash(leaves[index])
            proof.verify(root_hash=root)
        for old_size in range(tree_size + 1):
            consistency = ledger.consistency_proof(old_size=old_size, new_size=tree_size)
            assert list(consistency.path) == merkle.consistency_proof(leaves[:tree_size], old_size)
            consistency.verify(old_root=merkle.root_hash(leaves[:old_size]), new_root=root)


def test_each_perfect_subtree_is_stored_once(ledger: Ledger, events: Events) -> None:
    ledger.append_batch(events(11))
    ledger.append_batch(events(10))
    with ledger.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(nodes.c.id, nodes.c.hash)).all())
    leaves = _encoded(ledger)
    expected = {}
    for level in range(1, 5):
        for position in range(21 >> level):
            span = leaves[position << level : (position + 1) << level]
            expected[((2 * position + 1) << level) - 1] = merkle.root_hash(span)
    assert {key: bytes(value) for key, value in stored.items()} == expected
    assert len(expected) == 21 - (21).bit_count()


def test_proof_requests_out_of_range(ledger: Ledger, events: Events) -> None:
    ledger.append_batch(events(5))
    with pytest.raises(InvalidTreeSize):
        ledger.inclusion_proof(index=2, tree_size=6)
    with pytest.raises(InvalidTreeSize):
        ledger.inclusion_proof(index=5, tree_size=5)
    with pytest.raises(InvalidTreeSize):
        ledger.consistency_proof(old_size=4, new_size=6)
    with pytest.raises(InvalidTreeSize):
        ledger.consistency_proof(old_size=4, new_size=3)
    with pytest.raises(InvalidTreeSize):
        ledger.root_hash(tree_size=6)


@contextmanager
def _count_reads(engine: sa.Engine) -> Iterator[list[int]]:
    """Yield a list that collects the number of bound values of each statement executed."""
    counts: list[int] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        counts.append(len(parameters) if parameters else 0)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield counts
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def test_proofs_read_a_logarithmic_number_of_hashes(ledger: Ledger, events: Events) -> None:
    # 3,000 entries: log2 ≈ 11.6. Every proof is three statements, asking for at most about
    # two hashes per level (the bound values counted include a handful of constants).
    for _ in range(3):
        ledger.append_batch(events(1000))
    for index, tree_size, old_size in [(0, 3000, 1), (1234, 2999, 1500), (2999, 3000, 2047)]:
        with _count_reads(ledger.engine) as counts:
            ledger.inclusion_proof(index=index, tree_size=tree_size)
        assert len(counts) <= 3
        assert sum(counts) <= 2 * 12 + 4
        with _count_reads(ledger.engine) as counts:
            ledger.consistency_proof(old_size=old_size, new_size=tree_size)
        assert len(counts) <= 3
        assert sum(counts) <= 2 * 12 + 4
        with _count_reads(ledger.engine) as counts:
            ledger.root_hash(tree_size=tree_size)
        assert sum(counts) <= 12 + 4


def test_invalid_event_appends_nothing(ledger: Ledger, events: Events) -> None:
    batch = events(3)
    with pytest.raises(InvalidEvent):
        ledger.append_batch([batch[0], "not an event", batch[1]])  # type: ignore[list-item]
    assert ledger.size() == 0
    assert ledger.append_batch(batch) == range(3)


def test_concurrent_threads_get_dense_indexes(ledger: Ledger, events: Events) -> None:
    batch = events(200)
    got: list[int] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        # Half the threads share one Ledger, the others have their own (their own frontier
        # cache, as another process would).
        own = ledger if number % 2 else Ledger(ledger.engine)
        for event in batch[number::4]:
            index = own.append(event)
            with lock:
                got.append(index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(200))
    assert sorted((e.event for e in ledger.entries()), key=lambda e: e.time) == batch


def test_sign_head_and_read_heads(ledger: Ledger, events: Events, head_signer) -> None:
    ledger.append_batch(events(7))
    first = ledger.sign_head(head_signer)
    ledger.append_batch(events(4))
    second = ledger.sign_head(head_signer)
    again = ledger.sign_head(head_signer)
    assert (first.tree_size, second.tree_size) == (7, 11)
    assert first.root_hash == ledger.root_hash(tree_size=7)
    assert ledger.latest_head() == again
    assert ledger.head(tree_size=7) == first
    assert ledger.heads() == [first, second, again]
    with pytest.raises(HeadNotFound):
        ledger.head(tree_size=8)
    trusted = TrustedCertificates([head_signer.certificate])
    for head in ledger.heads():
        verify_head(head, trusted=trusted)
    proof = ledger.consistency_proof(old_size=first.tree_size, new_size=second.tree_size)
    proof.verify(old_root=first.root_hash, new_root=second.root_hash)
    with pytest.raises(ProofInvalid):
        proof.verify(old_root=second.root_hash, new_root=first.root_hash)


def test_empty_tree_head(ledger: Ledger, head_signer: SoftwareHeadSigner) -> None:
    head = ledger.sign_head(head_signer)
    assert (head.tree_size, head.root_hash) == (0, merkle.EMPTY_ROOT)


def test_reads_check_stored_entries(ledger: Ledger, events: Events) -> None:
    ledger.append_batch(events(4))
    with ledger.engine.begin() as conn:
        conn.execute(
            entries.update()
            .where(entries.c.idx == 2)
            .values(entry=encode_entry(Entry(index=2, event=make_event(99))))
        )
    with pytest.raises(LedgerCorrupt, match="entry 2"):
        ledger.get_entry(2)


def test_missing_node_is_reported_as_corruption(ledger: Ledger, events: Events) -> None:
    ledger.append_batch(events(8))
    with ledger.engine.begin() as conn:
        conn.execute(nodes.delete().where(nodes.c.id == 7))  # the level-3 root of 0..7
    with pytest.raises(LedgerCorrupt, match="level 3"):
        ledger.root_hash()


def test_uninitialised_database_is_reported(db_engine: sa.Engine, events: Events) -> None:
    ledger = Ledger(db_engine)
    with pytest.raises(LedgerUnavailable, match="kyso db upgrade"):
        ledger.size()
    with pytest.raises(LedgerUnavailable, match="kyso db upgrade"):
        ledger.append(events(1)[0])
