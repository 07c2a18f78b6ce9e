"""Helpers shared by the benchmarks: rows, goals, and the measurements behind a missed goal.

A row is ``{value, unit, baseline, ratio}`` (ratio oriented so that higher is better). A row
with a goal also carries ``goal`` (its text, e.g. ``ratio ≥ 8``), ``met`` and, only when the goal
is missed, ``reason``: a sentence built from figures measured in the same run (CPU time per
document of each process, a stage timed alone, the row beside it), never a fixed text.
:func:`judged` attaches them; the ``*_reason`` helpers below build the sentences.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

__all__ = [
    "Goal",
    "Result",
    "Stage",
    "at_least",
    "at_most",
    "ceiling_reason",
    "cpu_seconds",
    "descendants",
    "judged",
    "number",
    "postgres_cpu_seconds",
    "rate",
    "result",
    "thread_cpu_seconds",
]


class Result(TypedDict):
    value: float
    unit: str
    baseline: float
    ratio: float
    goal: NotRequired[str]
    met: NotRequired[bool]
    reason: NotRequired[str]


def result(value: float, baseline: float, unit: str) -> Result:
    return {"value": value, "unit": unit, "baseline": baseline, "ratio": value / baseline}


def rate(fn: Callable[[], object], *, seconds: float = 2.0) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        count += 1
    return count / elapsed


# -- goals -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Goal:
    """A row's goal: its ``measure`` (``value`` or ``ratio``) compared with ``target``.

    A ratio goal is only put on rows whose ratio is value / baseline, so that the value the
    goal needs is ``target × baseline`` (:meth:`needed`).
    """

    measure: Literal["value", "ratio"]
    op: Literal[">=", "<="]
    target: float
    unit: str = ""
    """Shown after the target in the text (``ms/doc``); ratio goals show ``×``."""

    def text(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        unit = "×" if self.measure == "ratio" else f" {self.unit}" if self.unit else ""
        return f"{self.measure} {sign} {number(self.target)}{unit}"

    def met(self, row: Result) -> bool:
        measured = row[self.measure]
        return measured >= self.target if self.op == ">=" else measured <= self.target

    def needed(self, row: Result) -> float:
        """The value the row would need to meet the goal (in the row's unit)."""
        return self.target * row["baseline"] if self.measure == "ratio" else self.target


def at_least(target: float, measure: Literal["value", "ratio"] = "ratio", unit: str = "") -> Goal:
    return Goal(measure, ">=", target, unit)


def at_most(target: float, measure: Literal["value", "ratio"] = "value", unit: str = "") -> Goal:
    return Goal(measure, "<=", target, unit)


def judged(row: Result, goal: Goal, reason: str) -> Result:
    """``row`` with its goal and verdict; ``reason`` (measured figures) is kept only if missed."""
    out: Result = {**row, "goal": goal.text(), "met": goal.met(row)}
    out.pop("reason", None)
    if not out["met"]:
        out["reason"] = reason
    return out


def number(x: float) -> str:
    """A figure as a person reads it: 12,150 / 164 / 6.1 / 0.35 / 0.021."""
    size = abs(x)
    if size >= 1000:
        return f"{x:,.0f}"
    if size >= 100:
        return f"{x:.0f}"
    if size >= 10:
        return f"{x:.1f}".removesuffix(".0")
    if size >= 0.1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


@dataclass(frozen=True, slots=True)
class Stage:
    """One process (or group of processes) of a measured path: its CPU time per item, and how
    many cores it can use at once (a Python process's own work is bound to one by its GIL)."""

    name: str
    cpu_ms: float
    cores: float = 1.0

    @property
    def ceiling(self) -> float:
        """Items per second this stage could reach with its cores and nothing else running."""
        return self.cores * 1000 / self.cpu_ms if self.cpu_ms > 0 else float("inf")


def ceiling_reason(
    stages: Sequence[Stage], *, needed: float, unit: str, cores: int, item: str = "doc"
) -> str:
    """Where the CPU went per item, and the rate each stage (and the machine) caps at.

    ``needed``: the rate the goal needs. The stage with the lowest ceiling is named the bound;
    the last clause adds every stage up against the machine's ``cores``.
    """
    rate_unit = unit.split("/")[0] if "/" in unit else unit
    bound = min(stages, key=lambda s: s.ceiling) if stages else None
    parts = [f"needs {number(needed)} {unit}"]
    for stage in stages:
        on = f"{number(stage.cores)} core{'s' if stage.cores != 1 else ''}"
        parts.append(
            f"{stage.name} {number(stage.cpu_ms)} CPU-ms/{item} on {on}"
            f" → ceiling {number(stage.ceiling)}/s{' (the bound)' if stage is bound else ''}"
        )
    total = sum(s.cpu_ms for s in stages)
    if total > 0:
        parts.append(
            f"all together {number(total)} CPU-ms/{item} on this machine's {cores} cores"
            f" → {number(cores * 1000 / total)} {rate_unit}/s"
        )
    return "; ".join(parts)


# -- CPU time of processes and threads ---------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(path: str) -> list[str] | None:
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pids: Iterable[int], *, reaped: bool = False) -> float:
    """User + system CPU of ``pids`` (from /proc; a process gone counts 0).

    ``reaped``: add each one's children that exited and were waited for (``cutime``/``cstime``),
    so that a server's short-lived children still count after they are gone.
    """
    total = 0
    for pid in pids:
        fields = _stat(f"/proc/{pid}/stat")
        if fields is None:
            continue
        total += int(fields[11]) + int(fields[12])
        if reaped:
            total += int(fields[13]) + int(fields[14])
    return total / _TICKS


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU of one thread of this process (``threading.Thread.native_id``)."""
    fields = _stat(f"/proc/self/task/{native_id}/stat")
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def _processes() -> Iterable[tuple[int, str, int]]:
    """(pid, command name, parent pid) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        yield int(entry.name), name, int(text.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """The live processes started by ``pid``, their children and so on (not ``pid`` itself)."""
    children: dict[int, list[int]] = {}
    for child, _, parent in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def postgres_cpu_seconds() -> float:
    """CPU of the whole local PostgreSQL server: the postmaster, its live backends and the ones
    that exited (its reaped children). Other clients of the same server count too."""
    procs = list(_processes())
    names = {pid: name for pid, name, _ in procs}
    postgres = [pid for pid, name, _ in procs if name == "postgres"]
    masters = [pid for pid, _, ppid in procs if pid in postgres and names.get(ppid) != "postgres"]
    children = [pid for pid in postgres if pid not in masters]
    return cpu_seconds(masters, reaped=True) + cpu_seconds(children)
