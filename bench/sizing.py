"""The measurements behind docs/scaling.md that are not benchmark rows (no baseline to compare):
bytes per ledger event and per routed document in PostgreSQL, and ledger appends per second on
PostgreSQL from one process and from two sharing one ledger.

``python -m bench.sizing`` prints them; each runs in a fresh PostgreSQL database at
``KYSO_BENCH_PG`` (default the local server) that is dropped afterwards. Not part of
``make bench``: it is a sizing aid, not a goal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from audit import Event, EventType, GroupCommitAppender, Ledger
from audit.schema import MIGRATIONS as AUDIT_MIGRATIONS
from kyso.db import Component, create_engine, upgrade

__all__ = ["main"]

PG_ADMIN = os.environ.get("KYSO_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
EVENTS = 50_000
DOCUMENTS = 2_000
SECONDS = 5.0
PRODUCERS = 8


@contextmanager
def _database() -> Iterator[str]:
    name = f"kyso_sizing_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bytes(engine: sa.Engine, prefix: str) -> int:
    query = sa.text(
        "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables"
        " WHERE relname LIKE :prefix"
    )
    with engine.connect() as conn:
        return int(conn.execute(query, {"prefix": prefix + "%"}).scalar_one())


def _event(number: int) -> Event:
    return Event(
        time=dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC) + dt.timedelta(microseconds=number),
        actor="CN=Hệ thống quản lý văn bản,O=UBND tỉnh Quảng Ninh",
        unit="000.00.02.H49",
        type=EventType.PACKAGE_DELIVERED,
        document_sha256=hashlib.sha256(number.to_bytes(8, "big")).hexdigest(),
        refs=(f"sha256/{hashlib.sha256(b'p' + number.to_bytes(8, 'big')).hexdigest()}",),
        details={"document_id": f"000.00.02.H49,2026/{number:09d}"},
    )


def ledger_bytes_per_event() -> float:
    with _database() as url:
        engine = create_engine(url)
        upgrade(engine, [Component("audit", AUDIT_MIGRATIONS)])
        before = _bytes(engine, "audit_")
        ledger = Ledger(engine)
        for start in range(0, EVENTS, 1000):
            ledger.append_batch([_event(n) for n in range(start, start + 1000)])
        after = _bytes(engine, "audit_")
        engine.dispose()
    return (after - before) / EVENTS


def exchange_bytes_per_document() -> tuple[float, int]:
    """Bytes of exchange rows per routed document (one recipient, delivered, acknowledged)
    and the size of the package (which goes to the object store)."""
    from cryptography.hazmat.primitives import serialization

    from bench import bench_exchange as exchange_bench
    from exchange.directory import Directory
    from exchange.edxml import build_package
    from exchange.routing import Submission
    from exchange.schema import MIGRATIONS as EXCHANGE_MIGRATIONS
    from tests.exchange.pki import Authority

    authority = Authority.create("Sizing Root CA")
    key = authority.issue("Sizing sender", algorithm="rsa")
    attachment = os.urandom(7_000)
    recipients = exchange_bench.RECIPIENTS
    packages = [
        build_package(
            exchange_bench._package(f"size-{n}", (recipients[n % 4],), attachment), key=key
        )
        for n in range(DOCUMENTS)
    ]
    with _database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(url)
        upgrade(engine, [Component("exchange", EXCHANGE_MIGRATIONS)])
        directory = Directory(engine, topology=exchange_bench.TOPOLOGY)
        with exchange_bench.UNITS_CSV.open(encoding="utf-8") as source:
            directory.import_csv(source)
        before = _bytes(engine, "exchange_")
        anchor = authority.certificate.public_bytes(serialization.Encoding.DER)
        router = exchange_bench._router(url, Path(tmp), anchor)
        for start in range(0, DOCUMENTS, 64):
            router.accept_many([Submission(package=p) for p in packages[start : start + 64]])
        for recipient in recipients:
            while items := router.inbox(recipient, limit=500):
                router.ack(recipient, delivery_ids=[i.delivery_id for i in items])
        after = _bytes(engine, "exchange_")
        engine.dispose()
    return (after - before) / DOCUMENTS, len(packages[0])


def _produce(url: str, base: int, results: Any) -> None:
    engine = create_engine(url)
    counts = [0] * PRODUCERS
    with GroupCommitAppender(Ledger(engine)) as appender:
        deadline = time.perf_counter() + SECONDS

        def producer(number: int) -> None:
            next_event = (base + number) << 40
            while time.perf_counter() < deadline:
                futures = [appender.submit(_event(next_event + k)) for k in range(50)]
                next_event += 50
                for future in futures:
                    future.result()
                counts[number] += 50

        threads = [threading.Thread(target=producer, args=(n,)) for n in range(PRODUCERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    engine.dispose()
    results.put(sum(counts))


def ledger_appends_per_second() -> dict[int, float]:
    """Events/s through ``GroupCommitAppender`` from 1 and from 2 processes on one ledger;
    checks that the ledger stayed dense."""
    rates: dict[int, float] = {}
    with _database() as url:
        engine = create_engine(url)
        upgrade(engine, [Component("audit", AUDIT_MIGRATIONS)])
        context = multiprocessing.get_context("spawn")
        for processes in (1, 2):
            results = context.Queue()
            workers = [
                context.Process(target=_produce, args=(url, 16 * processes + n, results))
                for n in range(processes)
            ]
            for worker in workers:
                worker.start()
            total = sum(results.get() for _ in workers)
            for worker in workers:
                worker.join()
            rates[processes] = total / SECONDS
        with engine.connect() as conn:
            count, size, top = conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM audit_entries), (SELECT size FROM audit_tree),"
                    " (SELECT max(idx) FROM audit_entries)"
                )
            ).one()
        engine.dispose()
    if not count == size == top + 1:
        raise AssertionError(f"the ledger is not dense: {count} entries, size {size}, top {top}")
    return rates


def main() -> None:
    print(f"ledger: {ledger_bytes_per_event():,.0f} bytes per event ({EVENTS:,} events)")
    per_document, package = exchange_bytes_per_document()
    print(
        f"exchange: {per_document:,.0f} bytes per routed document ({DOCUMENTS:,} documents,"
        f" one recipient; the {package:,}-byte package is in the object store)"
    )
    for processes, rate in ledger_appends_per_second().items():
        print(f"ledger appends on PostgreSQL, {processes} process(es): {rate:,.0f} events/s")


if __name__ == "__main__":
    main()
