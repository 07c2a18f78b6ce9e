"""Notification benchmarks: webhooks delivered per second, and the delay from a status change
to its webhook. The receiver (tests/notify/receivers.py) runs on loopback in this process and
verifies every delivery with the Standard Webhooks reference library (``standardwebhooks``).

``run()`` returns, each beside a baseline measured in the same run:

- ``notify_webhooks_delivered``: events/s delivered from the outbox: ``EVENTS`` status changes
  staged as operations stage them (``Staging.write``, SQLite file in WAL with
  ``synchronous=FULL``), fanned out to ``ENDPOINTS`` endpoints of the unit and delivered by
  delivery rounds in ``ENDPOINTS`` threads (one per endpoint, in order per document), each
  delivery signed, POSTed, verified by the receiver and recorded delivered. Baseline: the same
  number of signed POSTs with the same bodies through the same guarded client
  (``kyso.notify.http.post``) in as many threads, without the outbox (the transport's rate).
- ``notify_status_to_webhook_p99``: milliseconds, the 99th percentile over ``CHANGES`` status
  changes (03) of documents routed within one hub (``exchange.routing.Router.set_status``
  with its events staged in its transaction), from the call to the receiver having verified the
  webhook, with the delivery task (``kyso.notify.runner.Notifier``) running in its own event
  loop as in the server and woken by the commit. Goal: ≤ 1000 ms on loopback. Baseline: the
  99th percentile of one signed POST's round trip to the same receiver; ratio = baseline /
  value (higher is better; 1.0 would be "no cost beyond the POST").
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import audit
from bench.common import Result, result
from exchange.adapters import StoredPackages
from exchange.directory import Directory
from exchange.edxml import (
    Attachment,
    ManifestReference,
    MessageHeader,
    Organization,
    Package,
    TrustPolicy,
    build_package,
)
from exchange.edxml.model import StatusCode
from exchange.hubs import Hub, Topology
from exchange.routing import Router, Submission
from kyso.app import components
from kyso.db import create_engine, upgrade
from kyso.notify import signing
from kyso.notify.citizens import Citizens
from kyso.notify.http import post
from kyso.notify.runner import Notifier
from kyso.notify.webhooks import Webhooks, WebhookSettings
from kyso.operations.ledger import Staging
from signer.verify import FetchRules
from storage import FilesystemStore
from tests.exchange.pki import Authority
from tests.notify.receivers import Receiver

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
UNITS_CSV = ROOT / "tests" / "exchange" / "data" / "units-quangninh.csv"
EVENTS = int(os.environ.get("KYSO_BENCH_NOTIFY_EVENTS", "1000"))
ENDPOINTS = 4
CHANGES = int(os.environ.get("KYSO_BENCH_NOTIFY_CHANGES", "300"))
SENDER = "000.21.30.H49"
RECIPIENT = "000.00.02.H49"
SETTINGS = WebhookSettings(allow=("127.0.0.1",), http_loopback=True, timeout=15.0)


def _status_event(document_id: str, code: str) -> audit.Event:
    return audit.Event(
        time=datetime.now(UTC),
        actor="bench",
        unit=RECIPIENT,
        type=audit.EventType.STATUS_CHANGED,
        details={"document_id": document_id, "sender": SENDER, "status": code},
    )


def _throughput(work: Path, receiver: Receiver) -> Result:
    engine = create_engine(f"sqlite:///{work / 'throughput.db'}")
    upgrade(engine, components())
    hooks = Webhooks(engine, SETTINGS)
    secrets = []
    for _ in range(ENDPOINTS):
        _, secret = hooks.create(owner="bench", unit=RECIPIENT, url=receiver.url)
        secrets.append(secret)
    receiver.secrets = secrets
    codes = ("02", "03", "04", "05", "06")
    for start in range(0, EVENTS, 100):
        with engine.begin() as conn:
            Staging().write(
                conn,
                [
                    _status_event(f"DOC-{n % 200}", codes[(n // 200) % len(codes)])
                    for n in range(start, min(start + 100, EVENTS))
                ],
            )
    total = EVENTS * ENDPOINTS
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(ENDPOINTS) as pool:
        while len(receiver.received) < total:
            delivered = sum(pool.map(hooks.run_endpoint, hooks.active()))
            assert delivered or len(receiver.received) >= total, "a round delivered nothing"
    elapsed = time.perf_counter() - started
    assert not receiver.rejected, "a delivery did not verify"
    assert len({(r.id, r.signatures) for r in receiver.received}) == EVENTS
    engine.dispose()

    # the baseline: the same signed POSTs, no outbox
    bodies = [
        b'{"type":"status.changed","timestamp":"2026-12-07T08:00:00Z","data":{"document_id":'
        + f'"DOC-{n % 200}","status":"03","sender":"{SENDER}","unit":"{RECIPIENT}",'.encode()
        + f'"event_id":"evt_{n:026d}"}}}}'.encode()
        for n in range(EVENTS)
    ]
    rules = FetchRules(SETTINGS.allow)

    def send_all(secret: str) -> int:
        for n, body in enumerate(bodies):
            headers = signing.headers(
                [secret], msg_id=f"evt_{n:026d}", timestamp=int(time.time()), body=body
            )
            answer = post(
                receiver.url, body, headers, rules=rules, http_loopback=True, timeout=15.0
            )
            assert answer.status == 204
        return len(bodies)

    before = len(receiver.received)
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(ENDPOINTS) as pool:
        sent = sum(pool.map(send_all, secrets))
    raw = sent / (time.perf_counter() - started)
    assert len(receiver.received) - before == sent
    return result(total / elapsed, raw, "events/s")


def _router(work: Path, authority: Authority) -> tuple[Router, sa.Engine]:
    engine = create_engine(f"sqlite:///{work / 'hub.db'}")
    upgrade(engine, components())
    topology = Topology([Hub(id="H49", root_unit="000.00.00.H49")])
    directory = Directory(engine, topology=topology)
    with UNITS_CSV.open(encoding="utf-8") as source:
        directory.import_csv(source)
    anchor = authority.certificate.public_bytes(serialization.Encoding.DER)
    router = Router(
        engine=engine,
        directory=directory,
        hub_id="H49",
        store=StoredPackages(FilesystemStore(work / "objects")),
        policy=TrustPolicy(anchors=(x509.load_der_x509_certificate(anchor),)),
    )
    return router, engine


def _delay(work: Path, receiver: Receiver) -> Result:
    authority = Authority.create("Bench Root CA")
    key = authority.issue("Bench sender", algorithm="rsa")
    router, engine = _router(work, authority)
    tag = uuid.uuid4().hex[:8]
    packages = [
        build_package(
            Package(
                header=MessageHeader(
                    from_=Organization(organ_id=SENDER, organ_name="UBND phường 01"),
                    to=(Organization(organ_id=RECIPIENT),),
                    document_id=f"{tag}-{n}",
                    subject="Hồ sơ cấp giấy phép xây dựng",
                ),
                manifest=(ManifestReference(content_id="a1", content_type="application/pdf"),),
                attachments=(
                    Attachment(content_id="a1", content=os.urandom(2000), name="ho-so.pdf"),
                ),
            ),
            key=key,
        )
        for n in range(CHANGES)
    ]
    router.accept_many([Submission(package=p) for p in packages])
    hooks = Webhooks(engine, SETTINGS)
    _, secret = hooks.create(owner="bench", unit=SENDER, url=receiver.url)
    receiver.secrets = [secret]
    receiver.received.clear()

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[Notifier] = []
    finished: list[asyncio.Event] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            notifier = Notifier(hooks, Citizens(engine, statuses=(), zns=None, sms=None))
            notifier.start()
            holder.append(notifier)
            finished.append(asyncio.Event())
            ready.set()
            await finished[0].wait()
            await notifier.stop()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    notifier = holder[0]
    delays = []
    try:
        for n in range(CHANGES):
            time.sleep(random.uniform(0.0, 0.02))
            staging = Staging()
            document_id = f"{tag}-{n}"

            def journal(
                conn: sa.Connection,
                new: StatusCode,
                staging: Staging = staging,
                doc: str = document_id,
            ) -> None:
                staging.write(conn, [_status_event(doc, new.value)])

            started = time.perf_counter()
            router.set_status(RECIPIENT, document_id=document_id, code="03", journal=journal)
            notifier.wake()  # what EventLog.settled does after the commit
            assert receiver.wait_for(n + 1, 30), "a webhook did not arrive"
            delays.append(receiver.received[n].at - started)
    finally:
        loop.call_soon_threadsafe(finished[0].set)
        thread.join(30)
    assert [r.data["document_id"] for r in receiver.received] == [
        f"{tag}-{n}" for n in range(CHANGES)
    ]
    rules = FetchRules(SETTINGS.allow)
    body = b'{"type":"status.changed","data":{}}'
    trips = []
    for n in range(CHANGES):
        headers = signing.headers(
            [secret], msg_id=f"evt_b{n}", timestamp=int(time.time()), body=body
        )
        started = time.perf_counter()
        post(receiver.url, body, headers, rules=rules, http_loopback=True, timeout=15.0)
        trips.append(time.perf_counter() - started)
    p99 = statistics.quantiles(delays, n=100)[98] * 1000
    base = statistics.quantiles(trips, n=100)[98] * 1000
    engine.dispose()
    return {"value": p99, "unit": "ms (p99)", "baseline": base, "ratio": base / p99}


def run() -> dict[str, Result]:
    receiver = Receiver()
    receiver.start()
    try:
        with tempfile.TemporaryDirectory(prefix="kyso-bench-notify-") as tmp:
            work = Path(tmp)
            delivered = _throughput(work, receiver)
            receiver.received.clear()
            delay = _delay(work, receiver)
    finally:
        receiver.stop()
    return {"notify_webhooks_delivered": delivered, "notify_status_to_webhook_p99": delay}


if __name__ == "__main__":
    for bench_name, value in run().items():
        print(f"{bench_name}: {value}")
