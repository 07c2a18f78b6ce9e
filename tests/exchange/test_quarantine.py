"""The router's quarantine on SQLite and PostgreSQL: failures counted, the item set aside at the
bound with its reason (and its journal in the same transaction), never claimed again until
released; hops that never reached the next hub are not counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from exchange import DeliveryNotFound
from exchange.adapters import StoredPackages
from exchange.directory import Directory
from exchange.edxml import CryptographyKey, TrustPolicy, build_package
from exchange.routing import DeliveryState, Quarantined, QuarantineKind, Router, Submission
from exchange.schema import MIGRATIONS, deliveries, outbox
from kyso.db import Component, create_engine, upgrade
from storage import FilesystemStore
from tests.exchange.conftest import NOI_VU_NA, NOI_VU_QN, Clock, simple_package

WARD = "000.21.30.H49"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router(
    db_engine: sa.Engine, directory: Directory, policy: TrustPolicy, clock: Clock, tmp_path: Path
) -> Router:
    return Router(
        engine=db_engine,
        directory=directory,
        hub_id="H49",
        store=StoredPackages(FilesystemStore(tmp_path / "objects")),
        policy=policy,
        lease=timedelta(minutes=5),
        clock=clock,
        max_delivery_attempts=3,
    )


def _send(router: Router, key: CryptographyKey, document_id: str, to: tuple[str, ...]) -> None:
    package = simple_package(sender=WARD, to=to, document_id=document_id)
    router.accept(Submission(package=build_package(package, key=key)))


class Journal:
    """Records what the router journals, and fails the transaction when told to."""

    def __init__(self) -> None:
        self.items: list[Quarantined] = []
        self.fail = False

    def __call__(self, conn: sa.Connection, item: Quarantined) -> None:
        if self.fail:
            raise RuntimeError("the ledger is unavailable")
        self.items.append(item)


def test_a_hop_refused_max_forward_attempts_times_is_quarantined_until_released(
    router: Router, rsa_key, clock: Clock, db_engine: sa.Engine
) -> None:
    _send(router, rsa_key, "doc-1", (NOI_VU_NA,))
    # an absent hub is waited for however long: those failures are not counted
    for _ in range(25):
        [item] = router.pending_outbox()
        router.mark_failed(item.id, error="connection refused", retry_after=timedelta(seconds=5))
        clock.advance(seconds=5)
    # the next hub answers with an error: counted; the tenth (the default bound) sets it aside
    for attempt in range(1, 11):
        [item] = router.pending_outbox()
        due = router.mark_failed(
            item.id, error=f"hub G22 did not take it: PERMISSION_DENIED ({attempt})"
        )
        assert (due is None) is (attempt == 10), f"refusal {attempt}: next attempt at {due}"
        clock.advance(hours=1)  # past the longest backoff
    clock.advance(days=30)
    assert router.pending_outbox() == []
    [quarantined] = router.quarantined()
    assert (quarantined.kind, quarantined.next_hub, quarantined.recipients) == (
        QuarantineKind.HOP,
        "G22",
        (NOI_VU_NA,),
    )
    assert (quarantined.failures, quarantined.reason) == (
        10,
        "hub G22 did not take it: PERMISSION_DENIED (10)",
    )
    [entry] = router.track(document_id="doc-1")
    assert (entry.state, entry.reason) == (DeliveryState.QUARANTINED, quarantined.reason)

    released_with: list[Quarantined] = []
    released = router.release(
        QuarantineKind.HOP, quarantined.id, journal=lambda _, i: released_with.append(i)
    )
    assert released_with == [released]
    assert released.id == quarantined.id
    assert router.quarantined() == []
    [again] = router.pending_outbox()
    assert again.id == quarantined.id
    [entry] = router.track(document_id="doc-1")
    assert (entry.state, entry.reason) == (DeliveryState.QUEUED, None)
    # released with no failures counted: one refusal does not set it aside again
    assert router.mark_failed(again.id, error="refused once more") is not None
    with pytest.raises(DeliveryNotFound):
        router.release(QuarantineKind.HOP, again.id)


def test_a_quarantine_whose_journal_fails_is_not_made(
    router: Router, rsa_key, clock: Clock, db_engine: sa.Engine
) -> None:
    _send(router, rsa_key, "doc-1", (NOI_VU_NA,))
    journal = Journal()
    journal.fail = True
    for _ in range(9):
        [item] = router.pending_outbox()
        router.mark_failed(item.id, error="refused")
        clock.advance(hours=1)
    [item] = router.pending_outbox()
    with pytest.raises(RuntimeError):
        router.mark_failed(item.id, error="refused", journal=journal)
    with db_engine.connect() as conn:
        row = conn.execute(
            sa.select(outbox.c.failures, outbox.c.quarantined_at).where(outbox.c.id == item.id)
        ).one()
    assert (row.failures, row.quarantined_at) == (9, None)  # rolled back with the journal
    assert router.quarantined() == []
    journal.fail = False
    assert router.mark_failed(item.id, error="refused", journal=journal) is None
    assert journal.items == router.quarantined()
    assert len(journal.items) == 1


def test_a_delivery_that_keeps_failing_is_quarantined_and_the_next_ones_go_on(
    router: Router, rsa_key, clock: Clock
) -> None:
    for n in (1, 2):
        _send(router, rsa_key, f"doc-{n}", (NOI_VU_QN,))
    journal = Journal()
    for attempt in (1, 2, 3):
        items = router.inbox(NOI_VU_QN)
        assert [i.document_id for i in items] == ["doc-1", "doc-2"][: 2 if attempt == 1 else 1]
        if attempt == 1:
            router.ack(NOI_VU_QN, delivery_ids=[items[1].delivery_id])
        outcome = router.delivery_failed(
            items[0].delivery_id, error=f"IntegrityError: damaged ({attempt})", journal=journal
        )
        assert (outcome is None) is (attempt < 3)
        assert router.inbox(NOI_VU_QN) == []  # leased until its lease runs out
        clock.advance(minutes=6)
    assert router.inbox(NOI_VU_QN) == []  # set aside: no longer offered
    [item] = journal.items
    assert (item.kind, item.document_id, item.recipients, item.failures) == (
        QuarantineKind.DELIVERY,
        "doc-1",
        (NOI_VU_QN,),
        3,
    )
    assert router.quarantined() == [item]
    [entry] = router.track(document_id="doc-1")
    assert (entry.state, entry.reason) == (DeliveryState.QUARANTINED, "IntegrityError: damaged (3)")
    router.release(QuarantineKind.DELIVERY, item.id)
    [back] = router.inbox(NOI_VU_QN)
    assert back.delivery_id == item.id
    assert router.quarantined() == []


def test_migration_2_adds_the_quarantine_columns_to_a_version_1_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'v1.db'}")
    try:
        upgrade(engine, [Component("exchange", MIGRATIONS[:1])])
        with engine.begin() as conn:  # a version-1 database: its tables without the columns
            for table, columns in (
                (deliveries.name, ("failures", "last_error", "quarantined_at")),
                (outbox.name, ("failures", "quarantined_at")),
            ):
                for column in columns:
                    conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        upgrade(engine, [Component("exchange", MIGRATIONS)])
        inspector = sa.inspect(engine)
        assert {"failures", "last_error", "quarantined_at"} <= {
            c["name"] for c in inspector.get_columns(deliveries.name)
        }
        assert {"failures", "quarantined_at"} <= {
            c["name"] for c in inspector.get_columns(outbox.name)
        }
    finally:
        engine.dispose()
