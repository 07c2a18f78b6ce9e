"""`kyso serve` start-up failures, each in a real child process: one line on standard error that
names the configuration key to fix, exit 2, never a traceback (docs/operations.md,
"Troubleshooting"). Also what must start: a key whose certificate is only in a file, and an
expired TLS certificate (started, with a warning).

Each token here is made for its test (a wrong PIN must not touch a token other tests use).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.kyso.served import free_port
from tests.support.tcpproxy import TcpProxy
from tests.support.tokens import DevToken, KeyRequest, TestCa, make_token, new_token_label

pytestmark = pytest.mark.timeout(300)


def _kyso_serve(config: Path, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line: exit 2, no traceback anywhere, the last line starts `kyso:`."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("kyso:")]
    assert len(errors) == 1, output
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def _base(tmp_path: Path, *, port: int = 0, extra: str = "") -> str:
    return f"""
[server]
address = "127.0.0.1:{port}"
metrics_address = ""
health_interval_seconds = 0.5

[database]
url = "sqlite:///{tmp_path / "kyso.db"}"

[storage]
path = "{tmp_path / "objects"}"

[hsm]
workers = 1
{extra}
"""


def _pin(tmp_path: Path, name: str, pin: str) -> Path:
    path = tmp_path / f"{name}.pin"
    path.write_text(pin)
    path.chmod(0o600)
    return path


def _token(test_ca: TestCa, *keys: KeyRequest) -> DevToken:
    return make_token(label=new_token_label("start"), keys=list(keys), ca=test_ca)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    return path


def test_wrong_pin_is_one_line_naming_the_pin_file(tmp_path: Path, test_ca: TestCa):
    token = _token(test_ca, KeyRequest("seal", "rsa2048"))
    pin = _pin(tmp_path, "wrong", "000000")
    config = _write(
        tmp_path,
        _base(tmp_path) + f'[keys.seal]\nuri = "{token.uri("seal")}"\npin_file = "{pin}"\n',
    )
    line = _one_line_failure(_kyso_serve(config))
    assert line.startswith("kyso: cannot start: keys.seal.pin_file: ")
    assert "refused the PIN" in line


def test_keys_on_one_token_with_different_pin_sources(tmp_path: Path, test_ca: TestCa):
    token = _token(test_ca, KeyRequest("a", "p256"), KeyRequest("b", "p256"))
    pin = _pin(tmp_path, "right", token.user_pin)
    config = _write(
        tmp_path,
        _base(tmp_path)
        + f'[keys.a]\nuri = "{token.uri("a")}"\npin_file = "{pin}"\n'
        + f'[keys.b]\nuri = "{token.uri("b")}"\npin_env = "KYSO_TEST_UNUSED_PIN"\n',
    )
    line = _one_line_failure(_kyso_serve(config))
    assert "keys.a.pin_file, keys.b.pin_env:" in line
    assert "different PIN sources" in line


def test_certificate_of_another_key_names_the_certificate_key(tmp_path: Path, test_ca: TestCa):
    token = _token(test_ca, KeyRequest("seal", "p256"), KeyRequest("other", "p256"))
    pin = _pin(tmp_path, "right", token.user_pin)
    other = tmp_path / "other.der"
    assert token.keys["other"].certificate_der is not None
    other.write_bytes(token.keys["other"].certificate_der)
    config = _write(
        tmp_path,
        _base(tmp_path)
        + f'[keys.seal]\nuri = "{token.uri("seal")}"\npin_file = "{pin}"\n'
        + f'certificate = "{other}"\n',
    )
    line = _one_line_failure(_kyso_serve(config))
    assert line.startswith("kyso: cannot start: keys.seal.certificate: ")
    assert "does not verify against the certificate" in line


def test_key_without_certificate_starts_with_certificate_file(tmp_path: Path, test_ca: TestCa):
    """The option the error recommends exists: without it the start fails naming
    keys.seal.certificate; with it (the certificate as a PEM file) the server serves."""
    token = _token(test_ca, KeyRequest("seal", "p256", with_certificate=False))
    pin = _pin(tmp_path, "right", token.user_pin)
    key_text = f'[keys.seal]\nuri = "{token.uri("seal")}"\npin_file = "{pin}"\n'
    line = _one_line_failure(_kyso_serve(_write(tmp_path, _base(tmp_path) + key_text)))
    assert line.startswith("kyso: cannot start: keys.seal.certificate: ")
    assert 'keys.seal.certificate = "FILE.pem"' in line

    certificate = x509.load_der_x509_certificate(
        test_ca.issue(token.keys["seal"].spki_der, "seal from a file")
    )
    pem = tmp_path / "seal.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    port = free_port()
    config = _write(tmp_path, _base(tmp_path, port=port) + key_text + f'certificate = "{pem}"\n')
    log = _serve_until_healthy(config, port, tmp_path)
    assert "token" in log


def test_postgresql_unreachable_is_retried_then_one_line(tmp_path: Path):
    port = free_port()  # nothing listens there
    config = _write(
        tmp_path,
        _base(tmp_path).replace(
            f'url = "sqlite:///{tmp_path / "kyso.db"}"',
            f'url = "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"\n'
            "start_timeout_seconds = 1.5",
        ),
    )
    result = _kyso_serve(config)
    line = _one_line_failure(result)
    assert line.startswith("kyso: cannot start: database.url: the database did not answer within")
    assert "Connection refused" in line
    assert "database not reachable yet; retrying" in result.stderr  # it did retry


@pytest.mark.postgres
def test_postgresql_that_comes_up_during_the_wait_is_used(tmp_path: Path, postgres_url: str):
    """A database not yet reachable at start (its port closed) is waited for: the proxy in
    front of it starts accepting once kyso has logged that it waits, and kyso serves."""
    target = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, _, pg_port = target.partition(":")
    proxy = TcpProxy(host, int(pg_port or 5432))
    database = postgres_url.rsplit("/", 1)[1]
    port = free_port()
    config = _write(
        tmp_path,
        _base(tmp_path, port=port).replace(
            f'url = "sqlite:///{tmp_path / "kyso.db"}"',
            f'url = "postgresql://postgres@127.0.0.1:{proxy.port}/{database}"\n'
            "start_timeout_seconds = 60",
        ),
    )

    def open_once_kyso_waits(log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while "database not reachable yet" not in log_path.read_text():
            assert time.monotonic() < deadline, f"kyso never waited: {log_path.read_text()}"
            time.sleep(0.1)
        proxy.open()

    try:
        log = _serve_until_healthy(config, port, tmp_path, started=open_once_kyso_waits)
    finally:
        proxy.close()
    assert "database not reachable yet; retrying" in log
    assert "database reachable" in log


@pytest.mark.parametrize(
    ("url", "shown"),
    [("mysql://kyso@db/kyso", "'mysql://'"), ("postgres://kyso@db/kyso", "'postgres://'")],
)
def test_bad_database_url_scheme(tmp_path: Path, url: str, shown: str):
    config = _write(
        tmp_path,
        _base(tmp_path).replace(f'url = "sqlite:///{tmp_path / "kyso.db"}"', f'url = "{url}"'),
    )
    line = _one_line_failure(_kyso_serve(config))
    assert line.startswith(f"kyso: database.url: scheme {shown} is not supported")


def _self_signed(
    tmp_path: Path, name: str, *, days: int = 30, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[Path, Path]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    start, end = (now - dt.timedelta(days=1), now + dt.timedelta(days=days))
    if days < 0:
        start, end = now + dt.timedelta(days=days - 10), now + dt.timedelta(days=days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / f"{name}.crt"
    key_path = tmp_path / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_certificate_and_key_that_do_not_match(tmp_path: Path):
    cert, _ = _self_signed(tmp_path, "server")
    _, other_key = _self_signed(tmp_path, "other")
    tls = f'[tls]\nenabled = true\ncertificate = "{cert}"\nprivate_key = "{other_key}"\n'
    line = _one_line_failure(_kyso_serve(_write(tmp_path, _base(tmp_path) + tls)))
    assert line.startswith("kyso: cannot start: tls.private_key: ")
    assert "is not the key of the certificate" in line


def test_expired_tls_certificate_starts_with_a_warning(tmp_path: Path):
    """The server starts (a client that checks expiry will refuse it: that is the client's
    call) and says at start which certificate expired."""
    cert, key = _self_signed(tmp_path, "server", days=-2)
    tls = f'[tls]\nenabled = true\ncertificate = "{cert}"\nprivate_key = "{key}"\n'
    config = _write(tmp_path, _base(tmp_path) + tls)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "kyso.server: serving" not in log_path.read_text():
            assert process.poll() is None, f"kyso serve ended:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"never serving:\n{log_path.read_text()}"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    warnings = [line for line in log.splitlines() if "certificate expired" in line]
    assert warnings, log
    assert "certificate=tls.certificate" in warnings[0]


def _serve_until_healthy(
    config: Path,
    port: int,
    tmp_path: Path,
    *,
    started: Callable[[Path], None] | None = None,
) -> str:
    """Start `kyso serve`, wait until `kyso health` says SERVING, stop it; return its log."""
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    health = [sys.executable, "-m", "kyso.cli.main", "health", "--timeout", "1"]
    health += ["--server", f"localhost:{port}", "--config", str(config)]
    deadline = time.monotonic() + 120
    try:
        if started is not None:
            started(log_path)
        while True:
            result = subprocess.run(health, capture_output=True, text=True, timeout=60, check=False)
            if result.returncode == 0:
                break
            assert process.poll() is None, f"kyso serve ended:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"never SERVING: {result.stderr}"
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return log_path.read_text()
