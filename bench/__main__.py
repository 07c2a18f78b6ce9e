"""Run every benchmark, print a table and write bench/results.json.

``python -m bench [NAME …]`` runs the modules ``bench/bench_NAME.py`` (all when none are named).
Each result is ``{name: {"value", "unit", "baseline", "ratio"}}``; ratio = value / baseline,
oriented so that higher is better (benchmarks of times report rates or invert explicitly).
A module that fails is reported and the others still run; the exit code is 1 then. Rows already
in bench/results.json from modules not run this time are kept.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    modules = names or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in modules:
        print(f"running bench_{name} …", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            results.update(module.run())
        except Exception:
            traceback.print_exc()
            failed.append(name)
    width = max([len(n) for n in results] + [10])
    print(f"{'benchmark':<{width}}  {'value':>12}  {'unit':<12} {'baseline':>12}  {'ratio':>7}")
    for name, r in results.items():
        print(
            f"{name:<{width}}  {r['value']:>12.2f}  {r['unit']:<12} {r['baseline']:>12.2f}"
            f"  {r['ratio']:>6.2f}x"
        )
    # Rows of benchmarks not run this time stay as they were: running one module updates its rows.
    path = HERE / "results.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**kept, **results}, indent=2, sort_keys=True) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
