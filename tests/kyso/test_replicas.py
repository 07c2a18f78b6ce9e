"""Three `kyso serve` replicas on one PostgreSQL database and one object store, behind HAProxy
and behind gRPC client-side round robin.

The replicas start at the same moment on a new database (migrations, directory import and the
start-up check must not trip over each other). Clients then seal, upload, send, receive,
acknowledge and answer through both front doors, while two-phase signatures are prepared on one
replica and completed on another. One replica is killed with SIGKILL under that load. Afterwards:
everything a client was told succeeded is there (catalogue row, object, delivery); every change
has exactly one ledger event and the ledger is one dense tree; no staged event is left behind
(the survivors drain what the killed replica staged); the tree heads signed by the replicas are
each for a larger tree than the last, and consistent with each other; `kyso audit verify` passes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
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
from asn1crypto import pem
from grpc_health.v1 import health_pb2, health_pb2_grpc

import audit
from audit.heads import TrustedCertificates
from kyso.dev.init import DevEnvironment
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
from storage import FilesystemStore
from tests.kyso.served import free_port
from tests.kyso.test_crash_ledger import _check_every_change_has_exactly_one_event
from tests.signer.pdfgen import make_pdf
from tests.twophase.conftest import TokenSigner

pytestmark = pytest.mark.postgres

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"
REPLICAS = 3
LOAD_SECONDS = 6.0


class Replica:
    """One `kyso serve` child process; its database and objects are the shared ones."""

    def __init__(self, dev_env: DevEnvironment, directory: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "kyso.toml"
        self.config.write_text(
            render_config(dev_env, address=self.address, data_dir=directory, metrics_address="")
        )
        self.env = env
        self.log = directory / "serve.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_healthy(self, deadline: float) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"replica did not start:\n{self.log.read_text()[-4000:]}")
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=60) == 0, self.log.read_text()[-4000:]


class HAProxy:
    """HAProxy (Debian's) forwarding HTTP/2 (gRPC) round robin to the replicas."""

    def __init__(self, directory: Path, backends: list[str]) -> None:
        self.port = free_port()
        config = directory / "haproxy.cfg"
        servers = "\n".join(
            f"  server r{n} {address} proto h2 check inter 500ms fall 1 rise 1"
            for n, address in enumerate(backends)
        )
        config.write_text(
            "global\n  maxconn 256\n"
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n"
            "  timeout server 60s\n  retries 0\n"
            f"frontend grpc\n  bind 127.0.0.1:{self.port} proto h2\n  default_backend kyso\n"
            f"backend kyso\n  balance roundrobin\n{servers}\n"
        )
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Client(threading.Thread):
    """Seals, uploads, sends and answers over ``target`` until told to stop; remembers what the
    service acknowledged. Failures (the killed replica's calls in flight) are only counted."""

    def __init__(self, target: str, token: str, number: int, *, round_robin: bool) -> None:
        super().__init__(daemon=True)
        self.target, self.number = target, number
        self.options = [("grpc.lb_policy_name", "round_robin")] if round_robin else []
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.stopping = threading.Event()
        self.sealed: set[str] = set()
        self.uploaded: set[str] = set()
        self.sent: set[str] = set()
        self.failed = Counter[str]()

    def run(self) -> None:
        with grpc.insecure_channel(self.target, options=self.options) as channel:
            step = 0
            while not self.stopping.is_set():
                step += 1
                for name, flow in (
                    ("seal", self._seal),
                    ("upload", self._upload),
                    ("send", self._send),
                    ("answer", self._answer),
                ):
                    try:
                        flow(channel, step)
                    except grpc.RpcError:
                        self.failed[name] += 1
                        time.sleep(0.1)

    def _seal(self, channel: grpc.Channel, step: int) -> None:
        answer = signing_pb2_grpc.SigningServiceStub(channel).SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(content=make_pdf(), filename="kq.pdf"),
                key_alias="seal",
            ),
            metadata=self.metadata,
            timeout=30,
        )
        self.sealed.add(answer.document.sha256)

    def _upload(self, channel: grpc.Channel, step: int) -> None:
        data = f"client {self.number} step {step} {random.random()}".encode() * 100
        answer = documents_pb2_grpc.DocumentServiceStub(channel).Upload(
            iter(
                [
                    documents_pb2.UploadRequest(
                        metadata=documents_pb2.UploadMetadata(filename="a.txt")
                    ),
                    documents_pb2.UploadRequest(chunk=data),
                ]
            ),
            metadata=self.metadata,
            timeout=30,
        )
        assert answer.sha256 == hashlib.sha256(data).hexdigest()
        self.uploaded.add(answer.sha256)

    def _send(self, channel: grpc.Channel, step: int) -> None:
        request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=[DEPARTMENT])
        request.fields.subject = f"Công văn {self.number}-{step}"
        request.fields.code_number = f"{self.number}{step:04d}{random.randrange(10**6)}"
        request.fields.code_notation = "UBND"
        answer = exchange_pb2_grpc.ExchangeServiceStub(channel).Send(
            request, metadata=self.metadata, timeout=30
        )
        self.sent.add(answer.document_id)

    def _answer(self, channel: grpc.Channel, step: int) -> None:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        for delivery in stub.Receive(
            exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, max_deliveries=5, lease_seconds=5),
            metadata=self.metadata,
            timeout=30,
        ):
            stub.Ack(
                exchange_pb2.AckRequest(unit_code=DEPARTMENT, delivery_ids=[delivery.delivery_id]),
                metadata=self.metadata,
                timeout=30,
            )
            stub.UpdateStatus(
                exchange_pb2.UpdateStatusRequest(
                    unit_code=DEPARTMENT,
                    document_id=delivery.document_id,
                    from_unit=delivery.from_unit,
                    status_code="03",
                ),
                metadata=self.metadata,
                timeout=30,
            )


@pytest.fixture
def replicas(dev_env: DevEnvironment, tmp_path: Path, postgres_url: str) -> Iterator[list[Replica]]:
    env = {
        **os.environ,
        "KYSO_DATABASE__URL": postgres_url,
        "KYSO_STORAGE__PATH": str(tmp_path / "objects"),  # one store for all
        "KYSO_LEDGER__HEAD_INTERVAL_SECONDS": "1",
    }
    started = [Replica(dev_env, tmp_path / f"replica-{n}", env) for n in range(REPLICAS)]
    try:
        deadline = time.monotonic() + 120
        for replica in started:  # all started at once, on a database nobody created
            replica.wait_healthy(deadline)
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy (Debian) is not installed")
def test_three_replicas_share_the_work_and_lose_nothing_acknowledged(
    replicas: list[Replica], dev_env: DevEnvironment, tmp_path: Path, postgres_url: str
) -> None:
    token = dev_env.api_token_path.read_text().strip()
    proxy = HAProxy(tmp_path, [r.address for r in replicas])
    round_robin = "ipv4:" + ",".join(r.address for r in replicas)
    clients = [
        Client(f"127.0.0.1:{proxy.port}", token, 0, round_robin=False),
        Client(round_robin, token, 1, round_robin=True),
    ]
    signer = TokenSigner(dev_env)
    try:
        _two_phase_across_replicas(replicas, dev_env, signer, token)
        for client in clients:
            client.start()
        time.sleep(LOAD_SECONDS / 2)
        replicas[2].process.send_signal(signal.SIGKILL)  # mid-load
        replicas[2].process.wait()
        time.sleep(LOAD_SECONDS / 2)
    finally:
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.join(timeout=120)
        signer.close()
        proxy.stop()
    # the `kyso` command given every replica, one of them dead: the live ones answer
    document = tmp_path / "cli" / "a.txt"  # named as the clients' uploads (checked alike)
    document.parent.mkdir()
    document.write_text("gửi qua danh sách các bản sao")
    listed = _kyso(
        replicas[0], "upload", str(document), "--server", ",".join(r.address for r in replicas)
    )
    assert listed.returncode == 0, listed.stderr
    time.sleep(2.0)  # a head-signing tick and an outbox drain on the survivors
    for replica in replicas[:2]:
        replica.stop()
    sealed = set().union(*(c.sealed for c in clients))
    uploaded = set().union(*(c.uploaded for c in clients))
    sent = set().union(*(c.sent for c in clients))
    failed = [c.failed for c in clients]
    assert sealed, failed
    assert uploaded, failed
    assert sent, failed

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            refs = set(conn.execute(sa.text("SELECT ref FROM catalogue_documents")).scalars())
            documents = set(
                conn.execute(sa.text("SELECT document_id FROM exchange_messages")).scalars()
            )
            size = conn.execute(sa.text("SELECT size FROM audit_tree")).scalar_one()
            count, top = conn.execute(sa.text("SELECT count(*), max(idx) FROM audit_entries")).one()
        store = FilesystemStore(tmp_path / "objects")
        for digest in sealed | uploaded:  # acknowledged: catalogued, and the object is there
            assert f"sha256/{digest}" in refs
            assert store.exists(f"sha256/{digest}")
        assert listed.stdout.strip() in refs
        assert sent <= documents
        assert count == size == top + 1  # one dense ledger
        _check_every_change_has_exactly_one_event(engine)
        _check_heads(engine, dev_env)
    finally:
        engine.dispose()
    verified = _kyso(replicas[0], "audit", "verify", "--config", str(replicas[0].config))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _kyso(replica: Replica, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**replica.env, "KYSO_CONFIG": str(replica.config)},
    )


def _two_phase_across_replicas(
    replicas: list[Replica], dev_env: DevEnvironment, signer: TokenSigner, token: str
) -> None:
    """Prepared on replica n, completed on replica n+1; a second completion on the third is
    refused (a session completes once, whichever replica is asked)."""
    metadata = (("authorization", f"Bearer {token}"),)
    certificate = _der(dev_env.keys["official"].certificate_path)
    channels = [grpc.insecure_channel(r.address) for r in replicas]
    try:
        stubs = [signing_pb2_grpc.SigningServiceStub(c) for c in channels]
        for n in range(REPLICAS):
            prepared = stubs[n].PrepareSignature(
                signing_pb2.PrepareSignatureRequest(
                    document=common_pb2.DocumentInput(content=make_pdf(), filename="qd.pdf"),
                    certificate=certificate,
                    title="Quyết định",
                ),
                metadata=metadata,
                timeout=60,
            )
            value = signer.sign(prepared.data_to_sign)
            request = signing_pb2.CompleteSignatureRequest(
                session_id=prepared.session_id, signature_value=value
            )
            done = stubs[(n + 1) % REPLICAS].CompleteSignature(
                request, metadata=metadata, timeout=60
            )
            assert done.document.sha256
            with pytest.raises(grpc.RpcError) as again:
                stubs[(n + 2) % REPLICAS].CompleteSignature(request, metadata=metadata, timeout=60)
            assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    finally:
        for channel in channels:
            channel.close()


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    return bytes(pem.unarmor(data)[2]) if pem.detect(data) else data


def _check_heads(engine: sa.Engine, dev_env: DevEnvironment) -> None:
    """Heads signed by whichever replica ticked: each for a larger tree than the one before
    (one signer at a time), each verifying, each a prefix of the next."""
    ledger = audit.Ledger(engine)
    heads = ledger.heads()
    assert len(heads) >= 2
    sizes = [head.tree_size for head in heads]
    assert sizes == sorted(set(sizes)), f"two replicas signed the same tree: {sizes}"
    trusted = TrustedCertificates([_der(dev_env.keys["ledger"].certificate_path)])
    for head in heads:
        audit.verify_head(head, trusted=trusted)
    for old, new in itertools.pairwise(heads):
        ledger.consistency_proof(old_size=old.tree_size, new_size=new.tree_size).verify(
            old_root=old.root_hash, new_root=new.root_hash
        )
