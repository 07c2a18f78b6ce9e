"""One soak run: a quiet phase, an attack phase, then the checks (see bench/soak/__init__.py).

1. ``kyso serve`` starts as a child process over the development set-up (SQLite, filesystem
   store) in a fresh directory; a sampler reads its process tree's memory from /proc.
2. Quiet phase: the legitimate clients alone (the baseline of the same run).
3. Attack phase: the same clients go on while the attackers' process
   (:mod:`bench.soak.hostile`) sets up, then attacks; only the calls made while it attacked
   count for the attack phase.
4. Afterwards: the receiver drains its inbox; every document the legitimate clients stored, sent
   or acknowledged is downloaded and its SHA-256 compared; the server stops; ``kyso audit
   verify`` must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from bench.common import Result
from bench.soak.legit import Legit, check_intact
from bench.soak.report import Figures, rows, table
from bench.soak.server import MemorySampler, SoakServer
from bench.soak.settings import Settings
from kyso.config import load_config
from kyso.dev.init import DevEnvironment, dev_init

__all__ = ["run_soak"]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Window:
    start: float = 0.0
    end: float = 0.0
    load_start: float = 0.0
    load_end: float = 0.0


def run_soak(
    settings: Settings, *, env: DevEnvironment | None = None, out: TextIO = sys.stderr
) -> dict[str, Result]:
    """Run the soak and return its rows (the table is printed to ``out``)."""
    env = env or dev_init(settings.home)
    with tempfile.TemporaryDirectory(prefix="kyso-soak-") as tmp:
        server = SoakServer.start(
            env,
            Path(tmp) / "server",
            max_document_bytes=settings.max_document_bytes,
            small_directory=settings.small_directory,
        )
        sampler = MemorySampler(server.process.pid)
        sampler.start()
        niceness = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            figures = asyncio.run(_run(settings, server, sampler))
        finally:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)  # back as it was (raising it is allowed)
            sampler.stop()
            server.stop()
        done = server.kyso("audit", "verify", "--config", str(server.config))
        figures = replace(
            figures, audit_ok=done.returncode == 0, audit_output=done.stdout + done.stderr
        )
    print(table(figures), file=out, flush=True)
    return rows(figures)


async def _run(settings: Settings, server: SoakServer, sampler: MemorySampler) -> Figures:
    legit_nice = _renice(settings.legit_nice)
    legit = Legit(
        server.address, server.tokens, pace=settings.legit_pace, deadline=settings.legit_deadline
    )
    await legit.prepare()
    running = asyncio.create_task(legit.run(settings.legit_clients))
    quiet, attack = _Window(), _Window()
    try:
        quiet.start = time.monotonic()
        await asyncio.sleep(settings.quiet_seconds)
        quiet.end = time.monotonic()
        result = await _attack(settings, server, attack)
    finally:
        legit.stop()
        await running
    unacked = await legit.drain(60)
    checked, failures = await check_intact(
        server.address, server.tokens["soak-verifier"], legit.book, deadline=60
    )
    if unacked:
        failures.append(f"{unacked} sent documents never reached the receiver")
    sampler.sample()
    limits = load_config(server.config).limits
    return Figures(
        quiet=[c for c in legit.calls if quiet.start <= c.started < quiet.end],
        attack=[c for c in legit.calls if attack.start <= c.started < attack.end],
        health_quiet=[c for c in legit.health if quiet.start <= c.started < quiet.end],
        health_attack=[c for c in legit.health if attack.start <= c.started < attack.end],
        quiet_seconds=quiet.end - quiet.start,
        attack_seconds=attack.end - attack.start,
        counts=result.get("counts", {}),
        examples=result.get("examples", {}),
        attackers_cpu_seconds=float(result.get("cpu_seconds", 0.0)),
        attackers_nice=settings.attacker_nice,
        legit_nice=legit_nice,
        load_average=(attack.load_start, attack.load_end),
        rss_quiet_mib=sampler.peak_mib(quiet.start, quiet.end),
        rss_attack_mib=sampler.peak_mib(attack.start, attack.end),
        server_cores_quiet=sampler.cores_used(quiet.start, quiet.end),
        server_cores_attack=sampler.cores_used(attack.start, attack.end),
        main_cores_quiet=sampler.cores_used(quiet.start, quiet.end, server_only=True),
        main_cores_attack=sampler.cores_used(attack.start, attack.end, server_only=True),
        server_hwm_mib=sampler.server_hwm_mib(),
        hwm_total_mib=sampler.hwm_total_mib(),
        rss_bound_mib=settings.rss_bound_mib,
        flood_allowance=limits.calls_per_second * (attack.end - attack.start) + limits.burst,
        documents_checked=checked,
        documents_failed=failures,
        audit_ok=False,
        audit_output="not run",
    )


def _renice(niceness: int) -> int:
    """Set this process's niceness (the server, started before, keeps its own); return the
    niceness it has now, which stays as it was when lowering it is not permitted."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


async def _attack(settings: Settings, server: SoakServer, window: _Window) -> dict[str, Any]:
    """Run the attackers' process; mark when it attacked; return its outcomes."""
    errors = server.data / "hostile.log"
    plan = {
        "address": server.address,
        "hostile_token": server.tokens["soak-hostile"],
        "flood_token": server.tokens["soak-flood"],
        "attack_seconds": settings.attack_seconds,
        **{
            name: value
            for name, value in asdict(settings).items()
            if name
            in {
                "max_document_bytes",
                "idle_streams",
                "slow_readers",
                "slow_pause",
                "grace",
                "oversize_interval",
                "bomb_interval",
                "zip_sends",
                "bombs_per_send",
                "flood_concurrency",
            }
        },
    }
    child = await asyncio.create_subprocess_exec(
        "nice",
        "-n",
        # nice adds to this process's own niceness: the attackers end at attacker_nice.
        str(settings.attacker_nice - os.getpriority(os.PRIO_PROCESS, 0)),
        sys.executable,
        "-m",
        "bench.soak.hostile",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=errors.open("wb"),
        limit=64 * 1024 * 1024,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(json.dumps(plan).encode() + b"\n")
    await child.stdin.drain()
    child.stdin.close()
    result: dict[str, Any] = {}
    try:
        limit = settings.attack_seconds + 300
        while line := await asyncio.wait_for(child.stdout.readline(), limit):
            message = json.loads(line)
            if message["event"] == "started":
                window.start, window.load_start = time.monotonic(), os.getloadavg()[0]
            elif message["event"] == "ended":
                window.end, window.load_end = time.monotonic(), os.getloadavg()[0]
            elif message["event"] == "result":
                result = message
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0 or not result:
        text = errors.read_text(errors="replace")
        raise RuntimeError(f"the attackers' process failed ({child.returncode}):\n{text}")
    return result
