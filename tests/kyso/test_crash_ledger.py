"""A change of state and its ledger event are never apart, even across SIGKILL.

`kyso serve` runs as a child process on SQLite and on PostgreSQL while clients seal PDFs, upload
documents, prepare and cancel two-phase signatures, send packages and receive, acknowledge and
answer them. The server is killed with SIGKILL at random moments and restarted. Afterwards every
change in the database has exactly one ledger event, no event lacks its change, nothing staged
is left behind, and `kyso audit verify` recomputes the ledger."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from kyso.dev.setup import render_config
from kyso.v1 import (
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.kyso.served import free_port
from tests.signer.pdfgen import make_pdf

# Many kills and restarts of a real server: minutes on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"
_KILLS = 6


class Service:
    """`kyso serve` as a child process that the test kills and restarts."""

    def __init__(self, dev_env, directory: Path, database_url: str) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "kyso.toml"
        self.config.write_text(
            render_config(
                dev_env,
                address=f"127.0.0.1:{self.port}",
                data_dir=directory,
                metrics_address="",
            )
        )
        self.env = {**os.environ, "KYSO_DATABASE__URL": database_url}
        self.log = directory / "serve.log"
        self.token = dev_env.api_token_path.read_text().strip()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + 120
        while self.kyso("health", "--timeout", "1").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"kyso serve did not become healthy:\n{self.log.read_text()}")
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, and the server must end cleanly; one never started or already gone is left."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.log.read_text()[-4000:]

    def kyso(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**self.env, "KYSO_CONFIG": str(self.config)},
        )


class Client(threading.Thread):
    """Runs the flows over and over until told to stop; RPC failures (the server being killed)
    are expected and only counted."""

    def __init__(self, service: Service, number: int, official_pem: bytes) -> None:
        super().__init__(daemon=True)
        self.service, self.number, self.official = service, number, official_pem
        self.stopping = threading.Event()
        self.ok = Counter[str]()
        self.failed = Counter[str]()

    def run(self) -> None:
        step = 0
        while not self.stopping.is_set():
            step += 1
            metadata = (("authorization", f"Bearer {self.service.token}"),)
            with grpc.insecure_channel(f"127.0.0.1:{self.service.port}") as channel:
                for name, flow in (
                    ("seal", self._seal),
                    ("upload", self._upload),
                    ("two-phase", self._two_phase),
                    ("send", self._send),
                    ("answer", self._answer),
                ):
                    try:
                        flow(channel, metadata, step)
                        self.ok[name] += 1
                    except grpc.RpcError:
                        self.failed[name] += 1
                        time.sleep(0.1)

    def _seal(self, channel, metadata, step) -> None:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        stub.SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(content=make_pdf(), filename="kq.pdf"),
                key_alias="seal",
            ),
            metadata=metadata,
            timeout=30,
        )

    def _upload(self, channel, metadata, step) -> None:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        data = f"client {self.number} step {step} {random.random()}".encode() * 100
        stub.Upload(
            iter(
                [
                    documents_pb2.UploadRequest(
                        metadata=documents_pb2.UploadMetadata(filename="a.txt")
                    ),
                    documents_pb2.UploadRequest(chunk=data),
                ]
            ),
            metadata=metadata,
            timeout=30,
        )

    def _two_phase(self, channel, metadata, step) -> None:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        prepared = stub.PrepareSignature(
            signing_pb2.PrepareSignatureRequest(
                document=common_pb2.DocumentInput(content=make_pdf()), certificate=self.official
            ),
            metadata=metadata,
            timeout=30,
        )
        if step % 2:
            stub.CancelSignature(
                signing_pb2.CancelSignatureRequest(session_id=prepared.session_id),
                metadata=metadata,
                timeout=30,
            )

    def _send(self, channel, metadata, step) -> None:
        request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=[DEPARTMENT])
        request.fields.subject = f"Công văn {self.number}-{step}"
        request.fields.code_number = f"{self.number}{step:04d}{random.randrange(10**6)}"
        request.fields.code_notation = "UBND"
        exchange_pb2_grpc.ExchangeServiceStub(channel).Send(request, metadata=metadata, timeout=30)

    def _answer(self, channel, metadata, step) -> None:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        for delivery in stub.Receive(
            exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, max_deliveries=5, lease_seconds=5),
            metadata=metadata,
            timeout=30,
        ):
            stub.Ack(
                exchange_pb2.AckRequest(unit_code=DEPARTMENT, delivery_ids=[delivery.delivery_id]),
                metadata=metadata,
                timeout=30,
            )
            stub.UpdateStatus(
                exchange_pb2.UpdateStatusRequest(
                    unit_code=DEPARTMENT,
                    document_id=delivery.document_id,
                    from_unit=delivery.from_unit,
                    status_code="03",
                ),
                metadata=metadata,
                timeout=30,
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_sigkill_never_separates_a_change_from_its_event(dev_env, tmp_path, database_url) -> None:
    service = Service(dev_env, tmp_path / "served", database_url)
    service.start()
    clients = [
        Client(service, n, dev_env.keys["official"].certificate_path.read_bytes()) for n in range(2)
    ]
    for client in clients:
        client.start()
    rng = random.Random(7)
    try:
        for _ in range(_KILLS):
            # Each kill lands while the clients are at work: after at least one more flow has
            # finished since the last start (on a loaded machine a start alone can take the whole
            # random pause), then at a random moment.
            _wait_for_progress(clients, _completed(clients) + 1)
            time.sleep(rng.uniform(0.0, 2.0))
            service.kill()
            service.start()
        _wait_for_progress(clients, _completed(clients) + 1, every_flow=True)
    finally:
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.join(timeout=120)
        # a failed run must not leave its server (and its workers) running after the test
        service.stop()
    done = sum((c.ok for c in clients), Counter[str]())
    assert all(done[flow] > 0 for flow in _FLOWS), done

    engine = sa.create_engine(database_url)
    try:
        _check_every_change_has_exactly_one_event(engine)
    finally:
        engine.dispose()
    verified = service.kyso("audit", "verify", "--config", str(service.config))
    assert verified.returncode == 0, verified.stdout + verified.stderr


_FLOWS = ("seal", "upload", "two-phase", "send")


def _completed(clients: list[Client]) -> int:
    return sum(sum(client.ok.values()) for client in clients)


def _wait_for_progress(clients: list[Client], count: int, *, every_flow: bool = False) -> None:
    """Until the clients together have finished ``count`` flows (and, with ``every_flow``, each
    kind of flow at least once), at most two minutes."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = sum((c.ok for c in clients), Counter[str]())
        if _completed(clients) >= count and (
            not every_flow or all(done[flow] > 0 for flow in _FLOWS)
        ):
            return
        time.sleep(0.05)


def _events(conn: sa.Connection) -> list[dict]:
    rows = conn.execute(sa.text("SELECT entry FROM audit_entries ORDER BY idx")).scalars()
    return [json.loads(bytes(row)) for row in rows]


def _once(keys: list, what: str) -> set:
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    assert not repeated, f"{what}: more than one event for {repeated[:5]}"
    return set(keys)


def _check_every_change_has_exactly_one_event(engine: sa.Engine) -> None:
    with engine.connect() as conn:

        def rows(sql: str, **params: object) -> list[tuple]:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]

        def keys(event_type: str, key) -> list:
            return [key(e) for e in events if e["type"] == event_type]

        assert rows("SELECT count(*) FROM audit_outbox WHERE idx IS NULL") == [(0,)]
        events = _events(conn)

        sealed = rows("SELECT ref FROM catalogue_signatures WHERE key_alias = 'seal'")
        assert _once(keys("signature.sealed", lambda e: e["document_sha256"]), "sealed") == {
            ref.removeprefix("sha256/") for (ref,) in sealed
        }
        uploaded = rows("SELECT ref FROM catalogue_documents WHERE filename = 'a.txt'")
        assert _once(keys("document.stored", lambda e: e["document_sha256"]), "stored") == {
            ref.removeprefix("sha256/") for (ref,) in uploaded
        }

        sessions = dict(rows("SELECT id, state FROM signing_sessions"))
        session_of = lambda e: e["details"]["session"]  # noqa: E731
        assert _once(keys("signature.prepared", session_of), "prepared") == set(sessions)
        assert _once(keys("signature.cancelled", session_of), "cancelled") == {
            s for s, state in sessions.items() if state == "cancelled"
        }

        document_of = lambda e: e["details"]["document_id"]  # noqa: E731
        sent = rows("SELECT document_id FROM exchange_messages WHERE sender = :s", s=COMMUNE)
        assert _once(keys("package.sent", document_of), "sent") == {d for (d,) in sent}
        delivered = rows(
            "SELECT m.document_id, d.recipient FROM exchange_deliveries d"
            " JOIN exchange_messages m ON m.id = d.message_id"
            " WHERE d.next_hub IS NULL"  # delivered here; the others are forwarded
        )
        assert _once(
            keys("package.delivered", lambda e: (document_of(e), e["unit"])), "delivered"
        ) == set(delivered)

        acknowledged = rows("SELECT id FROM exchange_deliveries WHERE state = 'acknowledged'")
        ack_ids = [
            int(i)
            for ids in keys("package.acknowledged", lambda e: e["details"]["deliveries"])
            for i in ids.split(",")
        ]
        assert _once(ack_ids, "acknowledged") == {i for (i,) in acknowledged}

        answered = rows(
            "SELECT m.document_id, e.recipient FROM exchange_status_events e"
            " JOIN exchange_messages m ON m.id = e.message_id WHERE e.code = '03'"
        )
        assert _once(
            keys("status.changed", lambda e: (document_of(e), e["unit"])), "status"
        ) == set(answered)
