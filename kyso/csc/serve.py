"""Run the CSC facade with uvicorn: ``kyso csc serve`` on its own, or beside the gRPC server.

:class:`FacadeServer` binds its socket itself (so ``port`` is known at once, also for port 0)
and serves until :meth:`stop`. HTTPS when ``[csc] certificate``/``private_key`` are set; with
``client_ca`` too, mutual TLS (an optional client certificate, handed to the application).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

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


class _PeerCertificateH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that tells the application the connection's TLS client
    certificate (DER), as ASGI's ``tls`` extension ``client_cert_der`` (uvicorn does not)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP, and
        # socket.create_server leaves proto 0: without it, the last small write of each answer
        # waits for the client's delayed ACK (~40 ms a call; measured on the Connect listener).
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = {**scope.get("extensions", {}), "tls": {"client_cert_der": der}}
            await inner({**scope, "extensions": extensions}, receive, send)

        self.app = app


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
                ssl_ca_certs=str(settings.client_ca) if settings.client_ca else None,
                # a certificate is optional: callers without one use OAuth2
                ssl_cert_reqs=ssl.CERT_OPTIONAL if settings.client_ca else ssl.CERT_NONE,
                http=_PeerCertificateH11,
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
