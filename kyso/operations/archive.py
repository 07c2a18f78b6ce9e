"""Archive: how long stored signed PDFs stay provable, and renewing them before they stop.

- ``scan``: every stored object not seen yet (the store's listing: documents kyso signed,
  uploaded ones, and PDFs received through the exchange, which have no catalogue row) is read
  once in a renewal worker; a PDF's evidence facts (``signer.archive``) go to
  ``catalogue_evidence``. Objects that are not signed PDFs get a row with no signature, so they
  are read once.
- ``status``: the current versions (no successor) counted by when their evidence ends — the
  earliest of the last time-stamp's TSA certificate expiry, that certificate's revocation and
  the end of its algorithms under the ``[verify] algorithms`` rules configured *now* — within
  30, 90 and 365 days, already ended, and those whose renewal is failing.
- ``renew_due``: each current version whose end minus ``[archive] margin_days`` has passed is
  renewed to B-LTA (validation data still missing + a new document time-stamp), at most
  ``rate_per_second`` started per second and ``concurrency`` in flight, in the renewal worker
  processes (not the signing workers, not a thread of the ``pdf`` pool: signing never waits).
- ``extend``: a caller raises one document it may read to B-LT or B-LTA.

One renewal: read the old version → renew it in a worker → store the new object
(content-addressed, object lock like signed documents; the old one is never touched) → in ONE
transaction: the new version's catalogue row, the old → new link (``catalogue_versions``, one
successor per version), the new version's evidence row and the ``document.renewed`` event.

Invariants:
- idempotent: a version that has a successor is never renewed again (the link's primary key
  settles a race between runs or servers: the loser's object is an unlinked orphan);
- resumable: a crash before the commit leaves the old version current, with no link and no
  event; the next run renews it. The orphaned object carries ``renewal-of`` metadata and is
  never counted as a document of its own;
- failures are retried with doubling delays (``retry_seconds`` … ``max_retry_seconds``) and
  shown: the row keeps the attempts and the last error, ``status`` counts them, the metrics
  ``kyso_archive_failing`` and ``kyso_archive_renewal_failures_total`` show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

import audit
import signer
import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import Catalogue, CatalogueEntry
from kyso.db import dialect_insert
from kyso.errors import NotFound, RequestInvalid
from kyso.operations.documents import Documents
from kyso.operations.ledger import Staging
from kyso.schema import evidence, versions
from signer.archive import EvidenceFacts, evidence_end

__all__ = ["SYSTEM", "Archive", "ArchiveStatus", "Renewed", "RunResult"]

log = logging.getLogger(__name__)

SYSTEM = Identity(name="kyso-archive", unit="", roles=frozenset())
"""Who the scheduled renewal acts as in the ledger."""

BUCKET_DAYS = (30, 90, 365)
_RENEWAL_OF = "renewal-of"
_FIRST_RUN_AFTER_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveStatus:
    """Current signed versions by the end of their evidence (``within[d]``: ends within ``d``
    days from ``now``, those already ended included)."""

    now: datetime
    documents: int
    within: Mapping[int, int]
    ended: int
    no_end: int
    failing: int
    renewed: int
    unread: int
    margin_days: int
    soonest: tuple[tuple[str, datetime, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Renewed:
    old_ref: str
    new_ref: str
    level: str
    created: bool
    """False when the version already had a successor (nothing was done)."""
    evidence_end: datetime | None = None
    ledger_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    scanned: int = 0
    renewed: int = 0
    failed: int = 0
    errors: tuple[str, ...] = field(default=())


class _Pacer:
    """At most ``rate`` starts per second (evenly spaced)."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._gap
        if start > now:
            await asyncio.sleep(start - now)


class Archive:
    """The archive operations (see the module docstring)."""

    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents
        self._run = app.executors.io.run
        self._config = app.config.archive
        self._pacer = _Pacer(self._config.rate_per_second)
        self._slots = asyncio.Semaphore(self._config.concurrency)
        self.last_status: ArchiveStatus | None = None
        self.renewals = 0
        self.failures = 0

    # -- scan --------------------------------------------------------------------------------

    async def scan(self) -> int:
        """Read the evidence facts of every stored object not seen yet; return how many."""
        known = await self._run(self._known_refs)
        refs = await self._run(lambda: [str(r) for r in self._app.store.iter_refs()])
        fresh = [r for r in refs if r not in known]

        async def one(ref: str) -> None:
            async with self._slots:  # read in the renewal workers, as many at once as renewals
                facts = await self._facts_of(ref)
            await self._run(self._record_facts, ref, facts)

        await asyncio.gather(*(one(ref) for ref in fresh))
        return len(fresh)

    def _known_refs(self) -> set[str]:
        with self._app.engine.connect() as conn:
            return {r for (r,) in conn.execute(sa.select(evidence.c.ref))}

    async def _facts_of(self, ref: str) -> EvidenceFacts:
        info = await self._run(self._app.store.stat, ref)
        if info.metadata.get(_RENEWAL_OF):
            return EvidenceFacts(signatures=0, level="orphan")  # a renewal that never committed
        if info.size > self._app.config.signing.max_document_bytes:
            return EvidenceFacts(signatures=0, level="too-large")
        data = await self._run(self._documents.read_whole, ref)
        if not data.startswith(b"%PDF"):
            return EvidenceFacts(signatures=0)
        try:
            pool = await self._run(self._app.renewal_pool)  # starts the workers once
            return await pool.facts(data)
        except signer.PdfCorrupt:
            return EvidenceFacts(signatures=0, level="unreadable")

    def _record_facts(self, ref: str, facts: EvidenceFacts) -> None:
        with self._app.engine.begin() as conn:
            _insert_evidence(conn, ref, facts)

    # -- status ------------------------------------------------------------------------------

    async def status(self, *, now: datetime | None = None) -> ArchiveStatus:
        """The counts of ``kyso archive status`` (see the module docstring)."""
        moment = now or datetime.now(UTC)
        result = await self._run(self._status, moment)
        self.last_status = result
        return result

    def _status(self, now: datetime) -> ArchiveStatus:
        rules = self._app.pdf_policy.algorithms
        within = dict.fromkeys(BUCKET_DAYS, 0)
        ended = no_end = failing = documents = 0
        soonest: list[tuple[str, datetime, str]] = []
        with self._app.engine.connect() as conn:
            rows = conn.execute(_current_signed()).all()
            renewed = conn.execute(sa.select(sa.func.count()).select_from(versions)).scalar_one()
            unread = conn.execute(
                sa.select(sa.func.count())
                .select_from(evidence)
                .where(evidence.c.level == "unreadable")
            ).scalar_one()
        for row in rows:
            documents += 1
            if row.last_error:
                failing += 1
            end = evidence_end(_facts(row), rules)
            if end.at is None:
                no_end += 1
                continue
            if end.at <= now:
                ended += 1
            for days in BUCKET_DAYS:
                if end.at <= now + timedelta(days=days):
                    within[days] += 1
            soonest.append((row.ref, end.at, end.reason))
        soonest.sort(key=lambda item: item[1])
        return ArchiveStatus(
            now=now,
            documents=documents,
            within=within,
            ended=ended,
            no_end=no_end,
            failing=failing,
            renewed=int(renewed),
            unread=int(unread),
            margin_days=self._config.margin_days,
            soonest=tuple(soonest[:10]),
        )

    # -- renewal -----------------------------------------------------------------------------

    async def run_once(self, *, now: datetime | None = None) -> RunResult:
        """One scheduled run: scan, then renew what is due, then refresh the status."""
        scanned = await self.scan()
        result = await self.renew_due(now=now)
        await self.status(now=now)
        return RunResult(
            scanned=scanned, renewed=result.renewed, failed=result.failed, errors=result.errors
        )

    async def renew_due(self, *, now: datetime | None = None) -> RunResult:
        """Renew every current version whose evidence ends within the margin (see above)."""
        moment = now or datetime.now(UTC)
        due = await self._run(self._due, moment)
        renewed = failed = 0
        errors: list[str] = []

        async def one(ref: str) -> None:
            nonlocal renewed, failed
            try:
                async with self._slots:  # the worker's part; the ledger's is awaited outside
                    await self._pacer.wait()
                    done, staging = await self._renew(
                        ref, level=signer.Level.B_LTA, reason="renewal", actor=SYSTEM
                    )
                await self._app.events.settled(staging)
            except Exception as exc:  # recorded, retried and shown: never lost
                failed += 1
                errors.append(f"{ref}: {exc}")
                await self._run(self._failed, ref, exc, moment)
            else:
                renewed += done.created

        await asyncio.gather(*(one(ref) for ref in due))
        return RunResult(renewed=renewed, failed=failed, errors=tuple(errors))

    def _due(self, now: datetime) -> list[str]:
        rules = self._app.pdf_policy.algorithms
        margin = timedelta(days=self._config.margin_days)
        with self._app.engine.connect() as conn:
            rows = conn.execute(_current_signed()).all()
        due: list[tuple[datetime, str]] = []
        for row in rows:
            if row.next_attempt_at is not None and _utc(row.next_attempt_at) > now:
                continue
            end = evidence_end(_facts(row), rules)
            if end.at is not None and end.at - margin <= now:
                due.append((end.at, row.ref))
        return [ref for _, ref in sorted(due)]

    def _failed(self, ref: str, exc: Exception, now: datetime) -> None:
        self.failures += 1
        with self._app.engine.begin() as conn:
            attempts = conn.execute(
                sa.select(evidence.c.attempts).where(evidence.c.ref == ref)
            ).scalar_one_or_none()
            attempts = (attempts or 0) + 1
            delay = min(
                self._config.retry_seconds * 2 ** (attempts - 1), self._config.max_retry_seconds
            )
            conn.execute(
                evidence.update()
                .where(evidence.c.ref == ref)
                .values(
                    attempts=attempts,
                    last_error=str(exc)[:2000] or type(exc).__name__,
                    next_attempt_at=now + timedelta(seconds=delay),
                )
            )
        log.warning(
            "archive renewal failed; it is tried again",
            extra={"ref": ref, "attempts": attempts, "retry_seconds": delay, "error": str(exc)},
        )

    async def extend(self, actor: Identity, ref: str, level: signer.Level) -> Renewed:
        """Raise a document ``actor`` may read to ``level`` (B-LT or B-LTA)."""
        if level not in (signer.Level.B_LT, signer.Level.B_LTA):
            raise RequestInvalid("the level to extend to is B-LT or B-LTA", field="level")
        parsed = str(storage.ObjectRef.parse(ref))
        await self._run(self._documents.check_readable, actor, parsed)
        return await self.renew(parsed, level=level, reason="extend", actor=actor)

    async def renew(
        self,
        ref: str,
        *,
        level: signer.Level,
        reason: str,
        actor: Identity = SYSTEM,
    ) -> Renewed:
        """Renew one version (see "One renewal" in the module docstring)."""
        done, staging = await self._renew(ref, level=level, reason=reason, actor=actor)
        indexes = await self._app.events.settled(staging)
        return dataclasses.replace(done, ledger_index=indexes[0]) if indexes else done

    async def _renew(
        self, ref: str, *, level: signer.Level, reason: str, actor: Identity
    ) -> tuple[Renewed, Staging]:
        """A renewal up to its commit; the caller awaits the ledger (``settled``)."""
        existing = await self._run(self._successor, ref)
        if existing is not None:
            return existing, Staging()
        data = await self._run(self._documents.read_whole, ref)
        pool = await self._run(self._app.renewal_pool)
        extended = await pool.extend(data, level=level)
        old_entry = await self._run(self._entry, ref)
        stored = await self._run(
            self._app.store.put,
            extended.pdf,
            content_type="application/pdf",
            metadata={_RENEWAL_OF: ref.removeprefix("sha256/")},
            retention=self._app.signed_retention,
        )
        new_ref = str(stored.ref)
        entry = CatalogueEntry(
            ref=new_ref,
            size=stored.size,
            content_type="application/pdf",
            filename=old_entry.filename if old_entry else "",
            uploader=old_entry.uploader if old_entry else actor.name,
            unit_code=old_entry.unit_code if old_entry else actor.unit,
        )
        end = evidence_end(extended.facts, self._app.pdf_policy.algorithms)
        event = self._app.events.event(
            audit.EventType.DOCUMENT_RENEWED,
            actor=actor,
            unit=entry.unit_code,
            document_sha256=stored.sha256,
            refs=(new_ref, ref),
            details={
                "previous": ref,
                "level": extended.level.value,
                "reason": reason,
                "evidence_end": end.at.isoformat() if end.at else "",
            },
        )
        staging = Staging()
        linked = await self._run(self._link, ref, entry, extended, reason, staging.journal(event))
        if not linked:  # another run linked this version first: theirs stands
            winner = await self._run(self._successor, ref)
            assert winner is not None
            return winner, Staging()
        self.renewals += 1
        log.info(
            "archive renewal stored",
            extra={"old": ref, "new": new_ref, "level": extended.level.value, "reason": reason},
        )
        renewed = Renewed(
            old_ref=ref,
            new_ref=new_ref,
            level=extended.level.value,
            created=True,
            evidence_end=end.at,
        )
        return renewed, staging

    def _link(
        self,
        old_ref: str,
        entry: CatalogueEntry,
        extended: Any,
        reason: str,
        journal: Callable[[sa.Connection], None],
    ) -> bool:
        with self._app.engine.begin() as conn:
            inserted = conn.execute(
                _insert_ignoring(conn, versions).values(
                    old_ref=old_ref,
                    new_ref=entry.ref,
                    level=extended.level.value,
                    reason=reason,
                    created_at=datetime.now(UTC),
                )
            ).rowcount
            if not inserted:
                return False
            Catalogue.write(conn, entry)
            conn.execute(evidence.delete().where(evidence.c.ref == entry.ref))
            _insert_evidence(conn, entry.ref, extended.facts)
            conn.execute(
                evidence.update()
                .where(evidence.c.ref == old_ref)
                .values(attempts=0, last_error="", next_attempt_at=None)
            )
            journal(conn)
        return True

    def _successor(self, ref: str) -> Renewed | None:
        with self._app.engine.connect() as conn:
            row = conn.execute(sa.select(versions).where(versions.c.old_ref == ref)).first()
        if row is None:
            return None
        return Renewed(old_ref=ref, new_ref=row.new_ref, level=row.level, created=False)

    def _entry(self, ref: str) -> CatalogueEntry | None:
        try:
            return self._app.catalogue.get(ref)
        except NotFound:
            if not self._app.store.exists(ref):
                raise
            return None

    async def versions(self, actor: Identity, ref: str) -> list[str]:
        """The chain of versions from ``ref`` to the current one, for a caller who may read
        ``ref``'s description."""
        parsed = str(storage.ObjectRef.parse(ref))
        await self._run(self._documents.check_describable, actor, parsed)
        return await self._run(self.versions_of, parsed)

    def versions_of(self, ref: str) -> list[str]:
        """The chain of versions from ``ref`` to the current one (blocking)."""
        chain = [ref]
        with self._app.engine.connect() as conn:
            while True:
                nxt = conn.execute(
                    sa.select(versions.c.new_ref).where(versions.c.old_ref == chain[-1])
                ).scalar_one_or_none()
                if nxt is None or nxt in chain:
                    return chain
                chain.append(nxt)


class ArchiveTask:
    """The scheduled renewal in the server: ``run_once`` every ``interval_seconds``."""

    def __init__(self, archive: Archive, *, interval: float) -> None:
        self._archive = archive
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        # not at the very start: a server that starts (or restarts after a crash) serves first
        await asyncio.sleep(min(self._interval, _FIRST_RUN_AFTER_SECONDS))
        while True:
            try:
                result = await self._archive.run_once()
                if result.scanned or result.renewed or result.failed:
                    log.info(
                        "archive run",
                        extra={
                            "scanned": result.scanned,
                            "renewed": result.renewed,
                            "failed": result.failed,
                        },
                    )
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or store outage: the next run tries again
                log.exception("archive run failed; the next one tries again")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _current_signed() -> sa.Select[Any]:
    return (
        sa.select(evidence)
        .outerjoin(versions, versions.c.old_ref == evidence.c.ref)
        .where(evidence.c.signatures > 0, versions.c.old_ref.is_(None))
    )


def _facts(row: Any) -> EvidenceFacts:
    return EvidenceFacts(
        signatures=row.signatures,
        level=row.level,
        last_timestamp=_utc_or_none(row.last_timestamp),
        tsa_subject=row.tsa_subject,
        tsa_not_after=_utc_or_none(row.tsa_not_after),
        tsa_revoked_at=_utc_or_none(row.tsa_revoked_at),
        signer_not_after=_utc_or_none(row.signer_not_after),
        digest=row.digest,
        key_algorithm=row.key_algorithm,
        key_bits=row.key_bits,
    )


def _insert_evidence(conn: sa.Connection, ref: str, facts: EvidenceFacts) -> None:
    conn.execute(
        _insert_ignoring(conn, evidence).values(
            ref=ref,
            signatures=facts.signatures,
            level=facts.level,
            last_timestamp=facts.last_timestamp,
            tsa_subject=facts.tsa_subject[:500],
            tsa_not_after=facts.tsa_not_after,
            tsa_revoked_at=facts.tsa_revoked_at,
            signer_not_after=facts.signer_not_after,
            digest=facts.digest,
            key_algorithm=facts.key_algorithm,
            key_bits=facts.key_bits,
            checked_at=datetime.now(UTC),
        )
    )


def _insert_ignoring(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    return dialect_insert(conn, table).on_conflict_do_nothing()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)
