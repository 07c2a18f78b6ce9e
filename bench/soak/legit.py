"""The legitimate clients: sign, verify, upload and download, send, receive and acknowledge.

Each kind runs as its own identity on its own channel, in a loop paced by ``legit_pace``, and
records every call (operation, start, seconds, outcome). Any failure is an error a legitimate
client saw: an RPC status other than OK, or bytes that do not match what was sent. What they
stored is kept for the checks afterwards (:class:`Ledgerbook`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grpc import StatusCode, aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.soak.payloads import pdf
from bench.soak.server import RECEIVER_UNIT, SENDER_UNIT
from kyso.v1 import (
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)

__all__ = ["OPERATIONS", "Call", "Ledgerbook", "Legit", "channel", "check_intact"]

OPERATIONS = ("sign", "verify", "upload", "download", "send", "receive", "ack")
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def channel(address: str, options: list[tuple[str, Any]] | None = None) -> aio.Channel:
    return aio.insecure_channel(address, options=[*CHANNEL_OPTIONS, *(options or [])])


@dataclass(frozen=True, slots=True)
class Call:
    """One legitimate call: ``outcome`` is "OK", a status code name, or "MISMATCH"."""

    op: str
    started: float
    seconds: float
    outcome: str
    detail: str = ""


@dataclass
class Ledgerbook:
    """What the legitimate clients stored, to be downloaded and checked afterwards.

    ``stored``: content address → SHA-256 (hex) of the bytes; ``sent``: document id → package
    address; ``acked``: document id → SHA-256 of the package content received.
    """

    stored: dict[str, str] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)
    acked: dict[str, str] = field(default_factory=dict)


class _Mismatch(Exception):
    pass


class Legit:
    """The legitimate clients of one soak run (see the module docstring)."""

    def __init__(self, address: str, tokens: dict[str, str], *, pace: float, deadline: float):
        self.address = address
        self.tokens = tokens
        self.pace = pace
        self.deadline = deadline
        self.calls: list[Call] = []
        self.health: list[Call] = []
        self.book = Ledgerbook()
        self.signed_sample = b""
        self._stop = asyncio.Event()

    def _auth(self, client: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.tokens[client]}")]

    async def _timed(self, op: str, call: Callable[[], Awaitable[object]]) -> None:
        started = time.monotonic()
        outcome, detail = "OK", ""
        try:
            await call()
        except aio.AioRpcError as exc:
            outcome, detail = exc.code().name, exc.details() or ""
        except _Mismatch as exc:
            outcome, detail = "MISMATCH", str(exc)
        self.calls.append(Call(op, started, time.monotonic() - started, outcome, detail[:200]))

    async def _loop(self, body: Callable[[int], Awaitable[None]]) -> None:
        number = 0
        while not self._stop.is_set():
            await body(number)
            number += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.pace)

    def stop(self) -> None:
        self._stop.set()

    async def prepare(self) -> None:
        """Sign one PDF for the verifiers (before any phase: not timed)."""
        async with channel(self.address) as ch:
            stub = signing_pb2_grpc.SigningServiceStub(ch)
            signed = await stub.SignPdf(
                self._sign_request("soak sample"), **self._kw("soak-signer")
            )
        self.signed_sample = signed.content

    def _kw(self, client: str) -> dict[str, Any]:
        return {"metadata": self._auth(client), "timeout": self.deadline}

    @staticmethod
    def _sign_request(text: str) -> signing_pb2.SignPdfRequest:
        return signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(content=pdf(text), filename="ket-qua.pdf"),
            key_alias="seal",
            level=signing_pb2.SIGNATURE_LEVEL_B_B,
            appearance=signing_pb2.APPEARANCE_NONE,
        )

    async def run(self, clients: int) -> None:
        """Run ``clients`` of each kind until :meth:`stop`."""
        kinds = [self._signer, self._verifier, self._documents, self._sender, self._receiver]
        await asyncio.gather(
            self._health(), *(kind(index) for kind in kinds for index in range(clients))
        )

    async def _health(self) -> None:
        """A load balancer's probe: ``Health/Check`` every second, its answer and latency kept
        in ``health`` (not a goal: what the server says about itself under attack)."""
        async with channel(self.address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            request = health_pb2.HealthCheckRequest(service="")
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = await stub.Check(request, timeout=5)
                    outcome = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except aio.AioRpcError as exc:
                    outcome = exc.code().name
                self.health.append(Call("health", started, time.monotonic() - started, outcome))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _signer(self, index: int) -> None:
        async with channel(self.address) as ch:
            stub = signing_pb2_grpc.SigningServiceStub(ch)

            async def sign(number: int) -> None:
                async def call() -> None:
                    reply = await stub.SignPdf(
                        self._sign_request(f"soak {index} {number}"), **self._kw("soak-signer")
                    )
                    digest = hashlib.sha256(reply.content).hexdigest()
                    if digest != reply.document.sha256:
                        raise _Mismatch(f"signed content {digest} != {reply.document.sha256}")
                    self.book.stored[reply.document.ref.ref] = digest

                await self._timed("sign", call)

            await self._loop(sign)

    async def _verifier(self, index: int) -> None:
        async with channel(self.address) as ch:
            stub = verification_pb2_grpc.VerificationServiceStub(ch)
            request = verification_pb2.VerifyPdfRequest(
                document=common_pb2.DocumentInput(content=self.signed_sample)
            )

            async def verify(number: int) -> None:
                await self._timed(
                    "verify", lambda: stub.VerifyPdf(request, **self._kw("soak-verifier"))
                )

            await self._loop(verify)

    async def _documents(self, index: int) -> None:
        async with channel(self.address) as ch:
            stub = documents_pb2_grpc.DocumentServiceStub(ch)

            async def round_trip(number: int) -> None:
                data = os.urandom(64 * 1024)
                digest = hashlib.sha256(data).hexdigest()
                ref = ""

                async def upload() -> None:
                    nonlocal ref
                    meta = documents_pb2.UploadMetadata(
                        filename=f"soak-{index}-{number}.bin", sha256=digest, size=len(data)
                    )
                    requests = [
                        documents_pb2.UploadRequest(metadata=meta),
                        documents_pb2.UploadRequest(chunk=data[: len(data) // 2]),
                        documents_pb2.UploadRequest(chunk=data[len(data) // 2 :]),
                    ]
                    reply = await stub.Upload(iter(requests), **self._kw("soak-documents"))
                    if reply.sha256 != digest:
                        raise _Mismatch(f"stored {reply.sha256}, sent {digest}")
                    ref = reply.ref.ref
                    self.book.stored[ref] = digest

                async def download() -> None:
                    body = await _download(stub, ref, self._kw("soak-documents"))
                    if hashlib.sha256(body).hexdigest() != digest:
                        raise _Mismatch(f"downloaded bytes of {ref} differ")

                await self._timed("upload", upload)
                if ref:
                    await self._timed("download", download)

            await self._loop(round_trip)

    async def _sender(self, index: int) -> None:
        async with channel(self.address) as ch:
            stub = exchange_pb2_grpc.ExchangeServiceStub(ch)

            async def send(number: int) -> None:
                attachment = os.urandom(8 * 1024)
                request = exchange_pb2.SendRequest(
                    from_unit=SENDER_UNIT,
                    to_units=[RECEIVER_UNIT],
                    document_id=f"soak-{uuid.uuid4().hex}",
                )
                request.fields.subject = f"Về việc kiểm thử tải số {index}-{number}"
                request.fields.attachments.add(
                    name="dinh-kem.txt", content_type="text/plain", content=attachment
                )

                async def call() -> None:
                    reply = await stub.Send(request, **self._kw("soak-sender"))
                    self.book.sent[reply.document_id] = reply.package.ref.ref
                    self.book.stored[f"sha256/{hashlib.sha256(attachment).hexdigest()}"] = (
                        hashlib.sha256(attachment).hexdigest()
                    )

                await self._timed("send", call)

            await self._loop(send)

    async def _receiver(self, index: int) -> None:
        async with channel(self.address) as ch:
            stub = exchange_pb2_grpc.ExchangeServiceStub(ch)

            async def receive(number: int) -> None:
                await self.receive_once(stub)

            await self._loop(receive)

    async def receive_once(self, stub: exchange_pb2_grpc.ExchangeServiceStub) -> int:
        """One Receive (up to 20 deliveries) and the Ack of what came; how many came."""
        got: list[exchange_pb2.Delivery] = []

        async def receive() -> None:
            request = exchange_pb2.ReceiveRequest(unit_code=RECEIVER_UNIT, max_deliveries=20)
            async for delivery in stub.Receive(request, **self._kw("soak-receiver")):
                got.append(delivery)

        await self._timed("receive", receive)
        if got:

            async def ack() -> None:
                request = exchange_pb2.AckRequest(
                    unit_code=RECEIVER_UNIT, delivery_ids=[d.delivery_id for d in got]
                )
                await stub.Ack(request, **self._kw("soak-receiver"))
                for delivery in got:
                    digest = hashlib.sha256(delivery.package_content).hexdigest()
                    self.book.acked[delivery.document_id] = digest

            await self._timed("ack", ack)
        return len(got)

    async def drain(self, seconds: float) -> int:
        """Receive and acknowledge until every sent document is acknowledged (or ``seconds``)."""
        deadline = time.monotonic() + seconds
        async with channel(self.address) as ch:
            stub = exchange_pb2_grpc.ExchangeServiceStub(ch)
            while set(self.book.sent) - set(self.book.acked) and time.monotonic() < deadline:
                if not await self.receive_once(stub):
                    await asyncio.sleep(0.5)
        return len(set(self.book.sent) - set(self.book.acked))


async def _download(
    stub: documents_pb2_grpc.DocumentServiceStub, ref: str, kw: dict[str, Any]
) -> bytes:
    request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref))
    parts = [chunk.chunk async for chunk in stub.Download(request, **kw)]
    return b"".join(parts)


_PATIENCE = 30
"""How many times the check asks again for a document refused for its client's rate."""


async def _download_patiently(stub: Any, ref: str, kw: dict[str, Any]) -> bytes:
    """The check is one client reading thousands of documents: it keeps to its rate as any
    client must, coming back a second after RESOURCE_EXHAUSTED."""
    for _ in range(_PATIENCE - 1):
        try:
            return await _download(stub, ref, kw)
        except aio.AioRpcError as exc:
            if exc.code() != StatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(1.0)
    return await _download(stub, ref, kw)


async def check_intact(
    address: str, token: str, book: Ledgerbook, *, deadline: float
) -> tuple[int, list[str]]:
    """Download every document in ``book``; (how many were checked, what failed and why)."""
    failures: list[str] = []
    expected = dict(book.stored)
    for document_id, ref in book.sent.items():
        if document_id in book.acked:
            expected[ref] = book.acked[document_id]
    kw = {"metadata": [("authorization", f"Bearer {token}")], "timeout": deadline}
    async with channel(address) as ch:
        stub = documents_pb2_grpc.DocumentServiceStub(ch)
        for ref, digest in expected.items():
            try:
                body = await _download_patiently(stub, ref, kw)
            except aio.AioRpcError as exc:
                failures.append(f"{ref}: {exc.code().name} {exc.details()}")
                continue
            if hashlib.sha256(body).hexdigest() != digest or ref != f"sha256/{digest}":
                failures.append(f"{ref}: the bytes do not match")
    return len(expected), failures
