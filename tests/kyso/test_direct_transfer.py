"""Direct transfer through DocumentService on a real Ceph RADOS Gateway: presigned PUT, the
hash checked on completion before the catalogue row and its event, presigned GET; what is
refused (other bytes, expired, another client's upload, over the size limit) leaves nothing
stored or catalogued; a filesystem store answers FAILED_PRECONDITION and the CLI falls back."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import urllib3

import storage
from kyso.app import Application
from kyso.cli.documents_run import DIRECT_MIN_BYTES
from kyso.config import Config, load_config
from kyso.errors import ConfigError
from kyso.schema import direct_uploads
from kyso.server import Server
from kyso.v1 import audit_pb2, audit_pb2_grpc, common_pb2, documents_pb2, documents_pb2_grpc
from tests.support.rgw import RgwHandle, new_bucket_name
from tests.support.statuses import bad_request_field

from .conftest import token
from .test_documents_s3 import s3_credentials_env  # noqa: F401 (a fixture)

_http = urllib3.PoolManager()
OTHER = "token-of-other-client"


def _auth(config: Config, client: str = "workflow") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(config, client)}")]


@pytest.fixture
def direct_config(
    write_config: Callable[..., Path],
    rgw: RgwHandle,
    s3_credentials_env: None,  # noqa: F811
    tmp_path: Path,
) -> Config:
    """S3 with direct transfer on, and a second workflow client of the same unit."""
    (tmp_path / "other.token").write_text(OTHER)
    path = write_config(
        '\n[clients.other]\nroles = ["workflow"]\nunit = "000.00.21.H49"\n'
        'token_file = "other.token"\n'
    )
    text = path.read_text().replace(
        f'[storage]\npath = "{tmp_path / "objects"}"\n',
        f'[storage]\nbackend = "s3"\ndirect_transfer = true\n\n[storage.s3]\n'
        f'endpoint = "{rgw.endpoint}"\nbucket = "{new_bucket_name("direct")}"\nsecure = false\n',
    )
    assert "direct_transfer" in text
    path.write_text(text)
    return load_config(path)


@pytest.fixture
async def direct_server(direct_config: Config) -> AsyncIterator[Server]:
    app = Application.open(direct_config)
    srv = Server(direct_config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _begin(data: bytes, *, sha256: str | None = None, size: int | None = None):
    return documents_pb2.BeginDirectUploadRequest(
        filename="quyết định.pdf",
        content_type="application/pdf",
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size=len(data) if size is None else size,
    )


def _put(grant: documents_pb2.BeginDirectUploadResponse, data: bytes) -> None:
    answer = _http.request("PUT", grant.url, body=data, headers=dict(grant.headers))
    assert answer.status == 200, answer.data


def _staging_versions(server: Server, upload_id: str) -> list[str]:
    store = server.app.store
    assert isinstance(store, storage.S3Store)
    key = f"staging/{upload_id}"
    listed = store._client.list_objects(store.config.bucket, prefix=key, include_version=True)
    return [str(o.version_id) for o in listed if o.object_name == key]


async def _staging_removed(server: Server, upload_id: str, *, within: float = 60) -> None:
    """Wait until the staging object is gone (removed after Complete answered)."""
    deadline = time.monotonic() + within
    while versions := _staging_versions(server, upload_id):
        assert time.monotonic() < deadline, f"staging versions left: {versions}"
        await asyncio.sleep(0.05)


def _uploads(server: Server) -> list[sa.Row]:
    with server.app.engine.connect() as conn:
        return list(conn.execute(sa.select(direct_uploads)))


pytestmark = [pytest.mark.s3, pytest.mark.timeout(900)]


async def test_round_trip_through_the_rpcs(direct_server: Server) -> None:
    config = direct_server.config
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = hashlib.sha256(data).hexdigest()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{direct_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        grant = await stub.BeginDirectUpload(_begin(data), metadata=_auth(config))
        assert grant.url.startswith("http://")
        assert config.storage.s3.bucket in grant.url
        assert grant.expires_at.seconds > 0
        _put(grant, data)
        done = await stub.CompleteDirectUpload(
            documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id),
            metadata=_auth(config),
        )
        assert done.document.ref.ref == f"sha256/{digest}"
        assert done.document.size == len(data)
        # completing again answers the same document, and records nothing more
        again = await stub.CompleteDirectUpload(
            documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id),
            metadata=_auth(config),
        )
        assert again == done
        await _staging_removed(direct_server, grant.upload_id)

        info = await stub.Stat(
            documents_pb2.StatRequest(ref=done.document.ref), metadata=_auth(config)
        )
        assert (info.filename, info.uploader, info.unit_code, info.content_type) == (
            "quyết định.pdf",
            "workflow",
            "000.00.21.H49",
            "application/pdf",
        )
        ledger = audit_pb2_grpc.AuditServiceStub(channel)
        event = await ledger.GetEvent(
            audit_pb2.GetEventRequest(index=0), metadata=_auth(config, "auditor")
        )
        assert (event.event_type, event.document_sha256) == ("document.stored", digest)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ledger.GetEvent(
                audit_pb2.GetEventRequest(index=1), metadata=_auth(config, "auditor")
            )
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

        url = await stub.GetDownloadUrl(
            documents_pb2.GetDownloadUrlRequest(ref=done.document.ref), metadata=_auth(config)
        )
        assert (url.sha256, url.size) == (digest, len(data))
        fetched = _http.request("GET", url.url)
        assert fetched.status == 200
        assert fetched.data == data
        # as Download: a client that may not read the bytes gets no URL
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDownloadUrl(
                documents_pb2.GetDownloadUrlRequest(ref=done.document.ref),
                metadata=_auth(config, "hub"),
            )
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_other_bytes_than_declared_are_refused_and_leave_nothing(
    direct_server: Server,
) -> None:
    config = direct_server.config
    store = direct_server.app.store
    declared = os.urandom(300_000)
    sent = declared[:-1] + bytes([declared[-1] ^ 1])  # same size, other bytes
    async with grpc.aio.insecure_channel(f"127.0.0.1:{direct_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        grant = await stub.BeginDirectUpload(_begin(declared), metadata=_auth(config))
        _put(grant, sent)
        request = documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(request, metadata=_auth(config))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not the declared" in err.value.details()
        for content in (declared, sent):
            ref = f"sha256/{hashlib.sha256(content).hexdigest()}"
            assert not store.exists(ref)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Stat(
                    documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref=ref)),
                    metadata=_auth(config),
                )
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert _staging_versions(direct_server, grant.upload_id) == []
        # the upload is closed: putting the right bytes now does not revive it
        _put(grant, declared)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(request, metadata=_auth(config))
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "refused" in err.value.details()
    with direct_server.app.engine.connect() as conn:
        catalogued = conn.execute(sa.text("SELECT count(*) FROM catalogue_documents")).scalar()
    assert catalogued == 0


async def test_nothing_uploaded_expired_and_another_clients_upload_are_refused(
    direct_server: Server,
) -> None:
    config = direct_server.config
    data = b"a document for one client only"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{direct_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        grant = await stub.BeginDirectUpload(_begin(data), metadata=_auth(config))
        request = documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(request, metadata=_auth(config))
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "PUT the bytes" in err.value.details()
        _put(grant, data)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(request, metadata=_auth(config, "other"))
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(
                documents_pb2.CompleteDirectUploadRequest(upload_id="never-begun-upload-id"),
                metadata=_auth(config),
            )
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

        # the upload's time passes (set in the database: tests do not wait on clocks)
        with direct_server.app.engine.begin() as conn:
            conn.execute(
                direct_uploads.update()
                .where(direct_uploads.c.upload_id == grant.upload_id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CompleteDirectUpload(request, metadata=_auth(config))
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "expired" in err.value.details()
        assert _staging_versions(direct_server, grant.upload_id) == []
        assert not direct_server.app.store.exists(f"sha256/{hashlib.sha256(data).hexdigest()}")
    assert [row.state for row in _uploads(direct_server)] == ["expired"]


async def test_a_size_over_the_limit_or_no_digest_gets_no_url(direct_server: Server) -> None:
    config = direct_server.config
    limit = config.signing.max_document_bytes
    async with grpc.aio.insecure_channel(f"127.0.0.1:{direct_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        for request, field in (
            (_begin(b"", sha256="ab" * 32, size=limit + 1), "size"),
            (documents_pb2.BeginDirectUploadRequest(size=10), "sha256"),
            (_begin(b"", sha256="not hex"), "sha256"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.BeginDirectUpload(request, metadata=_auth(config))
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert bad_request_field(err.value) == field
        # an auditor may not upload at all
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.BeginDirectUpload(_begin(b"x"), metadata=_auth(config, "auditor"))
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert _uploads(direct_server) == []


async def _kyso(config: Config, port: int, *args: str) -> tuple[int, str, str]:
    assert config.source is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kyso.cli.main",
        *args,
        "--server",
        f"127.0.0.1:{port}",
        "--config",
        str(config.source),
        env={**os.environ, "KYSO_API_TOKEN": token(config, "workflow")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _rpcs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.rpc.rsplit("/", 1)[-1]
        for r in caplog.records
        if r.name == "kyso.interceptors" and hasattr(r, "rpc")
    ]


async def test_the_cli_uses_direct_transfer_when_offered(
    direct_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kyso.interceptors")
    config = direct_server.config
    source = tmp_path / "quyet-dinh.pdf"
    data = os.urandom(2 * 1024 * 1024 + 1)
    source.write_bytes(data)
    ref = f"sha256/{hashlib.sha256(data).hexdigest()}"

    code, out, err = await _kyso(config, direct_server.port, "upload", str(source), "--json")
    assert code == 0, err
    assert json.loads(out)["ref"] == ref
    assert _rpcs(caplog) == ["BeginDirectUpload", "CompleteDirectUpload"]
    assert [row.state for row in _uploads(direct_server)] == ["completed"]

    caplog.clear()
    target = tmp_path / "copy.pdf"
    code, out, err = await _kyso(config, direct_server.port, "download", ref, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes() == data
    assert _rpcs(caplog) == ["GetDownloadUrl"]

    caplog.clear()
    again = tmp_path / "again.pdf"
    code, _, err = await _kyso(
        config, direct_server.port, "download", ref, "-o", str(again), "--no-direct"
    )
    assert code == 0, err
    assert again.read_bytes() == data
    code, out, err = await _kyso(config, direct_server.port, "upload", str(source), "--no-direct")
    assert code == 0, err
    assert out.strip() == ref
    # a small file streams: one object write rather than a staging object and a copy
    small = tmp_path / "small.pdf"
    small.write_bytes(os.urandom(DIRECT_MIN_BYTES - 1))
    code, out, err = await _kyso(config, direct_server.port, "upload", str(small))
    assert code == 0, err
    assert _rpcs(caplog) == ["Download", "Upload", "Upload"]


# ---------------------------------------------------------------- no direct transfer


async def test_a_filesystem_store_offers_no_direct_transfer(channel, config) -> None:
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BeginDirectUpload(_begin(b"data"), metadata=_auth(config))
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "Upload" in err.value.details()
    stored = await stub.Upload(
        iter(
            [
                documents_pb2.UploadRequest(metadata=documents_pb2.UploadMetadata()),
                documents_pb2.UploadRequest(chunk=b"data"),
            ]
        ),
        metadata=_auth(config),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetDownloadUrl(
            documents_pb2.GetDownloadUrlRequest(ref=stored.ref), metadata=_auth(config)
        )
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "Download" in err.value.details()


def test_direct_transfer_needs_an_s3_store(write_config: Callable[..., Path]) -> None:
    path = write_config("")
    path.write_text(path.read_text().replace("[storage]\n", "[storage]\ndirect_transfer = true\n"))
    with pytest.raises(ConfigError, match="storage.direct_transfer"):
        load_config(path)


async def test_the_cli_falls_back_to_streaming(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kyso.interceptors")
    config = server.config
    source = tmp_path / "to-send.pdf"
    data = os.urandom(DIRECT_MIN_BYTES)
    source.write_bytes(data)
    code, out, err = await _kyso(config, server.port, "upload", str(source))
    assert code == 0, err
    ref = out.strip()
    target = tmp_path / "back.pdf"
    code, _, err = await _kyso(config, server.port, "download", ref, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes() == data
    assert _rpcs(caplog) == ["BeginDirectUpload", "Upload", "GetDownloadUrl", "Download"]
