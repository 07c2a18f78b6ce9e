"""Remote-signing requests: a batch of two-phase sessions sent to a provider for one approval.

``RemoteStore`` keeps them in ``signer.schema.remote_requests``. Invariants:
- A request is recorded, and its sessions move OPEN → WAITING_APPROVAL, in one transaction
  (with the caller's journal: its ledger events), only after the provider accepted the batch.
- A request leaves ``waiting`` once, by a conditional UPDATE (of concurrent pollers one acts);
  REJECTED and EXPIRED move its still-waiting sessions with it in the same transaction.
- Only the provider's transaction id is stored: no SAD, token, OTP or signature value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from signer.errors import SigningError
from signer.schema import remote_requests
from signer.twophase.sessions import Journal, SessionState, SessionStore

__all__ = ["RemoteRequest", "RemoteRequestNotFound", "RemoteState", "RemoteStore"]


class RemoteState(enum.Enum):
    WAITING = "waiting"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class RemoteRequestNotFound(SigningError):
    """No remote-signing request has this id."""

    field = "request_id"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRequest:
    id: str
    provider: str
    user_id: str
    credential_id: str
    reference: str
    state: RemoteState
    session_ids: tuple[str, ...]
    requester: str
    unit_code: str
    created_at: datetime
    expires_at: datetime
    reason: str = ""


class RemoteStore:
    """Remote-signing requests in the database (see the module docstring)."""

    def __init__(self, engine: sa.Engine, sessions: SessionStore) -> None:
        self._engine = engine
        self._sessions = sessions

    def create(self, request: RemoteRequest, *, now: datetime, journal: Journal) -> None:
        with self._engine.begin() as conn:
            conn.execute(remote_requests.insert().values(**_row(request)))
            self._sessions.await_approval(list(request.session_ids), conn=conn, now=now)
            journal(conn)

    def get(self, request_id: str) -> RemoteRequest:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(remote_requests).where(remote_requests.c.id == request_id)
            ).first()
        if row is None:
            raise RemoteRequestNotFound(f"no remote-signing request {request_id!r}")
        return _request(row)

    def list(self, *, state: RemoteState | None = None, limit: int = 100) -> list[RemoteRequest]:
        query = sa.select(remote_requests).order_by(remote_requests.c.created_us).limit(limit)
        if state is not None:
            query = query.where(remote_requests.c.state == state.value)
        with self._engine.connect() as conn:
            return [_request(row) for row in conn.execute(query)]

    def close(
        self,
        request: RemoteRequest,
        *,
        state: RemoteState,
        now: datetime,
        reason: str = "",
        sessions_to: SessionState | None = None,
        journal: Journal | None = None,
    ) -> bool:
        """``waiting`` → ``state`` (and the waiting sessions → ``sessions_to``); True for the
        one caller that made the change."""
        with self._engine.begin() as conn:
            done = conn.execute(
                remote_requests.update()
                .where(
                    remote_requests.c.id == request.id,
                    remote_requests.c.state == RemoteState.WAITING.value,
                )
                .values(state=state.value, closed_us=_us(now), reason=reason[:500])
            ).rowcount
            if done != 1:
                return False
            if sessions_to is not None:
                self._sessions.close_waiting(
                    list(request.session_ids), state=sessions_to, conn=conn, now=now
                )
            if journal is not None:
                journal(conn)
        return True


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _row(request: RemoteRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "provider": request.provider,
        "user_id": request.user_id,
        "credential_id": request.credential_id,
        "reference": request.reference,
        "state": request.state.value,
        "session_ids": ",".join(request.session_ids),
        "requester": request.requester,
        "unit_code": request.unit_code,
        "created_us": _us(request.created_at),
        "expires_us": _us(request.expires_at),
        "reason": request.reason,
    }


def _request(row: Any) -> RemoteRequest:
    return RemoteRequest(
        id=row.id,
        provider=row.provider,
        user_id=row.user_id,
        credential_id=row.credential_id,
        reference=row.reference,
        state=RemoteState(row.state),
        session_ids=tuple(s for s in row.session_ids.split(",") if s),
        requester=row.requester,
        unit_code=row.unit_code,
        created_at=datetime.fromtimestamp(row.created_us / 1_000_000, UTC),
        expires_at=datetime.fromtimestamp(row.expires_us / 1_000_000, UTC),
        reason=row.reason,
    )
