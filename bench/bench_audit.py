"""Audit ledger benchmarks: append rate with group commit, and proof time at 10 million entries.

``run()`` returns, each measured against a baseline taken in the same run:

- ``audit_append_rate``: events/s appended through ``GroupCommitAppender`` by 8 producer
  threads into a SQLite file (WAL, ``synchronous=FULL``: every batch is durable). Baseline: the
  raw durable commit rate of that same file, one single-row INSERT per commit, straight through
  ``sqlite3``. Ratio > 1 means group commit appends faster than one could commit at all row by
  row. Goal (issue 24): ≥ 50,000 events/s; a missed goal's reason gives the one writer thread's
  CPU per event (/proc), this process's, and one ``append_batch`` of 1,000 events alone.
- ``audit_inclusion_proof_10m`` / ``audit_consistency_proof_10m``: mean milliseconds to build a
  proof (random index / old size) in a ledger of ``KYSO_BENCH_AUDIT_ENTRIES`` entries (default
  10,000,000). Baseline: the same in a ledger of 1,000 entries. A ratio near 1 is the O(log n)
  claim: 10,000 times more entries cost about 1.3 times more hash reads (log2 24 vs 10).

The large ledger is generated directly, not appended event by event: one real event is encoded
with ``audit.entry.prepare_event`` and entry i is its canonical encoding at index i (so every
row is a genuine, distinct entry). Leaf hashes and every perfect-subtree node are computed in
this process exactly as the ledger computes them (``audit.ledger._grow`` uses the same
frontier rule) and bulk-inserted with ``sqlite3`` executemany, journal and fsync off — a
generation shortcut only; the file is then opened through ``kyso.db.create_engine`` (WAL, full
sync) and proofs go through ``audit.Ledger`` as in the service. Spot checks compare generated
roots with ``audit.merkle.root_hash`` over the same entries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import random
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from audit import Event, EventType, GroupCommitAppender, Ledger, merkle
from audit.entry import prepare_event
from audit.schema import MIGRATIONS
from bench.common import Goal, Result, at_least, judged, number, result, thread_cpu_seconds
from kyso.db import Component, create_engine, upgrade

__all__ = ["run"]

_AUDIT = Component("audit", MIGRATIONS)
_LARGE = int(os.environ.get("KYSO_BENCH_AUDIT_ENTRIES", "10000000"))
_SMALL = 1000
_PROOFS = 300
APPEND_GOAL = at_least(50_000, "value", "events/s")
"""Issue 24: ledger appends ≥ 50,000/s."""


def _event(number: int) -> Event:
    return Event(
        time=dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC) + dt.timedelta(microseconds=number),
        actor="CN=Hệ thống một cửa,O=UBND tỉnh Hà Giang",
        unit="000.00.01.H23",
        type=EventType.SIGNATURE_SEALED,
        document_sha256=hashlib.sha256(number.to_bytes(8, "big")).hexdigest(),
        refs=(f"session/{number}",),
        key="pkcs11:token=kyso-seal;object=seal",
        details={"level": "B-LT"},
    )


def _migrated(path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine, [_AUDIT])
    return engine


def _raw_commit_rate(path: Path, count: int = 2000) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, leaf BLOB, entry BLOB)")
    row = (bytes(32), bytes(300))
    started = time.perf_counter()
    for _ in range(count):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO bench_raw (leaf, entry) VALUES (?, ?)", row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


@dataclass(frozen=True, slots=True)
class _Appends:
    rate: float
    """Events per second through the appender."""
    writer_cpu_us: float
    """CPU of the appender's one writer thread, µs per event."""
    process_cpu_us: float
    """CPU of this whole process (producers, writer, SQLite), µs per event."""
    wall_us: float
    """Elapsed time per event (1 / rate)."""


def _append_rate(engine: sa.Engine, count: int = 20_000, producers: int = 8) -> _Appends:
    events = [_event(n) for n in range(count)]
    ledger = Ledger(engine)
    with GroupCommitAppender(ledger) as appender:
        appender.append(events[0])  # warm the connection pool and caches
        writer = next(t for t in threading.enumerate() if t.name == "audit-appender")
        assert writer.native_id is not None
        barrier = threading.Barrier(producers + 1)

        def produce(part: int) -> None:
            barrier.wait()
            futures = [appender.submit(e) for e in events[1 + part :: producers]]
            for future in futures:
                future.result()

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
        for thread in threads:
            thread.start()
        writer_cpu, process_cpu = thread_cpu_seconds(writer.native_id), time.process_time()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        writer_cpu = thread_cpu_seconds(writer.native_id) - writer_cpu
        process_cpu = time.process_time() - process_cpu
    if ledger.size() != count:
        raise RuntimeError(f"appended {ledger.size()} of {count} events")
    n = count - 1
    return _Appends(n / elapsed, writer_cpu / n * 1e6, process_cpu / n * 1e6, elapsed / n * 1e6)


def _append_reason(appends: _Appends, batch_us: float, goal: Goal, row: Result) -> str:
    """Why the appends missed their rate: the serial writer's time per event, measured."""
    budget = 1e6 / goal.needed(row)
    return (
        f"needs {number(goal.needed(row))} events/s = {number(budget)} µs/event through one"
        f" writer; measured {number(appends.wall_us)} µs/event elapsed, of which the writer"
        f" thread used {number(appends.writer_cpu_us)} µs of CPU (this process in all, with 8"
        f" producers preparing events, {number(appends.process_cpu_us)} CPU-µs/event on one"
        f" interpreter lock); one append_batch of {_SMALL:,} events alone takes"
        f" {number(batch_us)} µs/event"
    )


def _generate(path: Path, size: int) -> None:
    """Bulk-write a ledger of ``size`` genuine entries (see the module docstring)."""
    plain = sa.create_engine(f"sqlite:///{path}")
    upgrade(plain, [_AUDIT])
    plain.dispose()
    prepared = prepare_event(_event(0))
    prefix, suffix = prepared.prefix, prepared.suffix
    sha256, leaf_prefix, node_prefix = hashlib.sha256, b"\x00", b"\x01"
    # Hashing (here) and inserting (a writer thread: sqlite3 releases the GIL while SQLite
    # works) overlap, which uses both cores.
    chunks: queue.Queue[tuple[list[tuple[int, bytes, bytes]], list[tuple[int, bytes]]] | None]
    chunks = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def write() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-200000")
            conn.execute("BEGIN")
            while (chunk := chunks.get()) is not None:
                entry_rows, node_rows = chunk
                conn.executemany(
                    "INSERT INTO audit_entries (idx, leaf_hash, entry) VALUES (?, ?, ?)",
                    entry_rows,
                )
                conn.executemany("INSERT INTO audit_nodes (id, hash) VALUES (?, ?)", node_rows)
            conn.execute("UPDATE audit_tree SET size = ? WHERE id = 1", (size,))
            conn.execute("COMMIT")
        except BaseException as exc:
            failure.append(exc)
            while chunks.get() is not None:  # unblock the producer
                pass
        finally:
            conn.close()

    writer = threading.Thread(target=write, name="bench-audit-writer")
    writer.start()
    frontier: dict[int, bytes] = {}
    step = 100_000
    try:
        for start in range(0, size, step):
            entry_rows = []
            node_rows = []
            for index in range(start, min(start + step, size)):
                data = prefix + str(index).encode() + suffix
                current = sha256(leaf_prefix + data).digest()
                entry_rows.append((index, current, data))
                level = 0
                while index >> level & 1:
                    current = sha256(node_prefix + frontier.pop(level) + current).digest()
                    level += 1
                    # node_id(level, index >> level), inlined
                    node_rows.append((((index >> level << 1) + 1 << level) - 1, current))
                frontier[level] = current
            chunks.put((entry_rows, node_rows))
    finally:
        chunks.put(None)
        writer.join()
    if failure:
        raise RuntimeError("generating the large ledger failed") from failure[0]


def _spot_check(ledger: Ledger) -> None:
    size = ledger.size()
    for tree_size in (1, 1000, 4097):
        tree_size = min(tree_size, size)
        leaves = [prepare_event(_event(0)).at(i) for i in range(tree_size)]
        if ledger.root_hash(tree_size=tree_size) != merkle.root_hash(leaves):
            raise RuntimeError(f"generated ledger disagrees with merkle.root_hash at {tree_size}")


def _proof_times(ledger: Ledger) -> tuple[float, float]:
    """Mean ms per inclusion proof and per consistency proof, each one verified once."""
    size = ledger.size()
    rng = random.Random(20261129)
    root = ledger.root_hash()
    for _ in range(30):  # warm the connection pool and the page cache's upper tree levels
        ledger.inclusion_proof(index=rng.randrange(size), tree_size=size)
        ledger.consistency_proof(old_size=rng.randrange(1, size), new_size=size)
    indexes = [rng.randrange(size) for _ in range(_PROOFS)]
    started = time.perf_counter()
    proofs = [ledger.inclusion_proof(index=i, tree_size=size) for i in indexes]
    inclusion = (time.perf_counter() - started) / _PROOFS * 1000
    for proof in proofs[:20]:
        proof.verify(root_hash=root)
    olds = [rng.randrange(1, size) for _ in range(_PROOFS)]
    started = time.perf_counter()
    consistency = [ledger.consistency_proof(old_size=m, new_size=size) for m in olds]
    elapsed = (time.perf_counter() - started) / _PROOFS * 1000
    for link in consistency[:20]:
        link.verify(old_root=ledger.root_hash(tree_size=link.old_size), new_root=root)
    return inclusion, elapsed


def run() -> dict[str, Result]:
    with tempfile.TemporaryDirectory(prefix="kyso-bench-audit-") as tmp:
        directory = Path(tmp)
        engine = _migrated(directory / "append.db")
        baseline_rate = _raw_commit_rate(directory / "append.db")
        appends = _append_rate(engine)
        engine.dispose()

        small_engine = _migrated(directory / "small.db")
        small = Ledger(small_engine)
        batch = [_event(n) for n in range(_SMALL)]
        started = time.perf_counter()
        small.append_batch(batch)  # the writer's own work for one full batch, alone
        batch_us = (time.perf_counter() - started) / _SMALL * 1e6
        small_inclusion, small_consistency = _proof_times(small)
        small_engine.dispose()

        started = time.perf_counter()
        _generate(directory / "large.db", _LARGE)
        generation = time.perf_counter() - started
        large_engine = create_engine(f"sqlite:///{directory / 'large.db'}")
        large = Ledger(large_engine)
        _spot_check(large)
        large_inclusion, large_consistency = _proof_times(large)
        large_engine.dispose()

    label = f"{_LARGE / 1e6:g}m"
    append_row = result(appends.rate, baseline_rate, "events/s")
    return {
        "audit_append_rate": judged(
            append_row, APPEND_GOAL, _append_reason(appends, batch_us, APPEND_GOAL, append_row)
        ),
        f"audit_inclusion_proof_{label}": {
            "value": large_inclusion,
            "unit": "ms",
            "baseline": small_inclusion,
            "ratio": large_inclusion / small_inclusion,
        },
        f"audit_consistency_proof_{label}": {
            "value": large_consistency,
            "unit": "ms",
            "baseline": small_consistency,
            "ratio": large_consistency / small_consistency,
        },
        f"audit_generate_{label}": {
            # Informational: how long the bulk generation took, against the 90 s budget.
            "value": generation,
            "unit": "s",
            "baseline": 90.0,
            "ratio": generation / 90.0,
        },
    }


if __name__ == "__main__":
    for row_name, row in run().items():
        print(f"{row_name}: {row}")
