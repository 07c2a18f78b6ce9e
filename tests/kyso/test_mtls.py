"""Mutual TLS: a client certificate is the identity (no token); without one, or with one the
server does not know, the connection or the call is refused; `kyso` speaks mTLS from config."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.hubs.topology import TlsPki
from tests.kyso.served import free_port


def test_cli_over_mutual_tls(tmp_path):
    pki = TlsPki(tmp_path / "tls")
    server_cert, server_key, _ = pki.issue("server", server=True)
    client_cert, client_key, fingerprint = pki.issue("clerk", server=False)
    stranger_cert, stranger_key, _ = pki.issue("stranger", server=False)
    port = free_port()
    config = tmp_path / "kyso.toml"
    base = f"""
[server]
address = "127.0.0.1:{port}"
metrics_address = ""

[tls]
enabled = true
certificate = "{server_cert}"
private_key = "{server_key}"
client_ca = "{pki.ca}"

[database]
url = "sqlite:///{tmp_path / "kyso.db"}"

[storage]
path = "{tmp_path / "objects"}"

[clients.clerk]
roles = ["clerk"]
unit = "000.00.21.H49"
certificate_sha256 = "{fingerprint}"
"""
    config.write_text(
        base + f'\n[client]\nserver = "127.0.0.1:{port}"\nca_file = "{pki.ca}"\n'
        f'certificate = "{client_cert}"\nprivate_key = "{client_key}"\n'
    )
    stranger = tmp_path / "stranger.toml"
    stranger.write_text(
        base + f'\n[client]\nserver = "127.0.0.1:{port}"\nca_file = "{pki.ca}"\n'
        f'certificate = "{stranger_cert}"\nprivate_key = "{stranger_key}"\n'
    )

    def kyso(*args, conf=config):
        return subprocess.run(
            [sys.executable, "-m", "kyso.cli.main", *args, "--config", str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    server = subprocess.Popen(
        [sys.executable, "-m", "kyso.cli.main", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while kyso("health", "--timeout", "1").returncode != 0:
            assert server.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.2)
        document = tmp_path / "a.txt"
        document.write_text("văn bản")
        uploaded = kyso("upload", str(document))
        assert uploaded.returncode == 0, uploaded.stderr
        assert uploaded.stdout.startswith("sha256/")

        refused = kyso("upload", str(document), conf=stranger)
        assert refused.returncode == 1
        assert "UNAUTHENTICATED" in refused.stderr
        assert "is not a configured client" in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
