"""The soak's figures: rows for bench/results.json and a table a person can read.

Rows (every ``ratio`` is oriented so that higher is better, as in the rest of bench/):

- ``soak.legit_p99_<op>``: p99 latency (ms) of one legitimate operation under attack; baseline
  the same operation's p99 in the quiet phase; ratio quiet / attack.
- ``soak.legit_p99_worst``: the worst operation's attack/quiet factor; baseline the goal (3);
  ratio goal / factor (≥ 1 meets the goal); with ``goal``/``met`` and, when missed, a
  ``reason``: how many cores the server's processes kept busy in each phase.
- ``soak.server_cores_quiet`` / ``soak.server_cores_attack``: cores the server's processes kept
  busy on average in each phase (processor time over wall time); baseline the machine's cores;
  ``soak.server_process_cores_*`` the same for the server process alone (baseline one core).
- ``soak.legit_errors``: errors legitimate clients saw under attack; baseline their calls;
  ratio the share of calls that succeeded (goal 1: no error).
- ``soak.hostile_refused`` and ``soak.hostile_<attack>``: hostile requests ended with an
  expected code (:data:`EXPECTED`); baseline those plus the misses; ratio the share (goal 1).
- ``soak.server_peak_rss`` (under attack) and ``soak.server_peak_rss_quiet``: the highest
  resident set of the server's process tree (MiB); baseline the stated bound; ratio bound / peak.
- ``soak.documents_intact``: documents downloaded intact afterwards; baseline those checked.
- ``soak.audit_verify``: 1 when ``kyso audit verify`` exits 0; baseline 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.common import Result, at_most
from bench.common import judged as with_goal
from bench.soak.legit import OPERATIONS, Call

__all__ = ["EXPECTED", "Figures", "rows", "table", "tally"]

_STREAM_CLOSED = frozenset({"DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED"})
_TOO_BIG = frozenset({"RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"})
_BAD_CONTENT = frozenset({"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"})
_BAD_PACKAGE = _BAD_CONTENT | {"OK:TOTAL_FAILED/FORMAT_FAILURE"}

EXPECTED: Mapping[str, frozenset[str]] = {
    # an idle or stalled stream is closed by the server (idle timeout) or refused at its start
    # (streams per client); RESOURCE_EXHAUSTED is right for every attack, since per-client
    # limits may stop any of them first
    "idle_upload": _STREAM_CLOSED,
    "slow_download": _STREAM_CLOSED,
    "slow_receive": _STREAM_CLOSED,
    # a size limit: a declared size over max_document_bytes, or bytes beyond it
    "oversize_declared": _TOO_BIG,
    "oversize_undeclared": _TOO_BIG,
    # content over its limits: refused as bad input; VerifyPackage reports a package it cannot
    # read (the API: "a document that fails verification is a report, not an RPC error")
    "xml_many_elements": _BAD_PACKAGE,
    "xml_deep_nesting": _BAD_PACKAGE,
    "xml_huge_attribute": _BAD_PACKAGE,
    "zip_bombs": _BAD_CONTENT,
    # the flooder: RESOURCE_EXHAUSTED beyond its rate; its OK calls within its allowance (the
    # configured rate over the attack, plus the burst) are neither right nor missed (``tally``)
    "flood": frozenset({"RESOURCE_EXHAUSTED"}),
}
"""Attack → the outcomes that count as refused with the right code."""

_NEUTRAL = frozenset({"UNDECIDED", "EMPTY"})
P99_GOAL = 3.0


@dataclass(frozen=True, slots=True)
class Tally:
    right: int
    misses: int
    outcomes: Mapping[str, int]
    note: str = ""


def tally(attack: str, outcomes: Mapping[str, int], *, flood_allowance: float = 0.0) -> Tally:
    """Right and missed outcomes of one attack (``UNDECIDED``/``EMPTY`` count as neither).

    The flooder: up to ``flood_allowance`` of its OK calls were admitted within its rate and
    count as neither; every OK call beyond that is a miss.
    """
    expected = EXPECTED[attack]
    right = sum(n for outcome, n in outcomes.items() if outcome in expected)
    misses = sum(
        n for outcome, n in outcomes.items() if outcome not in expected and outcome not in _NEUTRAL
    )
    note = ""
    if attack == "flood":
        admitted = outcomes.get("OK", 0)
        beyond = max(admitted - int(flood_allowance), 0)
        misses -= admitted - beyond
        note = f"{admitted} admitted, {int(flood_allowance)} allowed by its rate"
    return Tally(right, misses, dict(outcomes), note)


def p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


def p99_interval(values: Sequence[float]) -> tuple[float, float]:
    """About 95 % sure to hold the true p99: two order statistics around it, from the binomial
    count of samples below the quantile (normal approximation; no assumption on the latencies).

    With a few hundred calls the p99 is one of the few slowest, and the interval reaches the
    slowest call: one slow call more or less moves the p99 that much.
    """
    n = len(values)
    if not n:
        return 0.0, 0.0
    ordered = sorted(values)
    spread = 1.96 * math.sqrt(n * 0.99 * 0.01)
    low = max(math.floor(0.99 * n - spread), 1)
    high = min(math.ceil(0.99 * n + spread), n)
    return ordered[low - 1], ordered[high - 1]


def factor_interval(quiet: Sequence[float], attack: Sequence[float]) -> tuple[float, float]:
    """The attack/quiet p99 factor's range when each p99 may lie anywhere in its interval."""
    (quiet_low, quiet_high), (attack_low, attack_high) = p99_interval(quiet), p99_interval(attack)
    if not quiet_low or not attack_low:
        return 0.0, 0.0
    return attack_low / quiet_high, attack_high / quiet_low


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """Everything one soak run measured."""

    quiet: Sequence[Call]
    attack: Sequence[Call]
    health_quiet: Sequence[Call]
    health_attack: Sequence[Call]
    quiet_seconds: float
    attack_seconds: float
    counts: Mapping[str, Mapping[str, int]]
    examples: Mapping[str, Mapping[str, str]]
    attackers_cpu_seconds: float
    attackers_nice: int
    legit_nice: int
    load_average: tuple[float, float]
    """The machine's 1-minute load average at the start and at the end of the attack."""
    rss_quiet_mib: float
    rss_attack_mib: float
    server_cores_quiet: float
    server_cores_attack: float
    main_cores_quiet: float
    main_cores_attack: float
    server_hwm_mib: float
    hwm_total_mib: float
    rss_bound_mib: float
    flood_allowance: float
    """The flooder's OK calls admitted within its rate: ``[limits] calls_per_second`` × the
    attack phase + ``burst``."""
    documents_checked: int
    documents_failed: Sequence[str]
    audit_ok: bool
    audit_output: str

    def latencies(self, calls: Sequence[Call], op: str) -> list[float]:
        return [c.seconds * 1000 for c in calls if c.op == op and c.outcome == "OK"]

    def tallies(self) -> dict[str, Tally]:
        from bench.soak.hostile import ATTACKS

        return {
            attack: tally(attack, self.counts.get(attack, {}), flood_allowance=self.flood_allowance)
            for attack in ATTACKS
        }


def _row(value: float, baseline: float, unit: str, ratio: float) -> Result:
    return {"value": value, "unit": unit, "baseline": baseline, "ratio": ratio}


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 1.0


def rows(f: Figures) -> dict[str, Result]:
    out: dict[str, Result] = {}
    worst = 0.0
    for op in OPERATIONS:
        quiet_p99, attack_p99 = p99(f.latencies(f.quiet, op)), p99(f.latencies(f.attack, op))
        ratio = quiet_p99 / attack_p99 if attack_p99 else 0.0
        out[f"soak.legit_p99_{op}"] = _row(attack_p99, quiet_p99, "ms p99", ratio)
        if quiet_p99 and attack_p99:
            worst = max(worst, attack_p99 / quiet_p99)
    out["soak.legit_p99_worst"] = with_goal(
        _row(worst, P99_GOAL, "x quiet p99", _share(P99_GOAL, worst)),
        at_most(P99_GOAL, unit="× quiet"),
        _p99_reason(f, worst),
    )
    cores = os.cpu_count() or 1
    out["soak.server_cores_attack"] = _row(f.server_cores_attack, cores, "cores", 1.0)
    out["soak.server_cores_quiet"] = _row(f.server_cores_quiet, cores, "cores", 1.0)
    out["soak.server_process_cores_attack"] = _row(f.main_cores_attack, 1.0, "cores", 1.0)
    out["soak.server_process_cores_quiet"] = _row(f.main_cores_quiet, 1.0, "cores", 1.0)
    errors = sum(1 for c in f.attack if c.outcome != "OK")
    calls = len(f.attack)
    out["soak.legit_errors"] = _row(errors, calls, "errors", _share(calls - errors, calls))
    tallies = f.tallies()
    right = sum(t.right for t in tallies.values())
    judged = sum(t.right + t.misses for t in tallies.values())
    out["soak.hostile_refused"] = _row(right, judged, "requests", _share(right, judged))
    for attack, t in tallies.items():
        out[f"soak.hostile_{attack}"] = _row(
            t.right, t.right + t.misses, "requests", _share(t.right, t.right + t.misses)
        )
    bound = f.rss_bound_mib
    out["soak.server_peak_rss"] = _row(
        f.rss_attack_mib, bound, "MiB", _share(bound, f.rss_attack_mib)
    )
    out["soak.server_peak_rss_quiet"] = _row(
        f.rss_quiet_mib, bound, "MiB", _share(bound, f.rss_quiet_mib)
    )
    intact = f.documents_checked - len(f.documents_failed)
    out["soak.documents_intact"] = _row(
        intact, f.documents_checked, "documents", _share(intact, f.documents_checked)
    )
    ok = 1.0 if f.audit_ok else 0.0
    out["soak.audit_verify"] = _row(ok, 1.0, "passed", ok)
    return out


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def _p99_reason(f: Figures, worst: float) -> str:
    """What the server did with the processor in each phase, in this run's figures: the
    server process itself (one interpreter, so at most about one core) and all its processes."""
    cores = os.cpu_count() or 1
    return (
        f"worst factor {worst:.2f}×; the server process (one interpreter) used"
        f" {f.main_cores_quiet:.2f} of a core in the quiet phase and {f.main_cores_attack:.2f}"
        f" under attack; all its processes {f.server_cores_quiet:.2f} and"
        f" {f.server_cores_attack:.2f} of {cores} cores; the attackers' own process"
        f" {f.attackers_cpu_seconds / max(f.attack_seconds, 1):.2f}; load average"
        f" {f.load_average[0]:.1f} → {f.load_average[1]:.1f}"
    )


def table(f: Figures) -> str:
    """The run as a person reads it: each figure beside its goal."""
    cores = os.cpu_count() or 1
    lines = [
        f"soak: quiet phase {f.quiet_seconds:.0f} s, attack phase {f.attack_seconds:.0f} s;"
        f" the attackers' own process (nice {f.attackers_nice})"
        f" used {f.attackers_cpu_seconds:.0f} CPU-s"
        f" ({f.attackers_cpu_seconds / max(f.attack_seconds, 1):.2f} of {cores} cores);"
        f" legitimate clients at nice {f.legit_nice}, the server at its own;"
        f" load average {f.load_average[0]:.1f} → {f.load_average[1]:.1f}",
        "",
        f"legitimate p99 latency (ms)   {'quiet':>8} {'attack':>8} {'factor':>7}  goal ≤ 3×"
        "   (95 % interval)",
    ]
    worst = 0.0
    for op in OPERATIONS:
        quiet_ms, attack_ms = f.latencies(f.quiet, op), f.latencies(f.attack, op)
        q, a = p99(quiet_ms), p99(attack_ms)
        factor = a / q if q and a else 0.0
        worst = max(worst, factor)
        low, high = factor_interval(quiet_ms, attack_ms)
        lines.append(
            f"  {op:<10} ({len(quiet_ms):>4} / {len(attack_ms):>4} calls) {q:>8.1f} {a:>8.1f}"
            f" {factor:>6.2f}×  {'':>9}({low:.2f}–{high:.2f}×)"
        )
    lines.append(f"  worst factor {worst:.2f}× — {_verdict(0 < worst <= P99_GOAL)}")
    lines.append(
        "  (a p99 of a few hundred calls is one of the few slowest: the interval beside each"
        " factor is where it may lie, judged from this run's calls alone)"
    )
    lines.append("")
    for name, calls in (("quiet", f.quiet), ("attack", f.attack)):
        failed = [c for c in calls if c.outcome != "OK"]
        lines.append(f"errors seen by legitimate clients ({name}): {len(failed)} of {len(calls)}")
        kinds: dict[tuple[str, str], int] = {}
        for call in failed:
            kinds[(call.op, call.outcome)] = kinds.get((call.op, call.outcome), 0) + 1
        for (op, outcome), n in sorted(kinds.items()):
            sample = next(c.detail for c in failed if c.op == op and c.outcome == outcome)
            lines.append(f"    {op} {outcome} ×{n}: {sample[:120]}")
    attack_errors = sum(1 for c in f.attack if c.outcome != "OK")
    lines.append(f"  goal 0 under attack — {_verdict(attack_errors == 0)}")
    lines.append("")
    for name, probes in (("quiet", f.health_quiet), ("attack", f.health_attack)):
        answers: dict[str, int] = {}
        for probe in probes:
            answers[probe.outcome] = answers.get(probe.outcome, 0) + 1
        shown = ", ".join(f"{k} {v}" for k, v in sorted(answers.items())) or "none"
        slowest = p99([p.seconds * 1000 for p in probes])
        lines.append(f"health probe every 1 s ({name}): {shown}; p99 {slowest:.0f} ms")
    lines.append("")
    lines.append(f"hostile requests          {'right':>6} {'misses':>7}  outcomes (expected)")
    right = judged = 0
    for attack, t in f.tallies().items():
        right += t.right
        judged += t.right + t.misses
        shown = ", ".join(f"{k} {v}" for k, v in sorted(t.outcomes.items())) or "none"
        lines.append(
            f"  {attack:<22} {t.right:>6} {t.misses:>7}  {shown}"
            f" ({'/'.join(sorted(EXPECTED[attack]))}){'; ' + t.note if t.note else ''}"
        )
        for outcome, detail in sorted(f.examples.get(attack, {}).items()):
            if outcome not in EXPECTED[attack] and detail:
                lines.append(f"      {outcome}: {detail[:110]}")
    share = _share(right, judged)
    lines.append(
        f"  refused right {right} of {judged} ({share * 100:.2f}%);"
        f" goal 100% — {_verdict(share == 1)}"
    )
    lines.append("")
    lines.append(
        f"server memory (resident, all its processes): quiet peak {f.rss_quiet_mib:.0f} MiB,"
        f" attack peak {f.rss_attack_mib:.0f} MiB (sampled every 0.25 s)"
    )
    lines.append(
        f"  VmHWM: server process {f.server_hwm_mib:.0f} MiB, all its"
        f" processes added up {f.hwm_total_mib:.0f} MiB"
    )
    lines.append(
        f"  bound {f.rss_bound_mib:.0f} MiB — {_verdict(f.rss_attack_mib <= f.rss_bound_mib)}"
    )
    lines.append(
        f"server processor: the server process {f.main_cores_quiet:.2f} of a core in the quiet"
        f" phase, {f.main_cores_attack:.2f} under attack; all its processes"
        f" {f.server_cores_quiet:.2f} and {f.server_cores_attack:.2f} of {os.cpu_count() or 1}"
    )
    lines.append(
        f"documents downloaded intact afterwards: {f.documents_checked - len(f.documents_failed)}"
        f" of {f.documents_checked} — {_verdict(not f.documents_failed)}"
    )
    lines.extend(f"    {failure[:150]}" for failure in f.documents_failed[:10])
    lines.append(f"kyso audit verify: {f.audit_output.strip()[:150]} — {_verdict(f.audit_ok)}")
    return "\n".join(lines)
