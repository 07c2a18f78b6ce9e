"""Server foundation: health round trips per second through a kyso server (interceptor,
monitor, reflection and all) against a bare grpc.aio server with only the health service, both
on loopback in this process, measured in the same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from bench.common import Result, result
from kyso.app import Application
from kyso.config import load_config
from kyso.server import Server

SECONDS = 3.0
CONCURRENCY = 8


async def _round_trips(port: int) -> float:
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        await stub.Check(request)
        count = 0
        deadline = time.perf_counter() + SECONDS

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await stub.Check(request)
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


async def _bare() -> float:
    server = aio.server()
    servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        return await _round_trips(port)
    finally:
        await server.stop(None)


async def _kyso(home: Path) -> float:
    config_path = home / "kyso.toml"
    config_path.write_text(
        f'[server]\naddress = "127.0.0.1:0"\nmetrics_address = ""\n'
        f'[database]\nurl = "sqlite:///{home / "kyso.db"}"\n'
    )
    config = load_config(config_path)
    server = Server(config, Application.open(config))
    await server.start()
    try:
        return await _round_trips(server.port)
    finally:
        await server.stop()


def run() -> dict[str, Result]:
    with tempfile.TemporaryDirectory() as home:
        kyso_rate = asyncio.run(_kyso(Path(home)))
    bare_rate = asyncio.run(_bare())
    return {"server_health_round_trips_vs_bare_grpc": result(kyso_rate, bare_rate, "calls/s")}
