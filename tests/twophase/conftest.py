"""Fixtures for two-phase signing: a real server (in a thread, so child processes can reach it
while a test blocks), the official's token driven from a child process, and helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from asn1crypto import pem

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.dev.init import DevEnvironment
from kyso.server import Server
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


class RunningServer:
    """``kyso``'s server on its own event loop in a thread; ``channel()`` gives sync channels."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port = 0
        self.app: Application | None = None
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kyso-test-server", daemon=True)

    def __enter__(self) -> RunningServer:
        self._thread.start()
        self._started.wait(120)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.app = Application.open(self.config)
            server = Server(self.config, self.app)
            await server.start()
            self.port = server.port
        except BaseException as exc:
            self._error = exc
            self._started.set()
            raise
        self._started.set()
        await self._stop.wait()
        await server.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


def auth(config: Config) -> list[tuple[str, str]]:
    path = config.clients["dev"].token_file
    assert path is not None
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def render(dev_env: DevEnvironment, directory: Path, **signing: object) -> Config:
    from kyso.dev.setup import render_config

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kyso.toml"
    path.write_text(
        render_config(
            dev_env,
            address="127.0.0.1:0",
            data_dir=directory,
            metrics_address="",
        )
    )
    config = load_config(path)
    if signing:
        config = dataclasses.replace(config, signing=dataclasses.replace(config.signing, **signing))
    return config


@pytest.fixture(scope="module")
def server(
    dev_env: DevEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    config = render(dev_env, tmp_path_factory.mktemp("twophase-server"))
    with RunningServer(config) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[signing_pb2_grpc.SigningServiceStub]:
    with server.channel() as channel:
        yield signing_pb2_grpc.SigningServiceStub(channel)


def der(path: Path) -> bytes:
    return bytes(pem.unarmor(path.read_bytes())[2])


class TokenSigner:
    """Signs digests with dev-env keys, in a child process (see _token_child.py)."""

    def __init__(self, dev_env: DevEnvironment) -> None:
        self._env = dev_env
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.twophase._token_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=dev_env.child_env(),
        )

    def sign(self, digest: bytes, *, alias: str = "official", algorithm: str = "sha256") -> bytes:
        key = self._env.keys[alias]
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        request = {
            "module": str(self._env.module_path),
            "token": key.token_label,
            "key": key.label,
            "pin_path": str(key.pin_path),
            "digest": digest.hex(),
            "algorithm": algorithm,
        }
        self._child.stdin.write(json.dumps(request) + "\n")
        self._child.stdin.flush()
        answer = json.loads(self._child.stdout.readline())
        assert "value" in answer, answer
        return bytes.fromhex(answer["value"])

    def close(self) -> None:
        assert self._child.stdin is not None
        self._child.stdin.close()
        self._child.wait(30)


@pytest.fixture(scope="session")
def token(dev_env: DevEnvironment) -> Iterator[TokenSigner]:
    signer = TokenSigner(dev_env)
    try:
        yield signer
    finally:
        signer.close()


def prepare(
    stub: signing_pb2_grpc.SigningServiceStub,
    config: Config,
    dev_env: DevEnvironment,
    pdf: bytes,
    *,
    certificate: bytes | None = None,
    title: str = "Quyết định cấp giấy phép",
    **fields: object,
) -> signing_pb2.PrepareSignatureResponse:
    response: signing_pb2.PrepareSignatureResponse = stub.PrepareSignature(
        signing_pb2.PrepareSignatureRequest(
            document=common_pb2.DocumentInput(content=pdf, filename="ket-qua.pdf"),
            certificate=certificate or der(dev_env.keys["official"].certificate_path),
            title=title,
            **fields,
        ),
        metadata=auth(config),
    )
    return response


def objects(config: Config) -> set[Path]:
    root = config.storage.path / "objects"
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json")}
