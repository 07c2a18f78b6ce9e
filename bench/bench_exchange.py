"""Exchange benchmarks: routed documents per second within one hub, and fan-out to 713 units.

``run()`` returns, per database (SQLite file in WAL with ``synchronous=FULL``; PostgreSQL at
``KYSO_BENCH_PG``, default the local server), each beside a baseline measured in the same run:

- ``exchange_routed_docs_sqlite`` / ``…_postgresql``: documents/s routed end to end within one
  hub: a signed 10 KB edXML package (one ~7 KB attachment, one local recipient) is verified
  (XML-DSig, RSA-2048, chain to a trust anchor), stored durably in object storage
  (``storage.FilesystemStore``: fsync'd), routed and committed (message, delivery, status 01),
  then pulled from the recipient's inbox and acknowledged. ``KYSO_BENCH_EXCHANGE_PROCS``
  processes (default 2, one per core, as the service runs) each run ``KYSO_BENCH_EXCHANGE_LANES``
  threads (default 2) accepting batches of 64, so that one batch's flush and commit overlap
  another's verification. Baseline: the raw durable-commit rate of the same database,
  one single-row INSERT of a 10 KB value per commit, one connection.
- ``exchange_fanout_713_sqlite`` / ``…_postgresql``: one package addressed to all 713 units of
  Quảng Ninh accepted as one send (verify, store, 713 deliveries and statuses in one commit);
  reported as sends per second (1 / seconds, median of 5) so that higher is better; the goal
  of 0.5 s is 2 sends/s. Baseline: the raw rate of committing 713 rows in one transaction.

Packages are signed before timing starts (signing is the sender's work, not the hub's).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bench.common import Result, result
from exchange.adapters import StoredPackages
from exchange.directory import Directory
from exchange.edxml import (
    Attachment,
    CryptographyKey,
    ManifestReference,
    MessageHeader,
    Organization,
    Package,
    TrustPolicy,
    build_package,
)
from exchange.hubs import Hub, Topology
from exchange.routing import Router, Submission
from exchange.schema import MIGRATIONS
from kyso.db import Component, create_engine, upgrade
from storage import FilesystemStore
from tests.exchange.pki import Authority

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
UNITS_CSV = ROOT / "tests" / "exchange" / "data" / "units-quangninh.csv"
PG_ADMIN = os.environ.get("KYSO_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PROCS = int(os.environ.get("KYSO_BENCH_EXCHANGE_PROCS", "2"))
DOCS_PER_PROC = int(os.environ.get("KYSO_BENCH_EXCHANGE_DOCS", "1500"))
BATCH = 64
LANES = int(os.environ.get("KYSO_BENCH_EXCHANGE_LANES", "2"))  # concurrent batches per process
SENDER = "000.21.30.H49"  # a ward of Hạ Long
RECIPIENTS = ("000.00.02.H49", "000.00.03.H49", "000.00.04.H49", "000.00.05.H49")
TOPOLOGY = Topology([Hub(id="H49", root_unit="000.00.00.H49")])


def _package(document_id: str, to: tuple[str, ...], attachment: bytes) -> Package:
    return Package(
        header=MessageHeader(
            from_=Organization(organ_id=SENDER, organ_name="UBND phường 01"),
            to=tuple(Organization(organ_id=code) for code in to),
            document_id=document_id,
            subject="Về việc báo cáo số liệu thống kê tháng 11",
        ),
        manifest=(ManifestReference(content_id="a1", content_type="application/pdf"),),
        attachments=(Attachment(content_id="a1", content=attachment, name="bao-cao.pdf"),),
    )


def _router(url: str, objects: Path, anchor_der: bytes) -> Router:
    engine = (
        create_engine(url, pool_size=20) if url.startswith("postgresql") else create_engine(url)
    )
    return Router(
        engine=engine,
        directory=Directory(engine, topology=TOPOLOGY),
        hub_id="H49",
        store=StoredPackages(FilesystemStore(objects)),
        policy=TrustPolicy(anchors=(x509.load_der_x509_certificate(anchor_der),)),
    )


def _worker(
    url: str, objects: str, anchor_der: bytes, recipient: str, packages: list[bytes]
) -> int:
    """Route ``packages`` as ``LANES`` concurrent senders would; return the documents acked.

    Each lane accepts whole batches (verify, one group flush of the store, one commit), then
    pulls and acknowledges the recipient's inbox: while one lane waits for a flush or a commit,
    another verifies (verification holds the GIL, so more threads than lanes would only queue).
    """
    router = _router(url, Path(objects), anchor_der)
    batches = [packages[start : start + BATCH] for start in range(0, len(packages), BATCH)]

    def drain() -> int:
        items = router.inbox(recipient, limit=BATCH)
        if items:
            router.ack(recipient, delivery_ids=[i.delivery_id for i in items])
        return len(items)

    def lane(mine: list[list[bytes]]) -> int:
        routed = 0
        for batch in mine:
            router.accept_many([Submission(package=p) for p in batch])
            routed += drain()
        return routed

    with cf.ThreadPoolExecutor(LANES) as pool:
        routed = sum(pool.map(lane, [batches[n::LANES] for n in range(LANES)]))
    # Another lane's pull may have taken fewer than a batch: whatever is left is pulled here.
    while left := drain():
        routed += left
    return routed


def _raw_commit_rates(engine: sa.Engine, count: int = 1500) -> tuple[float, float]:
    """Single-row 10 KB commits per second, and 713-row transactions per second."""
    table = sa.Table(
        "bench_exchange_raw",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary),
    )
    table.create(engine)
    value = os.urandom(10_000)
    started = time.perf_counter()
    with engine.connect() as conn:
        for _ in range(count):
            with conn.begin():
                conn.execute(table.insert().values(data=value))
    rate = count / (time.perf_counter() - started)
    bulk = [{"data": value[:100]} for _ in range(713)]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(table.insert(), bulk)
        times.append(time.perf_counter() - started)
    table.drop(engine)
    return rate, 1 / statistics.median(times)


def _measure(
    url: str, work: Path, authority: Authority, key: CryptographyKey, name: str
) -> dict[str, Result]:
    engine = create_engine(url)
    upgrade(engine, [Component("exchange", MIGRATIONS)])
    directory = Directory(engine, topology=TOPOLOGY)
    with UNITS_CSV.open(encoding="utf-8") as source:
        directory.import_csv(source)
    raw_rate, raw_bulk_rate = _raw_commit_rates(engine)
    anchor_der = authority.certificate.public_bytes(serialization.Encoding.DER)

    attachment = os.urandom(7_000)
    tag = uuid.uuid4().hex[:8]
    per_proc = [
        [
            build_package(_package(f"{tag}-{p}-{n}", (RECIPIENTS[p % 4],), attachment), key=key)
            for n in range(DOCS_PER_PROC)
        ]
        for p in range(PROCS)
    ]
    objects = work / f"objects-{name}"
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(PROCS, mp_context=context) as pool:
        list(pool.map(_sleep, range(PROCS)))  # start the workers before timing
        started = time.perf_counter()
        futures = [
            pool.submit(_worker, url, str(objects), anchor_der, RECIPIENTS[p % 4], per_proc[p])
            for p in range(PROCS)
        ]
        routed = sum(f.result() for f in futures)
        elapsed = time.perf_counter() - started
    assert routed == PROCS * DOCS_PER_PROC, f"routed {routed} of {PROCS * DOCS_PER_PROC}"

    everyone = tuple(u.code for u in directory.units() if u.code.endswith("H49"))
    assert len(everyone) == 713
    router = _router(url, objects, anchor_der)
    times = []
    for n in range(5):
        package = build_package(_package(f"{tag}-fan-{n}", everyone, attachment), key=key)
        started = time.perf_counter()
        accepted = router.accept(Submission(package=package))
        times.append(time.perf_counter() - started)
        assert len(accepted.local) == 713
    engine.dispose()
    return {
        f"exchange_routed_docs_{name}": result(routed / elapsed, raw_rate, "docs/s"),
        f"exchange_fanout_713_{name}": result(
            1 / statistics.median(times), raw_bulk_rate, "sends/s"
        ),
    }


def _sleep(_: int) -> None:
    time.sleep(0.2)


def run() -> dict[str, Result]:
    authority = Authority.create("Bench Root CA")  # the suite's small PKI (cryptography only)
    key = authority.issue("Bench sender", algorithm="rsa")
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="kyso-bench-exchange-") as tmp:
        work = Path(tmp)
        results.update(_measure(f"sqlite:///{work / 'hub.db'}", work, authority, key, "sqlite"))
        database = f"kyso_bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
            results.update(_measure(url, work, authority, key, "postgresql"))
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
    return results


if __name__ == "__main__":
    for bench_name, value in run().items():
        print(f"{bench_name}: {value}")
