"""Several dispatchers on one PostgreSQL database (kyso replicas) never claim one hop twice.

Each "replica" here is a ``Router`` with an engine (a connection pool) of its own, as separate
``kyso serve`` processes have; their dispatchers claim due hops concurrently from threads
started together. The claim is ``SELECT … FOR UPDATE SKIP LOCKED`` inside the claiming
``UPDATE`` (``exchange.routing.outbox``): without SKIP LOCKED a second claimer would wait for
the first's row locks and then claim the same rows again, and this test would see them twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from exchange.adapters import StoredPackages
from exchange.edxml import TrustPolicy, build_package
from exchange.routing import Router, Submission
from kyso.db import create_engine
from storage import FilesystemStore
from tests.exchange.conftest import (
    NOI_VU_NA,
    UNITS_CSV,
    Clock,
    load_directory,
    simple_package,
    topology,
)

pytestmark = pytest.mark.postgres

WARD = "000.21.30.H49"
REPLICAS = 4
HOPS = 120


@pytest.fixture
def engines(postgres_url: str) -> Iterator[list[sa.Engine]]:
    made = [create_engine(postgres_url) for _ in range(REPLICAS)]
    try:
        yield made
    finally:
        for engine in made:
            engine.dispose()


def test_concurrent_dispatchers_claim_every_hop_exactly_once(
    engines: list[sa.Engine], tmp_path: Path, policy: TrustPolicy, rsa_key
) -> None:
    store = StoredPackages(FilesystemStore(tmp_path / "objects"))  # shared, as S3 would be
    clock = Clock()
    routers = [
        Router(
            engine=engine,
            directory=load_directory(engine, topo=topology(peers=True)),
            hub_id="H49",
            store=store,
            policy=policy,
            clock=clock,
        )
        for engine in engines
    ]
    for n in range(HOPS):  # each to Nghệ An's hub: one outbox row per send
        package = build_package(
            simple_package(sender=WARD, to=(NOI_VU_NA,), document_id=f"doc-{n}"), key=rsa_key
        )
        routers[n % REPLICAS].accept(Submission(package=package))

    claimed: list[list[int]] = [[] for _ in routers]
    start = threading.Barrier(REPLICAS)

    def dispatch(number: int) -> None:
        start.wait()
        while items := routers[number].pending_outbox(limit=3, claim_for=timedelta(minutes=5)):
            claimed[number].extend(item.id for item in items)
            routers[number].mark_forwarded([item.id for item in items])

    threads = [threading.Thread(target=dispatch, args=(n,)) for n in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    every = Counter(i for ids in claimed for i in ids)
    assert [i for i, n in every.items() if n > 1] == [], "a hop was claimed twice"
    assert len(every) == HOPS
    assert sum(1 for ids in claimed if ids) > 1, "only one dispatcher ever claimed"
    for router in routers:
        assert router.pending_outbox() == []


def test_replicas_starting_together_migrate_and_import_the_directory_once(
    engines: list[sa.Engine],
) -> None:
    """What each `kyso serve` does first on a new database — apply the migrations, import the
    configured directory when it is empty — done by every replica at the same moment. Without
    the advisory locks (``kyso.db.MIGRATIONS_LOCK``, ``exchange.directory.IMPORT_LOCK``) they
    race to create the same tables and to insert the same units."""
    start = threading.Barrier(REPLICAS)
    failures: list[BaseException] = []

    def start_replica(engine: sa.Engine) -> None:
        start.wait()
        try:
            load_directory(engine, topo=topology())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start_replica, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    with engines[0].connect() as conn:
        versions = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT version) FROM kyso_schema_versions")
        ).one()
        units = conn.execute(sa.text("SELECT count(*) FROM exchange_units")).scalar_one()
    assert versions[0] == versions[1] > 0
    with UNITS_CSV.open(encoding="utf-8") as source:
        assert units == sum(1 for _ in source) - 1
