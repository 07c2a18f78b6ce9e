"""The soak harness end to end, short: a real ``kyso serve`` child, every legitimate client and
every attacker for about ten seconds, the checks afterwards, and every row of the report.

It checks that the harness runs and reports, not the goals: those are for ``make soak`` (a short
run on a shared machine says nothing about latency, and tests never assert on time).
"""

from __future__ import annotations

import io
import math

import pytest

from bench.soak.hostile import ATTACKS
from bench.soak.legit import OPERATIONS
from bench.soak.report import EXPECTED, factor_interval, p99, p99_interval, tally
from bench.soak.run import run_soak
from bench.soak.settings import Settings
from kyso.dev.init import DevEnvironment

SHORT = Settings(
    seconds=10,
    small_directory=True,
    quiet_share=0.3,
    legit_pace=0.1,
    idle_streams=3,
    slow_readers=2,
    slow_pause=2,
    grace=1,
    bomb_interval=0.5,
    zip_sends=1,
    bombs_per_send=3,
    flood_concurrency=2,
)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_short_soak_runs_end_to_end_and_reports_every_row(dev_env: DevEnvironment) -> None:
    out = io.StringIO()
    rows = run_soak(SHORT, env=dev_env, out=out)

    expected = {
        *(f"soak.legit_p99_{op}" for op in OPERATIONS),
        "soak.legit_p99_worst",
        "soak.legit_errors",
        "soak.hostile_refused",
        *(f"soak.hostile_{attack}" for attack in ATTACKS),
        "soak.server_peak_rss",
        "soak.server_peak_rss_quiet",
        "soak.server_cores_quiet",
        "soak.server_cores_attack",
        "soak.server_process_cores_quiet",
        "soak.server_process_cores_attack",
        "soak.documents_intact",
        "soak.audit_verify",
    }
    assert set(rows) == expected
    for name, row in rows.items():
        assert {"value", "unit", "baseline", "ratio"} <= set(row), name
        assert all(math.isfinite(row[k]) for k in ("value", "baseline", "ratio")), name
    worst = rows["soak.legit_p99_worst"]
    assert worst["goal"] == "value ≤ 3 × quiet"
    assert worst["met"] is (worst["value"] <= 3)
    if not worst["met"]:  # a miss says how busy the server kept the cores in each phase
        assert "the server process (one interpreter) used" in worst["reason"]
    # the server's processes used the processor in both phases (read from /proc)
    assert rows["soak.server_cores_quiet"]["value"] > 0
    assert rows["soak.server_cores_attack"]["value"] > 0
    assert (
        0
        < rows["soak.server_process_cores_attack"]["value"]
        <= rows["soak.server_cores_attack"]["value"]
    )
    # both phases had legitimate calls, the server's memory was read, documents were checked
    assert rows["soak.legit_errors"]["baseline"] > 0
    assert rows["soak.server_peak_rss_quiet"]["value"] > 0
    assert rows["soak.server_peak_rss"]["value"] > 0
    assert rows["soak.documents_intact"]["baseline"] > 0
    # every attack made requests, and the table shows each with its outcomes
    assert rows["soak.hostile_refused"]["baseline"] > 0
    table = out.getvalue()
    for attack in ATTACKS:
        line = next(line for line in table.splitlines() if line.strip().startswith(attack))
        assert "none (" not in line, line
    assert "kyso audit verify:" in table


def test_outcomes_are_judged_by_the_expected_codes_of_each_attack() -> None:
    idle = tally("idle_upload", {"DEADLINE_EXCEEDED": 3, "OPEN_AT_END": 2, "UNDECIDED": 4})
    assert (idle.right, idle.misses) == (3, 2)
    bombs = tally("xml_many_elements", {"INVALID_ARGUMENT": 1, "OK:TOTAL_FAILED/": 5})
    assert (bombs.right, bombs.misses) == (1, 5)
    report = tally("xml_deep_nesting", {"OK:TOTAL_FAILED/FORMAT_FAILURE": 2, "NO_ANSWER": 1})
    assert (report.right, report.misses) == (2, 1)
    upload = tally("oversize_declared", {"RESOURCE_EXHAUSTED": 2, "OK": 1, "NO_ANSWER": 1})
    assert (upload.right, upload.misses) == (2, 2)
    # the flooder's calls within its allowance are neither right nor missed; beyond it, misses
    flood = {"OK": 500, "RESOURCE_EXHAUSTED": 40, "UNAVAILABLE": 1}
    limited = tally("flood", flood, flood_allowance=600)
    assert (limited.right, limited.misses) == (40, 1)
    unlimited = tally("flood", flood, flood_allowance=200)
    assert (unlimited.right, unlimited.misses) == (40, 301)
    assert set(EXPECTED) == set(ATTACKS)


def test_a_p99_interval_widens_as_the_samples_thin_and_holds_the_estimate() -> None:
    many = [float(v) for v in range(1, 10_001)]
    low, high = p99_interval(many)
    assert low <= p99(many) <= high
    assert (low, high) == pytest.approx((9880, 9920), abs=5)
    # 350 calls: the p99 is the 4th slowest, and the slowest call is inside its interval
    few = [float(v) for v in range(1, 351)]
    low, high = p99_interval(few)
    assert low <= p99(few) <= high == 350.0
    assert low < 347
    assert p99_interval([]) == (0.0, 0.0)


def test_the_factors_interval_divides_the_far_ends() -> None:
    quiet = [float(v) for v in range(1, 1001)]
    attack = [2 * v for v in quiet]
    low, high = factor_interval(quiet, attack)
    assert low < 2.0 < high
    assert low == pytest.approx(p99_interval(attack)[0] / p99_interval(quiet)[1])
    assert factor_interval([], attack) == (0.0, 0.0)
