"""Two-phase signing sessions: one prepared signature waiting for an official's token.

``SessionStore`` keeps them in the database (``signer.schema.sessions``) with exactly-once
completion: a session is claimed by a conditional UPDATE on its state, so of concurrent
completions one wins. Page tokens (``encode_cursor``) are opaque to callers.

Invariant: a session's recorded material (certificate, chain, signed attributes, digests and
offsets) is written at ``create`` and replaced only by ``reprepare`` (the same document prepared
again when the official's agent claims it, so the stamp shows the time of signing), and only
while the session is open and still has the prepared document the caller re-prepared from.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from asn1crypto import parser

from signer.errors import SigningError
from signer.levels import Level
from signer.schema import sessions

__all__ = [
    "Journal",
    "SessionClosed",
    "SessionNotFound",
    "SessionOptions",
    "SessionState",
    "SessionStore",
    "SigningSession",
    "closed_error",
    "decode_cursor",
    "encode_cursor",
    "new_session_id",
    "split_der",
]


class SessionState(enum.Enum):
    OPEN = "open"
    COMPLETING = "completing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    WAITING_APPROVAL = "waiting_approval"
    """Sent to a remote-signing provider; the official's approval is awaited."""
    REJECTED = "rejected"
    """The official (or the provider) refused the remote signature."""


@dataclass(frozen=True, kw_only=True)
class SessionOptions:
    """What PrepareSignature was asked, beyond the document and certificate (kept to prepare
    the session again at the time of signing, and shown to the official)."""

    appearance: str = "none"
    reason: str | None = None
    location: str | None = None
    page: int | None = None
    rect: tuple[float, float, float, float] | None = None
    requested_field: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "appearance": self.appearance,
                "reason": self.reason,
                "location": self.location,
                "page": self.page,
                "rect": list(self.rect) if self.rect else None,
                "field": self.requested_field,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SessionOptions:
        if not text:
            return cls()
        data = json.loads(text)
        rect = data.get("rect")
        return cls(
            appearance=str(data.get("appearance") or "none"),
            reason=data.get("reason"),
            location=data.get("location"),
            page=data.get("page"),
            rect=(float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3])) if rect else None,
            requested_field=data.get("field"),
        )


@dataclass(frozen=True, kw_only=True)
class SigningSession:
    """One prepared signature waiting for (or done with) the official's token. See schema."""

    id: str
    state: SessionState
    certificate: bytes = field(repr=False)
    chain: tuple[bytes, ...] = field(repr=False)
    signer_name: str
    requester: str
    unit_code: str
    title: str
    filename: str
    level: Level
    digest_algorithm: str
    mechanism: str
    signed_attributes: bytes = field(repr=False)
    data_to_sign: bytes
    document_sha256: str
    source_ref: str
    prepared_ref: str
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    field_name: str
    created_at: datetime
    expires_at: datetime
    result_ref: str | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    closed_at: datetime | None = None
    closed_by: str | None = None

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.certificate).hexdigest()

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class SessionNotFound(SigningError):
    """No signing session has this id."""

    field = "session_id"


class SessionClosed(SigningError):
    """The session is completed, cancelled, expired, or being completed by another request."""

    field = "session_id"

    def __init__(self, message: str, *, state: SessionState) -> None:
        super().__init__(message)
        self.state = state


def split_der(data: bytes) -> tuple[bytes, ...]:
    """The DER structures of a concatenation (each is self-delimiting)."""
    out: list[bytes] = []
    position = 0
    while position < len(data):
        _class, _method, _tag, header, contents, trailer = parser.parse(data[position:])
        length = len(header) + len(contents) + len(trailer)
        out.append(data[position : position + length])
        position += length
    return tuple(out)


Journal = Callable[[sa.Connection], None]
"""Writes more rows in the transaction of a session's change (see ``SessionStore``)."""


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class SessionStore:
    """Signing sessions in the database (``signer.schema.sessions``).

    Exactly-once: ``claim`` moves one session from ``open`` to ``completing`` with a conditional
    UPDATE (the database serialises the two writers: on PostgreSQL the second waits on the row
    lock and re-checks the condition, on SQLite writers take the database lock), so at most one
    caller holds a claim. A claim older than ``claim_lease`` (its holder crashed) may be taken
    over. ``finish`` and ``release`` act only with the claim's token.

    Every change of state takes an optional ``journal``: called with the connection inside the
    transaction that makes the change, and only when the change is made, so whatever it writes
    (the application's ledger event, a catalogue row) commits with the change or not at all;
    an exception from it rolls the change back.
    """

    def __init__(self, engine: sa.Engine, *, claim_lease: timedelta = timedelta(minutes=5)) -> None:
        self._engine = engine
        self._lease = claim_lease

    def create(self, session: SigningSession, *, journal: Journal | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(sessions.insert().values(**_row(session)))
            if journal is not None:
                journal(conn)

    def get(self, session_id: str) -> SigningSession:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            raise SessionNotFound(
                f"no signing session {session_id!r}; check the id (it was printed by "
                "request-signature / returned by PrepareSignature)"
            )
        return _session(row)

    def units_of_document(self, ref: str) -> frozenset[str]:
        """The units of the sessions that prepared ``ref`` or were prepared from it."""
        query = sa.select(sessions.c.unit_code).where(
            sa.or_(sessions.c.prepared_ref == ref, sessions.c.source_ref == ref)
        )
        with self._engine.connect() as conn:
            return frozenset(unit for (unit,) in conn.execute(query) if unit)

    def list_open(
        self,
        *,
        certificate_sha256: str,
        now: datetime,
        unit_code: str | None = None,
        limit: int = 100,
        after: tuple[int, str] | None = None,
    ) -> list[SigningSession]:
        """Open, unexpired sessions for the certificate, oldest first, after a page cursor."""
        query = sa.select(sessions).where(
            sessions.c.certificate_sha256 == certificate_sha256,
            sessions.c.state == SessionState.OPEN.value,
            sessions.c.expires_us > _us(now),
        )
        if unit_code is not None:
            query = query.where(sessions.c.unit_code == unit_code)
        if after is not None:
            created, last_id = after
            query = query.where(
                sa.or_(
                    sessions.c.created_us > created,
                    sa.and_(sessions.c.created_us == created, sessions.c.id > last_id),
                )
            )
        query = query.order_by(sessions.c.created_us, sessions.c.id).limit(limit)
        with self._engine.connect() as conn:
            return [_session(row) for row in conn.execute(query)]

    def claim(
        self, session_id: str, *, now: datetime, source: SessionState = SessionState.OPEN
    ) -> str:
        """Take the right to complete the session (``source``: OPEN, or WAITING_APPROVAL for a
        remote signature); the claim token, or ``SessionClosed``."""
        token = secrets.token_hex(16)
        stale = _us(now - self._lease)
        with self._engine.begin() as conn:
            claimed = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.expires_us > _us(now),
                    sa.or_(
                        sessions.c.state == source.value,
                        sa.and_(
                            sessions.c.state == SessionState.COMPLETING.value,
                            sessions.c.claimed_us < stale,
                        ),
                    ),
                )
                .values(state=SessionState.COMPLETING.value, claim=token, claimed_us=_us(now))
            ).rowcount
        if claimed != 1:
            raise closed_error(self.get(session_id), now)
        return token

    def claim_many(self, session_ids: Sequence[str], *, now: datetime) -> list[str | SessionClosed]:
        """``claim`` (from OPEN) for several sessions in one transaction (completions arriving
        together): per session its claim token, or the ``SessionClosed`` it would raise."""
        tokens = [secrets.token_hex(16) for _ in session_ids]
        stale = _us(now - self._lease)
        won: list[bool] = []
        with self._engine.begin() as conn:
            for session_id, token in zip(session_ids, tokens, strict=True):
                claimed = conn.execute(
                    sessions.update()
                    .where(
                        sessions.c.id == session_id,
                        sessions.c.expires_us > _us(now),
                        sa.or_(
                            sessions.c.state == SessionState.OPEN.value,
                            sa.and_(
                                sessions.c.state == SessionState.COMPLETING.value,
                                sessions.c.claimed_us < stale,
                            ),
                        ),
                    )
                    .values(state=SessionState.COMPLETING.value, claim=token, claimed_us=_us(now))
                ).rowcount
                won.append(claimed == 1)
        return [
            token if ok else closed_error(self.get(session_id), now)
            for session_id, token, ok in zip(session_ids, tokens, won, strict=True)
        ]

    def finish(
        self,
        session_id: str,
        *,
        claim: str,
        result_ref: str,
        by: str,
        now: datetime,
        journal: Journal | None = None,
    ) -> None:
        with self._engine.begin() as conn:
            done = self.finish_in(
                conn, session_id, claim=claim, result_ref=result_ref, by=by, now=now
            )
            if done and journal is not None:
                journal(conn)
        if not done:
            # Only when this claim outlived its lease and another request took it over.
            raise SessionClosed(
                f"session {session_id} was taken over by another completion",
                state=SessionState.COMPLETING,
            )

    @staticmethod
    def finish_in(
        conn: sa.Connection,
        session_id: str,
        *,
        claim: str,
        result_ref: str,
        by: str,
        now: datetime,
    ) -> bool:
        """``finish`` within a transaction the caller owns (several completions committed
        together); False when the claim was taken over (nothing changed)."""
        done = conn.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.claim == claim)
            .values(
                state=SessionState.COMPLETED.value,
                result_ref=result_ref,
                closed_us=_us(now),
                closed_by=by,
            )
        ).rowcount
        return bool(done == 1)

    def reprepare(
        self,
        session: SigningSession,
        *,
        previous_ref: str,
        now: datetime,
        journal: Journal | None = None,
    ) -> bool:
        """Replace the prepared material of an open, unexpired session whose prepared document
        is still ``previous_ref`` (a concurrent re-prepare or completion wins otherwise:
        False, nothing changed)."""
        row = _row(session)
        material = {
            name: row[name]
            for name in (
                "signed_attributes",
                "data_to_sign",
                "prepared_ref",
                "document_digest",
                "reserved_start",
                "reserved_end",
                "field_name",
                "digest_algorithm",
                "mechanism",
                "signer_name",
            )
        }
        with self._engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session.id,
                    sessions.c.state == SessionState.OPEN.value,
                    sessions.c.expires_us > _us(now),
                    sessions.c.prepared_ref == previous_ref,
                )
                .values(**material)
            ).rowcount
            if done == 1 and journal is not None:
                journal(conn)
        return done == 1

    def release(
        self, session_id: str, *, claim: str, back_to: SessionState = SessionState.OPEN
    ) -> None:
        """Give a claim back after a failed completion: the session is ``back_to`` again."""
        with self._engine.begin() as conn:
            conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.claim == claim,
                    sessions.c.state == SessionState.COMPLETING.value,
                )
                .values(state=back_to.value, claim=None, claimed_us=None)
            )

    def await_approval(self, session_ids: list[str], *, conn: sa.Connection, now: datetime) -> None:
        """OPEN → WAITING_APPROVAL for every one of ``session_ids`` in ``conn``'s transaction
        (the caller's, which records the remote request): all of them or ``SessionClosed``."""
        moved = conn.execute(
            sessions.update()
            .where(
                sessions.c.id.in_(session_ids),
                sessions.c.state == SessionState.OPEN.value,
                sessions.c.expires_us > _us(now),
            )
            .values(state=SessionState.WAITING_APPROVAL.value)
        ).rowcount
        if moved != len(session_ids):
            raise SessionClosed(
                "a session of the batch is no longer open; nothing was sent for approval",
                state=SessionState.OPEN,
            )

    def close_waiting(
        self,
        session_ids: list[str],
        *,
        state: SessionState,
        conn: sa.Connection,
        now: datetime,
    ) -> int:
        """WAITING_APPROVAL → ``state`` (REJECTED or EXPIRED) in ``conn``'s transaction; how
        many sessions moved (sessions completed or claimed meanwhile are left alone)."""
        assert state in (SessionState.REJECTED, SessionState.EXPIRED)
        return int(
            conn.execute(
                sessions.update()
                .where(
                    sessions.c.id.in_(session_ids),
                    sessions.c.state == SessionState.WAITING_APPROVAL.value,
                )
                .values(state=state.value, closed_us=_us(now))
            ).rowcount
        )

    def cancel(
        self, session_id: str, *, by: str, now: datetime, journal: Journal | None = None
    ) -> SigningSession:
        """Cancel an open, unexpired session; ``SessionClosed`` otherwise."""
        done = self._close_open(
            session_id,
            expired=False,
            now=now,
            values={"state": SessionState.CANCELLED.value, "closed_us": _us(now), "closed_by": by},
            journal=journal,
        )
        session = self.get(session_id)
        if not done:
            raise closed_error(session, now)
        return session

    def expire(self, session_id: str, *, now: datetime, journal: Journal | None = None) -> bool:
        """Mark an open session whose time has passed as expired; True if this call did."""
        return self._close_open(
            session_id,
            expired=True,
            now=now,
            values={"state": SessionState.EXPIRED.value, "closed_us": _us(now)},
            journal=journal,
        )

    def _close_open(
        self,
        session_id: str,
        *,
        expired: bool,
        now: datetime,
        values: dict[str, Any],
        journal: Journal | None,
    ) -> bool:
        """Write ``values`` to the session if it is open and its time has (``expired``) or has
        not passed at ``now``: one conditional UPDATE, so True for at most one caller."""
        deadline = sessions.c.expires_us
        in_time = deadline <= _us(now) if expired else deadline > _us(now)
        with self._engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.state == SessionState.OPEN.value,
                    in_time,
                )
                .values(**values)
            ).rowcount
            if done == 1 and journal is not None:
                journal(conn)
        return bool(done == 1)


def closed_error(session: SigningSession, now: datetime) -> SessionClosed:
    """Why ``session`` cannot be completed or cancelled, for a person."""
    state = session.state
    if state is SessionState.OPEN and session.expired(now):
        state = SessionState.EXPIRED
    why = {
        SessionState.COMPLETED: f"is already completed (result {session.result_ref})",
        SessionState.CANCELLED: "was cancelled",
        SessionState.EXPIRED: f"expired at {session.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        SessionState.COMPLETING: "is being completed by another request",
        SessionState.OPEN: "is open",
        SessionState.WAITING_APPROVAL: "is waiting for the official's remote approval",
        SessionState.REJECTED: "was refused by the official (remote signing)",
    }[state]
    return SessionClosed(
        f"signing session {session.id} {why}; ask for a new PrepareSignature if the document "
        "still needs this signature",
        state=state,
    )


def new_session_id() -> str:
    return secrets.token_hex(16)


def encode_cursor(session: SigningSession) -> str:
    text = f"{_us(session.created_at)}:{session.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, str]:
    """A page token back to its cursor; ValueError when it is not one of ours."""
    padded = token + "=" * (-len(token) % 4)
    created, _, last_id = base64.urlsafe_b64decode(padded).decode().partition(":")
    if not last_id:
        raise ValueError("not a page token")
    return int(created), last_id


def _row(session: SigningSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "state": session.state.value,
        "certificate_sha256": session.certificate_sha256,
        "certificate": session.certificate,
        "chain": b"".join(session.chain),
        "signer_name": session.signer_name,
        "requester": session.requester,
        "unit_code": session.unit_code,
        "title": session.title,
        "filename": session.filename,
        "level": session.level.value,
        "digest_algorithm": session.digest_algorithm,
        "mechanism": session.mechanism,
        "signed_attributes": session.signed_attributes,
        "data_to_sign": session.data_to_sign,
        "document_sha256": session.document_sha256,
        "source_ref": session.source_ref,
        "prepared_ref": session.prepared_ref,
        "document_digest": session.document_digest,
        "reserved_start": session.reserved_start,
        "reserved_end": session.reserved_end,
        "field_name": session.field_name,
        "created_us": _us(session.created_at),
        "expires_us": _us(session.expires_at),
        "result_ref": session.result_ref,
        "options": session.options.to_json(),
    }


def _session(row: Any) -> SigningSession:
    return SigningSession(
        id=row.id,
        state=SessionState(row.state),
        certificate=bytes(row.certificate),
        chain=split_der(bytes(row.chain)),
        signer_name=row.signer_name,
        requester=row.requester,
        unit_code=row.unit_code,
        title=row.title,
        filename=row.filename,
        level=Level(row.level),
        digest_algorithm=row.digest_algorithm,
        mechanism=row.mechanism,
        signed_attributes=bytes(row.signed_attributes),
        data_to_sign=bytes(row.data_to_sign),
        document_sha256=row.document_sha256,
        source_ref=row.source_ref,
        prepared_ref=row.prepared_ref,
        document_digest=bytes(row.document_digest),
        reserved_start=int(row.reserved_start),
        reserved_end=int(row.reserved_end),
        field_name=row.field_name,
        created_at=_from_us(row.created_us),
        expires_at=_from_us(row.expires_us),
        result_ref=row.result_ref,
        options=SessionOptions.from_json(row.options),
        closed_at=_from_us(row.closed_us) if row.closed_us is not None else None,
        closed_by=row.closed_by,
    )
