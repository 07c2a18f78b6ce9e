"""Run the CSC facade with uvicorn: ``kyso csc serve`` on its own, or beside the gRPC server.

:class:`FacadeServer` binds its socket itself (so ``port`` is known at once, also for port 0)
and serves until :meth:`stop`. HTTPS when ``[csc] certificate``/``private_key`` are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from contextlib import suppress

import uvicorn

from kyso.app import Application
from kyso.config import Config, parse_address
from kyso.csc.http import build_app
from kyso.operations.csc import CscFacade

__all__ = ["FacadeServer", "serve"]


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the owner of the loop decides when to stop (and
    closes the application after), so a SIGTERM is not re-raised behind its back."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FacadeServer:
    """The facade's HTTP server over ``app`` (which the caller opens and closes)."""

    def __init__(self, app: Application, *, address: str | None = None) -> None:
        settings = app.config.csc
        host, port = parse_address(address or settings.address, key="csc.address")
        self.facade = CscFacade(app)
        self._socket = socket.create_server((host, port), reuse_port=False)
        self.port: int = self._socket.getsockname()[1]
        self.host = host
        self.scheme = "https" if settings.certificate else "http"
        self._server = _Server(
            uvicorn.Config(
                build_app(self.facade),
                log_config=None,
                access_log=False,
                lifespan="off",
                ssl_certfile=str(settings.certificate) if settings.certificate else None,
                ssl_keyfile=str(settings.private_key) if settings.private_key else None,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with suppress(asyncio.CancelledError):
                await self._task
        self._socket.close()


async def serve(config: Config) -> None:
    """``kyso csc serve``: open the application, serve the facade until SIGTERM/SIGINT."""
    app = await asyncio.to_thread(Application.open, config)
    try:
        server = FacadeServer(app)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()
    finally:
        await asyncio.to_thread(app.close)
