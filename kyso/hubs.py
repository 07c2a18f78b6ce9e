"""Hub to hub: signed hop receipts, the client that calls the next hub, and the dispatcher.

The dispatcher is a background task of every server that routes documents. It claims due rows
of the router's durable outbox, sends each one to the next hub with ``ExchangeService.Forward``
(mutual TLS with ``[exchange] client_certificate``/``client_key`` trusting ``server_ca``; or, on a
plaintext loopback channel for development, the bearer token in ``hub_token_file``), checks the
receipt the next hub signed, and only then marks the row forwarded. A failed hop is marked failed
and the router schedules its retry (exponential backoff with jitter, never dropped).

Invariants:
- at-least-once: a row is closed only after a verified receipt; a crash between the hop and
  the close leaves the row claimed, and it comes due again when the claim runs out. The next hub
  deduplicates (per document and recipient), so every recipient still sees a document once;
- a receipt is accepted only when its hop id, package SHA-256 and hub are the ones sent to, its
  signature verifies with its certificate, and the certificate chains to a configured anchor;
- a status item whose packets are built here is signed with the ``[exchange] key``.

Receipt bytes (canonical, UTF-8, one ``name=value`` per line, in this order)::

    kyso-hop-receipt/1
    hop=<hop id>
    sha256=<hex SHA-256 of the package or status packet received>
    hub=<receiving hub id>
    at=<ISO 8601 UTC time of receipt>

signed by the receiving hub's ``[exchange] key`` (RSA PKCS#1 v1.5 or ECDSA, SHA-256); the
certificate travels as PEM, the signing certificate first, then its issuers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

import audit
from exchange.adapters import HsmSigningKey
from exchange.edxml.dsig import SigningKey
from exchange.edxml.model import TraceHeader
from exchange.errors import ExchangeError
from exchange.hubs import Topology
from exchange.routing import OutboxItem, OutboxKind, Router
from kyso.app import Application, trust_anchors
from kyso.authz import Identity
from kyso.errors import ConfigError, KysoError, Unavailable
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

__all__ = [
    "Dispatcher",
    "HubClient",
    "Receipt",
    "ReceiptInvalid",
    "exchange_key",
    "hub_identity",
    "sign_receipt",
    "start_dispatcher",
    "trace_from_proto",
    "trace_to_proto",
    "verify_receipt",
]

log = logging.getLogger(__name__)

RECEIPT_FORMAT = "kyso-hop-receipt/1"
_RECEIPT_FIELDS = ("hop", "sha256", "hub", "at")


class ReceiptInvalid(KysoError):
    """A next hub's receipt does not prove it took the hop (wrong fields, signature or chain)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What a receiving hub attests: it holds ``sha256`` durably for hop ``hop_id`` since ``at``."""

    hop_id: str
    sha256: str
    hub: str
    at: datetime

    def canonical(self) -> bytes:
        """The exact bytes that are signed (see the module docstring)."""
        for value in (self.hop_id, self.sha256, self.hub):
            if not value or "\n" in value or "\r" in value:
                raise ReceiptInvalid("a receipt field is empty or spans lines")
        at = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        lines = [
            RECEIPT_FORMAT,
            f"hop={self.hop_id}",
            f"sha256={self.sha256}",
            f"hub={self.hub}",
            f"at={at}",
        ]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Receipt:
        """Read canonical receipt bytes; ``ReceiptInvalid`` when they are not exactly that form."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise ReceiptInvalid("the receipt is not UTF-8 text") from None
        lines = text.split("\n")
        if len(lines) != 6 or lines[0] != RECEIPT_FORMAT or lines[-1] != "":
            raise ReceiptInvalid(f"the receipt is not in the {RECEIPT_FORMAT} form")
        values: dict[str, str] = {}
        for name, line in zip(_RECEIPT_FIELDS, lines[1:5], strict=True):
            key, sep, value = line.partition("=")
            if key != name or not sep:
                raise ReceiptInvalid(f"the receipt's line for {name!r} is missing or misplaced")
            values[name] = value
        try:
            at = datetime.fromisoformat(values["at"])
        except ValueError:
            raise ReceiptInvalid("the receipt's time is not an ISO 8601 time") from None
        receipt = cls(hop_id=values["hop"], sha256=values["sha256"], hub=values["hub"], at=at)
        if receipt.canonical() != data:
            raise ReceiptInvalid("the receipt is not in canonical form")
        return receipt


def sign_receipt(
    receipt: Receipt, *, key: SigningKey, chain: Sequence[x509.Certificate] = ()
) -> exchange_pb2.ForwardResponse:
    """The ``ForwardResponse`` carrying ``receipt`` signed with this hub's ``key``."""
    data = receipt.canonical()
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (key.certificate, *chain))
    return exchange_pb2.ForwardResponse(
        receipt=data, receipt_signature=key.sign(data), receipt_certificate=pem
    )


def verify_receipt(
    response: exchange_pb2.ForwardResponse,
    *,
    hop_id: str,
    sha256: str,
    hub: str,
    anchors: Sequence[x509.Certificate],
) -> Receipt:
    """Check a next hub's answer (see the module's invariants); return the receipt."""
    receipt = Receipt.parse(response.receipt)
    expected = (hop_id, sha256, hub)
    if (receipt.hop_id, receipt.sha256, receipt.hub) != expected:
        raise ReceiptInvalid(
            f"hub {hub} answered a receipt for hop {receipt.hop_id} of {receipt.sha256[:12]}… at"
            f" hub {receipt.hub}, not for the hop it was sent"
        )
    try:
        certificates = x509.load_pem_x509_certificates(response.receipt_certificate)
    except ValueError:
        raise ReceiptInvalid(f"hub {hub} sent no readable receipt certificate") from None
    leaf, issuers = certificates[0], certificates[1:]
    public = leaf.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(
                response.receipt_signature, response.receipt, padding.PKCS1v15(), hashes.SHA256()
            )
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(response.receipt_signature, response.receipt, ec.ECDSA(hashes.SHA256()))
        else:
            raise ReceiptInvalid(f"hub {hub} signed its receipt with neither RSA nor EC")
    except InvalidSignature:
        raise ReceiptInvalid(f"the signature on hub {hub}'s receipt does not verify") from None
    if not anchors:
        raise ReceiptInvalid("no trust anchor is configured to check hub receipts against")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(datetime.now(UTC))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, issuers)
    except verification.VerificationError as exc:
        raise ReceiptInvalid(
            f"hub {hub}'s receipt certificate does not chain to a trust anchor: {exc}"
        ) from exc
    return receipt


def trace_to_proto(trace: Sequence[TraceHeader]) -> list[exchange_pb2.TraceHop]:
    hops = []
    for header in trace:
        hop = exchange_pb2.TraceHop(organ_id=header.organ_id)
        hop.timestamp.FromDatetime(header.timestamp.astimezone(UTC))
        hops.append(hop)
    return hops


def trace_from_proto(hops: Sequence[exchange_pb2.TraceHop]) -> tuple[TraceHeader, ...]:
    return tuple(
        TraceHeader(organ_id=hop.organ_id, timestamp=hop.timestamp.ToDatetime(tzinfo=UTC))
        for hop in hops
    )


def exchange_key(app: Application) -> HsmSigningKey:
    """This hub's ``[exchange] key`` (signs built packages, status packets and receipts)."""
    alias = app.config.exchange.key
    if not alias or app.keyring is None:
        raise ConfigError(
            "exchange.key: this hub has no signing key for packages, statuses and receipts;"
            " name one of [keys]"
        )
    return HsmSigningKey(ring=app.keyring, alias=alias)


def hub_identity(app: Application) -> Identity:
    """The actor that the ledger names for what this hub does by itself (hops, statuses)."""
    settings = app.config.exchange
    return Identity(
        name=f"hub:{settings.hub_id}",
        unit=settings.hubs[settings.hub_id].root_unit,
        roles=frozenset({"hub"}),
    )


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
        self._anchors = [x509.load_der_x509_certificate(d) for d in trust_anchors(app.config)]
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
            response, hop_id=hop_id, sha256=digest, hub=item.next_hub, anchors=self._anchors
        )
        await asyncio.to_thread(self._router.mark_forwarded, [item.id])
        await self._app.record(
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
                response,
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
