"""The ledger's document index: entries found by content address and DocumentId, written with
their append (direct or drained from the outbox), rolled back with it, and backfilled by
migration 3 for a ledger written before it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from audit import Event, EventType, GroupCommitAppender, InvalidQuery, Ledger
from audit.entry import prepare_event
from audit.index import keys_of
from audit.ledger import _grow
from audit.outbox import stage
from audit.schema import MIGRATIONS, entries, index, nodes, tree
from kyso.db import Component, upgrade

_TIME = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
SIGNED = "a" * 64
SOURCE = "b" * 64
PACKAGE = "c" * 64
DOCUMENT_ID = "000.00.01.H23,2026/12/01,15/QĐ-UBND"


def _event(kind: EventType, **fields: object) -> Event:
    values: dict[str, object] = {"time": _TIME, "actor": "CN=Thanh tra", "unit": "000.00.01.H23"}
    values.update(fields)
    return Event(type=kind, **values)  # type: ignore[arg-type]


def _history() -> list[Event]:
    return [
        _event(EventType.DOCUMENT_STORED, document_sha256=SOURCE, refs=(f"sha256/{SOURCE}",)),
        _event(
            EventType.SIGNATURE_SEALED,
            document_sha256=SIGNED,
            refs=(f"sha256/{SIGNED}", f"sha256/{SOURCE}"),
            key="seal",
        ),
        _event(EventType.AUTHZ_DENIED, details={"method": "/kyso.v1.SigningService/SignPdf"}),
        _event(
            EventType.PACKAGE_SENT,
            document_sha256=PACKAGE,
            refs=(f"sha256/{PACKAGE}", f"sha256/{SIGNED}"),
            details={"document_id": DOCUMENT_ID},
        ),
        _event(
            EventType.STATUS_CHANGED,
            details={"document_id": DOCUMENT_ID, "status": "03", "sender": "000.00.01.H23"},
        ),
    ]


def test_keys_are_the_documents_an_entry_names() -> None:
    event = _history()[3]
    data = prepare_event(event).at(7)
    assert keys_of(data) == {
        ("sha256", PACKAGE),
        ("sha256", SIGNED),
        ("document_id", DOCUMENT_ID),
    }
    assert keys_of(b"not json") == set()
    assert keys_of(b'{"refs":["sha256/short","session/1"],"details":{}}') == set()


def test_direct_appends_are_found_by_sha256_and_document_id(ledger: Ledger) -> None:
    ledger.append_batch(_history())
    found, more = ledger.find(sha256=SIGNED)
    assert [e.index for e in found] == [1, 3]
    assert not more
    assert [e.index for e in ledger.find(sha256=SOURCE)[0]] == [0, 1]
    assert [e.index for e in ledger.find(sha256=SIGNED.upper())[0]] == [1, 3]
    assert [e.index for e in ledger.find(document_id=DOCUMENT_ID)[0]] == [3, 4]
    both = ledger.find(sha256=SOURCE, document_id=DOCUMENT_ID)[0]
    assert [e.index for e in both] == [0, 1, 3, 4]
    assert ledger.find(sha256="d" * 64) == ([], False)
    limited, more = ledger.find(sha256=SOURCE, limit=1)
    assert [e.index for e in limited] == [0]
    assert more
    assert found[0].event == _history()[1]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "document_sha256"),
        ({"sha256": "abc"}, "document_sha256"),
        ({"sha256": "g" * 64}, "document_sha256"),
        ({"document_id": "x" * 256}, "document_id"),
        ({"sha256": SIGNED, "limit": 0}, "page_size"),
    ],
)
def test_a_search_that_names_no_document_is_refused(
    ledger: Ledger, query: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        ledger.find(**query)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_drained_events_are_indexed_and_a_rollback_indexes_nothing(ledger: Ledger) -> None:
    history = _history()
    with ledger.engine.connect() as conn:
        transaction = conn.begin()
        stage(conn, history[:2])
        transaction.rollback()
    with ledger.engine.begin() as conn:
        ids = stage(conn, history)
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(index)).scalar_one() == 0
    with GroupCommitAppender(ledger) as appender:
        assert appender.drained(ids).result(timeout=60) == [0, 1, 2, 3, 4]
    assert [e.index for e in ledger.find(sha256=SIGNED)[0]] == [1, 3]
    assert [e.index for e in ledger.find(document_id=DOCUMENT_ID)[0]] == [3, 4]


def test_migration_3_backfills_a_ledger_written_before_it(db_engine: sa.Engine) -> None:
    upgrade(db_engine, [Component("audit", MIGRATIONS[:2])])
    with db_engine.connect() as conn:
        assert not sa.inspect(conn).has_table("audit_index")
    # Entries written by a kyso without the index: insert them as that version would have.
    rows, nodes_rows, _ = _grow({}, 0, [prepare_event(e) for e in _history() * 500])
    with db_engine.begin() as conn:
        conn.execute(entries.insert(), rows)
        conn.execute(nodes.insert(), nodes_rows)
        conn.execute(sa.update(tree).values(size=len(rows)))
    applied = upgrade(db_engine, [Component("audit", MIGRATIONS)])
    assert [version for _, version, _ in applied] == [3]
    ledger = Ledger(db_engine)
    found, more = ledger.find(document_id=DOCUMENT_ID, limit=5000)
    assert len(found) == 1000
    assert not more
    assert [e.index for e in found[:4]] == [3, 4, 8, 9]
    ledger.append(_history()[0])
    assert ledger.find(sha256=SOURCE, limit=5000)[0][-1].index == 2500
