"""Soak: legitimate clients beside hostile ones against a real ``kyso serve`` (issue 14).

Bounded in time (``KYSO_SOAK_SECONDS``, default 120 s under load, about 3 minutes in all),
loopback only. What runs, what is measured and the goals: bench/soak/ and docs/operations.md
("Soak test"). ``make soak`` runs this module alone.
"""

from __future__ import annotations

from bench.common import Result
from bench.soak.run import run_soak
from bench.soak.settings import Settings

__all__ = ["run"]


def run() -> dict[str, Result]:
    return run_soak(Settings.from_env())
