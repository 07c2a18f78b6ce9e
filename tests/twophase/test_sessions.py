"""SessionStore on SQLite and PostgreSQL: exactly-once claims under real concurrency, release,
cancel, expiry, lease take-over, pending lists and pages."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from kyso import db
from signer import Level
from signer.schema import MIGRATIONS
from signer.twophase import (
    SessionClosed,
    SessionNotFound,
    SessionState,
    SessionStore,
    SigningSession,
    decode_cursor,
    encode_cursor,
    new_session_id,
)

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(db_engine):
    db.upgrade(db_engine, [db.Component("signing", MIGRATIONS)])
    return SessionStore(db_engine, claim_lease=timedelta(minutes=5))


def session(*, certificate=b"\x30\x03\x02\x01\x01", created=NOW, unit="U1", hours=24.0):
    return SigningSession(
        id=new_session_id(),
        state=SessionState.OPEN,
        certificate=certificate,
        chain=(b"\x30\x03\x02\x01\x02", b"\x30\x03\x02\x01\x03"),
        signer_name="Nguyễn Văn A",
        requester="workflow",
        unit_code=unit,
        title="Quyết định",
        filename="qd.pdf",
        level=Level.B_T,
        digest_algorithm="sha256",
        mechanism="rsa_pkcs1v15",
        signed_attributes=b"\x31\x00",
        data_to_sign=bytes(32),
        document_sha256="ab" * 32,
        source_ref="",
        prepared_ref="sha256/" + "cd" * 32,
        document_digest=bytes(range(32)),
        reserved_start=100,
        reserved_end=200,
        field_name="Signature1",
        created_at=created,
        expires_at=created + timedelta(hours=hours),
    )


def test_round_trip(store):
    original = session()
    store.create(original)
    assert store.get(original.id) == original
    with pytest.raises(SessionNotFound):
        store.get("nope")


def test_concurrent_claims_exactly_one_wins(store):
    s = session()
    store.create(s)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt():
        barrier.wait()
        try:
            store.claim(s.id, now=NOW)
            outcome = "won"
        except SessionClosed as exc:
            outcome = exc.state.value
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["completing"] * 7 + ["won"]


def test_finish_release_and_closed_states(store):
    s = session()
    store.create(s)
    claim = store.claim(s.id, now=NOW)
    store.release(s.id, claim=claim)
    assert store.get(s.id).state is SessionState.OPEN
    claim = store.claim(s.id, now=NOW)
    store.finish(s.id, claim=claim, result_ref="sha256/" + "ef" * 32, by="official", now=NOW)
    done = store.get(s.id)
    assert done.state is SessionState.COMPLETED
    assert done.result_ref == "sha256/" + "ef" * 32
    with pytest.raises(SessionClosed, match="already completed"):
        store.claim(s.id, now=NOW)
    with pytest.raises(SessionClosed, match="already completed"):
        store.cancel(s.id, by="workflow", now=NOW)


def test_a_stale_claim_is_taken_over_and_the_old_holder_cannot_finish(store):
    s = session()
    store.create(s)
    old = store.claim(s.id, now=NOW)
    with pytest.raises(SessionClosed, match="being completed"):
        store.claim(s.id, now=NOW + timedelta(minutes=1))
    new = store.claim(s.id, now=NOW + timedelta(minutes=6))
    with pytest.raises(SessionClosed):
        store.finish(s.id, claim=old, result_ref="sha256/" + "00" * 32, by="x", now=NOW)
    store.finish(s.id, claim=new, result_ref="sha256/" + "11" * 32, by="y", now=NOW)


def test_cancel_and_expiry(store):
    cancelled, expired = session(), session(hours=1)
    store.create(cancelled)
    store.create(expired)
    store.cancel(cancelled.id, by="workflow", now=NOW)
    with pytest.raises(SessionClosed, match="cancelled"):
        store.claim(cancelled.id, now=NOW)
    later = NOW + timedelta(hours=2)
    with pytest.raises(SessionClosed, match="expired"):
        store.claim(expired.id, now=later)
    assert store.expire(expired.id, now=later)
    assert not store.expire(expired.id, now=later)  # once
    assert store.get(expired.id).state is SessionState.EXPIRED


def test_pending_lists_by_certificate_unit_and_pages(store):
    mine = [session(created=NOW + timedelta(seconds=i)) for i in range(5)]
    other_unit = session(unit="U2")
    other_cert = session(certificate=b"\x30\x03\x02\x01\x09")
    old = session(created=NOW - timedelta(days=2))
    for s in (*mine, other_unit, other_cert, old):
        store.create(s)
    fingerprint = mine[0].certificate_sha256
    first = store.list_open(certificate_sha256=fingerprint, now=NOW, unit_code="U1", limit=3)
    assert [s.id for s in first] == [s.id for s in mine[:3]]
    rest = store.list_open(
        certificate_sha256=fingerprint,
        now=NOW,
        unit_code="U1",
        limit=3,
        after=decode_cursor(encode_cursor(first[-1])),
    )
    assert [s.id for s in rest] == [s.id for s in mine[3:]]
    everyone = store.list_open(certificate_sha256=fingerprint, now=NOW, limit=100)
    assert {s.id for s in everyone} == {s.id for s in (*mine, other_unit)}


def test_options_round_trip_and_reprepare_only_from_the_prepared_seen(store):
    from dataclasses import replace

    from signer.twophase import SessionOptions

    options = SessionOptions(
        appearance="seal", reason="Phê duyệt", page=2, rect=(300.0, 80.0, 560.0, 200.0)
    )
    s = replace(session(), options=options)
    store.create(s)
    assert store.get(s.id).options == options
    fresh = replace(s, prepared_ref="sha256/" + "ef" * 32, data_to_sign=b"\x01" * 32)
    # another prepared document than the one this caller started from: nothing changes
    assert not store.reprepare(fresh, previous_ref="sha256/" + "00" * 32, now=NOW)
    assert store.get(s.id).prepared_ref == s.prepared_ref
    assert store.reprepare(fresh, previous_ref=s.prepared_ref, now=NOW)
    again = store.get(s.id)
    assert (again.prepared_ref, again.data_to_sign) == (fresh.prepared_ref, fresh.data_to_sign)
    assert again.created_at == s.created_at
    # a claimed (completing) session is not prepared again under its claim
    store.claim(s.id, now=NOW)
    newer = replace(fresh, prepared_ref="sha256/" + "aa" * 32)
    assert not store.reprepare(newer, previous_ref=fresh.prepared_ref, now=NOW)


def test_the_options_migration_runs_on_a_version_2_database(db_engine):
    """A database created before migration 3 gains the column; a new one is left alone."""
    import sqlalchemy as sa

    two = [m for m in MIGRATIONS if m[0] <= 2]
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE signing_sessions (id VARCHAR(32) PRIMARY KEY, state VARCHAR(16))")
        )
    _add_options = {v: f for v, _d, f in MIGRATIONS}[3]
    with db_engine.begin() as conn:
        _add_options(conn)
        _add_options(conn)  # idempotent: a fresh database already has it from migration 1
        columns = {c["name"] for c in sa.inspect(conn).get_columns("signing_sessions")}
    assert "options" in columns
    assert len(two) == 2
