"""Hub to hub: the client that calls the next hub, and the dispatcher.

The dispatcher is a background task of every server that routes documents. It claims due rows
of the router's durable outbox, sends each one to the next hub with ``ExchangeService.Forward``
(mutual TLS with ``[exchange] client_certificate``/``client_key`` trusting ``server_ca``; or, on a
plaintext loopback channel for development, the bearer token in ``hub_token_file``), checks the
receipt the next hub signed (``kyso.operations.hops``), and only then marks the row forwarded,
with its ``package.forwarded`` event in the same transaction. A failed hop is marked failed and
retried, never dropped: after the router's backoff (exponential with jitter) when the next hub
answered with an error; after ``[exchange] hub_retry_seconds`` when it could not be reached. A
hop the next hub answered with an error ``[exchange] max_forward_attempts`` times is
quarantined instead, with its ``package.quarantined`` event in the same transaction, until an
operator releases it (``kyso exchange release``); an unreachable hub's hops are never counted.

Invariants:
- at-least-once: a row is closed only after a verified receipt; a crash between the hop and
  the close leaves the row claimed, and it comes due again when the claim runs out. The next hub
  deduplicates (per document and recipient), so every recipient still sees a document once;
- a row is claimed only when a hop slot is free for it, so it is sent at once: its claim (the
  hop's timeout and a margin) runs out while this dispatcher holds it only for a status row
  carrying more packets than one timeout can send, which another dispatcher may then send
  again (harmless: see above). A row claimed by a dispatcher that died comes due again when
  its claim runs out, at most that long after it was claimed;
- once a hub could not be reached (gRPC UNAVAILABLE: refused, reset, shutting down), its rows
  are left unclaimed until its channel connects again, and the channel's reconnect backoff is
  capped at ``hub_retry_seconds``: hops to a hub that is back move within about
  ``hub_retry_seconds`` (gRPC adds up to 20 % jitter) plus ``dispatch_interval_seconds``,
  however long it was away, and an absent hub costs one connection attempt per
  ``hub_retry_seconds``, not one hop per row;
- a status item whose packets are built here is signed with the ``[exchange] key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from datetime import timedelta
from pathlib import Path

import grpc
import sqlalchemy as sa

import audit
from exchange.adapters import HsmSigningKey
from exchange.errors import ExchangeError
from exchange.hubs import Topology
from exchange.routing import OutboxItem, OutboxKind, Quarantined, Router
from kyso import db
from kyso.app import Application
from kyso.errors import ConfigError, KysoError, Unavailable
from kyso.operations.hops import exchange_key, hub_identity, verify_receipt
from kyso.operations.ledger import Staging
from kyso.services.convert import signed_receipt, trace_to_proto
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

__all__ = ["Dispatcher", "HubClient", "HubUnreachable", "start_dispatcher"]

log = logging.getLogger(__name__)


class HubUnreachable(Unavailable):
    """The next hub could not be reached (connection refused or reset, or it is shutting down):
    the hop never got an answer, so it says nothing about the hop itself."""


class HubClient:
    """Channels to the other hubs, one per hub, opened on first use.

    A channel that lost its hub tries to connect again after gRPC's reconnect backoff (1 s
    growing to 120 s by default), failing every call meanwhile without trying; ``retry`` caps
    that backoff, so a hub that is back is connected to within ``retry`` seconds (+20 %).
    """

    def __init__(self, app: Application, *, timeout: float, retry: float) -> None:
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
        retry_ms = max(1, round(retry * 1000))
        self._options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.initial_reconnect_backoff_ms", min(1000, retry_ms)),
            ("grpc.max_reconnect_backoff_ms", retry_ms),
        ]

    def _channel(self, hub_id: str) -> grpc.aio.Channel:
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
        return channel

    async def forward(
        self, hub_id: str, request: exchange_pb2.ForwardRequest
    ) -> exchange_pb2.ForwardResponse:
        """Call ``Forward`` on hub ``hub_id``; when it fails, ``HubUnreachable`` if the hub could
        not be reached, else ``Unavailable``, with the reason."""
        stub = exchange_pb2_grpc.ExchangeServiceStub(self._channel(hub_id))
        try:
            response: exchange_pb2.ForwardResponse = await stub.Forward(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            error = HubUnreachable if exc.code() is grpc.StatusCode.UNAVAILABLE else Unavailable
            raise error(
                f"hub {hub_id} did not take hop {request.hop_id}: {exc.code().name}:"
                f" {exc.details()}"
            ) from exc
        return response

    async def connected(self, hub_id: str) -> None:
        """Return once the channel to hub ``hub_id`` is connected (it keeps trying until then)."""
        await self._channel(hub_id).channel_ready()

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

    ``interval``: how long to wait when nothing was due; ``concurrency``: hops in flight at
    once (rows are claimed only for free slots); ``timeout``: seconds per Forward call (a claim
    lasts a little longer); ``retry``: seconds before a hop to a hub that could not be reached
    is due again, and the cap of the reconnect backoff to that hub.
    """

    def __init__(
        self,
        app: Application,
        *,
        interval: float,
        retry: float,
        concurrency: int = 8,
        timeout: float = 10.0,
    ) -> None:
        if app.router is None:
            raise ConfigError("exchange.hub_id: this server does not route documents")
        self._app = app
        self._router: Router = app.router
        self._hub_id = app.config.exchange.hub_id
        self._interval = interval
        self._retry = timedelta(seconds=retry)
        self._concurrency = concurrency
        self._timeout = timeout
        self._client = HubClient(app, timeout=timeout, retry=retry)
        self._anchors = list(app.package_trust().anchors)
        self._actor = hub_identity(app)
        self._key: HsmSigningKey | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hops: set[asyncio.Task[None]] = set()
        # hubs that could not be reached, each with the task waiting for its channel to connect
        self._unreachable: dict[str, asyncio.Task[None]] = {}
        self._claim_failures = 0  # consecutive failed reads of the outbox

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kyso-dispatcher")

    def wake(self) -> None:
        """Look at the outbox now instead of after the interval (a new row was written)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking new rows; hops in flight are cancelled and their rows come due again."""
        tasks = [
            *([self._task] if self._task is not None else []),
            *self._hops,
            *self._unreachable.values(),
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self._client.close()

    async def _run(self) -> None:
        while True:
            free = self._concurrency - len(self._hops)
            if free > 0:
                for item in await self._claim(free):
                    hop = asyncio.create_task(self._dispatch(item), name=f"kyso-hop-{item.id}")
                    self._hops.add(hop)
                    hop.add_done_callback(self._hop_done)
            if self._claim_failures:
                # The outbox could not be read (the database is away): back off, 0.5 s doubling
                # to 30 s, and ignore wake-ups meanwhile (each would only fail again).
                delay = min(0.5 * 2 ** (self._claim_failures - 1), 30.0)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
                self._wake.clear()
                continue
            # woken by a new row, a finished hop (a free slot) or a hub connected again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def _claim(self, limit: int) -> list[OutboxItem]:
        try:
            items = await asyncio.to_thread(
                self._router.pending_outbox,
                limit=limit,
                claim_for=self._claim_for,
                skip_hubs=set(self._unreachable),
            )
        except Exception as exc:  # the database may be unreachable for a while: back off
            self._claim_failures += 1
            if self._claim_failures & (self._claim_failures - 1) == 0:  # 1st, 2nd, 4th … time
                log.warning(
                    "cannot read the exchange outbox; backing off",
                    extra={"reason": str(exc), "failed_reads": self._claim_failures},
                    exc_info=not isinstance(exc, KysoError | ExchangeError | OSError)
                    and not _is_database_outage(exc),
                )
            return []
        if self._claim_failures:
            log.info(
                "reading the exchange outbox again", extra={"failed_reads": self._claim_failures}
            )
            self._claim_failures = 0
        return items

    def _hop_done(self, hop: asyncio.Task[None]) -> None:
        self._hops.discard(hop)
        self._wake.set()

    @property
    def _claim_for(self) -> timedelta:
        return timedelta(seconds=self._timeout * 1.5 + 2)

    async def _dispatch(self, item: OutboxItem) -> None:
        try:
            if item.kind is OutboxKind.PACKAGE:
                await self._forward_package(item)
            else:
                await self._forward_statuses(item)
        except HubUnreachable as exc:
            self._wait_for(item.next_hub)
            await self._failed(item, str(exc), retry_after=self._retry)
        except (KysoError, ExchangeError, OSError) as exc:
            await self._failed(item, str(exc))
        except Exception as exc:  # any other failure must still reschedule the row
            log.exception("hop failed unexpectedly", extra={"outbox_id": item.id})
            await self._failed(item, f"unexpected {type(exc).__name__}")

    def _wait_for(self, hub_id: str) -> None:
        """Leave ``hub_id``'s rows unclaimed until its channel connects again."""
        if hub_id not in self._unreachable:
            self._unreachable[hub_id] = asyncio.create_task(
                self._until_connected(hub_id), name=f"kyso-reconnect-{hub_id}"
            )

    async def _until_connected(self, hub_id: str) -> None:
        try:
            await self._client.connected(hub_id)
            log.info("hub reachable again", extra={"hub": hub_id})
        finally:
            del self._unreachable[hub_id]
            self._wake.set()

    async def _failed(
        self, item: OutboxItem, reason: str, *, retry_after: timedelta | None = None
    ) -> None:
        staging = Staging()

        def journal(conn: sa.Connection, quarantined: Quarantined) -> None:
            event = self._app.events.event(
                audit.EventType.PACKAGE_QUARANTINED,
                actor=self._actor,
                unit=quarantined.sender,
                details={
                    "document_id": quarantined.document_id,
                    "kind": quarantined.kind.value,
                    "id": str(quarantined.id),
                    "next_hub": item.next_hub,
                    "recipients": ",".join(quarantined.recipients),
                    "failures": str(quarantined.failures),
                    "reason": quarantined.reason,
                },
            )
            staging.write(conn, [event])

        due = await asyncio.to_thread(
            self._router.mark_failed,
            item.id,
            error=reason,
            retry_after=retry_after,
            journal=journal,
        )
        await self._app.events.settled(staging)
        if due is None:
            log.error(
                "hop quarantined: the next hub kept refusing it",
                extra={"outbox_id": item.id, "next_hub": item.next_hub, "reason": reason},
            )
            return
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
            pinned=self._pinned(item.next_hub),
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
                pinned=self._pinned(item.next_hub),
            )
        await asyncio.to_thread(self._router.mark_forwarded, [item.id])

    def _pinned(self, hub_id: str) -> tuple[str, ...]:
        """The certificates the next hub's receipts must be signed with (its pinned key)."""
        hub = self._app.config.exchange.hubs.get(hub_id)
        return hub.certificate_sha256 if hub is not None else ()

    def _read_package(self, ref: str) -> bytes:
        with self._app.store.open(ref) as reader:
            return reader.read()


def start_dispatcher(app: Application) -> Dispatcher | None:
    """Start the dispatcher on the running loop when this server routes documents."""
    if app.router is None:
        return None
    settings = app.config.exchange
    dispatcher = Dispatcher(
        app,
        interval=settings.dispatch_interval_seconds,
        retry=settings.hub_retry_seconds,
    )
    dispatcher.start()
    return dispatcher


def _is_database_outage(exc: BaseException) -> bool:
    """A connection-level database failure: expected while PostgreSQL is away, no traceback."""
    return db.is_connection_failure(exc)
