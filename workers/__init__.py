"""workers: supervised worker processes, one framework for every pool in kyso.

- ``WorkerPool`` / ``PoolSpec`` (``workers.pool``): fresh interpreters started and supervised
  by the parent — readiness, dispatch, a watchdog that kills a worker past its deadline and fails
  only what it held, restart with bounded exponential backoff (a worker alone, or the whole pool
  when its workers share a resource), optional memory limit and heartbeat.
- ``WorkerSetup`` / ``Reply`` (``workers.child``): what an owner's entry point returns in the
  worker process; ``send_note``: what a worker tells its parent before it answers.
- ``workers.wire``: the one framing between the two sides.

A leaf package: imports nothing of the project, so that both ``hsm`` (which imports nothing
else of the project) and ``signer`` can build on it. Errors derive from ``WorkerError``
(``workers.errors``); owners translate ``WorkerUnavailable`` (nothing was carried out) into
their own package's errors.
"""

from workers._channel import Answer, Call
from workers.child import Handler, Reply, WorkerSetup, send_note
from workers.errors import (
    PoolUnavailable,
    RemoteError,
    WorkerError,
    WorkerLost,
    WorkerStartFailed,
    WorkerTimedOut,
    WorkerUnavailable,
)
from workers.hardening import forbid_core_dumps, minimal_environment
from workers.pool import Heartbeat, PoolSpec, PoolState, StartCheck, WorkerPool

__all__ = [
    "Answer",
    "Call",
    "Handler",
    "Heartbeat",
    "PoolSpec",
    "PoolState",
    "PoolUnavailable",
    "RemoteError",
    "Reply",
    "StartCheck",
    "WorkerError",
    "WorkerLost",
    "WorkerPool",
    "WorkerSetup",
    "WorkerStartFailed",
    "WorkerTimedOut",
    "WorkerUnavailable",
    "forbid_core_dumps",
    "minimal_environment",
    "send_note",
]
