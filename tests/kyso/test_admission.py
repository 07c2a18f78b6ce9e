"""Admission control against a real server on loopback: idle client streams hold no thread and
are ended, uploads are bounded at the door, each client keeps to its share, and the health
check tells the truth when a pool of work is saturated (issue 14, observations 1 and 2)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso.app import Application
from kyso.config import Config, load_config
from kyso.server import Server
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc
from tests.kyso.conftest import token
from tests.support.statuses import bad_request_field

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def _serving(config: Config) -> AsyncIterator[tuple[Server, grpc.aio.Channel]]:
    app = await asyncio.to_thread(Application.open, config)
    server = Server(config, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, channel
    finally:
        await server.stop()


def _config(write_config: Callable[[str], Path], limits: str, signing: str = "") -> Config:
    return load_config(write_config(f"\n[limits]\n{limits}\n{signing}"))


def _auth(config: Config, client: str = "workflow") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(config, client)}")]


def _metadata(**fields: object) -> documents_pb2.UploadRequest:
    return documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(filename="a.txt", **fields)  # type: ignore[arg-type]
    )


async def _upload(stub: documents_pb2_grpc.DocumentServiceStub, config: Config, data: bytes):
    async def requests() -> AsyncIterator[documents_pb2.UploadRequest]:
        yield _metadata(size=len(data))
        yield documents_pb2.UploadRequest(chunk=data)

    return await stub.Upload(requests(), metadata=_auth(config), timeout=30)


def _refused_upload(port: int, config: Config, data: bytes) -> grpc.RpcError:
    """Upload with the blocking client, which keeps the server's status when the server ends
    the call while the client is still sending (the asyncio client may report its failed send
    instead); return the error the call ended with."""

    def requests() -> Iterator[documents_pb2.UploadRequest]:
        yield _metadata()
        for start in range(0, len(data), 16384):
            yield documents_pb2.UploadRequest(chunk=data[start : start + 16384])

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Upload(requests(), metadata=_auth(config), timeout=30)
        return caught.value


async def _hold(
    stub: documents_pb2_grpc.DocumentServiceStub,
    config: Config,
    *,
    first_chunk: bool,
) -> grpc.aio.StreamUnaryCall:
    """An upload that sends its metadata (and one chunk when asked), then nothing."""
    release = asyncio.Event()

    async def requests() -> AsyncIterator[documents_pb2.UploadRequest]:
        yield _metadata()
        if first_chunk:
            yield documents_pb2.UploadRequest(chunk=b"x" * 1024)
        await release.wait()

    call = stub.Upload(requests(), metadata=_auth(config), timeout=60)
    call.release = release  # type: ignore[attr-defined]
    return call


def _stored(config: Config) -> tuple[int, int, list[Path]]:
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM catalogue_documents")).scalar_one()
            events = conn.execute(sa.text("SELECT count(*) FROM audit_outbox")).scalar_one()
            events += conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
    finally:
        engine.dispose()
    objects = [p for p in config.storage.path.rglob("*") if p.is_file() and p.suffix != ".json"]
    return rows, events, objects


async def _status(channel: grpc.aio.Channel, service: str = "") -> int:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def _until_status(channel: grpc.aio.Channel, service: str, wanted: int) -> None:
    while await _status(channel, service) != wanted:
        await asyncio.sleep(0.1)


# -- observation 1: idle streams ------------------------------------------------------------


async def test_idle_uploads_hold_no_thread_and_are_ended(write_config) -> None:
    # More idle uploads than the I/O pool has threads, all from one client allowed that many.
    config = _config(
        write_config,
        "stream_idle_seconds = 3\nstreams_in_flight = 64\ncalls_in_flight = 128",
    )
    async with _serving(config) as (_, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        idle = [await _hold(stub, config, first_chunk=False) for _ in range(40)]
        await asyncio.sleep(0.5)  # every idle stream has reached the server
        stored = await _upload(stub, config, b"%PDF-1.7 a real document")
        info = await stub.Stat(documents_pb2.StatRequest(ref=stored.ref), metadata=_auth(config))
        assert info.document.size == len(b"%PDF-1.7 a real document")
        assert await _status(channel) == health_pb2.HealthCheckResponse.SERVING
        for call in idle:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert "stream_idle_seconds" in (caught.value.details() or "")
    rows, _, objects = _stored(config)
    assert rows == 1  # the idle uploads left nothing
    assert len(objects) == 1


# -- observation 2: uploads bounded at the door ---------------------------------------------


async def test_upload_declaring_more_than_the_limit_is_refused_before_any_byte(
    write_config,
) -> None:
    config = _config(write_config, "", "[signing]\nmax_document_bytes = 65536\n")
    async with _serving(config) as (_, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        before = _stored(config)

        async def requests() -> AsyncIterator[documents_pb2.UploadRequest]:
            yield _metadata(size=10 * 1024 * 1024 * 1024)
            await asyncio.Event().wait()  # no byte follows: the refusal must not wait for one
            yield documents_pb2.UploadRequest(chunk=b"x")

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Upload(requests(), metadata=_auth(config), timeout=30)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_field(caught.value) == "metadata.size"
        assert "65536" in (caught.value.details() or "")
        assert _stored(config) == before


async def test_upload_streaming_past_the_limit_is_cut_and_stores_nothing(write_config) -> None:
    config = _config(write_config, "", "[signing]\nmax_document_bytes = 65536\n")
    async with _serving(config) as (server, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        before = _stored(config)

        # no size declared: cut when the bytes pass the limit
        error = await asyncio.to_thread(_refused_upload, server.port, config, b"y" * 1638400)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_field(error) == "chunk"
        assert _stored(config) == before
        # a document within the limit still goes through
        data = b"z" * 65536
        stored = await _upload(stub, config, data)
        assert stored.ref.ref.endswith(hashlib.sha256(data).hexdigest())


# -- per-client limits ----------------------------------------------------------------------


def _retry_delay(error: grpc.aio.AioRpcError) -> float:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo in the status details")


async def test_a_client_over_its_rate_is_refused_with_a_delay_and_others_are_not(
    write_config,
) -> None:
    config = _config(write_config, "calls_per_second = 0.5\nburst = 3")
    async with _serving(config) as (_, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        unknown = documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref="sha256/" + "0" * 64))
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Stat(unknown, metadata=_auth(config))
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Stat(unknown, metadata=_auth(config))
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "calls_per_second" in (caught.value.details() or "")
        assert 0 < _retry_delay(caught.value) <= 2.0
        # another client has its own share
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.Stat(unknown, metadata=_auth(config, "auditor"))
        assert other.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_client_over_its_share_waits_for_its_refusal_up_to_a_bound(write_config) -> None:
    """A client that calls again at once after a refusal gets its next refusals held back
    (a tarpit), at most ``held_refusals`` at a time; one beyond is answered at once, and a
    held one is answered as RESOURCE_EXHAUSTED before the call's own deadline."""
    config = _config(
        write_config,
        "calls_per_second = 0.01\nburst = 1\nrefusal_delay_seconds = 30\nheld_refusals = 1",
    )
    async with _serving(config) as (_, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        unknown = documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref="sha256/" + "0" * 64))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Stat(unknown, metadata=_auth(config))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND  # its one call of the burst
        held = asyncio.ensure_future(stub.Stat(unknown, metadata=_auth(config), timeout=60))
        await asyncio.sleep(0.5)
        assert not held.done()  # over its rate: the refusal waits
        with pytest.raises(grpc.aio.AioRpcError) as at_once:
            await stub.Stat(unknown, metadata=_auth(config), timeout=60)
        assert at_once.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not held.done()  # one held at a time: the second was answered first
        held.cancel()
        await asyncio.sleep(0.3)  # the server's side of the cancelled call ends, freeing its hold
        # A held refusal never turns into the deadline's error: it is answered just before.
        with pytest.raises(grpc.aio.AioRpcError) as before_deadline:
            await stub.Stat(unknown, metadata=_auth(config), timeout=2.0)
        assert before_deadline.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "calls_per_second" in (before_deadline.value.details() or "")


async def test_a_client_may_hold_only_so_many_streams(write_config) -> None:
    config = _config(write_config, "streams_in_flight = 2\nstream_idle_seconds = 30")
    async with _serving(config) as (server, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        held = [await _hold(stub, config, first_chunk=False) for _ in range(2)]
        await asyncio.sleep(0.3)
        error = await asyncio.to_thread(_refused_upload, server.port, config, b"one too many")
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "streams_in_flight" in (error.details() or "")
        for call in held:  # the streams end normally once the client sends its end
            call.release.set()  # type: ignore[attr-defined]
            await call
        stored = await _upload(stub, config, b"now there is room")
        assert stored.size == len(b"now there is room")


# -- saturation: the queue is bounded and the health check says so ---------------------------


async def test_a_saturated_pool_refuses_more_and_turns_health_not_serving(write_config) -> None:
    config = _config(
        write_config,
        "transfer_threads = 1\nqueue_per_thread = 1\nsaturated_after_seconds = 0.3\n"
        "stream_idle_seconds = 4",
    )
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    async with _serving(config) as (server, channel):
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        holding = await _hold(stub, config, first_chunk=True)  # takes the one transfer thread
        await asyncio.sleep(0.3)
        waiting = await _hold(stub, config, first_chunk=True)  # waits for the thread
        await _until_status(channel, "kyso.v1.DocumentService", not_serving)
        assert await _status(channel) == not_serving
        # the ledger's service does not need the transfer pool: it is unaffected
        assert await _status(channel, "kyso.v1.AuditService") == serving
        # the queue is full: refused now
        error = await asyncio.to_thread(_refused_upload, server.port, config, b"no room")
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "transfer" in (error.details() or "")
        for call in (holding, waiting):  # the idle streams are ended; the pool drains
            with pytest.raises(grpc.aio.AioRpcError):
                await call
        await _until_status(channel, "", serving)
        stored = await _upload(stub, config, b"served again")
        assert stored.size == len(b"served again")


async def test_a_reader_that_stalls_is_ended_and_holds_nothing(write_config) -> None:
    config = _config(write_config, "stream_idle_seconds = 2\nstreams_in_flight = 2")
    async with _serving(config) as (server, _):
        # A client without flow-control window growth, so that what it does not read stays
        # on the server's side.
        options = [("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 1 << 24)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as ch:
            stub = documents_pb2_grpc.DocumentServiceStub(ch)
            stored = await _upload(stub, config, b"d" * (8 * 1024 * 1024))
            stalled = stub.Download(
                documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config)
            )
            await stalled.read()  # one chunk, then nothing
            await asyncio.sleep(4)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _drain(stalled)
            assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert "read nothing" in (caught.value.details() or "")
            # its stream was given back: two more streams fit under streams_in_flight = 2
            for _ in range(2):
                again = stub.Download(
                    documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config)
                )
                size = 0
                async for piece in again:
                    size += len(piece.chunk)
                assert size == 8 * 1024 * 1024


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass
