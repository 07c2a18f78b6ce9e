"""Fixtures for remote signing: the development keys behind kyso's CSC facade, on loopback.

Two callers: ``dev`` (may use the ``seal`` and ``seal-ec`` keys) and ``other`` (no key), both
configured ``[clients]`` whose API tokens are their OAuth2 client secrets.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from asn1crypto import pem

import hsm
from kyso.app import Application
from kyso.config import Config, load_config
from kyso.csc.serve import FacadeServer

from .smartca_standin import SmartCaStandIn


def facade_config_text(dev_env, data: Path, extra: str = "") -> str:
    from kyso.dev.setup import render_config

    other = data / "other.token"
    other.write_text(f"other-{secrets.token_hex(8)}")
    return (
        render_config(dev_env, address="127.0.0.1:0", data_dir=data, metrics_address="")
        + f"""
[clients.other]
roles = ["workflow"]
unit = "000.00.99.H49"
token_file = "{other}"

[csc]
address = "127.0.0.1:0"
sad_seconds = 60
max_batch = 25
"""
        + extra
    )


@pytest.fixture
def facade_config(dev_env, tmp_path: Path) -> Config:
    path = tmp_path / "kyso.toml"
    path.write_text(facade_config_text(dev_env, tmp_path))
    return load_config(path)


@dataclass
class Running:
    app: Application
    server: FacadeServer

    @property
    def url(self) -> str:
        return self.server.url

    def secret(self, client: str) -> str:
        path = self.app.config.clients[client].token_file
        assert path is not None
        return path.read_text().strip()


@pytest.fixture
async def facade(facade_config: Config) -> AsyncIterator[Running]:
    app = Application.open(facade_config)
    server = FacadeServer(app)
    await server.start()
    try:
        yield Running(app=app, server=server)
    finally:
        await server.stop()
        app.close()


async def access_token(session: aiohttp.ClientSession, running: Running, client: str) -> str:
    async with session.post(
        f"{running.url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client,
            "client_secret": running.secret(client),
        },
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["token_type"] == "Bearer"
    return str(body["access_token"])


SP_ID = "kyso-test-sp"


@pytest.fixture
async def official(dev_env) -> AsyncIterator[hsm.KeyRing]:
    key = dev_env.keys["official"]
    ring = hsm.KeyRing(
        [
            hsm.KeySpec(
                alias="official",
                uri=hsm.Pkcs11Uri.parse(key.uri),
                pin=hsm.PinSource.from_file(key.pin_path),
                module_path=str(dev_env.module_path),
            )
        ],
        workers=1,
    )
    yield ring
    ring.close()


@pytest.fixture
async def standin(official, dev_env) -> AsyncIterator[SmartCaStandIn]:
    intermediate = pem.unarmor(dev_env.intermediate_certificate_path.read_bytes())[2]
    server = SmartCaStandIn(
        keyring=official,
        alias="official",
        user="079088001234",
        sp_id=SP_ID,
        sp_password=f"sp-{secrets.token_hex(8)}",
        chain=[intermediate],
    )
    await server.start()
    yield server
    await server.stop()
