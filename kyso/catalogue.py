"""The documents catalogue: what is stored, by whom, for which unit, and the signatures on it.

Invariants:
- :meth:`Catalogue.record` is idempotent per ref: the first record of a content address wins
  (the same bytes uploaded twice are one document), and concurrent records of the same ref from
  several processes end with one row.
- Rows are written only after the object is stored (callers: store, then record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from kyso.db import dialect_insert
from kyso.errors import NotFound
from kyso.schema import documents, sign_requests, signatures, verifications

__all__ = ["Catalogue", "CatalogueEntry", "SignRequestRecord", "SignatureRecord"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignRequestRecord:
    """A SignPdf idempotency key's result: the request's fingerprint, the signed document,
    its level, and its ledger index (None until the event is in the ledger)."""

    fingerprint: str
    ref: str
    level: str
    ledger_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureRecord:
    signer: str
    key_alias: str
    level: str
    signed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEntry:
    ref: str
    size: int
    content_type: str
    filename: str = ""
    uploader: str = ""
    unit_code: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    signatures: tuple[SignatureRecord, ...] = ()

    @property
    def sha256(self) -> str:
        return self.ref.removeprefix("sha256/")


class Catalogue:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(
        self,
        entry: CatalogueEntry,
        *,
        signature: SignatureRecord | None = None,
        journal: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Catalogue ``entry`` (unless its ref already is) and add ``signature`` to it.

        ``journal`` is called inside the same transaction (the operation's ledger event).
        """
        with self._engine.begin() as conn:
            self.write(conn, entry, signature=signature)
            if journal is not None:
                journal(conn)

    @staticmethod
    def write(
        conn: sa.Connection, entry: CatalogueEntry, *, signature: SignatureRecord | None = None
    ) -> None:
        """``record`` within a transaction the caller owns (another component's change)."""
        # Not a savepoint: pysqlite opens its transaction only at the first write, and a
        # SAVEPOINT outside a transaction commits at its RELEASE — the row would commit apart
        # from what the caller writes after it (a crash between lost the row's ledger event).
        conn.execute(_insert_if_absent(conn, documents).values(**_row(entry)))
        if signature is not None:
            conn.execute(
                signatures.insert().values(
                    ref=entry.ref,
                    signer=signature.signer,
                    key_alias=signature.key_alias,
                    level=signature.level,
                    signed_at=signature.signed_at,
                )
            )

    def get(self, ref: str) -> CatalogueEntry:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(documents).where(documents.c.ref == ref)).first()
            if row is None:
                raise NotFound(f"no document {ref} in the catalogue")
            sigs = conn.execute(
                sa.select(signatures).where(signatures.c.ref == ref).order_by(signatures.c.id)
            ).all()
        return CatalogueEntry(
            ref=row.ref,
            size=row.size,
            content_type=row.content_type,
            filename=row.filename,
            uploader=row.uploader,
            unit_code=row.unit_code,
            created_at=_utc(row.created_at),
            signatures=tuple(
                SignatureRecord(
                    signer=s.signer,
                    key_alias=s.key_alias,
                    level=s.level,
                    signed_at=_utc(s.signed_at),
                )
                for s in sigs
            ),
        )

    def sign_request(self, client: str, request_id: str) -> SignRequestRecord | None:
        """What a client's SignPdf with this idempotency key made, if it made anything."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(sign_requests).where(
                    sign_requests.c.client == client, sign_requests.c.request_id == request_id
                )
            ).one_or_none()
        if row is None:
            return None
        return SignRequestRecord(
            fingerprint=row.fingerprint,
            ref=row.ref,
            level=row.level,
            ledger_index=row.ledger_index,
        )

    @staticmethod
    def write_sign_request(
        conn: sa.Connection, client: str, request_id: str, record: SignRequestRecord
    ) -> None:
        """Keep an idempotency key with what it made, in the caller's transaction (a second
        row for the same key fails the transaction: the key was used meanwhile)."""
        conn.execute(
            sign_requests.insert().values(
                client=client,
                request_id=request_id,
                fingerprint=record.fingerprint,
                ref=record.ref,
                level=record.level,
                ledger_index=record.ledger_index,
                created_at=datetime.now(UTC),
            )
        )

    def sign_request_indexed(self, client: str, request_id: str, ledger_index: int) -> None:
        """Add the ledger index to a kept idempotency key once its event is in the ledger."""
        with self._engine.begin() as conn:
            conn.execute(
                sign_requests.update()
                .where(sign_requests.c.client == client, sign_requests.c.request_id == request_id)
                .values(ledger_index=ledger_index)
            )

    def verification(self, sha256: str) -> str | None:
        """The kept verification summary of the package with this SHA-256, if any."""
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(verifications.c.summary).where(verifications.c.sha256 == sha256)
            ).scalar_one_or_none()

    def record_verification(self, sha256: str, summary: str) -> None:
        """Keep a package's verification summary (the first one recorded stays)."""
        with self._engine.begin() as conn:
            conn.execute(
                _insert_if_absent(conn, verifications).values(
                    sha256=sha256, summary=summary, verified_at=datetime.now(UTC)
                )
            )

    def refs(self, *, batch: int = 1000) -> Iterable[Sequence[str]]:
        """Every catalogued ref, in batches (for the start-up consistency check)."""
        last = ""
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    sa.select(documents.c.ref)
                    .where(documents.c.ref > last)
                    .order_by(documents.c.ref)
                    .limit(batch)
                ).all()
            if not rows:
                return
            chunk = [r.ref for r in rows]
            yield chunk
            last = chunk[-1]


def _insert_if_absent(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    """An INSERT that leaves an existing row (same primary key) as it is: the first writer of a
    content address wins, concurrent writers from several processes end with one row."""
    return dialect_insert(conn, table).on_conflict_do_nothing()


def _row(entry: CatalogueEntry) -> dict[str, object]:
    return {
        "ref": entry.ref,
        "size": entry.size,
        "content_type": entry.content_type,
        "filename": entry.filename,
        "uploader": entry.uploader,
        "unit_code": entry.unit_code,
        "created_at": entry.created_at,
    }


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything kyso writes is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
