"""The routing state machine of one hub, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from exchange import (
    DeliveryNotFound,
    DuplicateDocument,
    InvalidStatusTransition,
    NoRoute,
    PackageInvalid,
    SignatureInvalid,
    UnitNotFound,
    UntrustedSigner,
)
from exchange.adapters import StoredPackages
from exchange.directory import Directory
from exchange.edxml import (
    Business,
    BusinessType,
    CryptographyKey,
    Organization,
    ResponseFor,
    StatusCode,
    StatusPacket,
    TrustPolicy,
    build_package,
    build_status,
)
from exchange.routing import (
    Accepted,
    Backoff,
    BatchPackageStore,
    DeliveryState,
    OutboxKind,
    Router,
    Submission,
)
from exchange.schema import deliveries, status_events
from storage import FilesystemStore
from tests.exchange.conftest import (
    G22,
    NOI_VU_NA,
    NOI_VU_QN,
    Clock,
    load_directory,
    simple_package,
    topology,
)

WARD = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long)
TU_PHAP_QN = "000.00.03.H49"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> StoredPackages:
    return StoredPackages(FilesystemStore(tmp_path / "objects"))


@pytest.fixture
def router(
    db_engine: sa.Engine,
    directory: Directory,
    store: StoredPackages,
    policy: TrustPolicy,
    clock: Clock,
) -> Router:
    return Router(
        engine=db_engine,
        directory=directory,
        hub_id="H49",
        store=store,
        policy=policy,
        lease=timedelta(minutes=5),
        clock=clock,
    )


def send(router: Router, key: CryptographyKey, **kwargs) -> Accepted:
    return router.accept(Submission(package=build_package(simple_package(**kwargs), key=key)))


def test_a_local_document_reaches_the_inbox_with_status_01(
    router: Router, store: StoredPackages, rsa_key
) -> None:
    accepted = send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    assert accepted.local == (NOI_VU_QN,)
    assert not accepted.forwarded
    assert not accepted.duplicate
    [item] = router.inbox(NOI_VU_QN)
    assert (item.sender, item.document_id, item.fetch_count) == (WARD, "doc-1", 1)
    assert item.business_type is BusinessType.NEW
    assert [t.organ_id for t in item.trace] == ["000.00.00.H49"]  # this hub's hop
    [entry] = router.track(document_id="doc-1")
    assert (entry.recipient, entry.state, entry.status) == (
        NOI_VU_QN,
        DeliveryState.DELIVERED,
        StatusCode.ARRIVED,
    )
    assert [e.code for e in entry.history] == [StatusCode.ARRIVED]
    assert store.get(item.package_ref).startswith(b"<?xml")
    assert router.track(document_id="doc-1", recipient=NOI_VU_QN) == [entry]
    with pytest.raises(DeliveryNotFound, match="doc-1 sent to unit 000.00.03.H49"):
        router.track(document_id="doc-1", recipient=TU_PHAP_QN)


def test_unacknowledged_documents_come_back_after_the_lease(
    router: Router, rsa_key, clock: Clock
) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    [first] = router.inbox(NOI_VU_QN)
    assert router.inbox(NOI_VU_QN) == []  # leased
    clock.advance(minutes=6)
    [again] = router.inbox(NOI_VU_QN)
    assert (again.delivery_id, again.fetch_count) == (first.delivery_id, 2)
    router.ack(NOI_VU_QN, delivery_ids=[again.delivery_id])
    router.ack(NOI_VU_QN, delivery_ids=[again.delivery_id])  # idempotent
    clock.advance(minutes=60)
    assert router.inbox(NOI_VU_QN) == []
    assert router.track(document_id="doc-1")[0].state is DeliveryState.ACKNOWLEDGED


def test_inbox_pages_in_order(router: Router, rsa_key) -> None:
    for n in range(5):
        send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,), document_id=f"doc-{n}")
    assert [i.document_id for i in router.inbox(NOI_VU_QN, limit=3)] == ["doc-0", "doc-1", "doc-2"]
    assert [i.document_id for i in router.inbox(NOI_VU_QN, limit=3)] == ["doc-3", "doc-4"]


def test_a_resent_document_is_delivered_once(router: Router, rsa_key) -> None:
    data = build_package(simple_package(sender=WARD, to=(NOI_VU_QN,)), key=rsa_key)
    router.accept(Submission(package=data))
    again = router.accept(Submission(package=data))
    assert again.duplicate
    assert again.skipped == (NOI_VU_QN,)
    assert again.local == ()
    assert len(router.inbox(NOI_VU_QN)) == 1


def test_the_same_document_id_with_other_content_is_refused(router: Router, rsa_key) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    changed = replace(simple_package(sender=WARD, to=(NOI_VU_QN,)))
    changed = replace(changed, header=replace(changed.header, subject="Khác"))
    with pytest.raises(DuplicateDocument, match="doc-1 from 000.21.30.H49 was already sent"):
        router.accept(Submission(package=build_package(changed, key=rsa_key)))


def test_a_resend_with_more_recipients_adds_only_the_new_ones(router: Router, rsa_key) -> None:
    data = build_package(simple_package(sender=WARD, to=(NOI_VU_QN, TU_PHAP_QN)), key=rsa_key)
    first = router.accept(Submission(package=data, via_hub="G22", recipients=(NOI_VU_QN,)))
    assert first.local == (NOI_VU_QN,)
    second = router.accept(Submission(package=data, via_hub="G22"))
    assert (second.local, second.skipped, second.duplicate) == ((TU_PHAP_QN,), (NOI_VU_QN,), False)


def test_a_hub_cannot_add_recipients_the_sender_did_not_sign(router: Router, rsa_key) -> None:
    data = build_package(simple_package(sender=WARD, to=(NOI_VU_QN,)), key=rsa_key)
    with pytest.raises(PackageInvalid, match="recipient 000.00.03.H49 is not among"):
        router.accept(Submission(package=data, via_hub="G22", recipients=(TU_PHAP_QN,)))


def test_unknown_recipients_refuse_the_whole_send(router: Router, rsa_key) -> None:
    with pytest.raises(UnitNotFound, match="000.00.97.H49"):
        send(router, rsa_key, sender=WARD, to=(NOI_VU_QN, "000.00.97.H49"))
    assert router.inbox(NOI_VU_QN) == []


def test_a_batch_reports_each_outcome_in_one_commit(router: Router, rsa_key, db_engine) -> None:
    good = build_package(simple_package(sender=WARD, to=(NOI_VU_QN,), document_id="a"), key=rsa_key)
    other = build_package(
        simple_package(sender=WARD, to=(TU_PHAP_QN,), document_id="b"), key=rsa_key
    )
    broken = good.replace("báo cáo".encode(), b"bao cao")  # the signed subject changed
    outcomes = router.accept_many(
        [
            Submission(package=good),
            Submission(package=broken),
            Submission(package=other),
            Submission(package=good),
        ]
    )
    assert isinstance(outcomes[0], Accepted)
    assert outcomes[0].local == (NOI_VU_QN,)
    assert isinstance(outcomes[1], SignatureInvalid)
    assert isinstance(outcomes[2], Accepted)
    assert outcomes[2].local == (TU_PHAP_QN,)
    assert isinstance(outcomes[3], Accepted)
    assert outcomes[3].duplicate
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 2


class _OneByOne:
    """A ``PackageStore`` without ``put_many``: the router must store its packages one by one."""

    def __init__(self, inner: StoredPackages) -> None:
        self.inner = inner
        self.puts = 0

    def put(self, data: bytes, /) -> str:
        self.puts += 1
        return self.inner.put(data)

    def get(self, ref: str, /) -> bytes:
        return self.inner.get(ref)


@pytest.mark.parametrize("batch_store", [True, False], ids=["put_many", "put each"])
def test_a_batch_stores_every_accepted_package_before_committing(
    db_engine: sa.Engine,
    directory: Directory,
    store: StoredPackages,
    policy: TrustPolicy,
    rsa_key,
    batch_store: bool,
) -> None:
    target = store if batch_store else _OneByOne(store)
    assert isinstance(target, BatchPackageStore) is batch_store
    router = Router(
        engine=db_engine, directory=directory, hub_id="H49", store=target, policy=policy
    )
    packages = [
        build_package(
            simple_package(sender=WARD, to=(NOI_VU_QN,), document_id=f"d{n}"), key=rsa_key
        )
        for n in range(6)
    ]
    broken = packages[0].replace("báo cáo".encode(), b"bao cao")
    with ThreadPoolExecutor(4) as pool:
        outcomes = router.accept_many(
            [Submission(package=p) for p in (*packages, broken)], executor=pool
        )
    assert [type(o) for o in outcomes] == [Accepted] * 6 + [SignatureInvalid]
    if isinstance(target, _OneByOne):
        assert target.puts == 6  # the refused package was never stored
    items = router.inbox(NOI_VU_QN, limit=10)
    assert sorted(store.get(i.package_ref) for i in items) == sorted(packages)


def test_remote_recipients_wait_in_the_outbox_with_backoff(
    router: Router, rsa_key, clock: Clock
) -> None:
    accepted = send(router, rsa_key, sender=WARD, to=(NOI_VU_NA, NOI_VU_QN))
    assert accepted.forwarded == {"G22": (NOI_VU_NA,)}
    assert accepted.local == (NOI_VU_QN,)
    [item] = router.pending_outbox()
    assert (item.kind, item.next_hub, item.recipients, item.attempts) == (
        OutboxKind.PACKAGE,
        "G22",
        (NOI_VU_NA,),
        0,
    )
    assert router.pending_outbox() == []  # claimed
    due = router.mark_failed(item.id, error="connection refused")
    assert clock.now + timedelta(seconds=1) <= due <= clock.now + timedelta(seconds=2)
    clock.advance(seconds=2)
    [retry] = router.pending_outbox()
    assert retry.attempts == 1
    router.mark_failed(retry.id, error="connection refused")
    clock.advance(seconds=4)
    [retry] = router.pending_outbox()
    router.mark_forwarded([retry.id])
    clock.advance(days=3)
    assert router.pending_outbox() == []
    states = {e.recipient: e.state for e in router.track(document_id="doc-1")}
    assert states == {NOI_VU_NA: DeliveryState.FORWARDED, NOI_VU_QN: DeliveryState.QUEUED}


def test_a_claimed_hop_comes_back_when_its_worker_dies(
    router: Router, rsa_key, clock: Clock
) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_NA,))
    [item] = router.pending_outbox(claim_for=timedelta(seconds=30))
    clock.advance(seconds=31)
    assert [i.id for i in router.pending_outbox()] == [item.id]


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    import random

    backoff = Backoff(initial=timedelta(seconds=2), maximum=timedelta(minutes=30))
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (5, 32), (20, 1800), (500, 1800)]:
        delays = [backoff.delay(attempt, rng=rng).total_seconds() for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_a_hop_that_did_not_reach_its_hub_is_due_again_after_the_given_delay(
    router: Router, rsa_key, clock: Clock
) -> None:
    """However long the next hub stays unreachable, a hop marked failed with ``retry_after``
    is due again that long after its last attempt: the bound on how long it waits once the
    hub is back. A hop the hub answered with an error still backs off exponentially."""
    send(router, rsa_key, sender=WARD, to=(NOI_VU_NA,))
    retry = timedelta(seconds=5)
    for _ in range(20):  # exponential backoff would have reached its 30-minute ceiling
        [item] = router.pending_outbox()
        due = router.mark_failed(item.id, error="UNAVAILABLE", retry_after=retry)
        assert due == clock.now + retry
        assert router.pending_outbox() == []
        clock.advance(seconds=5)
    [item] = router.pending_outbox()
    assert item.attempts == 20
    due = router.mark_failed(item.id, error="INTERNAL: the hub failed")
    assert due >= clock.now + timedelta(minutes=15)  # attempt 21: between 15 and 30 minutes


def test_hops_to_a_skipped_hub_stay_due_while_the_others_go(
    db_engine: sa.Engine, store: StoredPackages, policy: TrustPolicy, rsa_key, clock: Clock
) -> None:
    directory = load_directory(db_engine, topo=topology(peers=True))
    router = Router(
        engine=db_engine,
        directory=directory,
        hub_id="H49",
        store=store,
        policy=policy,
        clock=clock,
    )
    send(router, rsa_key, sender=WARD, to=(NOI_VU_NA,))  # to the peer H41
    send(router, rsa_key, sender=WARD, to=(G22,), document_id="doc-2")  # to the parent G22
    [to_g22] = router.pending_outbox(skip_hubs={"H41"})
    assert (to_g22.next_hub, to_g22.document_id) == ("G22", "doc-2")
    assert router.pending_outbox(skip_hubs={"H41"}) == []
    [to_h41] = router.pending_outbox()  # H41 can be reached again: its hop was due all along
    assert (to_h41.next_hub, to_h41.document_id) == ("H41", "doc-1")


def test_status_transitions_are_enforced(router: Router, rsa_key) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    assert router.set_status(NOI_VU_QN, document_id="doc-1", code="03") is StatusCode.ACCEPTED
    assert router.set_status(NOI_VU_QN, document_id="doc-1", code="03") is StatusCode.ACCEPTED
    with pytest.raises(
        InvalidStatusTransition, match="status 02 cannot follow 03 for document doc-1"
    ):
        router.set_status(NOI_VU_QN, document_id="doc-1", code="02")
    router.set_status(NOI_VU_QN, document_id="doc-1", code=StatusCode.COMPLETED, description="Xong")
    with pytest.raises(InvalidStatusTransition, match="cannot follow 06"):
        router.set_status(NOI_VU_QN, document_id="doc-1", code="05")
    with pytest.raises(InvalidStatusTransition, match="recorded automatically"):
        router.set_status(NOI_VU_QN, document_id="doc-1", code="01")
    with pytest.raises(InvalidStatusTransition, match="unknown"):
        router.set_status(NOI_VU_QN, document_id="doc-1", code="99")
    with pytest.raises(DeliveryNotFound, match="to revoke, update or replace"):
        router.set_status(NOI_VU_QN, document_id="doc-1", code="15")
    [entry] = router.track(document_id="doc-1")
    assert [e.code.value for e in entry.history] == ["01", "03", "06"]
    assert entry.history[-1].description == "Xong"


def test_revoke_statuses_apply_to_the_revoke(router: Router, rsa_key) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    revoke = simple_package(sender=WARD, to=(NOI_VU_QN,))
    revoke = replace(
        revoke, business=Business(type=BusinessType.REVOKE, document_id="doc-1", reason="Nhầm")
    )
    router.accept(Submission(package=build_package(revoke, key=rsa_key)))
    assert (
        router.set_status(NOI_VU_QN, document_id="doc-1", code="13") is StatusCode.REVOKE_REQUESTED
    )
    router.set_status(NOI_VU_QN, document_id="doc-1", code="15")
    router.set_status(NOI_VU_QN, document_id="doc-1", code="03")  # the original is separate
    by_type = {e.business_type: e.status for e in router.track(document_id="doc-1")}
    assert by_type == {
        BusinessType.NEW: StatusCode.ACCEPTED,
        BusinessType.REVOKE: StatusCode.AGREED,
    }


def _status_from_na(key: CryptographyKey, code: StatusCode, clock: Clock) -> bytes:
    """What Nghệ An's Sở Nội vụ says about doc-1 from the ward, as relayed by G22."""
    status = StatusPacket(
        response_for=ResponseFor(organ_id=WARD, document_id="doc-1"),
        from_=Organization(organ_id=NOI_VU_NA),
        code=code,
        timestamp=clock.now,
    )
    return build_status(status, key=key)


def _lock_waits_briefly(url: str) -> sa.Engine:
    """An engine on ``url`` whose writes give up soon when another transaction holds the lock."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 0.2})
    return sa.create_engine(url, connect_args={"options": "-c lock_timeout=200"})


def test_a_status_arriving_while_another_is_recorded_is_not_overwritten(
    router: Router,
    db_engine: sa.Engine,
    db_url: str,
    directory: Directory,
    store: StoredPackages,
    policy: TrustPolicy,
    rsa_key,
    clock: Clock,
) -> None:
    """A retried 01 and the 03 reach the sender's hub at once (two Forward calls): whichever
    commits last, the current status is the furthest one, 03.

    The 03 is accepted by another process at the moment the 01's transaction has read the
    delivery and is about to write: it must either be kept waiting until the 01 commits (and
    is then retried, as its hop would be), or be seen by the 01's transaction.
    """
    send(router, rsa_key, sender=WARD, to=(NOI_VU_NA,))
    arrived = _status_from_na(rsa_key, StatusCode.ARRIVED, clock)
    accepted = _status_from_na(rsa_key, StatusCode.ACCEPTED, clock)
    other = _lock_waits_briefly(db_url)
    rival = Router(engine=other, directory=directory, hub_id="H49", store=store, policy=policy)
    arrivals: list[str] = []
    kept_waiting: list[Exception] = []

    def the_03_arrives_now(conn, cursor, statement: str, *args) -> None:
        writing = statement.startswith(
            ("UPDATE exchange_deliveries", "INSERT INTO exchange_status")
        )
        if writing and not arrivals:
            arrivals.append(statement)
            try:
                rival.accept_status(accepted, via_hub="G22")
            except sa.exc.OperationalError as exc:  # the 01's transaction holds the lock
                kept_waiting.append(exc)

    sa.event.listen(db_engine, "before_cursor_execute", the_03_arrives_now)
    try:
        router.accept_status(arrived, via_hub="G22")
        if kept_waiting:
            rival.accept_status(accepted, via_hub="G22")  # the hop's retry
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", the_03_arrives_now)
        other.dispose()
    assert arrivals
    [entry] = router.track(document_id="doc-1")
    assert entry.status is StatusCode.ACCEPTED
    assert sorted(e.code.value for e in entry.history) == ["01", "03"]


def test_only_this_hubs_units_have_inboxes_here(router: Router) -> None:
    with pytest.raises(NoRoute, match="served by hub H41, not by this hub"):
        router.inbox(NOI_VU_NA)
    with pytest.raises(DeliveryNotFound, match="has no delivery 12345"):
        router.ack(NOI_VU_QN, delivery_ids=[12345])
    with pytest.raises(DeliveryNotFound, match="has received no document nope"):
        router.set_status(NOI_VU_QN, document_id="nope", code="03")
    with pytest.raises(DeliveryNotFound):
        router.track(document_id="nope")


def test_another_units_delivery_cannot_be_acknowledged(router: Router, rsa_key) -> None:
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    [item] = router.inbox(NOI_VU_QN)
    with pytest.raises(DeliveryNotFound):
        router.ack(TU_PHAP_QN, delivery_ids=[item.delivery_id])


def test_fan_out_to_all_713_units_is_one_send(
    router: Router, directory: Directory, ec_key, db_engine
) -> None:
    everyone = tuple(u.code for u in directory.units() if u.code.endswith("H49"))
    assert len(everyone) == 713
    package = simple_package(sender=G22, to=everyone, document_id="fan-out")
    package = replace(package, header=replace(package.header, from_=Organization(organ_id=G22)))
    accepted = router.accept(Submission(package=build_package(package, key=ec_key), via_hub="G22"))
    assert len(accepted.local) == 713
    assert not accepted.forwarded
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 713
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(status_events)).scalar_one() == 713
        )
    [status_hop] = router.pending_outbox()
    assert (status_hop.kind, status_hop.status_code, len(status_hop.recipients)) == (
        OutboxKind.STATUS,
        StatusCode.ARRIVED,
        713,
    )
    assert len(router.track(document_id="fan-out")) == 713


def test_concurrent_sends_of_one_document_deliver_it_once(
    db_engine: sa.Engine, directory: Directory, store: StoredPackages, policy, rsa_key
) -> None:
    """Several service processes (here: routers in threads) accept the same package at once."""
    import threading

    data = build_package(simple_package(sender=WARD, to=(NOI_VU_QN,)), key=rsa_key)
    routers = [
        Router(engine=db_engine, directory=directory, hub_id="H49", store=store, policy=policy)
        for _ in range(4)
    ]
    barrier = threading.Barrier(len(routers))
    outcomes: list[Accepted] = []

    def send_once(router: Router) -> None:
        barrier.wait()
        outcomes.append(router.accept(Submission(package=data)))

    threads = [threading.Thread(target=send_once, args=(r,)) for r in routers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4
    assert sorted(o.duplicate for o in outcomes) == [False, True, True, True]
    assert len(routers[0].inbox(NOI_VU_QN)) == 1


def test_a_unit_can_be_held_to_its_own_keys(
    db_engine: sa.Engine, directory: Directory, store: StoredPackages, policy, rsa_key, ec_key
) -> None:
    router = Router(
        engine=db_engine,
        directory=directory,
        hub_id="H49",
        store=store,
        policy=policy,
        unit_certificates=lambda unit, hub: (
            {_fingerprint(ec_key.certificate)} if unit == WARD and hub is None else ()
        ),
    )
    with pytest.raises(UntrustedSigner, match="from unit 000.21.30.H49 is signed by CN=Sở Nội vụ"):
        send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))
    assert send(router, ec_key, sender=WARD, to=(NOI_VU_QN,)).local == (NOI_VU_QN,)
    # a unit with no certificate bound to it sends nothing, whoever signed
    with pytest.raises(UntrustedSigner, match="not a certificate bound to unit 000.00.03.H49"):
        send(router, rsa_key, sender=TU_PHAP_QN, to=(NOI_VU_QN,), document_id="x")


def _fingerprint(certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def test_a_hub_sets_statuses_only_on_deliveries_it_carried(router: Router, rsa_key, clock) -> None:
    """A status packet relayed by a hub applies only to a delivery sent on through that hub:
    not to a local delivery (the recipient's own status would be blocked), nor to one that
    went through another hub."""
    send(router, rsa_key, sender=WARD, to=(NOI_VU_QN,))  # local: no hub carried it
    completed = build_status(
        StatusPacket(
            response_for=ResponseFor(organ_id=WARD, document_id="doc-1"),
            from_=Organization(organ_id=NOI_VU_QN),
            code=StatusCode.COMPLETED,
            timestamp=clock.now,
        ),
        key=rsa_key,
    )
    with pytest.raises(DeliveryNotFound, match="through hub G22"):
        router.accept_status(completed, via_hub="G22")
    send(router, rsa_key, sender=WARD, to=(NOI_VU_NA,), document_id="doc-2")  # through G22
    arrived = build_status(
        StatusPacket(
            response_for=ResponseFor(organ_id=WARD, document_id="doc-2"),
            from_=Organization(organ_id=NOI_VU_NA),
            code=StatusCode.ACCEPTED,
            timestamp=clock.now,
        ),
        key=rsa_key,
    )
    with pytest.raises(DeliveryNotFound, match="through hub H41"):
        router.accept_status(arrived, via_hub="H41")
    assert router.accept_status(arrived, via_hub="G22").code is StatusCode.ACCEPTED
    # the recipient's own status changes are not blocked by anything a hub said
    router.set_status(NOI_VU_QN, document_id="doc-1", code=StatusCode.ACCEPTED)
    [entry] = router.track(document_id="doc-1")
    assert [e.code for e in entry.history] == [StatusCode.ARRIVED, StatusCode.ACCEPTED]
