"""The routing state machine's values, its storage port and its retry schedule."""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from exchange.edxml.model import BusinessType, StatusCode, TraceHeader
from exchange.errors import ExchangeError

__all__ = [
    "AcceptOutcome",
    "Accepted",
    "Backoff",
    "BatchPackageStore",
    "DeliveryState",
    "InboxItem",
    "OutboxItem",
    "OutboxKind",
    "PackageStore",
    "Prepared",
    "QuarantineKind",
    "Quarantined",
    "StatusEvent",
    "Submission",
    "TrackEntry",
]


class PackageStore(Protocol):
    """Where package bytes go: durable and content-addressed (storage's port fits behind it).

    ``put`` returns only after the bytes are durable; putting the same bytes twice is harmless
    and returns the same ref.
    """

    def put(self, data: bytes, /) -> str: ...

    def get(self, ref: str, /) -> bytes: ...


@runtime_checkable
class BatchPackageStore(Protocol):
    """A ``PackageStore`` that can also make many packages durable together (group commit).

    ``put_many`` returns the refs in order, only after every package is durable; on error some
    may be stored, none partially, and putting them again is harmless. The router uses it for a
    batch when the store has it.
    """

    def put_many(self, datas: Sequence[bytes], /) -> list[str]: ...


class DeliveryState(enum.StrEnum):
    """A delivery's transport state at this hub (business statuses are separate).

    QUEUED: accepted here, waiting in the unit's inbox or in the outbox. FORWARDED: the next hub
    took it (final here). DELIVERED: the unit's system fetched it under a lease; it is fetched
    again when the lease expires unacknowledged. ACKNOWLEDGED: the unit confirmed it (final).
    QUARANTINED: it could not be handed over (to the unit's system, or to the next hub) the
    configured number of times; it is set aside, with its reason, until an operator releases
    it (back to QUEUED).
    """

    QUEUED = "queued"
    FORWARDED = "forwarded"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    QUARANTINED = "quarantined"


class OutboxKind(enum.StrEnum):
    PACKAGE = "package"
    STATUS = "status"


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Retry delays: ``initial`` × 2^(attempt-1), capped at ``maximum``, with equal jitter
    (half fixed, half random) so hubs coming back together do not retry in lockstep.
    Retries never stop: a hub offline for days gets everything when it returns."""

    initial: timedelta = timedelta(seconds=2)
    maximum: timedelta = timedelta(minutes=30)

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> timedelta:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        ceiling = min(self.initial * (1 << min(max(attempt, 1) - 1, 30)), self.maximum)
        half = ceiling / 2
        # jitter only spreads retries out; it needs no cryptographic randomness
        fraction = rng.random() if rng else random.random()  # noqa: S311
        return half + half * fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """A package to accept: from a unit's system (``via_hub`` None) or from another hub, which
    names the recipients it hands over (``recipients``; None means every To unit) and the hop
    trace so far."""

    package: bytes
    via_hub: str | None = None
    recipients: tuple[str, ...] | None = None
    trace: tuple[TraceHeader, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A verified, stored and routed package, ready to be committed (picklable, no bytes)."""

    sender: str
    document_id: str
    business_type: BusinessType
    subject: str
    package_ref: str
    package_sha256: str
    signer: str | None
    via_hub: str | None
    trace: tuple[TraceHeader, ...]
    local: tuple[str, ...]
    remote: tuple[tuple[str, str], ...]  # (recipient, next hub)


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """What ``commit`` did with one package. ``duplicate`` is True when every recipient had it
    already (a retried send); ``skipped`` lists recipients that had it before."""

    message_id: int
    sender: str
    document_id: str
    local: tuple[str, ...]
    forwarded: dict[str, tuple[str, ...]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    duplicate: bool = False


AcceptOutcome = Accepted | ExchangeError


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    """A document waiting for a unit, leased to the caller until ``lease_until``."""

    delivery_id: int
    message_id: int
    sender: str
    document_id: str
    business_type: BusinessType
    subject: str
    package_ref: str
    package_sha256: str
    trace: tuple[TraceHeader, ...]
    fetch_count: int
    lease_until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """A hop to make: send the package for ``recipients`` to ``next_hub``, or a status: the
    stored packet ``packet_ref`` (relayed), else one packet per recipient with ``status_code``
    (built and signed by ``Router.status_packets``)."""

    id: int
    kind: OutboxKind
    next_hub: str
    message_id: int
    sender: str
    document_id: str
    business_type: BusinessType
    package_ref: str
    trace: tuple[TraceHeader, ...]
    recipients: tuple[str, ...]
    status_code: StatusCode | None
    description: str | None
    packet_ref: str | None
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusEvent:
    code: StatusCode
    at: datetime
    description: str | None = None
    staff: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackEntry:
    """One recipient of a document as this hub sees it."""

    recipient: str
    business_type: BusinessType
    state: DeliveryState
    next_hub: str | None
    status: StatusCode | None
    history: tuple[StatusEvent, ...]
    reason: str | None = None  # why it is quarantined, when it is
    subject: str = ""  # the document's subject (trích yếu)


class QuarantineKind(enum.StrEnum):
    DELIVERY = "delivery"  # a local delivery Receive could not hand over
    HOP = "hop"  # an outbox hop the next hub kept refusing


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    """Something set aside: a local delivery (``id`` is the delivery's) or a hop (``id`` is
    the outbox item's; ``recipients`` the units it carries, ``next_hub`` where it goes)."""

    kind: QuarantineKind
    id: int
    sender: str
    document_id: str
    recipients: tuple[str, ...]
    next_hub: str | None
    failures: int
    reason: str
    at: datetime
