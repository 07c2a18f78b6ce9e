"""The transactional outbox: a change of state and its ledger events commit together.

Why: the ledger is appended by one writer per database (``audit.ledger``'s tree lock), while
changes of state (a document stored, a session completed, a package accepted) commit in their
own components' transactions. Appending after the change commits leaves a window in which a
crash or an invalid event loses the record; appending inside the change's transaction would
serialise every change on the tree lock. So a change *stages* its events in ``audit_outbox``
with the same connection (``stage``): the rows commit or roll back with the change. The drainer
(``GroupCommitAppender``, one writer thread per process) then appends pending rows to the
ledger in outbox order, exactly once (``Ledger.drain_outbox``).

Invariants:
- ``stage`` validates and encodes every event before it writes anything: an event the ledger
  would refuse raises ``InvalidEvent`` and the caller's transaction rolls back with it.
- A staged row is appended exactly once, even with several processes draining at once, and
  survives a crash of the process that staged it (the next drain of any process appends it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from audit.entry import Event, prepare_event
from audit.schema import outbox

__all__ = ["stage"]


def stage(conn: sa.Connection, events: Sequence[Event]) -> list[int]:
    """Write ``events`` into the outbox within ``conn``'s transaction; return their outbox ids.

    Raises ``InvalidEvent`` (nothing written) if any event is invalid. The ids are in
    ``events``' order; pass them to ``GroupCommitAppender.drained`` after the commit to learn
    the ledger indexes.
    """
    prepared = [prepare_event(event) for event in events]
    if not prepared:
        return []
    result = conn.execute(
        outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True),
        [{"prefix": p.prefix, "suffix": p.suffix, "idx": None} for p in prepared],
    )
    return [int(outbox_id) for outbox_id in result.scalars()]
