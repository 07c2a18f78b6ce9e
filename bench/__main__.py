"""Run every benchmark, print a table and write bench/results.json.

``python -m bench [NAME …]`` runs the modules ``bench/bench_NAME.py`` (all when none are named).
Each result is ``{name: {"value", "unit", "baseline", "ratio"}}``; ratio = value / baseline,
oriented so that higher is better (benchmarks of times report rates or invert explicitly).
A row with a goal adds ``goal`` (``ratio ≥ 8``, ``value ≤ 5 ms/doc``), ``met`` and, when missed,
``reason``: figures measured in the same run that say why (bench/common.py).
``results.json["_runs"][MODULE]`` records how quiet the machine was while each module ran: the
load averages (1, 5, 15 min) at its start and end, and the number of cores.
A module that fails is reported and the others still run; the exit code is 1 then. Rows already
in bench/results.json from modules not run this time are kept.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNS = "_runs"
"""The key of results.json that holds each module's run (not a row)."""


def main(names: list[str]) -> int:
    modules = names or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in modules:
        print(f"running bench_{name} …", file=sys.stderr, flush=True)
        load_start, started = os.getloadavg(), time.perf_counter()
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            results.update(module.run())
        except Exception:
            traceback.print_exc()
            failed.append(name)
        runs[name] = run_record(at, load_start, os.getloadavg(), time.perf_counter() - started)
    print(table(results, runs))
    # Rows of benchmarks not run this time stay as they were: running one module updates its rows.
    path = HERE / "results.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    merged = {**kept, **results, RUNS: {**kept.get(RUNS, {}), **runs}}
    path.write_text(
        json.dumps(merged, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_record(
    at: str, load_start: tuple[float, float, float], load_end: tuple[float, float, float], s: float
) -> dict[str, Any]:
    return {
        "started": at,
        "seconds": round(s, 1),
        "cpus": os.cpu_count() or 1,
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in load_end],
    }


def table(results: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The rows as a person reads them: the goal and whether it was met beside each row, the
    reason of a missed goal on the line below it, and each module's machine load at the end."""
    width = max([len(n) for n in results] + [10])
    lines = [
        f"{'benchmark':<{width}}  {'value':>12}  {'unit':<12} {'baseline':>12}  {'ratio':>7}"
        f"  {'goal':<24} met"
    ]
    for name, r in results.items():
        verdict = "" if "met" not in r else "yes" if r["met"] else "NO"
        lines.append(
            f"{name:<{width}}  {r['value']:>12.2f}  {r['unit']:<12} {r['baseline']:>12.2f}"
            f"  {r['ratio']:>6.2f}x  {r.get('goal', ''):<24} {verdict}".rstrip()
        )
        if r.get("reason"):
            lines.append(f"{'':<{width}}  ↳ {r['reason']}")
    for name, run in runs.items():
        start, end = run["load_start"], run["load_end"]
        lines.append(
            f"bench_{name}: {run['seconds']:.0f} s on {run['cpus']} cores, load average"
            f" {start[0]:.2f} → {end[0]:.2f} (1 min)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
