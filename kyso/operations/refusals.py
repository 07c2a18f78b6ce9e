"""Refusals in the ledger, summarised: one ``authz.denied`` event per caller and minute.

Every refusal — an unauthenticated call (the caller is then named by its network address), a
role that may not call the RPC, a unit the caller may not act for, a key it may not use — is
counted here, in memory, under (caller, minute). When the minute is over (``flush``, run every
few seconds by the server, and once more when it stops) each tally becomes one event:
``details`` give the count, the first and last time, the RPCs (at most ``MAX_RPCS`` named)
and the first refusal's reason. So a flood of refused calls adds one event per caller and
minute, not one per call, and the ledger cannot be grown cheaply by being refused.

Invariant: a refusal noted before ``flush(everything=True)`` is in exactly one event after it;
a tally whose append failed is kept and tried again at the next flush.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import audit
from audit.entry import format_time
from kyso.authz import Identity
from kyso.operations.ledger import EventLog

__all__ = ["MAX_RPCS", "MAX_TALLIES", "OVERFLOW", "Refusals"]

log = logging.getLogger(__name__)

MAX_RPCS = 10
MAX_TALLIES = 10_000
"""Callers tallied at once; beyond, refusals of new callers are tallied together as
``OVERFLOW`` (a flood from many addresses stays bounded in memory and in the ledger)."""
OVERFLOW = Identity(name="refusals of other callers", unit="", roles=frozenset())
_MAX_REASON_CHARS = 300


@dataclass(slots=True)
class _Tally:
    actor: Identity
    first: datetime
    last: datetime
    reason: str
    count: int = 0
    rpcs: dict[str, None] = field(default_factory=dict)


class Refusals:
    """The per-caller, per-minute tallies of refusals (see the module docstring)."""

    def __init__(
        self, events: EventLog, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, datetime], _Tally] = {}

    def note(self, actor: Identity, method: str, reason: str) -> None:
        """Count one refusal of ``actor`` calling ``method`` (never blocks on the ledger)."""
        now = self._clock()
        minute = now.replace(second=0, microsecond=0)
        with self._lock:
            if (actor.name, minute) not in self._tallies and len(self._tallies) >= MAX_TALLIES:
                actor = OVERFLOW
            tally = self._tallies.get((actor.name, minute))
            if tally is None:
                tally = _Tally(actor=actor, first=now, last=now, reason=reason[:_MAX_REASON_CHARS])
                self._tallies[(actor.name, minute)] = tally
            tally.count += 1
            tally.last = now
            if method not in tally.rpcs and len(tally.rpcs) < MAX_RPCS:
                tally.rpcs[method] = None

    async def flush(self, *, everything: bool = False) -> int:
        """Append one event per tally whose minute is over (every tally with ``everything``);
        return how many events were appended."""
        current = self._clock().replace(second=0, microsecond=0)
        with self._lock:
            due = {k: t for k, t in self._tallies.items() if everything or k[1] < current}
            for key in due:
                del self._tallies[key]
        appended = 0
        for key, tally in due.items():
            try:
                await self._events.record(self._event(tally))
            except Exception:  # keep the tally: the next flush tries again
                log.exception("could not record refusals", extra={"caller": key[0]})
                with self._lock:
                    self._tallies.setdefault(key, tally)
                continue
            appended += 1
        return appended

    def _event(self, tally: _Tally) -> audit.Event:
        return self._events.event(
            audit.EventType.AUTHZ_DENIED,
            actor=tally.actor,
            details={
                "count": str(tally.count),
                "first": format_time(tally.first),
                "last": format_time(tally.last),
                "rpc": next(iter(tally.rpcs), ""),
                "rpcs": ",".join(tally.rpcs),
                "reason": tally.reason,
            },
        )
