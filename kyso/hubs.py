"""Hub to hub: the client that calls the next hub, and the dispatcher.

The dispatcher is a background task of every server that routes documents. It claims due rows
of the router's durable outbox, sends each one to the next hub with ``ExchangeService.Forward``
(mutual TLS with ``[exchange] client_certificate``/``client_key`` trusting ``server_ca``; or, on a
plaintext loopback channel for development, the bearer token in ``hub_token_file``), checks the
receipt the next hub signed (``kyso.operations.hops``), and only then marks the row forwarded,
with its ``package.forwarded`` event in the same transaction. A failed hop is marked failed and
the router schedules its retry (exponential backoff with jitter, never dropped).

Invariants:
- at-least-once: a row is closed only after a verified receipt; a crash between the hop and
  the close leaves the row claimed, and it comes due again when the claim runs out. The next hub
  deduplicates (per document and recipient), so every recipient still sees a document once;
- a status item whose packets are built here is signed with the ``[exchange] key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import timedelta
from pathlib import Path

import grpc

import audit
from exchange.adapters import HsmSigningKey
from exchange.errors import ExchangeError
from exchange.hubs import Topology
from exchange.routing import OutboxItem, OutboxKind, Router
from kyso.app import Application
from kyso.errors import ConfigError, KysoError, Unavailable
from kyso.operations.hops import exchange_key, hub_identity, verify_receipt
from kyso.operations.ledger import Staging
from kyso.services.convert import signed_receipt, trace_to_proto
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

__all__ = ["Dispatcher", "HubClient", "start_dispatcher"]

log = logging.getLogger(__name__)


class HubClient:
    """Channels to the other hubs, one per hub, opened on first use."""

    def __init__(self, app: Application, *, timeout: float) -> None:
        settings = app.config.exchange
        self._hub_id = settings.hub_id
        self._topology = _topology(app)
        self._timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials: grpc.ChannelCredentials | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        if settings.client_certificate is not None and settings.client_key is not None:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(settings.server_ca, "exchange.server_ca")
                if settings.server_ca
                else None,
                private_key=_read(settings.client_key, "exchange.client_key"),
                certificate_chain=_read(settings.client_certificate, "exchange.client_certificate"),
            )
        elif settings.hub_token_file is not None:
            token = _read(settings.hub_token_file, "exchange.hub_token_file").decode().strip()
            self._metadata = (("authorization", f"Bearer {token}"),)
        limit = app.config.server.max_message_bytes
        self._options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]

    def _stub(self, hub_id: str) -> exchange_pb2_grpc.ExchangeServiceStub:
        channel = self._channels.get(hub_id)
        if channel is None:
            address = self._topology.hub(hub_id).address
            if not address:
                raise ConfigError(
                    f"exchange.hubs.{hub_id}.address: needed to forward to hub {hub_id}"
                )
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(address, self._credentials, options=self._options)
            else:
                channel = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[hub_id] = channel
        return exchange_pb2_grpc.ExchangeServiceStub(channel)

    async def forward(
        self, hub_id: str, request: exchange_pb2.ForwardRequest
    ) -> exchange_pb2.ForwardResponse:
        """Call ``Forward`` on hub ``hub_id``; ``Unavailable`` with the reason when it fails."""
        try:
            response: exchange_pb2.ForwardResponse = await self._stub(hub_id).Forward(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"hub {hub_id} did not take hop {request.hop_id}: {exc.code().name}:"
                f" {exc.details()}"
            ) from exc
        return response

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()


def _topology(app: Application) -> Topology:
    if app.directory is None:
        raise ConfigError("exchange.hub_id: this server does not route documents")
    return app.directory.topology


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None


class Dispatcher:
    """The background task that empties the outbox (see the module docstring).

    ``interval``: how long to wait when nothing was due; ``batch``: rows claimed at a time;
    ``concurrency``: hops in flight at once; ``timeout``: seconds per Forward call (a claim lasts
    a little longer, so a live dispatcher never sees its own row come due again).
    """

    def __init__(
        self,
        app: Application,
        *,
        interval: float,
        batch: int = 50,
        concurrency: int = 8,
        timeout: float = 10.0,
    ) -> None:
        if app.router is None:
            raise ConfigError("exchange.hub_id: this server does not route documents")
        self._app = app
        self._router: Router = app.router
        self._hub_id = app.config.exchange.hub_id
        self._interval = interval
        self._batch = batch
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._client = HubClient(app, timeout=timeout)
        self._anchors = list(app.package_trust().anchors)
        self._actor = hub_identity(app)
        self._key: HsmSigningKey | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kyso-dispatcher")

    def wake(self) -> None:
        """Look at the outbox now instead of after the interval (a new row was written)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking new rows; hops in flight are cancelled and their rows come due again."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.close()

    async def _run(self) -> None:
        while True:
            try:
                items = await asyncio.to_thread(
                    self._router.pending_outbox, limit=self._batch, claim_for=self._claim
                )
            except Exception:  # the database may be briefly unreachable: try again later
                log.exception("cannot read the outbox")
                items = []
            if items:
                await asyncio.gather(*(self._dispatch(item) for item in items))
            if len(items) < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()

    @property
    def _claim(self) -> timedelta:
        return timedelta(seconds=self._timeout * 1.5 + 2)

    async def _dispatch(self, item: OutboxItem) -> None:
        async with self._slots:
            try:
                if item.kind is OutboxKind.PACKAGE:
                    await self._forward_package(item)
                else:
                    await self._forward_statuses(item)
            except (KysoError, ExchangeError, OSError) as exc:
                await self._failed(item, str(exc))
            except Exception as exc:  # any other failure must still reschedule the row
                log.exception("hop failed unexpectedly", extra={"outbox_id": item.id})
                await self._failed(item, f"unexpected {type(exc).__name__}")

    async def _failed(self, item: OutboxItem, reason: str) -> None:
        due = await asyncio.to_thread(self._router.mark_failed, item.id, error=reason)
        log.warning(
            "hop failed; will retry",
            extra={
                "outbox_id": item.id,
                "next_hub": item.next_hub,
                "attempt": item.attempts + 1,
                "retry_at": due.isoformat(),
                "reason": reason,
            },
        )

    async def _forward_package(self, item: OutboxItem) -> None:
        package = await asyncio.to_thread(self._read_package, item.package_ref)
        digest = hashlib.sha256(package).hexdigest()
        hop_id = f"{self._hub_id}:{item.id}"
        request = exchange_pb2.ForwardRequest(
            from_hub=self._hub_id,
            package=package,
            to_units=item.recipients,
            hop_id=hop_id,
            trace=trace_to_proto(item.trace),
        )
        response = await self._client.forward(item.next_hub, request)
        verify_receipt(
            signed_receipt(response),
            hop_id=hop_id,
            sha256=digest,
            hub=item.next_hub,
            anchors=self._anchors,
        )
        event = self._app.events.event(
            audit.EventType.PACKAGE_FORWARDED,
            actor=self._actor,
            unit=item.sender,
            document_sha256=digest,
            refs=(item.package_ref,),
            details={
                "document_id": item.document_id,
                "next_hub": item.next_hub,
                "hop": hop_id,
                "recipients": ",".join(item.recipients),
                "receipt_sha256": hashlib.sha256(response.receipt).hexdigest(),
            },
        )
        staging = Staging()
        await asyncio.to_thread(
            self._router.mark_forwarded,
            [item.id],
            journal=lambda conn, _: staging.write(conn, [event]),
        )
        await self._app.events.settled(staging)

    async def _forward_statuses(self, item: OutboxItem) -> None:
        if item.packet_ref is None and self._key is None:
            self._key = exchange_key(self._app)
        packets = await asyncio.to_thread(self._router.status_packets, item, key=self._key)
        for index, packet in enumerate(packets):
            hop_id = f"{self._hub_id}:{item.id}:{index}"
            request = exchange_pb2.ForwardRequest(
                from_hub=self._hub_id, status_packet=packet, hop_id=hop_id
            )
            response = await self._client.forward(item.next_hub, request)
            verify_receipt(
                signed_receipt(response),
                hop_id=hop_id,
                sha256=hashlib.sha256(packet).hexdigest(),
                hub=item.next_hub,
                anchors=self._anchors,
            )
        await asyncio.to_thread(self._router.mark_forwarded, [item.id])

    def _read_package(self, ref: str) -> bytes:
        with self._app.store.open(ref) as reader:
            return reader.read()


def start_dispatcher(app: Application) -> Dispatcher | None:
    """Start the dispatcher on the running loop when this server routes documents."""
    if app.router is None:
        return None
    dispatcher = Dispatcher(app, interval=app.config.exchange.dispatch_interval_seconds)
    dispatcher.start()
    return dispatcher
