"""The attackers, run in their own process (``python -m bench.soak.hostile``, a JSON plan on
stdin) so that their work on the client side does not slow the legitimate clients' own loop.

The process sets up what the attacks need (a 3 MiB document, small packages in four inboxes),
prints ``{"event": "started"}``, attacks for ``attack_seconds`` (the idle and slow streams from
a tenth of it on, after the first bombs), prints ``{"event": "ended"}``
and then one line with every outcome: ``{"event": "result", "counts": {attack: {outcome: n}},
"examples": {attack: {outcome: detail}}, "cpu_seconds": …}`` (its own processor time: the
attackers share the machine with the server).

An outcome is the status code the server ended the call with (``OK`` for success; a
``VerifyPackage`` answered with a report is ``OK:<indication>/<sub-indication>``), or what the
client saw when the server did not end it: ``OPEN_AT_END`` (an idle or stalled stream still open
at the end of the attack and older than ``grace`` seconds; a slow reader first reads what is
left at full speed for up to ``DRAIN_SECONDS``, since a stream the server has already ended
reaches the client only after the messages buffered before its end), ``UNDECIDED`` (one younger
than that, or a held stream that ended OK younger than that: the server was not yet due to end
it), ``EMPTY`` (a slow Receive that had nothing to deliver: not an attack), ``NO_ANSWER`` (a
request still unanswered at the end, older than ``grace``). Attackers never set a gRPC deadline,
so every DEADLINE_EXCEEDED is the server's.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import resource
import sys
import threading
import time
import typing
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc import aio

from bench.soak.legit import channel
from bench.soak.payloads import XML_BOMBS, zip_bomb
from kyso.v1 import (
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)

__all__ = ["ATTACKS", "main"]

DRAIN_SECONDS = 5.0
"""How long a slow reader, at the end of the attack, waits for each next message while it
reads what is left at full speed."""

ATTACKS = (
    "idle_upload",
    "slow_download",
    "slow_receive",
    "oversize_declared",
    "oversize_undeclared",
    *XML_BOMBS,
    "zip_bombs",
    "flood",
)

SENDING_UNIT = "000.01.04.H49"
SLOW_INBOXES = ("000.02.04.H49", "000.03.04.H49", "000.04.04.H49", "000.05.04.H49")
BOMB_INBOX = "000.06.04.H49"
CHUNK = 256 * 1024
T = TypeVar("T")
STREAMS_LATER = 0.1
SLOW_OPTIONS = [("grpc.http2.lookahead_bytes", 16 * 1024), ("grpc.http2.bdp_probe", 0)]


@dataclass
class Plan:
    address: str
    hostile_token: str
    flood_token: str
    attack_seconds: float
    max_document_bytes: int
    idle_streams: int
    slow_readers: int
    slow_pause: float
    grace: float
    oversize_interval: float
    bomb_interval: float
    zip_sends: int
    bombs_per_send: int
    flood_concurrency: int


@dataclass
class Attacks:
    plan: Plan
    end: float = 0.0
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    big_ref: str = ""

    def record(self, attack: str, outcome: str, detail: str = "") -> None:
        self.counts[attack][outcome] += 1
        self.examples[attack].setdefault(outcome, detail[:300])

    def running(self) -> bool:
        return time.monotonic() < self.end

    def auth(self, token: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token or self.plan.hostile_token}")]

    async def outcome_of(
        self, attack: str, work: Callable[[], Awaitable[str]], *, opened: float, held: bool
    ) -> None:
        """Run ``work`` (which returns the OK outcome) and record how it ended.

        Nothing outlives the attack phase: at its end a call still waiting is cancelled and
        recorded by its age — a miss (``OPEN_AT_END`` for a stream the client holds open, idle
        or stalled; ``NO_ANSWER`` for a request waiting for its answer) when older than
        ``grace``, ``UNDECIDED`` when younger.
        """
        # A held stream gets DRAIN_SECONDS more, to read what the server sent before it ended.
        limit = max(self.end - time.monotonic(), 0.1) + (DRAIN_SECONDS if held else 0.0)
        try:
            outcome = await asyncio.wait_for(work(), limit)
            if (
                held
                and outcome == "OK"
                and min(time.monotonic(), self.end) - opened < self.plan.grace
            ):
                # Read to its end only by the drain, a stream younger than ``grace`` when the
                # attack ended is one the server was not yet due to end.
                outcome = "UNDECIDED"
            self.record(attack, outcome)
        except grpc.RpcError as exc:  # aio.AioRpcError, or a synchronous call's error
            call = typing.cast(grpc.Call, exc)
            self.record(attack, call.code().name, call.details() or "")
        except TimeoutError:
            age = time.monotonic() - opened
            if age < self.plan.grace:
                self.record(attack, "UNDECIDED")
            elif held:
                self.record(attack, "OPEN_AT_END", f"still open after {age:.0f} s")
            else:
                self.record(attack, "NO_ANSWER", f"no answer after {age:.0f} s")

    # -- set-up ---------------------------------------------------------------------------------

    async def set_up(self) -> None:
        """A 3 MiB document (for slow downloads and the flooder) and 12 small packages in each
        slow inbox. Not attacks: a refusal for the rate (RESOURCE_EXHAUSTED) is waited out."""
        async with channel(self.plan.address) as ch:
            documents = documents_pb2_grpc.DocumentServiceStub(ch)
            data = hashlib.sha256(b"soak").digest() * (3 * 1024 * 1024 // 32)
            reply = await _patiently(
                lambda: documents.Upload(_upload(data, declared=True), metadata=self.auth())
            )
            self.big_ref = reply.ref.ref
            exchange = exchange_pb2_grpc.ExchangeServiceStub(ch)
            for number in range(12):
                request = exchange_pb2.SendRequest(
                    from_unit=SENDING_UNIT, to_units=list(SLOW_INBOXES)
                )
                request.fields.subject = f"Tài liệu cho người đọc chậm {number}"
                request.fields.attachments.add(
                    name="tai-lieu.txt", content_type="text/plain", content=bytes(24 * 1024)
                )
                send = functools.partial(exchange.Send, request, metadata=self.auth())
                await _patiently(send)

    # -- attacks --------------------------------------------------------------------------------

    async def _streams_begin(self) -> None:
        """Idle and slow streams start a tenth into the attack, after the first bombs: on a
        server whose threads they would all take, the bombs are still seen (memory)."""
        await asyncio.sleep(self.plan.attack_seconds * STREAMS_LATER)

    async def idle_upload(self, ch: grpc.Channel) -> None:
        """Uploads that send their metadata and then nothing.

        Through gRPC's synchronous API (a thread per stream holds the request iterator): when the
        server ends a stream as its first message is sent, the asyncio API reports its own
        INTERNAL ("Internal error from Core") instead of the server's status; this one does not.
        """
        stub = documents_pb2_grpc.DocumentServiceStub(ch)
        meta = documents_pb2.UploadMetadata(filename="im-lang.bin", size=1024)
        await self._streams_begin()
        while self.running():
            opened = time.monotonic()
            release = threading.Event()

            def requests(release: threading.Event = release) -> Iterator[Any]:
                yield documents_pb2.UploadRequest(metadata=meta)
                release.wait()

            future = stub.Upload.future(requests(), metadata=self.auth())

            async def idle(future: Any = future) -> str:
                await _finished(future)
                return "OK"

            await self.outcome_of("idle_upload", idle, opened=opened, held=True)
            future.cancel()
            release.set()
            await asyncio.sleep(0.5)

    async def slow_download(self, index: int) -> None:
        async with channel(self.plan.address, SLOW_OPTIONS) as ch:
            stub = documents_pb2_grpc.DocumentServiceStub(ch)
            request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=self.big_ref))
            await self._streams_begin()
            while self.running():
                opened = time.monotonic()
                call = stub.Download(request, metadata=self.auth())
                await self.outcome_of(
                    "slow_download", functools.partial(self._slowly, call), opened=opened, held=True
                )
                call.cancel()
                await asyncio.sleep(0.5)

    async def slow_receive(self, index: int) -> None:
        async with channel(self.plan.address, SLOW_OPTIONS) as ch:
            stub = exchange_pb2_grpc.ExchangeServiceStub(ch)
            request = exchange_pb2.ReceiveRequest(
                unit_code=SLOW_INBOXES[index % len(SLOW_INBOXES)], lease_seconds=10
            )
            await self._streams_begin()
            while self.running():
                opened = time.monotonic()
                call = stub.Receive(request, metadata=self.auth())
                await self.outcome_of(
                    "slow_receive", functools.partial(self._slowly, call), opened=opened, held=True
                )
                call.cancel()
                await asyncio.sleep(0.5)

    async def _slowly(self, call: Any) -> str:
        """Take a message every ``slow_pause`` seconds until the attack ends, then the rest
        at once: how the server ended the stream (its status) comes after the messages it had
        already sent, so only reading them shows whether it had ended it. A stream it still
        holds gives nothing more for ``DRAIN_SECONDS`` and stays open (``OPEN_AT_END``)."""
        taken = 0
        while True:
            if self.running():
                message = await call.read()
            else:
                message = await asyncio.wait_for(call.read(), DRAIN_SECONDS)
            if message is aio.EOF:  # type: ignore[attr-defined]  # real, missing from the stubs
                return "OK" if taken else "EMPTY"
            taken += 1
            pause = min(self.plan.slow_pause, self.end - time.monotonic())
            if pause > 0:
                await asyncio.sleep(pause)

    async def oversize(self, ch: grpc.Channel, *, declared: bool) -> None:
        """Uploads over ``max_document_bytes``; synchronous API, as for :meth:`idle_upload`."""
        stub = documents_pb2_grpc.DocumentServiceStub(ch)
        data = bytes(range(256)) * ((self.plan.max_document_bytes + 1024 * 1024) // 256)
        attack = "oversize_declared" if declared else "oversize_undeclared"
        while self.running():

            async def upload() -> str:
                future = stub.Upload.future(
                    _requests(data, declared=declared), metadata=self.auth()
                )
                await _finished(future)
                return "OK"

            await self.outcome_of(attack, upload, opened=time.monotonic(), held=False)
            await asyncio.sleep(self.plan.oversize_interval)

    async def xml_bombs(self, ch: aio.Channel) -> None:
        stub = verification_pb2_grpc.VerificationServiceStub(ch)
        bombs = {name: make() for name, make in XML_BOMBS.items()}
        while self.running():
            for name, bomb in bombs.items():
                request = verification_pb2.VerifyPackageRequest(
                    package=common_pb2.DocumentInput(content=bomb, filename="goi-tin.xml")
                )

                async def verify(request: Any = request) -> str:
                    report = await stub.VerifyPackage(request, metadata=self.auth())
                    indication = verification_pb2.Indication.Name(report.indication).removeprefix(
                        "INDICATION_"
                    )
                    return f"OK:{indication}/{report.sub_indication}"

                await self.outcome_of(name, verify, opened=time.monotonic(), held=False)
                await asyncio.sleep(self.plan.bomb_interval)

    async def zip_bombs(self, ch: aio.Channel) -> None:
        if self.plan.zip_sends < 1:
            return
        stub = exchange_pb2_grpc.ExchangeServiceStub(ch)
        bomb = zip_bomb()
        interval = self.plan.attack_seconds / self.plan.zip_sends
        for number in range(self.plan.zip_sends):
            if not self.running():
                return
            started = time.monotonic()
            request = exchange_pb2.SendRequest(from_unit=SENDING_UNIT, to_units=[BOMB_INBOX])
            request.fields.subject = f"Báo cáo tổng hợp {number}"
            for index in range(self.plan.bombs_per_send):
                request.fields.attachments.add(
                    name=f"bao-cao-{index}.pdf", content_type="application/pdf", content=bomb
                )

            async def send(request: Any = request) -> str:
                await stub.Send(request, metadata=self.auth())
                return "OK"

            await self.outcome_of("zip_bombs", send, opened=started, held=False)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def flood(self, ch: aio.Channel) -> None:
        stub = documents_pb2_grpc.DocumentServiceStub(ch)
        request = documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref=self.big_ref))
        auth = self.auth(self.plan.flood_token)

        async def stat() -> str:
            await stub.Stat(request, metadata=auth)
            return "OK"

        while self.running():
            await self.outcome_of("flood", stat, opened=time.monotonic(), held=False)

    async def run(self) -> None:
        await self.set_up()
        plan = self.plan
        _say({"event": "started"})
        self.end = time.monotonic() + plan.attack_seconds
        channels = [channel(plan.address) for _ in range(4)]
        idle_channels = [grpc.insecure_channel(plan.address) for _ in range(2)]
        try:
            tasks = [
                *(self.idle_upload(idle_channels[i % 2]) for i in range(plan.idle_streams)),
                *(self.slow_download(i) for i in range(plan.slow_readers // 2)),
                *(self.slow_receive(i) for i in range(plan.slow_readers - plan.slow_readers // 2)),
                self.oversize(idle_channels[0], declared=True),
                self.oversize(idle_channels[1], declared=False),
                self.xml_bombs(channels[2]),
                self.zip_bombs(channels[2]),
                *(self.flood(channels[3]) for _ in range(plan.flood_concurrency)),
            ]
            await asyncio.gather(*tasks)
        finally:
            for ch in channels:
                await ch.close(None)
            for idle_channel in idle_channels:
                idle_channel.close()
        _say({"event": "ended"})
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _say(
            {
                "event": "result",
                "counts": self.counts,
                "examples": self.examples,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }
        )


def _requests(data: bytes, *, declared: bool) -> Iterator[documents_pb2.UploadRequest]:
    meta = documents_pb2.UploadMetadata(filename="soak.bin")
    if declared:
        meta.size = len(data)
        meta.sha256 = hashlib.sha256(data).hexdigest()
    yield documents_pb2.UploadRequest(metadata=meta)
    for start in range(0, len(data), CHUNK):
        yield documents_pb2.UploadRequest(chunk=data[start : start + CHUNK])


async def _upload(data: bytes, *, declared: bool) -> AsyncIterator[documents_pb2.UploadRequest]:
    for request in _requests(data, declared=declared):
        yield request


async def _finished(future: Any) -> None:
    """Wait, without holding the loop, for a call of gRPC's synchronous API; raise its error.
    Cancelled (the attack ended), it cancels the call."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(_settle, ended))
    try:
        await ended
    except asyncio.CancelledError:
        future.cancel()
        raise
    future.result()


async def _patiently(call: Callable[[], Awaitable[T]], *, seconds: float = 60.0) -> T:
    """``call()``, again after a second while the server answers RESOURCE_EXHAUSTED."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
        await asyncio.sleep(1.0)


def _settle(ended: asyncio.Future[None]) -> None:
    if not ended.done():
        ended.set_result(None)


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def main() -> None:
    plan = Plan(**json.loads(sys.stdin.readline()))
    asyncio.run(Attacks(plan).run())


if __name__ == "__main__":
    main()
