"""DocumentService over real gRPC on loopback with the filesystem store: streaming upload and
download, catalogue, ledger events, and bad input that stores nothing."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from kyso.v1 import audit_pb2, audit_pb2_grpc, common_pb2, documents_pb2, documents_pb2_grpc

from .conftest import token


def _auth(config, client="workflow"):
    return [("authorization", f"Bearer {token(config, client)}")]


def _upload_requests(data: bytes, *, sha256: str | None = None, size: int = 0, chunk=65536):
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename="kết quả.pdf",
            content_type="application/pdf",
            sha256=sha256 if sha256 is not None else hashlib.sha256(data).hexdigest(),
            size=size,
        )
    )
    for start in range(0, len(data), chunk):
        yield documents_pb2.UploadRequest(chunk=data[start : start + chunk])


def _objects(config):
    root = config.storage.path / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json"))


async def test_upload_download_stat_and_ledger(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    data = os.urandom(3 * 1024 * 1024 + 17)
    stored = await stub.Upload(_upload_requests(data, size=len(data)), metadata=_auth(config))
    digest = hashlib.sha256(data).hexdigest()
    assert stored.ref.ref == f"sha256/{digest}"
    assert stored.sha256 == digest
    assert stored.size == len(data)

    received = b"".join(
        [
            piece.chunk
            async for piece in stub.Download(
                documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config)
            )
        ]
    )
    assert received == data

    info = await stub.Stat(documents_pb2.StatRequest(ref=stored.ref), metadata=_auth(config))
    assert info.filename == "kết quả.pdf"
    assert info.uploader == "workflow"
    assert info.unit_code == "000.00.21.H49"
    assert info.content_type == "application/pdf"

    # the auditor sees the event in the ledger
    ledger = audit_pb2_grpc.AuditServiceStub(channel)
    event = await ledger.GetEvent(
        audit_pb2.GetEventRequest(index=0), metadata=_auth(config, "auditor")
    )
    assert event.event_type == "document.stored"
    assert event.document_sha256 == digest
    assert event.actor == "workflow"


async def test_same_bytes_twice_is_one_document(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    data = b"%PDF-1.7 same bytes"
    first = await stub.Upload(_upload_requests(data), metadata=_auth(config))
    second = await stub.Upload(_upload_requests(data), metadata=_auth(config))
    assert first.ref.ref == second.ref.ref
    assert len(_objects(config)) == 1


async def test_declared_hash_mismatch_stores_nothing(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Upload(_upload_requests(b"data", sha256="0" * 64), metadata=_auth(config))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not the declared " + "0" * 64 in err.value.details()
    assert "nothing was stored" in err.value.details()
    assert _objects(config) == []


async def test_declared_size_mismatch_stores_nothing(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Upload(_upload_requests(b"data", size=99), metadata=_auth(config))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "the upload declared 99 bytes but sent 4"
    status = status_pb2.Status.FromString(
        dict(err.value.trailing_metadata())["grpc-status-details-bin"]
    )
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "metadata.size"
    assert _objects(config) == []


async def test_upload_must_start_with_metadata(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)

    def chunks_only():
        yield documents_pb2.UploadRequest(chunk=b"x")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Upload(chunks_only(), metadata=_auth(config))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "first message" in err.value.details()


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("sha256/" + "a" * 64, grpc.StatusCode.NOT_FOUND),
        ("md5/abc", grpc.StatusCode.INVALID_ARGUMENT),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_download_and_stat_bad_refs(channel, config, ref, code):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    request_ref = common_pb2.DocumentRef(ref=ref)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.Download(
            documents_pb2.DownloadRequest(ref=request_ref), metadata=_auth(config)
        ):
            pass
    assert err.value.code() is code
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Stat(documents_pb2.StatRequest(ref=request_ref), metadata=_auth(config))
    assert err.value.code() is code


async def test_corrupted_object_is_data_loss(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    data = os.urandom(200_000)
    stored = await stub.Upload(_upload_requests(data), metadata=_auth(config))
    (path,) = _objects(config)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.Download(
            documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config)
        ):
            pass
    assert err.value.code() is grpc.StatusCode.DATA_LOSS


async def test_auditor_cannot_upload(channel, config):
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Upload(_upload_requests(b"x"), metadata=_auth(config, "auditor"))
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("auditors_download", [False, True])
async def test_documents_are_read_only_by_their_units_and_auditors_see_metadata(
    write_config, tmp_path, auditors_download
):
    """Observation 3: Download and Stat serve a document only to clients acting for its unit;
    auditors read its metadata, and its bytes only when the configuration says so; hubs and
    other units' clients are refused."""
    from kyso.app import Application
    from kyso.config import load_config
    from kyso.server import Server

    (tmp_path / "other.token").write_text("token-of-another-unit")
    (tmp_path / "province.token").write_text("token-of-the-province")
    config = load_config(
        write_config(
            ("[documents]\nauditors_download = true\n" if auditors_download else "")
            + """
[clients.other]
roles = ["workflow"]
unit = "000.00.02.H49"
token_file = "other.token"

[clients.province]
roles = ["workflow"]
unit = "000.00.00.H49"
token_file = "province.token"
"""
        )
    )
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = documents_pb2_grpc.DocumentServiceStub(channel)
            data = os.urandom(5000)
            stored = await stub.Upload(_upload_requests(data), metadata=_auth(config))

            async def download(client):
                request = documents_pb2.DownloadRequest(ref=stored.ref)
                pieces = stub.Download(request, metadata=_auth(config, client))
                return b"".join([p.chunk async for p in pieces])

            async def stat(client):
                request = documents_pb2.StatRequest(ref=stored.ref)
                return await stub.Stat(request, metadata=_auth(config, client))

            assert await download("workflow") == data
            assert (await stat("auditor")).unit_code == "000.00.21.H49"
            refused = ["other", "hub", "province"]  # no directory here: exact units only
            if auditors_download:
                assert await download("auditor") == data
            else:
                refused.append("auditor")
            for client in refused:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await download(client)
                assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED, client
                assert "may not read the bytes of document" in err.value.details()
            for client in ("other", "hub", "province"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stat(client)
                assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED, client
    finally:
        await server.stop()
