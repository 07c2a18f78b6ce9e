"""Hub links are mutual TLS with pinned peers (issue 15): a hub's Forward is taken only with a
TLS client certificate pinned for that hub, and without one only from loopback.

A real server with TLS on the development token; the Forward calls carry no hop id, so one that
passes the hub checks is answered INVALID_ARGUMENT (it reached the request's own checks) and one
refused by them PERMISSION_DENIED.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

import audit
from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import exchange_pb2, exchange_pb2_grpc
from tests.hubs.topology import TlsPki


@pytest.fixture
def pki(tmp_path: Path) -> TlsPki:
    return TlsPki(tmp_path / "tls")


def _config(dev_env, tmp_path: Path, pki: TlsPki, *, client_ca: bool, address: str) -> Config:
    from kyso.dev.setup import render_config

    server_cert, server_key, _ = pki.issue("server", server=True)
    _, _, g22_tls = pki.issue("hub-G22", server=False)
    _, _, h41_tls = pki.issue("hub-H41", server=False)
    text = render_config(dev_env, address=address, data_dir=tmp_path, metrics_address="")
    text = text.replace(
        'root_unit = "000.00.00.H49"\n', 'root_unit = "000.00.00.H49"\nparent = "G22"\n'
    )
    text += (
        '\n[exchange.hubs.G22]\nroot_unit = "000.00.00.G22"\n'
        f'tls_certificate_sha256 = ["{g22_tls}"]\n'
        '\n[exchange.hubs.H41]\nroot_unit = "000.00.00.H41"\nparent = "G22"\n'
        f'\n[tls]\nenabled = true\ncertificate = "{server_cert}"\nprivate_key = "{server_key}"\n'
        + (f'client_ca = "{pki.ca}"\n' if client_ca else "")
    )
    (tmp_path / "G22.token").write_text(secrets.token_hex(16))
    text += (
        '\n[clients.G22]\nroles = ["hub"]\nunit = "000.00.00.G22"\n'
        f'token_file = "{tmp_path / "G22.token"}"\n'
        # H41 is identified by its pinned client certificate alone
        '\n[clients.H41]\nroles = ["hub"]\nunit = "000.00.00.H41"\n'
        f'certificate_sha256 = "{h41_tls}"\n'
    )
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    return load_config(path)


@asynccontextmanager
async def _serving(config: Config) -> AsyncIterator[Server]:
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _forward(
    address: str, credentials: grpc.ChannelCredentials, *, token: str | None, hub: str
) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    options = [("grpc.ssl_target_name_override", "127.0.0.1")]
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Forward(exchange_pb2.ForwardRequest(from_hub=hub), metadata=metadata)
    code: grpc.StatusCode = caught.value.code()
    if code is grpc.StatusCode.PERMISSION_DENIED:
        assert f"hub {hub}" in (caught.value.details() or "")
    return code


def _credentials(pki: TlsPki, name: str | None) -> grpc.ChannelCredentials:
    if name is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    cert, key = pki.directory / f"{name}.pem", pki.directory / f"{name}.key"
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )


async def test_a_hub_forwards_only_with_its_pinned_client_certificate(
    dev_env, tmp_path, pki
) -> None:
    config = _config(dev_env, tmp_path, pki, client_ca=True, address="127.0.0.1:0")
    token = (tmp_path / "G22.token").read_text()
    async with _serving(config) as server:
        address = f"127.0.0.1:{server.port}"
        # G22's token over G22's pinned TLS certificate: past the hub checks
        pinned = _credentials(pki, "hub-G22")
        assert await _forward(address, pinned, token=token, hub="G22") is (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        # G22's token over the certificate pinned to client H41: one call, one identity
        other = _credentials(pki, "hub-H41")
        assert await _forward(address, other, token=token, hub="G22") is (
            grpc.StatusCode.UNAUTHENTICATED
        )
        # a certificate from the CA that nobody pins, with G22's token: refused
        pki.issue("stranger", server=False)
        stranger = _credentials(pki, "stranger")
        assert await _forward(address, stranger, token=token, hub="G22") is (
            grpc.StatusCode.PERMISSION_DENIED
        )
        # H41 identified by the certificate its client pins: past the hub checks
        assert await _forward(address, other, token=None, hub="H41") is (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        # the refusals are in the ledger, under the hub's client name
        assert server.app.refusals is not None
        await server.app.refusals.flush(everything=True)
        engine = sa.create_engine(config.database.url)
        try:
            events = [entry.event for entry in audit.Ledger(engine).entries()]
        finally:
            engine.dispose()
        denied = [e for e in events if e.type is audit.EventType.AUTHZ_DENIED]
        # a minute may turn between the two refusals: then two events
        mine = [e for e in denied if e.actor == "G22"]
        assert "not pinned for hub G22" in mine[0].details["reason"], mine[0].details
        assert sum(int(e.details["count"]) for e in mine) == 1


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent
        except OSError:
            return None
        host: str = probe.getsockname()[0]
    return None if ipaddress.ip_address(host).is_loopback or host == "0.0.0.0" else host  # noqa: S104


async def test_a_hub_without_a_client_certificate_is_taken_only_from_loopback(
    dev_env, tmp_path, pki
) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address other than loopback")
    config = _config(dev_env, tmp_path, pki, client_ca=False, address="0.0.0.0:0")
    token = (tmp_path / "G22.token").read_text()
    plain = _credentials(pki, None)
    async with _serving(config) as server:
        assert await _forward(f"127.0.0.1:{server.port}", plain, token=token, hub="G22") is (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        assert await _forward(f"{outside}:{server.port}", plain, token=token, hub="G22") is (
            grpc.StatusCode.PERMISSION_DENIED
        )
