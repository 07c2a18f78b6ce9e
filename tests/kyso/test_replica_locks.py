"""What replicas on one PostgreSQL database do once at a time, and what they see of each other:
the start-up check, the directory's routing index, and the client's list of replicas."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import storage
from exchange.directory import Directory
from exchange.hubs import Hub, Topology
from kyso import db
from kyso.app import components
from kyso.catalogue import Catalogue
from kyso.cli.channel import grpc_target
from kyso.reconcile import RECONCILE_LOCK, start_reconcile


@pytest.mark.postgres
def test_the_start_up_check_runs_in_one_replica_at_a_time(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = db.create_engine(postgres_url)
    try:
        db.upgrade(engine, components())
        store = storage.FilesystemStore(tmp_path / "store")
        catalogue = Catalogue(engine)
        orphan = store.put(b"left by a crash", content_type="text/plain", metadata={})
        with engine.connect() as other:  # another replica is checking
            other.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": RECONCILE_LOCK})
            skipped = start_reconcile(
                store=store, catalogue=catalogue, min_age=timedelta(0), engine=engine
            )
            assert skipped.join(timeout=30) is None
            assert skipped.skipped
            assert skipped.error is None
            other.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": RECONCILE_LOCK})
        task = start_reconcile(
            store=store, catalogue=catalogue, min_age=timedelta(0), engine=engine
        )
        report = task.join(timeout=30)
        assert report is not None
        assert report.catalogued == (str(orphan.ref),)
        assert not task.skipped
        with engine.connect() as conn:  # released once the check is over
            assert conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": RECONCILE_LOCK}
            ).scalar_one()
    finally:
        engine.dispose()


_UNITS = (
    "code,name,parent_code,level,kind,hub\n"
    "000.00.00.H49,UBND tỉnh Quảng Ninh,,1,province,\n"
    "000.00.02.H49,Sở Nội vụ,000.00.00.H49,2,department,{hub}\n"
)


def test_an_import_by_another_process_is_routed_by_once_the_index_is_older_than_max_age(
    db_engine: sa.Engine,
) -> None:
    from exchange.schema import MIGRATIONS

    db.upgrade(db_engine, [db.Component("exchange", MIGRATIONS)])
    topology = Topology(
        [
            Hub(id="H49", root_unit="000.00.00.H49"),
            Hub(id="H49B", root_unit="000.00.99.H49", parent_hub="H49"),
        ]
    )
    importer = Directory(db_engine, topology=topology)  # `kyso directory import`, elsewhere
    importer.import_csv(io.StringIO(_UNITS.format(hub="")))
    fresh = Directory(db_engine, topology=topology, max_age=0.0)
    stale = Directory(db_engine, topology=topology)  # no max_age: until reload()
    for replica in (fresh, stale):
        assert replica.serving_hub("000.00.02.H49") == "H49"
    importer.import_csv(io.StringIO(_UNITS.format(hub="H49B")))
    assert fresh.serving_hub("000.00.02.H49") == "H49B"
    assert stale.serving_hub("000.00.02.H49") == "H49"
    stale.reload()
    assert stale.serving_hub("000.00.02.H49") == "H49B"


def test_a_list_of_replicas_is_called_round_robin() -> None:
    assert grpc_target("127.0.0.1:50051") == ("127.0.0.1:50051", [])
    assert grpc_target("kyso.example.vn:443") == ("kyso.example.vn:443", [])
    assert grpc_target("10.0.0.1:50051, 10.0.0.2:50051") == (
        "ipv4:10.0.0.1:50051,10.0.0.2:50051",
        [("grpc.lb_policy_name", "round_robin")],
    )
    assert grpc_target("[::1]:1,[::1]:2")[0] == "ipv6:[::1]:1,[::1]:2"
