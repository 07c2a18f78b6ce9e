"""PostgreSQL lost while `kyso serve` runs (a real server, its own database, reached through a
TCP proxy the test closes): calls answer UNAVAILABLE with retry advice, `kyso health` says
which dependency is down and why, the outbox drainer backs off without tracebacks (every log
line stays JSON), and everything works again when the database is back."""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from kyso.v1 import documents_pb2, documents_pb2_grpc
from tests.kyso.served import free_port
from tests.support.tcpproxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


def _upload(channel: grpc.Channel, token: str, data: bytes) -> documents_pb2.UploadResponse:
    def requests():
        yield documents_pb2.UploadRequest(
            metadata=documents_pb2.UploadMetadata(
                filename="a.pdf",
                content_type="application/pdf",
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
        yield documents_pb2.UploadRequest(chunk=data)

    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    return stub.Upload(requests(), metadata=[("authorization", f"Bearer {token}")], timeout=30)


def _kyso(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _wait(condition, what: str, *, log: Path, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"waited for {what}; log:\n{log.read_text()}"
        time.sleep(0.2)


def test_postgresql_lost_and_back(tmp_path: Path, postgres_url: str):
    target = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, _, pg_port = target.partition(":")
    database = postgres_url.rsplit("/", 1)[1]
    proxy = TcpProxy(host, int(pg_port or 5432))
    proxy.open()
    port = free_port()
    token = secrets.token_hex(16)
    (tmp_path / "cli.token").write_text(token)
    config = tmp_path / "kyso.toml"
    config.write_text(
        f"""
[server]
address = "127.0.0.1:{port}"
metrics_address = ""
health_interval_seconds = 0.3
log_format = "json"

[database]
url = "postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
start_timeout_seconds = 5

[storage]
path = "{tmp_path / "objects"}"

[clients.cli]
roles = ["workflow"]
token_file = "cli.token"

[client]
server = "127.0.0.1:{port}"
"""
    )
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    health = ("health", "--config", str(config), "--timeout", "2")
    try:
        _wait(lambda: _kyso(*health).returncode == 0, "SERVING", log=log)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert _upload(channel, token, b"%PDF-1.7 before").ref.ref

            proxy.close()
            with pytest.raises(grpc.RpcError) as err:
                _upload(channel, token, b"%PDF-1.7 during")
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert "retry" in err.value.details()
            status = status_pb2.Status.FromString(
                dict(err.value.trailing_metadata())["grpc-status-details-bin"]
            )
            retry = error_details_pb2.RetryInfo()
            assert any(detail.Unpack(retry) for detail in status.details)
            assert retry.retry_delay.seconds >= 1

            def names_the_database() -> subprocess.CompletedProcess[str] | None:
                result = _kyso(*health)
                if result.returncode == 1 and "down: database:" in result.stdout:
                    return result
                return None

            down = _wait(names_the_database, "kyso health to name the database", log=log)
            assert "NOT_SERVING" in down.stdout
            # the drainer has failed a few times by now (it polls every second)
            _wait(
                lambda: log.read_text().count("draining the audit outbox failed") >= 2,
                "two logged drain failures",
                log=log,
            )

            proxy.open()
            _wait(lambda: _kyso(*health).returncode == 0, "SERVING again", log=log)
            assert _upload(channel, token, b"%PDF-1.7 after").ref.ref
            _wait(
                lambda: "draining the audit outbox again" in log.read_text(),
                "the drainer to recover",
                log=log,
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        proxy.close()
        if process.poll() is None:
            process.kill()
            process.wait()

    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert not any("exception" in r for r in records), "a traceback was logged"
    failures = [
        r["failed_drains"]
        for r in records
        if r["message"].startswith("draining the audit outbox failed")
    ]
    # logged at the 1st, 2nd, 4th, 8th … consecutive failure only
    assert failures
    assert all(n & (n - 1) == 0 for n in failures), failures
    assert len(failures) == len(set(failures))
