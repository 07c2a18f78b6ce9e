"""The routing and delivery state machine of one hub, on SQLAlchemy Core.

Flow: ``prepare`` (verify, route, store the bytes — no database) then ``commit`` (one transaction
for a whole batch: messages, per-recipient deliveries, status 01 for local recipients, outbox
hops). ``accept``/``accept_many`` do both. The service groups concurrent sends into one
``accept_many`` so that one durable commit carries many documents.

Invariants:
- a (sender, DocumentId, business type) is one message; the same bytes sent again add only the
  recipients not yet delivered; other bytes under the same key are ``DuplicateDocument``;
- a recipient gets a (message, recipient) delivery row once, kept forever: this is the dedup;
- a local delivery is in the unit's inbox until acknowledged; a fetched one is leased and comes
  back after the lease expires; a remote one waits in the outbox until the next hub took it;
- status 01 is recorded when a document reaches a local inbox; the recipient sets 02–06 or
  13/15/16 within the transitions of ``transitions``; statuses go back the way the message came
  (``via_hub``), hop by hop, through the outbox;
- outbox items are retried, never dropped: with exponential backoff and jitter when the next
  hub answered with an error, after the caller's delay when it could not be reached
  (see ``outbox``); a delivery or a hop that keeps failing is quarantined after a bounded
  number of attempts, kept until an operator releases it (see ``quarantine``);
- a transaction that reads a delivery to decide how to change it holds the write lock from
  its first read (``HubBase._deciding``): two statuses of one delivery arriving at once are
  recorded one after the other, never both against the state before either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta

import sqlalchemy as sa

from exchange.directory import Directory
from exchange.edxml.dsig import TrustPolicy
from exchange.edxml.packages import DEFAULT_LIMITS
from exchange.edxml.safexml import Limits
from exchange.routing.accepting import Accepting
from exchange.routing.base import utcnow
from exchange.routing.inbox import Inbox
from exchange.routing.model import Backoff, PackageStore
from exchange.routing.outbox import Outbox
from exchange.routing.statuses import Statuses

__all__ = ["Router"]

_DEFAULT_BACKOFF = Backoff()


class Router(Accepting, Inbox, Outbox, Statuses):
    """One hub's routing state machine (thread-safe: it keeps no per-call state).

    ``policy`` says whom to trust for every package and status; ``unit_certificates(code,
    hub)``, when given, names the SHA-256 fingerprints (hex) of the certificates allowed to sign
    a package from a sending unit (or a status packet from a recipient unit): with ``hub`` None
    the certificates bound to the unit, else those of ``hub`` signing on the unit's behalf as
    the packet states (``SignedByHub``). A package signed by any other is ``UntrustedSigner``,
    and with none named for a unit, its packages are refused. Without it, any certificate the policy
    trusts may sign for any unit. ``clock`` is injectable for leases, claims and backoff.
    ``max_delivery_attempts`` and ``max_forward_attempts`` bound the failures before a
    delivery or a hop is quarantined (see ``quarantine``).
    """

    def __init__(
        self,
        *,
        engine: sa.Engine,
        directory: Directory,
        hub_id: str,
        store: PackageStore,
        policy: TrustPolicy,
        limits: Limits = DEFAULT_LIMITS,
        lease: timedelta = timedelta(minutes=5),
        backoff: Backoff = _DEFAULT_BACKOFF,
        clock: Callable[[], datetime] = utcnow,
        unit_certificates: Callable[[str, str | None], Collection[str]] | None = None,
        max_delivery_attempts: int = 5,
        max_forward_attempts: int = 10,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self.hub = directory.topology.hub(hub_id)
        self._store = store
        self._policy = policy
        self._limits = limits
        self._lease = lease
        self._backoff = backoff
        self._clock = clock
        self._skip_locked = engine.dialect.name == "postgresql"
        self._unit_certificates = unit_certificates
        self._max_delivery_attempts = max_delivery_attempts
        self._max_forward_attempts = max_forward_attempts
