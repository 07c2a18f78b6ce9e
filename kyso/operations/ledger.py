"""Ledger events for operations: staged in the transaction of the change they record.

Invariants:
- An event that records a change of state is written with ``Staging.write`` inside the
  domain's transaction for that change (the domain calls the operation's journal there), so
  the change and its event commit together or not at all (``audit.outbox``). After the commit
  the operation awaits ``settled`` for the ledger indexes; if that fails (the ledger is
  briefly unavailable), the events stay staged and are appended by a later drain.
- An event that records no change (an authorisation refusal) is appended directly
  (``record``).
- The notifications a change calls for (``kyso.notify.outbox``) are staged with its ledger
  events, in the same transaction; ``settled`` then wakes whoever delivers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

import audit
from audit.outbox import stage
from kyso.authz import Identity
from kyso.notify import outbox as notify_outbox

__all__ = ["EventLog", "Staging"]


@dataclass(slots=True)
class Staging:
    """The outbox ids staged by one operation's transaction.

    A domain may run its transaction again (a concurrent insert of the same document): each run
    replaces what the previous, rolled-back run staged.
    """

    ids: list[int] = field(default_factory=list)
    notified: int = 0

    def write(self, conn: sa.Connection, events: Sequence[audit.Event]) -> None:
        """Stage ``events`` in ``conn``'s transaction (raises ``InvalidEvent``: nothing staged)."""
        self.ids = stage(conn, events)
        self.notified = notify_outbox.stage(conn, events)

    def journal(self, *events: audit.Event) -> Callable[[sa.Connection], None]:
        """A journal for a domain change that stages ``events`` in the change's transaction."""

        def write(conn: sa.Connection) -> None:
            self.write(conn, events)

        return write


class EventLog:
    """Builds events in kyso's shape and hands them to the ledger."""

    def __init__(
        self,
        appender: audit.GroupCommitAppender,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._appender = appender
        self._clock = clock
        self.listeners: list[Callable[[], None]] = []
        """Called after a commit that staged notifications (``kyso.notify`` wakes up)."""

    def event(
        self,
        event_type: audit.EventType,
        *,
        actor: Identity,
        unit: str = "",
        document_sha256: str | None = None,
        refs: Sequence[str] = (),
        key: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> audit.Event:
        """An event done by ``actor`` now, for ``unit`` (the actor's own when not given)."""
        return audit.Event(
            time=self._clock(),
            actor=actor.name,
            unit=unit or actor.unit or "-",
            type=event_type,
            document_sha256=document_sha256,
            refs=tuple(r for r in refs if r),
            key=key,
            details=dict(details or {}),
        )

    async def settled(self, staging: Staging) -> list[int]:
        """The ledger indexes of what ``staging`` wrote (call after its commit)."""
        if staging.notified:
            for listener in self.listeners:
                listener()
        if not staging.ids:
            return []
        return await self._appender.drained_async(staging.ids)

    async def record(self, event: audit.Event) -> int:
        """Append an event that records no change of state; return its index."""
        return await self._appender.append_async(event)
