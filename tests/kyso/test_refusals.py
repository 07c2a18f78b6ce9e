"""Refusals summarised per caller and minute (issue 15, observation 7), with a clock the test
moves: a flood within a minute is one event; the next minute starts another; a flood from more
callers than are tallied at once stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import audit
from kyso import db
from kyso.app import components
from kyso.authz import Identity
from kyso.operations import refusals as module
from kyso.operations.ledger import EventLog
from kyso.operations.refusals import Refusals


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 3, 0, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_flood_is_one_event_per_caller_and_minute(tmp_path, monkeypatch) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade(engine, components())
    appender = audit.GroupCommitAppender(audit.Ledger(engine))
    clock = Clock()
    events = EventLog(appender, clock=clock)
    refusals = Refusals(events, clock=clock)
    workflow = Identity(name="workflow", unit="000.00.21.H49", roles=frozenset({"workflow"}))
    try:
        for _ in range(5000):
            refusals.note(workflow, "/kyso.v1.AuditService/GetTreeHead", "may not call")
        assert await refusals.flush() == 0  # the minute is not over
        clock.now += timedelta(minutes=1)
        refusals.note(workflow, "/kyso.v1.ExchangeService/Send", "may not act for unit")
        assert await refusals.flush() == 1
        monkeypatch.setattr(module, "MAX_TALLIES", 3)
        for n in range(50):
            refusals.note(
                Identity(name=f"unauthenticated ipv4:10.0.0.{n}", unit="", roles=frozenset()),
                "/kyso.v1.SigningService/SignPdf",
                "no credentials",
            )
        assert await refusals.flush(everything=True) == 4  # workflow, 2 callers, the others
    finally:
        appender.close()
    entries = [e.event for e in audit.Ledger(engine).entries()]
    engine.dispose()
    counts = [(e.actor, e.details["count"], e.details["rpcs"]) for e in entries]
    assert counts[0] == ("workflow", "5000", "/kyso.v1.AuditService/GetTreeHead")
    assert ("workflow", "1", "/kyso.v1.ExchangeService/Send") in counts
    assert ("refusals of other callers", "48", "/kyso.v1.SigningService/SignPdf") in counts
    assert all(e.type is audit.EventType.AUTHZ_DENIED for e in entries)
