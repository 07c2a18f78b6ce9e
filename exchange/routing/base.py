"""The state and helpers shared by the parts of the router (see ``router.Router``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exchange.codes import validate_unit_code
from exchange.directory import Directory
from exchange.edxml.dsig import TrustPolicy
from exchange.edxml.model import StatusCode, TraceHeader
from exchange.edxml.safexml import Limits
from exchange.errors import NoRoute, UntrustedSigner
from exchange.hubs import Hub
from exchange.routing.model import Backoff, OutboxKind, PackageStore

__all__ = ["HubBase", "Journal", "trace_from_json", "trace_to_json", "utc", "utcnow"]

_Outcome = TypeVar("_Outcome")

Journal = Callable[[sa.Connection, _Outcome], None]
"""Called inside the transaction that makes a change, with the change's outcome, and only when
something changed: whatever it writes with the connection (the application's ledger events)
commits with the change or not at all, and an exception from it rolls the change back."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC (SQLite hands back naive datetimes; everything stored is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def trace_to_json(trace: Iterable[TraceHeader]) -> list[list[str]]:
    return [[t.organ_id, t.timestamp.isoformat()] for t in trace]


def trace_from_json(raw: Any) -> tuple[TraceHeader, ...]:
    return tuple(
        TraceHeader(organ_id=organ_id, timestamp=datetime.fromisoformat(at)) for organ_id, at in raw
    )


class HubBase:
    """What every part of the router shares; ``Router.__init__`` sets it."""

    _engine: sa.Engine
    _directory: Directory
    hub: Hub
    _store: PackageStore
    _policy: TrustPolicy
    _limits: Limits
    _lease: timedelta
    _backoff: Backoff
    _clock: Callable[[], datetime]
    _skip_locked: bool
    _unit_certificates: Callable[[str, str | None], Collection[str]] | None

    def _check_signer(
        self, unit: str, signer: x509.Certificate | None, signed_by_hub: str | None, *, what: str
    ) -> None:
        """Raise ``UntrustedSigner`` unless ``signer`` may sign ``what`` for ``unit``: a
        certificate bound to the unit, or, when the packet states ``SignedByHub``, a
        certificate of that hub, which must be the hub serving the unit."""
        unsigned_allowed = signer is None and not self._policy.require_signature
        if self._unit_certificates is None or unsigned_allowed:
            return
        fingerprint = (
            hashlib.sha256(signer.public_bytes(Encoding.DER)).hexdigest() if signer else ""
        )
        if fingerprint in self._unit_certificates(unit, signed_by_hub):
            return
        who = signer.subject.rfc4514_string() if signer is not None else "nobody"
        signed = f"signed by {who} (SHA-256 {fingerprint[:16]}…)"
        if signed_by_hub:
            serving = self._directory.serving_hub(unit)
            if serving != signed_by_hub:
                raise UntrustedSigner(
                    f"{what} from unit {unit} says hub {signed_by_hub} signed it on the unit's"
                    f" behalf, but unit {unit} is served by hub {serving or '(none)'}"
                )
            raise UntrustedSigner(
                f"{what} from unit {unit} says its hub {signed_by_hub} signed it on the unit's"
                f" behalf, but it is {signed}, which is not a certificate pinned for hub"
                f" {signed_by_hub}"
            )
        raise UntrustedSigner(
            f"{what} from unit {unit} is {signed}, which is not a certificate bound to unit"
            f" {unit}; a hub that signs for a unit must say so in the package (kyso:SignedByHub)"
        )

    @contextmanager
    def _deciding(self) -> Iterator[sa.Connection]:
        """A transaction that reads rows, decides, then writes them: no other writer between.

        PostgreSQL: the reads lock the rows they decide on (``FOR UPDATE``). SQLite has no row
        locks, and pysqlite opens its transaction only at the first write, so the reads before
        it would see a state another writer may change before this one writes (two statuses of
        one delivery arriving together both read "no status yet", and the lower one, written
        last, became current). ``BEGIN IMMEDIATE`` takes the database's write lock first.
        """
        with self._engine.begin() as conn:
            if self._engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    @staticmethod
    def _outbox_row(
        kind: OutboxKind,
        message_id: int,
        next_hub: str,
        recipients: Sequence[str],
        now: datetime,
        *,
        status_code: StatusCode | None = None,
        description: str | None = None,
        packet_ref: str | None = None,
    ) -> dict[str, Any]:
        return {
            "kind": kind.value,
            "message_id": message_id,
            "next_hub": next_hub,
            "recipients": list(recipients),
            "packet_ref": packet_ref,
            "status_code": status_code.value if status_code else None,
            "description": description,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "done_at": None,
        }

    def _check_served(self, unit: str) -> None:
        validate_unit_code(unit, field="unit")
        serving = self._directory.serving_hub(unit)
        if serving != self.hub.id:
            raise NoRoute(
                f"unit {unit} is served by hub {serving or '(none)'}, not by this hub"
                f" ({self.hub.id}); ask that hub for its inbox",
                field="unit",
            )
