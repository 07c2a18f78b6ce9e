"""The sample production configuration (deploy/kyso.toml) starts with `kyso serve` against a
real PostgreSQL and the development S3 gateway (Ceph RGW, object lock), with TLS, keys on a
SoftHSM token with their certificates from files, and API tokens; only endpoints, key URIs and
the bucket are overridden from the environment, as an operator would. Also: the systemd unit
passes `systemd-analyze verify`, and compose.yaml passes a compose validator."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml

from kyso.config import load_config
from kyso.dev.init import DevEnvironment
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc
from tests.hubs.topology import TlsPki
from tests.kyso.served import free_port
from tests.support.rgw import RgwHandle, new_bucket_name

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "deploy" / "kyso.toml"
UNIT = ROOT / "deploy" / "systemd" / "kyso.service"
COMPOSE = ROOT / "compose.yaml"


def _install(dev_env: DevEnvironment, etc: Path) -> tuple[dict[str, str], TlsPki]:
    """Lay out /etc/kyso as the sample expects it; return the API tokens and the TLS CA."""
    (etc / "pki").mkdir(parents=True)
    secrets = etc / "secrets"
    (secrets / "tokens").mkdir(parents=True)
    secrets.chmod(0o700)
    shutil.copy(SAMPLE, etc / "kyso.toml")
    tls = TlsPki(etc / "tls-ca")
    server_cert, server_key, _ = tls.issue("server", server=True)
    shutil.copy(server_cert, etc / "pki" / "server.pem")
    shutil.copy(server_key, secrets / "server.key")
    for name in ("clients-ca.pem", "server-ca.pem", "s3-ca.pem"):
        shutil.copy(tls.ca, etc / "pki" / name)
    shutil.copy(dev_env.keys["seal"].certificate_path, etc / "pki" / "seal.pem")
    shutil.copy(dev_env.keys["ledger"].certificate_path, etc / "pki" / "ledger.pem")
    shutil.copy(dev_env.intermediate_certificate_path, etc / "pki" / "issuing-ca.pem")
    shutil.copy(dev_env.root_certificate_path, etc / "pki" / "root.pem")
    shutil.copy(dev_env.pin_paths["kyso-dev"], secrets / "hsm_pin")
    (secrets / "db_password").write_text("not-needed-with-trust-authentication\n")
    tokens = {}
    for client in ("dossier", "operator"):
        tokens[client] = hashlib.sha256(os.urandom(16)).hexdigest()
        (secrets / "tokens" / client).write_text(tokens[client])
    for path in secrets.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    return tokens, tls


@pytest.mark.postgres
@pytest.mark.timeout(400)
def test_sample_configuration_serves_against_postgresql_and_the_gateway(
    dev_env: DevEnvironment, rgw: RgwHandle, postgres_url: str, tmp_path: Path
):
    etc = tmp_path / "etc-kyso"
    tokens, tls = _install(dev_env, etc)
    # tls.client_ca is set, so every caller presents a certificate the clients' CA issued
    # (grpcio cannot ask for an optional one): the operator's for `kyso health`, and one that
    # no client pins for the dossier system, which its API token then identifies.
    operator_cert, operator_key, _ = tls.issue("operator", server=False)
    dossier_cert, dossier_key, _ = tls.issue("dossier", server=False)
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "KYSO_SERVER__ADDRESS": f"127.0.0.1:{port}",
        "KYSO_SERVER__METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "KYSO_DATABASE__URL": postgres_url.replace("+psycopg", ""),
        "KYSO_STORAGE__S3__ENDPOINT": rgw.endpoint,
        "KYSO_STORAGE__S3__SECURE": "false",  # the development gateway speaks plain HTTP
        "KYSO_STORAGE__S3__CA_FILE": "",
        "KYSO_STORAGE__S3__BUCKET": new_bucket_name("sample"),
        "KYSO_S3_ACCESS_KEY": rgw.access_key,
        "KYSO_S3_SECRET_KEY": rgw.secret_key,
        "KYSO_KEYS__SEAL__URI": dev_env.keys["seal"].uri,
        "KYSO_KEYS__LEDGER__URI": dev_env.keys["ledger"].uri,
        "KYSO_SIGNING__TSA_URLS": dev_env.tsa_url,
        "KYSO_CLIENT__SERVER": f"127.0.0.1:{port}",
        "KYSO_CLIENT__CERTIFICATE": str(operator_cert),
        "KYSO_CLIENT__PRIVATE_KEY": str(operator_key),
        "KYSO_CONFIG": str(etc / "kyso.toml"),
    }
    config = load_config(etc / "kyso.toml", environ=env)  # what the server will read
    assert config.tls.enabled
    assert config.storage.s3.retention_mode == "GOVERNANCE"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def kyso(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )

    try:
        deadline = time.monotonic() + 180
        while (health := kyso("health", "--timeout", "2")).returncode != 0:
            assert process.poll() is None, f"kyso serve ended:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{health.stdout}{health.stderr}\n{log.read_text()}"
            time.sleep(0.5)
        assert "SERVING" in health.stdout

        credentials = grpc.ssl_channel_credentials(
            (etc / "pki" / "server-ca.pem").read_bytes(),
            dossier_key.read_bytes(),
            dossier_cert.read_bytes(),
        )
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            stub = documents_pb2_grpc.DocumentServiceStub(channel)
            auth = [("authorization", f"Bearer {tokens['dossier']}")]
            data = b"%PDF-1.7\n% stored through the sample configuration\n"

            def upload():
                yield documents_pb2.UploadRequest(
                    metadata=documents_pb2.UploadMetadata(
                        filename="mau.pdf", content_type="application/pdf"
                    )
                )
                yield documents_pb2.UploadRequest(chunk=data)

            stored = stub.Upload(upload(), metadata=auth, timeout=30)
            chunks = stub.Download(
                documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=stored.ref.ref)),
                metadata=auth,
                timeout=30,
            )
            assert b"".join(c.chunk for c in chunks) == data

        status = kyso("admin", "status")
        assert status.returncode == 0, status.stderr + status.stdout
        assert "storage" in status.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_systemd_unit_verifies_and_keeps_workers_alive_until_the_server_stops():
    text = UNIT.read_text()
    assert "KillMode=mixed" in text  # SIGTERM to the server only; workers stop with it
    # verify resolves ExecStart: point it at a kyso that exists here, as the install would
    unit = Path("/tmp") / f"kyso-verify-{os.getpid()}" / "kyso.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    kyso_bin = shutil.which("kyso") or str(Path(sys.executable).parent / "kyso")
    unit.write_text(text.replace("/opt/kyso/bin/kyso", kyso_bin))
    try:
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(unit.parent)
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # the machine has no kyso user or systemd running: not the unit's fault
        if "kyso.service" in line and "User" not in line and "Failed to" not in line
    ]
    assert not problems, result.stdout + result.stderr


def test_compose_file_is_valid_pins_images_and_gives_kyso_its_secrets():
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        if "image" in service:
            image = service["image"]
            assert "@sha256:" in image or (":" in image and not image.endswith(":latest")), (
                f"{name}: {image} is not pinned"
            )
    kyso_service = compose["services"]["kyso"]
    env = kyso_service["environment"]
    secrets = {s if isinstance(s, str) else s["source"] for s in kyso_service["secrets"]}
    assert {"s3_access_key", "s3_secret_key", "db_password", "hsm_pin"} <= secrets
    assert env["KYSO_S3_SECRET_KEY_FILE"].startswith("/run/secrets/")
    assert env["KYSO_S3_ACCESS_KEY_FILE"].startswith("/run/secrets/")
    for volume in kyso_service["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{source} is mounted but not shipped"
    validator = shutil.which("docker-compose")
    if validator is None:
        pytest.skip("docker-compose (Debian) is absent: only the structure was checked")
    result = subprocess.run(
        [validator, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
