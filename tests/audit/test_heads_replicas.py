"""Tree heads signed by several processes (replicas) sharing one database."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from audit import Ledger
from audit.ledger import HEADS_LOCK
from kyso.db import create_engine
from tests.audit.conftest import SoftwareHeadSigner, make_event

REPLICAS = 4


def test_a_head_is_signed_only_when_the_tree_grew(
    ledger: Ledger, head_signer: SoftwareHeadSigner
) -> None:
    empty = ledger.sign_head_if_grown(head_signer)  # the first head, even of the empty tree
    assert empty is not None
    assert empty.tree_size == 0
    assert ledger.sign_head_if_grown(head_signer) is None
    ledger.append(make_event(1))
    head = ledger.sign_head_if_grown(head_signer)
    assert head is not None
    assert head.tree_size == 1
    assert ledger.sign_head_if_grown(head_signer) is None
    ledger.append(make_event(2))
    again = ledger.sign_head_if_grown(head_signer)
    assert again is not None
    assert again.tree_size == 2
    assert [h.tree_size for h in ledger.heads()] == [0, 1, 2]


@pytest.fixture
def engines(db_url: str) -> Iterator[list[sa.Engine]]:
    made = [create_engine(db_url) for _ in range(REPLICAS)]
    try:
        yield made
    finally:
        for engine in made:
            engine.dispose()


def test_replicas_signing_together_sign_each_size_once(
    ledger: Ledger, engines: list[sa.Engine], head_signer: SoftwareHeadSigner
) -> None:
    """Every replica's head-signing tick at the same moment, again and again while the tree
    grows: no size is signed twice, and each head is a prefix of the next."""
    replicas = [Ledger(engine) for engine in engines]
    for round_ in range(5):
        ledger.append_batch([make_event(100 * round_ + n) for n in range(3)])
        start = threading.Barrier(REPLICAS)
        failures: list[BaseException] = []

        def tick(replica: Ledger, start: threading.Barrier, failures: list[BaseException]) -> None:
            start.wait()
            try:
                replica.sign_head_if_grown(head_signer)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=tick, args=(r, start, failures)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
    sizes = [head.tree_size for head in ledger.heads()]
    assert sizes == [3, 6, 9, 12, 15]
    heads = ledger.heads()
    for old, new in itertools.pairwise(heads):
        ledger.consistency_proof(old_size=old.tree_size, new_size=new.tree_size).verify(
            old_root=old.root_hash, new_root=new.root_hash
        )


@pytest.mark.postgres
def test_no_head_while_another_process_is_signing_one(
    postgres_url: str, head_signer: SoftwareHeadSigner
) -> None:
    from audit.schema import MIGRATIONS
    from kyso.db import Component, upgrade

    engine = create_engine(postgres_url)
    try:
        upgrade(engine, [Component("audit", MIGRATIONS)])
        ledger = Ledger(engine)
        ledger.append(make_event(1))
        with engine.connect() as other:  # another replica, in the middle of signing
            other.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": HEADS_LOCK})
            assert ledger.sign_head_if_grown(head_signer) is None
            other.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": HEADS_LOCK})
        head = ledger.sign_head_if_grown(head_signer)
        assert head is not None
        assert head.tree_size == 1
    finally:
        engine.dispose()
