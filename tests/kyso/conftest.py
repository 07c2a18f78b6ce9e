"""Fixtures for the application layer: a configuration on disk and a running server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server

TOKENS = {"workflow": "workflow", "auditor": "auditor", "hub": "hub"}


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML configuration (``extra`` after a minimal valid base); return its path."""

    def write(extra: str = "", *, base: bool = True) -> Path:
        path = tmp_path / "kyso.toml"
        text = ""
        if base:
            for name in TOKENS:
                (tmp_path / f"{name}.token").write_text(f"token-of-{name}-{secrets.token_hex(4)}")
            text = f"""
[server]
address = "127.0.0.1:0"
metrics_address = ""
health_interval_seconds = 0.2
grace_seconds = 2

[database]
url = "sqlite:///{tmp_path / "kyso.db"}"

[storage]
path = "{tmp_path / "objects"}"

[clients.workflow]
roles = ["workflow"]
unit = "000.00.21.H49"
token_file = "workflow.token"

[clients.auditor]
roles = ["auditor"]
token_file = "auditor.token"

[clients.hub]
roles = ["hub"]
token_file = "hub.token"
"""
        path.write_text(text + extra)
        return path

    return write


@pytest.fixture
def config(write_config: Callable[[str], Path]) -> Config:
    return load_config(write_config(""))


@pytest.fixture
async def server(config: Config) -> AsyncIterator[Server]:
    app = Application.open(config)
    srv = Server(config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def token(config: Config, client: str) -> str:
    path = config.clients[client].token_file
    assert path is not None
    return path.read_text().strip()


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def dev_config(dev_env, tmp_path: Path) -> Config:
    """The development configuration over the session's dev environment, with its own data."""
    from kyso.dev.setup import render_config

    path = tmp_path / "dev-kyso.toml"
    path.write_text(
        render_config(
            dev_env,
            address="127.0.0.1:0",
            data_dir=tmp_path,
            metrics_address="",
        )
    )
    return load_config(path)


@pytest.fixture
async def dev_server(dev_config: Config) -> AsyncIterator[Server]:
    app = Application.open(dev_config)
    srv = Server(dev_config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def dev_channel(dev_server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{dev_server.port}") as ch:
        yield ch
