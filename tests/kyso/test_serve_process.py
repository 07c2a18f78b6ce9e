"""`kyso serve` as a real child process: starts, answers `kyso health`, logs each RPC with its
request id and never the API token, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from kyso.v1 import directory_pb2, directory_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kyso(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_serve_health_logs_and_sigterm(write_config, tmp_path: Path):
    port = _free_port()
    token = "a-development-token-that-must-not-be-logged"
    (tmp_path / "cli.token").write_text(token)
    config = write_config(
        f"""
[clients.cli]
roles = ["workflow"]
token_file = "cli.token"

[client]
server = "127.0.0.1:{port}"
token_file = "cli.token"
"""
    )
    text = config.read_text().replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"')
    text = text.replace("[server]\n", '[server]\nlog_format = "json"\n', 1)
    config.write_text(text)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            result = _kyso("health", "--config", str(config), "--timeout", "1")
            if result.returncode == 0:
                break
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        assert "SERVING" in result.stdout

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = directory_pb2_grpc.DirectoryServiceStub(channel)
            # The directory of this server is empty: the call is authenticated, authorised,
            # served and mapped to a status (not UNAUTHENTICATED/INTERNAL).
            with pytest.raises(grpc.RpcError) as err:
                stub.GetUnit(
                    directory_pb2.GetUnitRequest(code="000.00.00.H49"),
                    metadata=[("authorization", f"Bearer {token}")],
                )
            assert err.value.code() in {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text()
    assert '"rpc": "/kyso.v1.DirectoryService/GetUnit"' in log
    assert '"identity": "cli"' in log
    assert '"request_id"' in log
    assert '"message": "stopped"' in log
    assert token not in log


def test_health_exits_nonzero_when_nothing_listens(tmp_path: Path):
    env = {**os.environ, "KYSO_CONFIG": str(tmp_path / "none.toml")}
    result = _kyso("health", "--server", f"127.0.0.1:{_free_port()}", "--timeout", "1", env=env)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr or "DEADLINE_EXCEEDED" in result.stderr
