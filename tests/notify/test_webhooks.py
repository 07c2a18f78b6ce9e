"""Webhook deliveries against a real receiver on loopback that verifies every message with the
Standard Webhooks reference library; time is simulated (an injected clock), never slept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import audit
from kyso import db
from kyso.app import components
from kyso.notify import signing
from kyso.notify.runner import backlog, prune
from kyso.notify.webhooks import TargetRefused, Webhooks, WebhookSettings
from kyso.operations.ledger import Staging
from tests.notify.receivers import Receiver, tls_pair

UNIT = "000.00.21.H49"
SENDER = "000.00.02.H49"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def engine(db_engine: sa.Engine) -> sa.Engine:
    """A new database with every component's tables, on SQLite and on PostgreSQL."""
    db.upgrade(db_engine, components())
    return db_engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def hooks(engine: sa.Engine, clock: Clock, *, allow: tuple[str, ...] = ("127.0.0.1",)) -> Webhooks:
    return Webhooks(
        engine,
        WebhookSettings(allow=allow, http_loopback=True, timeout=5.0),
        clock=clock,
        jitter=lambda: 0.5,
    )


def _status_event(document_id: str, code: str, *, unit: str = UNIT) -> audit.Event:
    return audit.Event(
        time=datetime.now(UTC),
        actor="workflow",
        unit=unit,
        type=audit.EventType.STATUS_CHANGED,
        details={"document_id": document_id, "sender": SENDER, "status": code},
    )


def set_status(engine: sa.Engine, document_id: str, code: str, *, unit: str = UNIT) -> None:
    """Stage a status change's events as an operation does (``Staging.write``)."""
    with engine.begin() as conn:
        Staging().write(conn, [_status_event(document_id, code, unit=unit)])


def run_until_quiet(webhooks: Webhooks, clock: Clock, *, step: timedelta, limit: int) -> None:
    for _ in range(limit):
        webhooks.run_once()
        due = webhooks.next_due()
        if due is None:
            return
        clock.now = max(clock.now + step, due)


def test_every_delivery_verifies_and_is_thin(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock)
    endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    set_status(engine, "DOC-1", "03")
    set_status(engine, "DOC-2", "03", unit="000.00.99.H49")  # another unit: not sent
    assert webhooks.run_once() == 1
    (got,) = receiver.received
    assert got.type == "status.changed"
    assert got.data["document_id"] == "DOC-1"
    assert got.data["status"] == "03"
    assert got.id.startswith("evt_")
    assert got.data["event_id"] == got.id
    assert receiver.rejected == []
    assert webhooks.get(endpoint.id).pending == 0


def test_a_receiver_down_for_a_day_gets_everything_in_order_once(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock)
    _, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    port = receiver.port
    receiver.stop()  # down: connections are refused
    codes = ["02", "03", "04", "05", "06"]
    for code in codes:
        for document in ("A", "B", "C"):
            set_status(engine, f"DOC-{document}", code)
    # a simulated day, a round every 10 minutes: nothing gets through, nothing is lost
    for _ in range(6 * 24):
        webhooks.run_once()
        clock.advance(timedelta(minutes=10))
    assert receiver.received == []
    receiver.port = port
    receiver.start()
    run_until_quiet(webhooks, clock, step=timedelta(minutes=10), limit=200)
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 15
    for document in ("A", "B", "C"):
        seen = [
            r.data["status"]
            for r in receiver.received
            if r.data["document_id"] == f"DOC-{document}"
        ]
        assert seen == codes
    assert receiver.rejected == []


def test_410_disables_the_endpoint(engine: sa.Engine, clock: Clock, receiver: Receiver) -> None:
    webhooks = hooks(engine, clock)
    endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    receiver.status = 410
    set_status(engine, "DOC-1", "03")
    webhooks.run_once()
    disabled = webhooks.get(endpoint.id)
    assert disabled.disabled_at is not None
    assert "410" in disabled.disabled_reason
    assert backlog(engine)["endpoints_disabled"] == 1
    receiver.status = 204
    set_status(engine, "DOC-1", "04")
    clock.advance(timedelta(days=1))
    webhooks.run_once()
    assert receiver.received == []  # nothing more goes to a disabled endpoint
    # the operator replays: both events, in order
    assert webhooks.replay(endpoint.id, since=clock.now - timedelta(days=2)) == 2
    webhooks.run_once()
    assert [r.data["status"] for r in receiver.received] == ["03", "04"]


def test_429_and_5xx_slow_the_endpoint_down(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock)
    endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    receiver.status, receiver.retry_after = 429, "600"
    set_status(engine, "DOC-1", "03")
    set_status(engine, "DOC-2", "03")
    webhooks.run_once()
    paused = webhooks.get(endpoint.id).paused_until
    assert paused is not None
    assert paused >= clock.now + timedelta(seconds=600)
    receiver.status, receiver.retry_after = 204, None
    clock.advance(timedelta(seconds=300))
    assert webhooks.run_once() == 0  # still slowed down
    clock.advance(timedelta(seconds=301))
    assert webhooks.run_once() == 2


def test_secret_rotation_signs_with_both_until_the_overlap_ends(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock)
    endpoint, old = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    new = webhooks.rotate(endpoint.id)
    assert new != old
    assert new.startswith("whsec_")
    receiver.secrets = [old]  # a receiver not yet switched still verifies
    set_status(engine, "DOC-1", "03")
    webhooks.run_once()
    receiver.secrets = [new]  # and one that switched verifies too
    set_status(engine, "DOC-1", "04")
    webhooks.run_once()
    assert [r.signatures for r in receiver.received] == [2, 2]
    clock.advance(timedelta(hours=25))  # the overlap is over: only the new secret signs
    receiver.secrets = [old]
    set_status(engine, "DOC-1", "05")
    webhooks.run_once()
    assert len(receiver.received) == 2
    assert len(receiver.rejected) == 1
    receiver.secrets = [new]
    clock.advance(timedelta(minutes=10))
    webhooks.run_once()
    assert [r.signatures for r in receiver.received] == [2, 2, 1]


def test_private_and_loopback_targets_are_refused(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock, allow=())
    for url in ("https://10.1.2.3/hook", "https://169.254.169.254/latest", "https://[::1]/x"):
        with pytest.raises(TargetRefused):
            webhooks.create(owner="workflow", unit=UNIT, url=url)
    with pytest.raises(TargetRefused, match="https"):
        webhooks.create(owner="workflow", unit=UNIT, url="http://example.org/hook")
    # a host *name* is checked where it resolves and connects: localhost is loopback
    endpoint, secret = webhooks.create(
        owner="workflow", unit=UNIT, url=f"http://localhost:{receiver.port}/hook"
    )
    receiver.secrets = [secret]
    set_status(engine, "DOC-1", "03")
    webhooks.run_once()
    refused = webhooks.get(endpoint.id)
    assert receiver.received == []
    assert refused.disabled_at is not None
    assert "127.0.0.1" in refused.disabled_reason


def test_signature_matches_the_reference_library() -> None:
    from standardwebhooks import Webhook

    secret = signing.new_secret()
    when = datetime.now(UTC)
    ours = signing.signature(secret, msg_id="evt_1", timestamp=int(when.timestamp()), body=b"{}")
    assert ours == Webhook(secret).sign("evt_1", when, b"{}")


def test_https_targets_are_checked_against_the_configured_ca(
    engine: sa.Engine, clock: Clock, tmp_path: Path
) -> None:
    context, ca_file = tls_pair(tmp_path)
    receiver = Receiver(tls=context)
    receiver.start()
    try:
        settings = WebhookSettings(allow=("127.0.0.1",), ca_file=ca_file)
        webhooks = Webhooks(engine, settings, clock=clock)
        endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
        assert receiver.url.startswith("https://")
        receiver.secrets = [secret]
        set_status(engine, "DOC-1", "03")
        assert webhooks.run_once() == 1
        assert [r.data["status"] for r in receiver.received] == ["03"]
        # trusting only the system's CAs, the same receiver is not believed: nothing delivered
        untrusting = Webhooks(engine, WebhookSettings(allow=("127.0.0.1",)), clock=clock)
        set_status(engine, "DOC-1", "04")
        assert untrusting.run_once() == 0
        [failed] = untrusting.deliveries(endpoint.id, state="pending")
        assert "CERTIFICATE_VERIFY_FAILED" in failed.last_error
    finally:
        receiver.stop()


def test_settled_notifications_are_pruned_pending_ones_kept(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    webhooks = hooks(engine, clock)
    endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    set_status(engine, "DOC-1", "03")
    webhooks.run_once()  # delivered
    receiver.status = 503
    set_status(engine, "DOC-2", "03")
    webhooks.run_once()  # pending
    later = datetime.now(UTC) + timedelta(days=31)
    removed = prune(engine, later)
    assert removed == {"deliveries": 1, "messages": 0, "events": 1}
    [left] = webhooks.deliveries(endpoint.id)
    assert left.state == "pending"
    assert left.key == "DOC-2"


@pytest.mark.postgres
def test_an_event_committed_after_a_later_one_is_not_skipped(
    postgres_url: str, receiver: Receiver
) -> None:
    """PostgreSQL gives ids at insert but commits in any order: the delivery rounds must not
    move past the id of a transaction that has not committed yet."""
    engine = db.create_engine(postgres_url)
    try:
        db.upgrade(engine, components())
        clock = Clock()
        webhooks = hooks(engine, clock)
        _, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
        receiver.secrets = [secret]
        slow = engine.connect()
        transaction = slow.begin()
        Staging().write(slow, [_status_event("DOC-A", "03")])  # id N, not committed yet
        set_status(engine, "DOC-B", "03")  # id N + 1, committed
        webhooks.run_once()
        assert receiver.received == []  # N + 1 waits for the gap before it
        transaction.commit()
        slow.close()
        webhooks.run_once()
        assert [r.data["document_id"] for r in receiver.received] == ["DOC-A", "DOC-B"]
    finally:
        engine.dispose()


def test_a_replay_queues_each_event_once_queued_before_or_not(
    engine: sa.Engine, clock: Clock, receiver: Receiver
) -> None:
    """Replay is one INSERT … ON CONFLICT per event: an event the notifier queued meanwhile (or
    delivered before) is queued again, not refused by the unique (endpoint, event) key."""
    webhooks = hooks(engine, clock)
    endpoint, secret = webhooks.create(owner="workflow", unit=UNIT, url=receiver.url)
    receiver.secrets = [secret]
    set_status(engine, "DOC-R1", "03")
    webhooks.run_once()  # delivered: its delivery row exists
    set_status(engine, "DOC-R2", "04")  # not yet queued for the endpoint
    assert webhooks.replay(endpoint.id, since=clock.now - timedelta(days=1)) == 2
    run_until_quiet(webhooks, clock, step=timedelta(minutes=1), limit=50)
    statuses = [r.data["status"] for r in receiver.received]
    assert sorted(statuses) == ["03", "03", "04"]
