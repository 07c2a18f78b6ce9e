"""Three real hubs on loopback: G22 (central) above H49 (Quảng Ninh) and H41 (Nghệ An).

Every hub is a `kyso serve` child process with its own SQLite database and object store,
listening with mutual TLS for the other hubs (a small TLS PKI made here with `cryptography`:
a CA, a server certificate for 127.0.0.1 per hub, a client certificate per hub registered as
``[clients.hub-X] certificate_sha256``, role hub). The `kyso` command has no client certificate,
so each provincial hub also runs a second `kyso serve` process on the same database and store:
the unit-facing listener (plaintext loopback, API token) that the provinces' systems and the CLI
use. Both processes of a hub dispatch its outbox (the claims keep them apart). Packages, status
packets and hop receipts are signed with the development `seal` key (SoftHSM2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso.certificates import read_certificates
from kyso.dev.init import DevEnvironment
from tests.exchange.conftest import UNITS_CSV
from tests.kyso.served import free_port

HUBS = {"G22": "000.00.00.G22", "H49": "000.00.00.H49", "H41": "000.00.00.H41"}
PARENTS = {"G22": "", "H49": "G22", "H41": "G22"}
FRONTED = ("H49", "H41")

T = TypeVar("T")

# How long a test waits for something to cross hubs. The service moves a hop within about
# ``[exchange] hub_retry_seconds`` of its next hub being reachable; the rest of this margin is
# for a busy 2-core machine (other test runs, a hub restarting, SoftHSM and SQLite under load).
# Waits end as soon as their condition holds: the margin costs nothing when all is well.
CROSSING = 240.0


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TlsPki:
    """A CA with server and client certificates for the hubs, written under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("kyso hubs test CA"))
            .issuer_name(_name("kyso hubs test CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path, str]:
        """Write NAME.pem and NAME.key; return their paths and the certificate's SHA-256."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        fingerprint = hashlib.sha256(
            certificate.public_bytes(serialization.Encoding.DER)
        ).hexdigest()
        return cert_path, key_path, fingerprint


def _q(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Process:
    """One `kyso serve` child process."""

    name: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


@dataclass
class Hub:
    """A hub: its mTLS process, its unit-facing process (provinces), database and store."""

    id: str
    directory: Path
    port: int
    hub: Process
    front: Process | None = None
    front_port: int = 0
    token: str = ""

    @property
    def database(self) -> Path:
        return self.directory / "kyso.db"

    def sql(self, query: str, *params: object) -> list[tuple]:
        """Read this hub's database directly (the test's view of what is stored)."""
        with sqlite3.connect(self.database, timeout=30) as conn:
            return conn.execute(query, params).fetchall()

    def objects(self) -> int:
        return sum(1 for p in (self.directory / "objects").rglob("*") if p.is_file())

    def kyso(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the `kyso` command against this hub's unit-facing listener."""
        assert self.front is not None
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KYSO_CONFIG": str(self.front.config)},
        )

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.front_port}")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


class Topology:
    """Writes the configurations and runs the processes of the three hubs."""

    def __init__(self, dev_env: DevEnvironment, root: Path) -> None:
        self.dev_env = dev_env
        self.root = root
        self.pki = TlsPki(root / "tls")
        self.client_certs = {hub: self.pki.issue(f"hub-{hub}", server=False) for hub in HUBS}
        self.hubs: dict[str, Hub] = {}
        for hub_id in HUBS:
            directory = root / hub_id
            directory.mkdir(parents=True)
            self.hubs[hub_id] = Hub(
                id=hub_id,
                directory=directory,
                port=free_port(),
                hub=Process(f"{hub_id}", directory / "hub.toml", directory / "hub.log"),
            )
        for hub_id in FRONTED:
            hub = self.hubs[hub_id]
            hub.front_port = free_port()
            hub.front = Process(
                f"{hub_id}-front", hub.directory / "front.toml", hub.directory / "front.log"
            )
            hub.token = secrets.token_hex(16)
            (hub.directory / "system.token").write_text(hub.token)
        for hub in self.hubs.values():
            server_cert, server_key, _ = self.pki.issue(f"server-{hub.id}", server=True)
            common = self._common(hub)
            hub.hub.config.write_text(
                self._server(hub.port)
                + "[tls]\nenabled = true\n"
                + f"certificate = {_q(server_cert)}\nprivate_key = {_q(server_key)}\n"
                + f"client_ca = {_q(self.pki.ca)}\n\n"
                + common
            )
            if hub.front is not None:
                hub.front.config.write_text(
                    self._server(hub.front_port)
                    + self._common(hub, seal_clients=("system",))
                    + "[clients.system]\n"
                    + 'roles = ["workflow", "clerk"]\n'
                    + f"unit = {_q(HUBS[hub.id])}\n"
                    + f"token_file = {_q(hub.directory / 'system.token')}\n\n"
                    + "[client]\n"
                    + f"server = {_q(f'127.0.0.1:{hub.front_port}')}\n"
                    + f"token_file = {_q(hub.directory / 'system.token')}\n"
                )

    @staticmethod
    def _server(port: int) -> str:
        return (
            "[server]\n"
            f'address = "127.0.0.1:{port}"\n'
            'metrics_address = ""\n'
            "health_interval_seconds = 0.5\n"
            "grace_seconds = 2\n\n"
        )

    def _common(self, hub: Hub, *, seal_clients: tuple[str, ...] = ()) -> str:
        env = self.dev_env
        seal = env.keys["seal"]
        # every hub signs with the development seal: its certificate is each hub's pinned one
        seal_sha256 = hashlib.sha256(
            read_certificates([seal.certificate_path])[0].dump()
        ).hexdigest()
        cert, key, _ = self.client_certs[hub.id]
        lines = [
            "[database]",
            f"url = {_q('sqlite:///' + str(hub.database))}",
            "",
            "[storage]",
            f"path = {_q(hub.directory / 'objects')}",
            "",
            "[hsm]",
            f"module = {_q(env.module_path)}",
            "workers = 1",
            "",
            "[hsm.environment]",
            f"SOFTHSM2_CONF = {_q(env.softhsm_conf)}",
            "",
            "[keys.seal]",
            f"uri = {_q(seal.uri)}",
            f"pin_file = {_q(seal.pin_path)}",
            f"chain = [{_q(env.intermediate_certificate_path)}]",
            f"clients = [{', '.join(_q(c) for c in seal_clients)}]",
            "",
            "[trust]",
            f"anchors = [{_q(env.root_certificate_path)}]",
            "",
        ]
        for other, (_, _, fingerprint) in self.client_certs.items():
            lines += [
                f"[clients.hub-{other}]",
                'roles = ["hub"]',
                f"unit = {_q(HUBS[other])}",
                f"certificate_sha256 = {_q(fingerprint)}",
                "",
            ]
        lines += [
            "[exchange]",
            f"hub_id = {_q(hub.id)}",
            f"directory = {_q(UNITS_CSV)}",
            'key = "seal"',
            "dispatch_interval_seconds = 0.2",
            f"client_certificate = {_q(cert)}",
            f"client_key = {_q(key)}",
            f"server_ca = {_q(self.pki.ca)}",
            "",
        ]
        for hub_id, root_unit in HUBS.items():
            lines += [
                f"[exchange.hubs.{hub_id}]",
                f"root_unit = {_q(root_unit)}",
                f"address = {_q(f'127.0.0.1:{self.hubs[hub_id].port}')}",
                f"certificate_sha256 = [{_q(seal_sha256)}]",
            ]
            if PARENTS[hub_id]:
                lines.append(f"parent = {_q(PARENTS[hub_id])}")
            lines.append("")
        return "\n".join(lines)

    def processes(self) -> list[Process]:
        found = []
        for hub in self.hubs.values():
            found.append(hub.hub)
            if hub.front is not None:
                found.append(hub.front)
        return found

    def start(self, *processes: Process) -> None:
        chosen = processes or tuple(self.processes())
        # The hub processes create the databases (migrations, directory import) first.
        hubs = [p for p in chosen if not p.name.endswith("-front")]
        for process in hubs:
            process.start()
        for process in hubs:
            self.wait_healthy(process)
        fronts = [p for p in chosen if p.name.endswith("-front")]
        for process in fronts:
            process.start()
        for process in fronts:
            self.wait_healthy(process)

    def _health(self, process: Process) -> bool:
        hub = self.hubs[process.name.split("-")[0]]
        if process.name.endswith("-front"):
            channel = grpc.insecure_channel(f"127.0.0.1:{hub.front_port}")
        else:
            cert, key, _ = self.client_certs[hub.id]
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.pki.ca.read_bytes(),
                private_key=key.read_bytes(),
                certificate_chain=cert.read_bytes(),
            )
            channel = grpc.secure_channel(f"127.0.0.1:{hub.port}", credentials)
        with channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def wait_healthy(self, process: Process, *, within: float = CROSSING) -> None:
        started = time.monotonic()
        while not self._health(process):
            assert process.process is not None
            exited = process.process.poll()
            waited = time.monotonic() - started
            if exited is not None or waited > within:
                state = f"exited with {exited}" if exited is not None else "still not SERVING"
                raise RuntimeError(
                    f"{process.name} did not become healthy ({state} after {waited:.0f} s):\n"
                    f"{process.log.read_text()}"
                )
            time.sleep(0.2)

    def stop(self) -> dict[str, int | None]:
        return {p.name: p.stop() for p in self.processes()}


def eventually(
    check: Callable[[], T],
    *,
    what: str,
    done: Callable[[T], bool] = bool,
    within: float = CROSSING,
    every: float = 0.3,
) -> T:
    """Poll ``check`` until ``done`` holds for what it returns, and return that.

    After ``within`` seconds fail with ``what`` was waited for, how long, and the last value
    ``check`` returned: make it say what is still missing, so a failure explains itself.
    """
    started = time.monotonic()
    while True:
        value = check()
        if done(value):
            return value
        waited = time.monotonic() - started
        if waited > within:
            raise AssertionError(
                f"waited {waited:.0f} s for {what}; it did not happen. Last seen: {value!r}"
            )
        time.sleep(every)
