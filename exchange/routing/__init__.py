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
    "Router",
    "StatusEvent",
    "Submission",
    "TrackEntry",
]
