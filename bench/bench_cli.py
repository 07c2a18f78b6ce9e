"""Client command start-up: seconds from a fresh ``kyso … --help`` process to its exit.

Each row starts ``kyso ARGS --help`` as the installed ``kyso`` script does (``sys.exit(main())``
from ``kyso.cli.main``, in a new interpreter) ``RUNS`` times and keeps the median; baseline: the
median of ``python -c pass`` measured in the same run (the interpreter's own start). ``ratio`` =
baseline / value (1.0: the command adds nothing to the interpreter's start).

Goal (issue 24): every command starts in ≤ 0.3 s. A missed one's reason comes from one more
start of the same command under ``-X importtime``: the interpreter's share and the heaviest
modules the command imported, with their cumulative import times.

Run alone: ``python -m bench cli``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Result, at_most, judged, number

__all__ = ["run"]

RUNS = 5
COMMANDS: dict[str, tuple[str, ...]] = {
    "cli_start_help": (),
    "cli_start_sign_help": ("sign",),
    "cli_start_verify_help": ("verify",),
    "cli_start_upload_help": ("upload",),
    "cli_start_agent_help": ("agent",),
}
"""Row → the ``kyso`` arguments before ``--help``."""
GOAL = at_most(0.3, unit="s")
_KYSO = "import sys; from kyso.cli.main import main; sys.exit(main())"
_ROOT = Path(__file__).resolve().parent.parent


def _seconds(argv: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=_ROOT, env=_env())
    return time.perf_counter() - started


def _env() -> dict[str, str]:
    # The worktree's kyso, whatever the current directory: as the benchmarks import it.
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{_ROOT}{os.pathsep}{path}" if path else str(_ROOT)}


def _median(argv: Sequence[str]) -> float:
    _seconds(argv)  # warm the page cache and the .pyc files
    return statistics.median(_seconds(argv) for _ in range(RUNS))


def heaviest_imports(importtime: str, count: int = 3) -> list[tuple[str, float]]:
    """The ``count`` top-level modules with the largest cumulative import time (seconds), from
    the stderr of ``python -X importtime``."""
    top: list[tuple[str, float]] = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part for part in line.removeprefix("import time:").split("|"))
        if not cumulative.strip().isdigit() or name.startswith("  "):
            continue  # the header, or a module imported by another one
        top.append((name.strip(), int(cumulative) / 1e6))
    return sorted(top, key=lambda item: item[1], reverse=True)[:count]


def start_reason(value: float, interpreter: float, imports: Sequence[tuple[str, float]]) -> str:
    heaviest = ", ".join(f"{name} {number(seconds)} s" for name, seconds in imports)
    return (
        f"needs ≤ {number(GOAL.target)} s; took {number(value)} s, of which the interpreter's"
        f" own start {number(interpreter)} s; heaviest imports (cumulative, -X importtime):"
        f" {heaviest or 'none'}"
    )


def run() -> dict[str, Result]:
    interpreter = _median([sys.executable, "-c", "pass"])
    rows: dict[str, Result] = {}
    for name, args in COMMANDS.items():
        argv = [sys.executable, "-c", _KYSO, *args, "--help"]
        value = _median(argv)
        row: Result = {
            "value": value,
            "unit": "s",
            "baseline": interpreter,
            "ratio": interpreter / value,
        }
        reason = ""
        if not GOAL.met(row):
            traced = subprocess.run(
                [sys.executable, "-X", "importtime", *argv[1:]],
                check=True,
                capture_output=True,
                text=True,
                cwd=_ROOT,
                env=_env(),
            )
            reason = start_reason(value, interpreter, heaviest_imports(traced.stderr))
        rows[name] = judged(row, GOAL, reason)
    return rows


if __name__ == "__main__":
    for row_name, row_value in run().items():
        print(f"{row_name}: {row_value}")
