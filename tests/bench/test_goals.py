"""Goals on benchmark rows: the verdict, and a missed goal's reason built from measured figures.

Synthetic numbers only (pure functions): nothing here is timed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.__main__ import table
from bench.bench_agent import overhead_reason
from bench.bench_audit import APPEND_GOAL, _append_reason, _Appends
from bench.bench_cli import heaviest_imports, start_reason
from bench.bench_documents import _DirectParts, judge_against_adapter, judge_direct
from bench.bench_exchange import _Fanout, _Routing
from bench.bench_replicas import _Run as ReplicaRun
from bench.bench_replicas import replicas_reason
from bench.bench_signer import GOALS as SIGNER_GOALS
from bench.bench_signer import _Run as SignerRun
from bench.bench_verify import pool_reason
from bench.common import (
    Result,
    Stage,
    at_least,
    at_most,
    ceiling_reason,
    cpu_seconds,
    descendants,
    judged,
    number,
    result,
)


def row(value: float, baseline: float = 1.0, unit: str = "PDFs/s") -> Result:
    return result(value, baseline, unit)


@pytest.mark.parametrize(
    ("goal", "measured", "met"),
    [
        (at_least(8), row(8, 1), True),  # equal meets
        (at_least(8), row(7.99, 1), False),
        (at_most(20, unit="ms"), row(20), True),
        (at_most(20, unit="ms"), row(20.01), False),
        (at_least(2500, "value", "docs/s"), row(2499, 1000), False),
    ],
)
def test_a_goal_compares_its_measure_with_its_target(goal, measured, met):
    assert goal.met(measured) is met


def test_the_goal_text_shows_the_measure_the_comparison_and_the_target():
    assert at_least(8).text() == "ratio ≥ 8×"
    assert at_most(0.3, unit="s").text() == "value ≤ 0.3 s"
    assert at_least(50_000, "value", "events/s").text() == "value ≥ 50,000 events/s"


def test_the_value_a_goal_needs():
    assert at_least(8).needed(row(122, 48.7)) == pytest.approx(389.6)
    assert at_least(2500, "value", "docs/s").needed(row(1158, 400)) == 2500


def test_a_met_goal_carries_no_reason_and_a_missed_one_carries_it():
    met = judged(row(9, 1), at_least(8), "never shown")
    assert met["goal"] == "ratio ≥ 8×"
    assert met["met"] is True
    assert "reason" not in met
    missed = judged(row(2.5, 1), at_least(8), "server 6.1 CPU-ms/doc")
    assert missed["met"] is False
    assert missed["reason"] == "server 6.1 CPU-ms/doc"
    # judging again (a re-run that met it) drops an old reason
    again = judged({**missed, "value": 9.0, "ratio": 9.0}, at_least(8), "x")
    assert "reason" not in again


def test_number_formats_figures_for_reading():
    assert number(12150.4) == "12,150"
    assert number(164.3) == "164"
    assert number(6.12) == "6.12"
    assert number(20.0) == "20"
    assert number(0.35) == "0.35"
    assert number(0.0213) == "0.0213"


def test_the_ceiling_reason_names_each_stage_its_ceiling_and_the_bound():
    text = ceiling_reason(
        [Stage("server parent", 6.1), Stage("signing workers (2)", 3.0, 2)],
        needed=390,
        unit="PDFs/s",
        cores=2,
    )
    assert text.startswith("needs 390 PDFs/s")
    assert "server parent 6.1 CPU-ms/doc on 1 core → ceiling 164/s (the bound)" in text
    assert "signing workers (2) 3 CPU-ms/doc on 2 cores → ceiling 667/s;" in text
    assert "all together 9.1 CPU-ms/doc on this machine's 2 cores → 220 PDFs/s" in text


def test_the_signer_reason_gives_each_process_cpu_per_pdf():
    run = SignerRun(rate=122, server_ms=6.1, workers_ms=4.4, workers=2, client_ms=1.2)
    goal = SIGNER_GOALS["100k_invisible"]
    measured = judged(row(122, 48.7), goal, run.reason(goal.needed(row(122, 48.7))))
    assert measured["met"] is False
    reason = measured["reason"]
    assert "reached 122 PDFs/s; needs 390 PDFs/s" in reason
    assert "server process 6.1 CPU-ms/doc on 1 core → ceiling 164/s (the bound)" in reason
    assert "client process 1.2 CPU-ms/doc" in reason
    assert run.per_cpu_second == pytest.approx(1000 / 11.7)


def test_the_routing_reason_gives_cpu_per_document_and_the_share_in_xml_dsig():
    routing = _Routing(
        rate=1158,
        worker_cpu_ms=1.6,
        database_cpu_ms=0.4,
        open_ms=0.9,
        signxml_ms=0.4,
        elapsed=2.6,
    )
    reason = routing.reason(2500)
    assert "needs 2,500 docs/s" in reason
    assert "routing processes (2) 1.6 CPU-ms/doc" in reason
    assert "PostgreSQL server 0.4 CPU-ms/doc" in reason
    assert "signxml's XML-DSig verify alone 0.4 ms (25% of the routing CPU)" in reason
    assert "open_package alone 0.9 CPU-ms" in reason


def test_the_fanout_reason_splits_cpu_from_waiting():
    reason = _Fanout(ms=44, cpu_ms=30, raw_commit_ms=5.2, open_ms=0.9).reason()
    assert "a send took 44 ms, 30 ms of it CPU" in reason
    assert "open_package alone 0.9 ms" in reason
    assert "14 ms off the CPU" in reason
    assert "bare 713-row commit takes 5.2 ms" in reason


def test_the_ledger_reason_gives_the_serial_writer_time_per_event():
    appends = _Appends(rate=16_635, writer_cpu_us=38, process_cpu_us=90, wall_us=60.1)
    measured = row(16_635, 700, "events/s")
    reason = _append_reason(appends, 25, APPEND_GOAL, measured)
    assert "needs 50,000 events/s = 20 µs/event through one writer" in reason
    assert "measured 60.1 µs/event elapsed" in reason
    assert "writer thread used 38 µs of CPU" in reason
    assert "append_batch of 1,000 events alone takes 25 µs/event" in reason


def test_the_verification_reason_sets_the_pool_against_one_process_times_the_cores():
    measured = row(260, 71)
    reason = pool_reason(measured, 180, 2, 2, (7.5, 1.1))
    assert "needs 426 PDFs/s (6 × stock 71/s)" in reason
    assert "one process verifies 180/s" in reason
    assert "= ceiling 360/s; the pool reached 260/s (72% of that ceiling)" in reason
    assert "workers using 7.5 CPU-ms/PDF" in reason


def test_the_documents_reason_sets_the_service_beside_the_adapter_alone():
    rows = {
        "documents.upload_100mb": dict(row(66, 100, "MB/s")),
        "documents.put_100kb": dict(row(90, 100, "puts/s")),
        "documents.direct_upload_100mb": dict(row(95, 100, "MB/s")),
    }
    adapter = {
        "storage.s3.upload_100mb": dict(row(88, 100, "MB/s")),
        "storage.s3.put_100kb": dict(row(92, 100, "puts/s")),
    }
    judged_rows = judge_against_adapter(rows, adapter)
    upload = judged_rows["documents.upload_100mb"]
    assert upload["goal"] == "ratio ≥ 0.8×"
    assert upload["met"] is False
    assert "through the service 66 MB/s = 0.66× the SDK's 100" in upload["reason"]
    assert "the S3 adapter alone 88 MB/s = 0.88×" in upload["reason"]
    assert "keep 75% of the adapter's ratio to the SDK" in upload["reason"]
    assert judged_rows["documents.put_100kb"]["met"] is True
    assert "reason" not in judged_rows["documents.put_100kb"]
    # a row with no adapter row beside it is left as it was
    assert "goal" not in judged_rows["documents.direct_upload_100mb"]


def test_the_direct_reasons_time_each_step_beside_the_sdk():
    rows = {
        "documents.direct_upload_100mb": dict(row(60, 100, "MB/s")),
        "documents.direct_download_100mb": dict(row(300, 500, "MB/s")),
        "documents.direct_put_100kb": dict(row(90, 100, "puts/s")),
    }
    parts = _DirectParts(
        megabytes=100,
        small_kb=100,
        upload={"begin": 0.004, "put": 0.8, "complete": 0.85},
        sdk_get_s=0.2,
        server_sha256_s=0.07,
        download={"grant": 0.005, "get": 0.33, "get_only": 0.25, "sha256": 0.08},
        small={"begin": 0.002, "put": 0.004, "complete": 0.005},
        sdk_small_get_s=0.002,
        sdk_discard_s=0.006,
    )
    judged_rows = judge_direct(rows, parts)
    upload = judged_rows["documents.direct_upload_100mb"]
    assert upload["goal"] == "ratio ≥ 0.8×"
    assert upload["met"] is False
    assert "direct 60 MB/s = 0.60× the SDK's 100" in upload["reason"]
    assert "the presigned PUT 0.8 s (1.25× the SDK's put, 1 s)" in upload["reason"]
    assert "CompleteDirectUpload 0.85 s" in upload["reason"]
    assert "an SDK GET of them takes 0.2 s and SHA-256 of them 0.07 s" in upload["reason"]
    download = judged_rows["documents.direct_download_100mb"]["reason"]
    assert "the GET alone without hashing 0.25 s (0.80× the SDK's 0.2 s)" in download
    assert "SHA-256 of the same 100 MB in the client 0.08 s (1,250 MB/s)" in download
    assert judged_rows["documents.direct_put_100kb"]["met"] is True
    assert "reason" not in judged_rows["documents.direct_put_100kb"]


def test_the_agent_reason_splits_the_overhead_into_cpu_and_waiting():
    measured = row(14.9, 1.2, "ms/doc")
    reason = overhead_reason(measured, server_cpu_ms=6.0, agent_cpu_ms=4.2, token_ms=1.2)
    assert "needs ≤ 5 ms/doc beyond the token's 1.2" in reason
    assert "measured 14.9 ms/doc: the server 6 CPU-ms/doc, the agent process 4.2" in reason
    assert "the rest, 5.9 ms/doc" in reason


def test_the_replicas_reason_gives_the_cores_each_run_kept_busy():
    one = ReplicaRun(rate=94, cpu_ms=10.4, busy=0.98)
    two = ReplicaRun(rate=81, cpu_ms=13.8, busy=1.12)
    reason = replicas_reason(one, two, 2, 5.9)
    assert "one replica 94/s kept 0.98 of this machine's 2 cores busy (10.4 CPU-ms a call" in reason
    assert "two replicas 81/s kept 1.12 busy (13.8 CPU-ms a call, +33%)" in reason
    assert "load average was 5.9 on 2 cores" in reason
    quiet = replicas_reason(one, two, 2, 1.1)
    assert "stayed idle with two" in quiet
    full = replicas_reason(ReplicaRun(rate=94, cpu_ms=20, busy=1.95), two, 2, 1.1)
    assert "one replica already used every core" in full


_IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:       400 |        900 | encodings
import time:     30000 |     410000 | kyso.cli.sign_cmd
import time:      2000 |     380000 |   grpc
import time:      1500 |      52000 | argparse
"""


def test_the_start_up_reason_names_the_heaviest_top_level_imports():
    assert heaviest_imports(_IMPORTTIME, 2) == [("kyso.cli.sign_cmd", 0.41), ("argparse", 0.052)]
    reason = start_reason(0.61, 0.021, heaviest_imports(_IMPORTTIME, 2))
    assert "needs ≤ 0.3 s; took 0.61 s, of which the interpreter's own start 0.021 s" in reason
    assert "kyso.cli.sign_cmd 0.41 s, argparse 0.052 s" in reason


def test_the_table_shows_goal_verdict_and_reason():
    results = {
        "a_row": judged(row(2.5, 1), at_least(8), "server 6.1 CPU-ms/doc"),
        "b_row": judged(row(9, 1), at_least(8), "unused"),
        "c_row": row(1, 1),
    }
    runs = {"x": {"seconds": 12.0, "cpus": 2, "load_start": [1.5, 1, 1], "load_end": [2.25, 1, 1]}}
    lines = table(results, runs).splitlines()
    assert lines[0].split()[-2:] == ["goal", "met"]
    assert lines[1].startswith("a_row")
    assert lines[1].endswith("ratio ≥ 8×               NO")
    assert lines[2].strip() == "↳ server 6.1 CPU-ms/doc"
    assert lines[3].endswith("yes")
    assert lines[4].endswith("1.00x")
    assert lines[5] == "bench_x: 12 s on 2 cores, load average 1.50 → 2.25 (1 min)"


def test_cpu_of_processes_comes_from_proc():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert child.pid in descendants(os.getpid())
        assert cpu_seconds([child.pid]) >= 0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert child.pid not in descendants(os.getpid())
    assert cpu_seconds([child.pid]) == 0  # a process gone counts nothing
