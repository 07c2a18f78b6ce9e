"""Accepting packages: prepare (verify, route, store) and commit (one transaction per batch)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exchange.directory import RouteKind
from exchange.edxml.model import BusinessType, StatusCode, TraceHeader
from exchange.edxml.packages import open_package
from exchange.errors import (
    DuplicateDocument,
    ExchangeError,
    NoRoute,
    PackageInvalid,
    UntrustedSigner,
)
from exchange.routing.base import HubBase, Journal, trace_to_json
from exchange.routing.model import (
    Accepted,
    AcceptOutcome,
    BatchPackageStore,
    DeliveryState,
    OutboxKind,
    Prepared,
    Submission,
)
from exchange.schema import deliveries, messages, outbox, status_events

__all__ = ["Accepting"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Plan:
    prepared: Prepared
    key: tuple[str, str, int]
    outcome: AcceptOutcome | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Checked:
    """A verified and routed package whose bytes are not stored yet."""

    submission: Submission
    sender: str
    document_id: str
    business_type: BusinessType
    subject: str
    package_sha256: str
    signer: str | None
    hub_root: str
    local: tuple[str, ...]
    remote: tuple[tuple[str, str], ...]

    def prepared(self, package_ref: str, now: datetime) -> Prepared:
        """The ``Prepared`` of this package once its bytes are durable under ``package_ref``."""
        return Prepared(
            sender=self.sender,
            document_id=self.document_id,
            business_type=self.business_type,
            subject=self.subject,
            package_ref=package_ref,
            package_sha256=self.package_sha256,
            signer=self.signer,
            via_hub=self.submission.via_hub,
            trace=(
                *self.submission.trace,
                TraceHeader(organ_id=self.hub_root, timestamp=now),
            ),
            local=self.local,
            remote=self.remote,
        )


class Accepting(HubBase):
    """Accepting packages: verify, route, store, commit in batches."""

    def prepare(self, submission: Submission) -> Prepared:
        """Verify the package, route its recipients and store its bytes (no database writes).

        Raises the package's ``ExchangeError`` (invalid, unsigned, untrusted, unknown unit, no
        route). Safe to run in worker processes: the result is plain data.
        """
        checked = self._check(submission)
        return checked.prepared(self._store.put(submission.package), self._clock())

    def _check(self, submission: Submission) -> _Checked:
        """Verify and route one package (the CPU part of ``prepare``; nothing is stored)."""
        opened = open_package(submission.package, policy=self._policy, limits=self._limits)
        header = opened.package.header
        self._check_sender_key(header.from_.organ_id, opened.signature.signer)
        to_codes = list(dict.fromkeys(org.organ_id for org in header.to))
        if submission.recipients is None:
            targets = to_codes
        else:
            outside = [c for c in submission.recipients if c not in to_codes]
            if outside:
                raise PackageInvalid(
                    f"recipient {outside[0]} is not among the package's signed To units",
                    field="recipients",
                )
            targets = list(dict.fromkeys(submission.recipients))
        local: list[str] = []
        remote: list[tuple[str, str]] = []
        for code in targets:
            decision = self._directory.route(from_hub=self.hub.id, to_unit=code)
            if decision.kind is RouteKind.LOCAL:
                local.append(code)
                continue
            assert decision.next_hub is not None
            if decision.next_hub == submission.via_hub:
                raise NoRoute(
                    f"unit {code} would be sent back to hub {submission.via_hub}, which sent it"
                    " here: the hubs' configurations disagree about who serves it"
                )
            remote.append((code, decision.next_hub))
        return _Checked(
            submission=submission,
            sender=header.from_.organ_id,
            document_id=header.document_id,
            business_type=opened.package.business.type,
            subject=header.subject,
            package_sha256=opened.sha256,
            signer=opened.signature.signer_subject,
            hub_root=self.hub.root_unit,
            local=tuple(local),
            remote=tuple(remote),
        )

    def _check_sender_key(self, sender: str, signer: x509.Certificate | None) -> None:
        # Checked on the signed From only, after verification: the unit's bound certificates
        # (its own keys, and its hub's for packages the hub signs on its behalf).
        unsigned_allowed = signer is None and not self._policy.require_signature
        if self._unit_certificates is None or unsigned_allowed:
            return
        allowed = self._unit_certificates(sender)
        fingerprint = (
            hashlib.sha256(signer.public_bytes(Encoding.DER)).hexdigest() if signer else ""
        )
        if fingerprint not in allowed:
            who = signer.subject.rfc4514_string() if signer is not None else "nobody"
            raise UntrustedSigner(
                f"the package from unit {sender} is signed by {who} (SHA-256 {fingerprint[:16]}…),"
                f" which is not a certificate bound to unit {sender} or to the hub serving it"
            )

    def accept(
        self, submission: Submission, *, journal: Journal[Accepted] | None = None
    ) -> Accepted:
        """Prepare and commit one package; raise its ``ExchangeError`` if refused.

        ``journal`` (see ``Journal``) gets the ``Accepted`` inside the commit's transaction.
        """
        return self.commit_one(self.prepare(submission), journal=journal)

    def commit_one(
        self, prepared: Prepared, *, journal: Journal[Accepted] | None = None
    ) -> Accepted:
        """Commit one prepared package; raise its ``ExchangeError`` if refused."""

        def each(conn: sa.Connection, outcomes: Sequence[AcceptOutcome]) -> None:
            if journal is not None and isinstance(outcomes[0], Accepted):
                journal(conn, outcomes[0])

        outcome = self.commit([prepared], journal=each)[0]
        if isinstance(outcome, ExchangeError):
            raise outcome
        return outcome

    def accept_many(
        self, submissions: Sequence[Submission], *, executor: Executor | None = None
    ) -> list[AcceptOutcome]:
        """Accept a batch in one transaction; per item, ``Accepted`` or the error refusing it.

        With ``executor`` (a thread pool), packages are verified concurrently. The accepted
        packages' bytes are then stored together with the store's ``put_many`` when it has one
        (one group flush for the batch), else one ``put`` each, concurrently with ``executor``.
        Nothing is committed before every accepted package is durable.
        """

        def attempt(submission: Submission) -> _Checked | ExchangeError:
            try:
                return self._check(submission)
            except ExchangeError as exc:
                return exc

        checked = (
            list(executor.map(attempt, submissions))
            if executor is not None
            else [attempt(s) for s in submissions]
        )
        valid = [c for c in checked if isinstance(c, _Checked)]
        datas = [c.submission.package for c in valid]
        if isinstance(self._store, BatchPackageStore):
            refs = self._store.put_many(datas) if datas else []
        elif executor is not None:
            refs = list(executor.map(self._store.put, datas))
        else:
            refs = [self._store.put(data) for data in datas]
        now = self._clock()
        prepared = [c.prepared(ref, now) for c, ref in zip(valid, refs, strict=True)]
        committed = iter(self.commit(prepared))
        return [c if isinstance(c, ExchangeError) else next(committed) for c in checked]

    def commit(
        self,
        batch: Sequence[Prepared],
        *,
        journal: Journal[Sequence[AcceptOutcome]] | None = None,
    ) -> list[AcceptOutcome]:
        """Record prepared packages in one transaction (see the module's invariants).

        ``journal`` gets every outcome, in ``batch`` order, inside that transaction.
        """
        if not batch:
            return []
        try:
            return self._commit(batch, journal)
        except sa.exc.IntegrityError:
            # Another process committed one of these documents meanwhile: run again; this time
            # the existing rows are seen and deduplicated.
            log.info("concurrent accept of the same document; retrying the batch")
            return self._commit(batch, journal)

    def _commit(
        self, batch: Sequence[Prepared], journal: Journal[Sequence[AcceptOutcome]] | None
    ) -> list[AcceptOutcome]:
        now = self._clock()
        plans = [
            _Plan(prepared=p, key=(p.sender, p.document_id, int(p.business_type))) for p in batch
        ]
        with self._engine.begin() as conn:
            keys = list({plan.key for plan in plans})
            found: dict[tuple[str, str, int], tuple[int, str]] = {}
            for start in range(0, len(keys), 300):
                chunk = keys[start : start + 300]
                rows = conn.execute(
                    sa.select(
                        messages.c.sender,
                        messages.c.document_id,
                        messages.c.business_type,
                        messages.c.id,
                        messages.c.package_sha256,
                    ).where(
                        sa.tuple_(
                            messages.c.sender, messages.c.document_id, messages.c.business_type
                        ).in_(chunk)
                    )
                )
                for sender, document_id, business, message_id, sha in rows:
                    found[(sender, document_id, business)] = (message_id, sha)
            first_in_batch: dict[tuple[str, str, int], _Plan] = {}
            new: list[_Plan] = []
            for plan in plans:
                earlier = first_in_batch.get(plan.key)
                known_sha = found[plan.key][1] if plan.key in found else None
                if known_sha is None and earlier is not None:
                    known_sha = earlier.prepared.package_sha256
                if known_sha is not None and known_sha != plan.prepared.package_sha256:
                    plan.outcome = DuplicateDocument(
                        f"document {plan.prepared.document_id} from {plan.prepared.sender} was"
                        " already sent with different content; give a changed document a new"
                        " DocumentId, or send it as an update",
                        field="document_id",
                    )
                elif plan.key not in found and earlier is None:
                    new.append(plan)
                first_in_batch.setdefault(plan.key, plan)
            if new:
                ids = conn.execute(
                    messages.insert().returning(messages.c.id, sort_by_parameter_order=True),
                    [self._message_row(plan.prepared, now) for plan in new],
                ).scalars()
                for plan, message_id in zip(new, ids, strict=True):
                    found[plan.key] = (message_id, plan.prepared.package_sha256)
            delivered: dict[int, set[str]] = {}
            fresh = {id(plan) for plan in new}
            reused = {found[p.key][0] for p in plans if p.outcome is None and id(p) not in fresh}
            if reused:
                pairs = conn.execute(
                    sa.select(deliveries.c.message_id, deliveries.c.recipient).where(
                        deliveries.c.message_id.in_(reused)
                    )
                )
                for message_id, recipient in pairs:
                    delivered.setdefault(message_id, set()).add(recipient)
            delivery_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            outbox_rows: list[dict[str, Any]] = []
            results: list[AcceptOutcome] = []
            for plan in plans:
                if plan.outcome is not None:
                    results.append(plan.outcome)
                    continue
                p = plan.prepared
                message_id = found[plan.key][0]
                seen = delivered.setdefault(message_id, set())
                skipped = [c for c in (*p.local, *(r for r, _ in p.remote)) if c in seen]
                local = [c for c in p.local if c not in seen]
                by_hub: dict[str, list[str]] = {}
                for recipient, hub in p.remote:
                    if recipient not in seen:
                        by_hub.setdefault(hub, []).append(recipient)
                seen.update(local)
                for recipients in by_hub.values():
                    seen.update(recipients)
                for recipient in local:
                    delivery_rows.append(self._delivery_row(message_id, recipient, None, now))
                    event_rows.append(
                        {
                            "message_id": message_id,
                            "recipient": recipient,
                            "code": StatusCode.ARRIVED.value,
                            "description": None,
                            "staff": None,
                            "at": now,
                        }
                    )
                if local and p.via_hub is not None:
                    outbox_rows.append(
                        self._outbox_row(
                            OutboxKind.STATUS,
                            message_id,
                            p.via_hub,
                            local,
                            now,
                            status_code=StatusCode.ARRIVED,
                        )
                    )
                for hub, recipients in by_hub.items():
                    for recipient in recipients:
                        delivery_rows.append(self._delivery_row(message_id, recipient, hub, now))
                    outbox_rows.append(
                        self._outbox_row(OutboxKind.PACKAGE, message_id, hub, recipients, now)
                    )
                results.append(
                    Accepted(
                        message_id=message_id,
                        sender=p.sender,
                        document_id=p.document_id,
                        local=tuple(local),
                        forwarded={hub: tuple(r) for hub, r in by_hub.items()},
                        skipped=tuple(skipped),
                        duplicate=bool(skipped) and not local and not by_hub,
                    )
                )
            if delivery_rows:
                conn.execute(deliveries.insert(), delivery_rows)
            if event_rows:
                conn.execute(status_events.insert(), event_rows)
            if outbox_rows:
                conn.execute(outbox.insert(), outbox_rows)
            if journal is not None:
                journal(conn, results)
        return results

    @staticmethod
    def _message_row(p: Prepared, now: datetime) -> dict[str, Any]:
        return {
            "sender": p.sender,
            "document_id": p.document_id,
            "business_type": int(p.business_type),
            "subject": p.subject,
            "package_ref": p.package_ref,
            "package_sha256": p.package_sha256,
            "signer": p.signer,
            "via_hub": p.via_hub,
            "trace": trace_to_json(p.trace),
            "received_at": now,
        }

    @staticmethod
    def _delivery_row(
        message_id: int, recipient: str, next_hub: str | None, now: datetime
    ) -> dict[str, Any]:
        return {
            "message_id": message_id,
            "recipient": recipient,
            "next_hub": next_hub,
            "state": DeliveryState.QUEUED.value,
            "status": StatusCode.ARRIVED.value if next_hub is None else None,
            "lease_until": None,
            "fetch_count": 0,
            "updated_at": now,
        }
