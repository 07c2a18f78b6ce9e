"""Routing and delivery: the state machine of one hub (``Router``) and its values."""

from exchange.routing.model import (
    Accepted,
    AcceptOutcome,
    Backoff,
    BatchPackageStore,
    DeliveryState,
    InboxItem,
    OutboxItem,
    OutboxKind,
    PackageStore,
    Prepared,
    Quarantined,
    QuarantineKind,
    StatusEvent,
    Submission,
    TrackEntry,
)
from exchange.routing.router import Router

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
    "Router",
    "StatusEvent",
    "Submission",
    "TrackEntry",
]
