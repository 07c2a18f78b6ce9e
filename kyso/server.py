"""The gRPC server: one builder that composes servicers, the interceptor, health, reflection
and metrics, and the serve loop with a graceful stop on SIGTERM/SIGINT.

Shutdown order: stop accepting and let in-flight calls finish within ``server.grace_seconds``,
then stop the health monitor, then close the application (tokens, storage, database).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2_grpc

import audit
from kyso import status
from kyso.admission import client_rates
from kyso.app import Application
from kyso.authz import Authenticator
from kyso.config import Config, ServerConfig, is_loopback, parse_address
from kyso.errors import ConfigError
from kyso.health import ExplainingHealthServicer, HealthMonitor
from kyso.hubs import Dispatcher, start_dispatcher
from kyso.interceptors import KysoInterceptor
from kyso.metrics import Metrics
from kyso.notify.runner import Notifier
from kyso.notify.runner import backlog as notify_backlog
from kyso.operations.archive import ArchiveTask
from kyso.operations.wiring import Operations
from kyso.reconcile import ReconcileTask, start_reconcile
from kyso.reflection import enable_reflection
from kyso.services import HandlerCollector, register_all
from kyso.startup import StartupError, check_certificate_expiry, check_tls_pair, explain

if TYPE_CHECKING:
    from kyso.connect import ConnectServer

__all__ = ["Server", "keepalive_options", "serve"]

_OBSERVE_EVERY_S = 10.0

if TYPE_CHECKING:
    from kyso.operations.remote import RemotePoller

log = logging.getLogger(__name__)

_REFUSALS_FLUSH_SECONDS = 5.0
_STOP_SLACK_SECONDS = 30.0
"""How long a background part may take to stop (beyond the calls' grace) before it is left."""


def keepalive_options(server: ServerConfig) -> list[tuple[str, int]]:
    """The HTTP/2 keepalive policy (``[server]`` keepalive keys) as gRPC channel arguments.

    The server pings idle connections; clients may ping every ``min_client_ping_seconds`` or
    more, with or without calls in flight, and any number of times between data frames
    (gRPC's default answers a client pinging more often than every 5 minutes with GOAWAY
    too_many_pings, which grpc-js reports as "Bandwidth exhausted")."""
    client_pings = int(server.min_client_ping_seconds * 1000)
    return [
        ("grpc.keepalive_time_ms", int(server.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(server.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", client_pings),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", client_pings),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.max_ping_strikes", 2),
    ]


class Server:
    """A started kyso server bound to its port; ``port`` is the real one (for ``:0``)."""

    def __init__(self, config: Config, app: Application) -> None:
        self.config = config
        self.app = app
        self.metrics = Metrics()
        self.metrics.watch_pools(app.executors)
        if app.router is not None:
            self.metrics.watch_quarantine(app.router.quarantine_counts)
        if config.exchange.hubs:
            self.metrics.describe_hubs(config.exchange.hubs, this_hub=config.exchange.hub_id)
        self.metrics.watch_fetches(app.fetches.totals)
        if config.notify.enabled:
            self.metrics.watch_notify(functools.partial(notify_backlog, app.engine))
        limit = config.server.max_message_bytes
        # One interceptor for both protocols: a client's limits count its gRPC and HTTP calls.
        self.interceptor = KysoInterceptor(
            Authenticator(config.clients),
            self.metrics,
            limits=config.limits,
            rates=client_rates(config.clients, config.limits),
            on_denied=app.record_denied,
        )
        self.grpc = aio.server(
            interceptors=[self.interceptor],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
                *keepalive_options(config.server),
            ],
        )
        self.operations = Operations.build(app)
        self.metrics.watch_archive(self.operations.archive)
        handlers = HandlerCollector()
        services = register_all(self.grpc, app, self.operations, also=handlers)
        # [server] http_address: the same handlers over HTTP/JSON (kyso.connect)
        self.http: ConnectServer | None = None
        if config.server.http_address:
            from kyso.connect import ConnectServer  # connectrpc and uvicorn only when serving it

            self.http = ConnectServer(config, self.interceptor, handlers.handlers)
        self.health_servicer = ExplainingHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.grpc)
        enable_reflection([*services, "grpc.health.v1.Health"], self.grpc)
        self.monitor = HealthMonitor(
            self.health_servicer,
            app.probes(),
            config.server.health_interval_seconds,
            executors=app.executors,
            after_check=self._observe,
        )
        self._observed_at = 0.0
        self.health_servicer.failing = lambda: self.monitor.failing
        self.port = self._bind()
        self._heads: asyncio.Task[None] | None = None
        self.reconcile: ReconcileTask | None = None
        self._dispatcher: Dispatcher | None = None
        self._refusals: asyncio.Task[None] | None = None
        self._notifier: Notifier | None = None
        self.archive: ArchiveTask | None = None
        self._remote_poller: RemotePoller | None = None

    def _bind(self) -> int:
        address = self.config.server.address
        tls = self.config.tls
        if not tls.enabled:
            if not is_loopback(address):  # allowed only by server.insecure (kyso.config)
                log.warning(
                    "listening WITHOUT TLS on a network address (server.insecure = true):"
                    " API tokens and documents cross the network in the clear",
                    extra={"address": address},
                )
            port = self.grpc.add_insecure_port(address)
        else:
            assert tls.certificate is not None
            assert tls.private_key is not None
            check_tls_pair(tls.certificate, tls.private_key)
            credentials = grpc.ssl_server_credentials(
                [(tls.private_key.read_bytes(), tls.certificate.read_bytes())],
                root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
                require_client_auth=tls.client_ca is not None,
            )
            port = self.grpc.add_secure_port(address, credentials)
        if port == 0:
            raise StartupError(
                f"server.address: cannot listen on {address} (the port is in use or the host is"
                " not an address of this machine); choose another address or stop the other"
                " server"
            )
        return port

    async def _observe(self) -> None:
        """Refresh the state metrics after a health check, at most every 10 s (they count
        rows: cheap, but not worth doing every 2 s)."""
        now = time.monotonic()
        if now - self._observed_at < _OBSERVE_EVERY_S and self._observed_at:
            return
        self._observed_at = now
        snapshot = await asyncio.to_thread(
            status.collect, self.app, self.monitor.failing, self.monitor.probed
        )
        self.metrics.observe(snapshot)

    def certificate_expiry(self) -> dict[str, datetime]:
        """When each configured certificate stops being valid (see kyso.status)."""
        return status.certificate_expiry(self.app)

    async def start(self) -> None:
        for name, not_after in self.certificate_expiry().items():
            check_certificate_expiry(
                name, not_after, warn_days=self.config.server.certificate_warning_days
            )
        await self.grpc.start()
        if self.http is not None:
            await self.http.start()
        # The catalogue/store check runs beside the server: start-up does not wait for it.
        # One replica at a time on a shared database (kyso.reconcile: RECONCILE_LOCK).
        self.reconcile = start_reconcile(
            store=self.app.store, catalogue=self.app.catalogue, engine=self.app.engine
        )
        await self.monitor.check_once()
        self.monitor.start()
        if self.app.head_signer is not None:
            self._heads = audit.schedule_heads(
                self.app.ledger,
                self.app.head_signer,
                interval=self.config.ledger.head_interval_seconds,
            )
        if self.config.server.metrics_address:
            host, port = parse_address(self.config.server.metrics_address, key="metrics")
            self.metrics.serve(host, port)
        self._refusals = asyncio.get_running_loop().create_task(self._flush_refusals())
        # exchange: the hub-to-hub dispatcher (kyso.hubs), when this server routes documents
        self._dispatcher = start_dispatcher(self.app)
        if self._dispatcher is not None:
            self.app.outbox_listeners.append(self._dispatcher.wake)
        # notifications: webhooks, citizens' messages, the live streams (kyso.notify)
        if self.config.notify.enabled and self.app.webhooks and self.app.citizens:
            self._notifier = Notifier(
                self.app.webhooks,
                self.app.citizens,
                threads=self.config.notify.delivery_threads,
                keep=timedelta(days=self.config.notify.keep_days),
                engine=self.app.engine,
            )
            self._notifier.start()
            self.app.notifier = self._notifier
            self.app.events.listeners.append(self._notifier.wake)
        archive = self.config.archive
        if archive.renew and (archive.tsa_urls or self.config.signing.tsa_urls):
            # the scheduled renewal of stored signed PDFs' evidence (kyso.operations.archive)
            self.archive = ArchiveTask(self.operations.archive, interval=archive.interval_seconds)
            self.archive.start()
        # remote signing: waiting requests advance without anyone polling (kyso.operations.remote)
        if self.config.remote:
            self._remote_poller = start_remote_poller(self.app)
        log.info("serving", extra={"address": self.config.server.address, "port": self.port})

    async def stop(self) -> None:
        log.info("stopping", extra={"grace_seconds": self.config.server.grace_seconds})
        await _bounded("the health monitor", self.monitor.stop(), _STOP_SLACK_SECONDS)
        grace = self.config.server.grace_seconds
        # both listeners stop accepting at once and give their calls in flight the same grace
        await _bounded(
            "the listeners",
            asyncio.gather(
                self.grpc.stop(grace), *([self.http.stop()] if self.http is not None else [])
            ),
            grace + _STOP_SLACK_SECONDS,
        )
        if self.archive is not None:
            await _bounded("the archive renewal", self.archive.stop(), _STOP_SLACK_SECONDS)
        # exchange: stop dispatching before the application (database, keys) closes
        if self._dispatcher is not None:
            await _bounded("the exchange dispatcher", self._dispatcher.stop(), _STOP_SLACK_SECONDS)
        if self._notifier is not None:
            await _bounded("the notifier", self._notifier.stop(), _STOP_SLACK_SECONDS)
        if self._remote_poller is not None:
            await _bounded("the remote poller", self._remote_poller.stop(), _STOP_SLACK_SECONDS)
        for name, task in (("the tree-head signer", self._heads), ("the refusals", self._refusals)):
            if task is not None:
                task.cancel()
                await _bounded(name, _ended(task), _STOP_SLACK_SECONDS)
        if self.app.refusals is not None:
            await _bounded(
                "the refusals' ledger events",
                self.app.refusals.flush(everything=True),
                _STOP_SLACK_SECONDS,
            )
        if self.reconcile is not None:
            await _bounded(
                "the start-up check", asyncio.to_thread(self.reconcile.stop), _STOP_SLACK_SECONDS
            )
        self.app.close()
        log.info("stopped")

    async def _flush_refusals(self) -> None:
        """Every few seconds, the refusals of the minutes that are over go to the ledger."""
        assert self.app.refusals is not None
        while True:
            await asyncio.sleep(_REFUSALS_FLUSH_SECONDS)
            await self.app.refusals.flush()


async def _ended(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled task to end, however it ends."""
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _bounded(what: str, stopping: Awaitable[object], seconds: float) -> None:
    """Wait for ``what`` to stop, at most ``seconds``: a part that does not stop is logged by
    name and left behind, so the rest still closes in order (and SIGTERM still ends the
    process) instead of the whole stop waiting on it for ever."""
    # Not asyncio.wait_for: on its timeout it cancels the part and then waits for the part to
    # end, which a part stuck in a shielded wait never does.
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.error("%s did not stop within %.0f s; stopping the rest", what, seconds)
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed while stopping", what, exc_info=task.exception())


def start_remote_poller(app: Application) -> RemotePoller:
    """The background poller of remote-signing requests, started."""
    from kyso.operations.documents import Documents
    from kyso.operations.remote import RemotePoller, RemoteSigning, remote_providers
    from kyso.operations.twophase import TwoPhase

    remote = RemoteSigning(app, TwoPhase(app, Documents(app)), remote_providers(app.config))
    poller = RemotePoller(remote, app.config)
    poller.start()
    return poller


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully.

    A failure while starting that :func:`kyso.startup.explain` knows is raised as
    :class:`StartupError` (one line naming the key to fix); anything else as it is.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = await _start(config)
    except Exception as exc:
        explained = explain(exc, config)
        if explained is None:
            raise
        raise explained from exc
    facade = None
    try:
        if config.csc.address:
            # [csc] address set: the CSC facade runs beside the gRPC server, over the same keys.
            try:
                from kyso.csc.serve import FacadeServer
            except ImportError:
                raise ConfigError(
                    "csc.address is set but the csc extra (Starlette, uvicorn) is not "
                    "installed: pip install 'kyso[csc]', or leave csc.address empty"
                ) from None
            facade = FacadeServer(server.app)
            await facade.start()
        await stop.wait()
    finally:
        if facade is not None:
            await facade.stop()
        await server.stop()


async def _start(config: Config) -> Server:
    app = await asyncio.to_thread(Application.open, config)
    try:
        server = Server(config, app)
        await server.start()
    except BaseException:
        app.close()
        raise
    return server
