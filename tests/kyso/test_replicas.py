"""Three `kyso serve` replicas of hub H49 on one PostgreSQL database and one object store,
behind HAProxy and behind gRPC client-side round robin, with a peer hub H41 (its own process).

The four processes start at the same moment, the replicas on a new database (migrations,
directory import and the start-up check must not trip over each other). Clients then seal,
upload, send, receive, acknowledge and answer through both front doors, while two-phase
signatures are prepared on one replica and completed on another. One replica is killed with
SIGKILL under that load; from then on every send also goes to a unit of H41, so the surviving
replicas' dispatchers compete for the hops. Afterwards: everything a client was told succeeded
is there (catalogue row, object, delivery, the forwarded document at H41); H41 took every hop
exactly once (one successful Forward per hop, one `package.forwarded` event per hop); every
change has exactly one ledger event and the ledger is one dense tree; no staged event is left
behind (the survivors drain what the killed replica staged); the tree heads signed by the
replicas are each for a larger tree than the last, and consistent with each other; the `kyso`
command given the list of replicas works with one of them dead; `kyso audit verify` passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"
PEER_DEPARTMENT = "000.00.02.H41"  # Sở Nội vụ Nghệ An, served by hub H41
FORWARD = "/kyso.v1.ExchangeService/Forward"
REPLICAS = 3
LOAD_SECONDS = 6.0


class Replica:
    """One `kyso serve` child process; its database and objects are the shared ones."""

    def __init__(
        self,
        dev_env: DevEnvironment,
        directory: Path,
        env: dict[str, str],
        *,
        port: int,
        configure: Callable[[str], str],
    ) -> None:
        self.port = port
        self.address = f"127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "kyso.toml"
        self.config.write_text(
            configure(
                render_config(dev_env, address=self.address, data_dir=directory, metrics_address="")
            )
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
        self.to_peer = threading.Event()  # set: each send also goes to a unit of hub H41
        self.forwarded: set[str] = set()
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
        peer = self.to_peer.is_set()
        recipients = [DEPARTMENT, PEER_DEPARTMENT] if peer else [DEPARTMENT]
        request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=recipients)
        request.fields.subject = f"Công văn {self.number}-{step}"
        request.fields.code_number = f"{self.number}{step:04d}{random.randrange(10**6)}"
        request.fields.code_notation = "UBND"
        answer = exchange_pb2_grpc.ExchangeServiceStub(channel).Send(
            request, metadata=self.metadata, timeout=30
        )
        self.sent.add(answer.document_id)
        if peer:
            self.forwarded.add(answer.document_id)

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


@dataclass
class Hubs:
    replicas: list[Replica]
    """H49 (the dev hub, Quảng Ninh): three replicas on one PostgreSQL database and store."""
    peer: Replica
    """H41 (Nghệ An): one `kyso serve` on its own SQLite database, H49's peer."""


def _hub_section(hub: str, root: str, address: str, peer: str = "", pin: str = "") -> str:
    lines = [f"[exchange.hubs.{hub}]", f'root_unit = "{root}"', f'address = "{address}"']
    if peer:
        lines.append(f'peers = ["{peer}"]')
    if pin:
        lines.append(f'certificate_sha256 = ["{pin}"]')
    return "\n".join(lines) + "\n"


@pytest.fixture
def hubs(dev_env: DevEnvironment, tmp_path: Path, postgres_url: str) -> Iterator[Hubs]:
    """H49's replicas and H41, all started at the same moment; each hub calls the other with a
    hub token (plaintext loopback) and accepts the other's Forward as client named by its id."""
    ports = [free_port() for _ in range(REPLICAS)]
    peer_port = free_port()
    # Both hubs sign with the development `seal` key: each pins it for the other.
    pin = hashlib.sha256(_der(dev_env.keys["seal"].certificate_path)).hexdigest()
    tokens = tmp_path / "hub-tokens"
    tokens.mkdir()
    for hub in ("H49", "H41"):
        (tokens / hub).write_text(f"hub-token-{hub}-{random.getrandbits(64):x}")

    def as_h49(port: int) -> Callable[[str], str]:
        def configure(text: str) -> str:
            here = f"127.0.0.1:{port}"
            text = text.replace(
                _hub_section("H49", "000.00.00.H49", here),
                _hub_section("H49", "000.00.00.H49", here, "H41")
                + _hub_section("H41", "000.00.00.H41", f"127.0.0.1:{peer_port}", "H49", pin),
            )
            text = text.replace(
                'key = "seal"\n', f'key = "seal"\nhub_token_file = "{tokens / "H49"}"\n'
            )
            return text + f'\n[clients.H41]\nroles = ["hub"]\ntoken_file = "{tokens / "H41"}"\n'

        return configure

    def as_h41(text: str) -> str:
        here = f"127.0.0.1:{peer_port}"
        text = text.replace('hub_id = "H49"', 'hub_id = "H41"')
        text = text.replace(
            _hub_section("H49", "000.00.00.H49", here),
            _hub_section("H41", "000.00.00.H41", here, "H49")
            # Nowhere: H41's statuses back to H49 (01 arrived) are another flow, not under
            # test here, and would add status events that the exactly-once check does not expect.
            + _hub_section("H49", "000.00.00.H49", f"127.0.0.1:{free_port()}", "H41", pin),
        )
        text = text.replace(
            'key = "seal"\n', f'key = "seal"\nhub_token_file = "{tokens / "H41"}"\n'
        )
        return text + f'\n[clients.H49]\nroles = ["hub"]\ntoken_file = "{tokens / "H49"}"\n'

    env = {
        **os.environ,
        "KYSO_DATABASE__URL": postgres_url,
        "KYSO_STORAGE__PATH": str(tmp_path / "objects"),  # one store for all
        "KYSO_LEDGER__HEAD_INTERVAL_SECONDS": "1",
        "KYSO_EXCHANGE__DISPATCH_INTERVAL_SECONDS": "0.2",
    }
    started = [
        Replica(dev_env, tmp_path / f"replica-{n}", env, port=port, configure=as_h49(port))
        for n, port in enumerate(ports)
    ]
    peer_env = {**os.environ, "KYSO_SERVER__LOG_FORMAT": "json"}
    peer = Replica(dev_env, tmp_path / "peer-H41", peer_env, port=peer_port, configure=as_h41)
    try:
        deadline = time.monotonic() + 120
        for replica in [*started, peer]:  # all started at once, on a database nobody created
            replica.wait_healthy(deadline)
        yield Hubs(replicas=started, peer=peer)
    finally:
        for replica in [*started, peer]:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy (Debian) is not installed")
def test_three_replicas_share_the_work_and_lose_nothing_acknowledged(
    hubs: Hubs, dev_env: DevEnvironment, tmp_path: Path, postgres_url: str
) -> None:
    replicas = hubs.replicas
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
        for client in clients:  # from now on, hops to H41 for the survivors' dispatchers
            client.to_peer.set()
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
    # both front doors spread the calls: every replica served some
    served = [
        len(re.findall(r"rpc=/kyso\.v1\.(?:Signing|Document|Exchange)Service/", r.log.read_text()))
        for r in replicas
    ]
    assert all(served), served
    hops = _wait_for_the_hops(postgres_url)
    time.sleep(2.0)  # a head-signing tick and an outbox drain on the survivors
    for replica in replicas[:2]:
        replica.stop()
    sealed = set().union(*(c.sealed for c in clients))
    uploaded = set().union(*(c.uploaded for c in clients))
    sent = set().union(*(c.sent for c in clients))
    forwarded = set().union(*(c.forwarded for c in clients))
    failed = [c.failed for c in clients]
    assert forwarded, failed
    hubs.peer.stop()
    # Every hop went to H41 exactly once, though two dispatchers competed for them.
    calls = Counter(
        entry.get("code") for entry in _json_lines(hubs.peer.log) if entry.get("rpc") == FORWARD
    )
    assert calls == Counter({"OK": hops}), calls
    peer_engine = sa.create_engine(f"sqlite:///{hubs.peer.config.parent / 'kyso.db'}")
    try:
        with peer_engine.connect() as conn:
            arrived = set(
                conn.execute(sa.text("SELECT document_id FROM exchange_messages")).scalars()
            )
    finally:
        peer_engine.dispose()
    assert forwarded <= arrived
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
        with engine.connect() as conn:  # each hop made is in the ledger once
            entries = conn.execute(sa.text("SELECT entry FROM audit_entries")).scalars()
            events = [json.loads(bytes(entry)) for entry in entries]
        hop_events = Counter(
            e["details"]["hop"] for e in events if e["type"] == "package.forwarded"
        )
        assert len(hop_events) == hops
        assert set(hop_events.values()) == {1}
        _check_heads(engine, dev_env)
    finally:
        engine.dispose()
    verified = _kyso(replicas[0], "audit", "verify", "--config", str(replicas[0].config))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _wait_for_the_hops(database_url: str) -> int:
    """Wait until H49's outbox has no hop left to make; return how many package hops it made."""
    engine = sa.create_engine(database_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                left, made = conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE done_at IS NULL),"
                        " count(*) FILTER (WHERE done_at IS NOT NULL)"
                        " FROM exchange_outbox WHERE kind = 'package'"
                    )
                ).one()
            if not left:
                return int(made)
            assert time.monotonic() < deadline, f"{left} hops still to make"
            time.sleep(0.2)
    finally:
        engine.dispose()


def _json_lines(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                yield entry


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
