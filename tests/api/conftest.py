"""Fixtures of the contract tests: the pinned Node tools of tests/api/node (buf, @grpc/grpc-js)
and a server over the development environment that answers gRPC and HTTP/JSON (Connect)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="session")
def buf() -> Path:
    path = NODE_DIR / "node_modules" / ".bin" / "buf"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap.sh test (npm ci in tests/api/node)")
    return path


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node or tests/api/node/node_modules is missing: run scripts/bootstrap.sh test")
    return found


def write_api_config(
    dev_env, directory: Path, extra: str = "", *, server: str = "", dev_rate: str = ""
) -> Config:
    """The development configuration with its own data in ``directory``, gRPC and HTTP/JSON on
    free ports, ``server`` more keys of [server], ``dev_rate`` the development client's own
    rate instead of its usual one, and ``extra`` TOML after it all."""
    from kyso.dev.setup import DEV_CLIENT_RATE, render_config

    path = directory / "kyso.toml"
    text = render_config(
        dev_env,
        address="127.0.0.1:0",
        data_dir=directory,
        metrics_address="",
        http_address="127.0.0.1:0",
    )
    text = text.replace('http_address = "127.0.0.1:0"\n', f'http_address = "127.0.0.1:0"\n{server}')
    if dev_rate:
        assert DEV_CLIENT_RATE in text
        text = text.replace(DEV_CLIENT_RATE, dev_rate)
    path.write_text(text + extra)
    return load_config(path)


@pytest.fixture
def api_config(dev_env, tmp_path: Path) -> Config:
    return write_api_config(dev_env, tmp_path)


@pytest.fixture
async def api_server(api_config: Config) -> AsyncIterator[Server]:
    app = Application.open(api_config)
    srv = Server(api_config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def token(config: Config, client: str = "dev") -> str:
    path = config.clients[client].token_file
    assert path is not None
    return path.read_text().strip()
