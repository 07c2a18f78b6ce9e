"""Transport (issue 15, observation 4): nothing secret crosses a network in the clear.

A server on a network address without TLS refuses to start unless the configuration says
``server.insecure = true`` (then it warns at every start); the `kyso` command and the agent never
send a token over plaintext off this machine; hub links with a client certificate trust only
the configured CA, and a hub token never travels in the clear to another machine.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kyso.app import Application
from kyso.config import is_loopback, load_config
from kyso.errors import ConfigError
from kyso.server import Server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.0.3:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("kyso.example.vn:443", False),
    ],
)
def test_loopback_addresses(address, loopback) -> None:
    assert is_loopback(address) is loopback


def test_a_network_address_without_tls_refuses_to_start(write_config) -> None:
    path = write_config("")
    text = path.read_text().replace('address = "127.0.0.1:0"', 'address = "0.0.0.0:0"')
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"server.address: 0.0.0.0:0 is not a loopback"):
        load_config(path)
    path.write_text(text.replace("[server]\n", "[server]\ninsecure = true\n", 1))
    assert load_config(path).server.insecure


async def test_an_insecure_listener_warns_at_every_start(write_config, caplog) -> None:
    path = write_config("")
    path.write_text(
        path.read_text().replace(
            'address = "127.0.0.1:0"', 'address = "0.0.0.0:0"\ninsecure = true'
        )
    )
    config = load_config(path)
    with caplog.at_level(logging.WARNING, logger="kyso.server"):
        server = Server(config, Application.open(config))
        try:
            await server.start()
        finally:
            await server.stop()
    assert any("WITHOUT TLS" in r.getMessage() for r in caplog.records)


def test_hub_links_trust_only_their_ca_and_never_carry_a_token_in_the_clear(
    write_config, tmp_path
) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "hub.token").write_text("t")
    hubs = (
        '[exchange.hubs.H49]\nroot_unit = "000.00.00.H49"\n'
        '[exchange.hubs.G22]\nroot_unit = "000.00.00.G22"\naddress = "{g22}"\n'
    )
    base = '[exchange]\nhub_id = "H49"\n'
    with pytest.raises(ConfigError, match="exchange.server_ca: hub links with a client"):
        load_config(
            write_config(
                base
                + 'client_certificate = "c.pem"\nclient_key = "c.pem"\n'
                + hubs.format(g22="10.0.0.22:50051")
            )
        )
    with pytest.raises(ConfigError, match="hub token would travel in the clear to hub G22"):
        load_config(
            write_config(
                base + 'hub_token_file = "hub.token"\n' + hubs.format(g22="10.0.0.22:50051")
            )
        )
    loopback = base + 'hub_token_file = "hub.token"\n' + hubs.format(g22="127.0.0.1:50052")
    assert load_config(write_config(loopback)).exchange.hub_token_file is not None


def test_the_cli_never_sends_its_token_in_the_clear_off_this_machine(write_config) -> None:
    path = write_config("")
    token = path.parent / "workflow.token"
    path.write_text(
        path.read_text() + f'\n[client]\nserver = "192.0.2.10:50051"\ntoken_file = "{token}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "inbox", "--unit", "000.00.02.H49"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "KYSO_CONFIG": str(path)},
    )
    assert result.returncode != 0
    assert "refusing to send the API token in the clear to 192.0.2.10:50051" in result.stderr
