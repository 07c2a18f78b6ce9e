"""Send input that would make a ledger event invalid is refused before anything is stored, with
INVALID_ARGUMENT naming the field and the limit; what is accepted commits with its events."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from kyso.v1 import documents_pb2, documents_pb2_grpc, exchange_pb2, exchange_pb2_grpc
from tests.support.statuses import bad_request_field

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"


def _auth(config):
    path = config.clients["dev"].token_file
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _request(**fields) -> exchange_pb2.SendRequest:
    request = exchange_pb2.SendRequest(from_unit=COMMUNE, to_units=[DEPARTMENT])
    request.fields.subject = "Về việc báo cáo"
    for name, value in fields.items():
        if name == "document_id":
            request.document_id = value
        elif name == "attachments":
            for n in range(value):
                request.fields.attachments.add(name=f"a{n}.txt", content=b"x")
    return request


def _counts(config) -> tuple[int, int, int]:
    engine = sa.create_engine(config.database.url)
    try:
        with engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
                for table in ("exchange_messages", "audit_entries", "audit_outbox")
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"document_id": "x" * 70_000}, "document_id", "at most 255"),
        ({"attachments": 880}, "fields.attachments", "at most 200"),
    ],
)
async def test_send_that_would_break_its_event_is_refused_and_stores_nothing(
    dev_channel, dev_config, fields, field, limit
) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    before = _counts(dev_config)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(_request(**fields), metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert limit in caught.value.details()
    assert bad_request_field(caught.value) == field
    assert _counts(dev_config) == before
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Track(
            exchange_pb2.TrackRequest(document_id="x" * 70_000, from_unit=COMMUNE),
            metadata=_auth(dev_config),
        )
    # nothing was sent; the answer echoing the id stays within what a client accepts
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert "characters left out" in unknown.value.details()


async def test_an_accepted_send_commits_with_its_events(dev_channel, dev_config) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    messages, entries, _ = _counts(dev_config)
    sent = await stub.Send(_request(attachments=2), metadata=_auth(dev_config))
    assert [r.unit_code for r in sent.recipients] == [DEPARTMENT]
    # one package.sent and one package.delivered (the department is served here)
    after_messages, after_entries, _ = _counts(dev_config)
    assert (after_messages, after_entries) == (messages + 1, entries + 2)
    engine = sa.create_engine(dev_config.database.url)
    try:
        with engine.connect() as conn:
            pending = conn.execute(
                sa.text("SELECT count(*) FROM audit_outbox WHERE idx IS NULL")
            ).scalar_one()
    finally:
        engine.dispose()
    assert pending == 0


# -- limits at the door (issue 14, observation 4) -------------------------------------------------


def _objects(config) -> list[Path]:
    root = config.storage.path / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json"))


def _wrapped_bomb(size: int) -> bytes:
    """A one-file ZIP (a 'wrapped attachment') unpacking to ``size`` bytes at about 60:1,
    inside the per-attachment ratio (100) and size (16 MiB) limits."""
    rng = random.Random(14)
    data = bytearray(size)
    for offset in range(0, size, 1024):
        data[offset : offset + 12] = rng.randbytes(12)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bao-cao.pdf", bytes(data))
    return out.getvalue()


async def test_many_small_zip_bombs_are_refused_together_and_nothing_is_stored(
    dev_channel, dev_config
) -> None:
    # Ten attachments of 140 KB each unpack to 8 MiB each: each is within its own limits, the
    # ten together (80 MiB) are over [exchange] max_expanded_bytes (64 MiB by default).
    bomb = _wrapped_bomb(8 * 1024 * 1024)
    request = _request()
    for n in range(10):
        request.fields.attachments.add(name=f"phu-luc-{n}", content=bomb)
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    before, objects = _counts(dev_config), _objects(dev_config)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(request, metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"{64 * 1024 * 1024} bytes decoded and unpacked together" in caught.value.details()
    assert "ContentTransferEncoded" in (bad_request_field(caught.value) or "")
    assert _counts(dev_config) == before
    assert _objects(dev_config) == objects


async def _upload(channel, config, data: bytes) -> str:
    stub = documents_pb2_grpc.DocumentServiceStub(channel)

    def parts():
        yield documents_pb2.UploadRequest(
            metadata=documents_pb2.UploadMetadata(
                filename="phu-luc.pdf", content_type="application/octet-stream"
            )
        )
        for start in range(0, len(data), 1024 * 1024):
            yield documents_pb2.UploadRequest(chunk=data[start : start + 1024 * 1024])

    stored = await stub.Upload(parts(), metadata=_auth(config))
    return str(stored.ref.ref)


def _by_refs(refs: list[str]) -> exchange_pb2.SendRequest:
    request = _request()
    for n, ref in enumerate(refs):
        attachment = request.fields.attachments.add(name=f"phu-luc-{n}.bin")
        attachment.ref.ref = ref
    return request


async def test_attachments_by_ref_over_the_limit_are_refused_without_being_read(
    dev_channel, dev_config
) -> None:
    refs = [await _upload(dev_channel, dev_config, os.urandom(6 * 1024 * 1024)) for _ in range(2)]
    # Damage both stored objects (same size): reading either whole would end in DATA_LOSS, so
    # a refusal naming the limit shows that neither was read.
    for path in _objects(dev_config):
        path.chmod(0o644)
        raw = bytearray(path.read_bytes())
        raw[100] ^= 0xFF
        path.write_bytes(bytes(raw))
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    before = _counts(dev_config)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(_by_refs(refs), metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "max_package_bytes" in caught.value.details()
    assert bad_request_field(caught.value) == "fields.attachments[1].ref"
    assert _counts(dev_config) == before


async def test_a_package_too_large_to_deliver_is_refused_up_front(
    dev_server, dev_channel, dev_config
) -> None:
    # Three 5.5 MiB documents by ref build a package of about 22 MiB: over the 16 MiB message
    # limit once in a Delivery. It is refused at Send, before any ref is read; nothing stored.
    refs = [
        await _upload(dev_channel, dev_config, os.urandom(5 * 1024 * 1024 + 512 * 1024))
        for _ in range(3)
    ]
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    before = _counts(dev_config)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(_by_refs(refs), metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert f"max_package_bytes {15 * 1024 * 1024}" in caught.value.details()
    assert bad_request_field(caught.value) == "fields.attachments[2].ref"
    assert _counts(dev_config) == before
    # what fits is accepted, and its delivery is received whole
    sent = await stub.Send(_by_refs(refs[:1]), metadata=_auth(dev_config))
    limit = dev_config.server.max_message_bytes
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{dev_server.port}", options=[("grpc.max_receive_message_length", limit)]
    ) as channel:
        receiving = exchange_pb2_grpc.ExchangeServiceStub(channel).Receive(
            exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, max_deliveries=1),
            metadata=_auth(dev_config),
        )
        received = [d async for d in receiving]
    assert [d.document_id for d in received] == [sent.document_id]
    assert len(received[0].package_content) > 7 * 1024 * 1024
