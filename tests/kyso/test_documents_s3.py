"""DocumentService on the S3 store (a real Ceph RADOS Gateway): round trip, the gateway killed
mid-run (UNAVAILABLE, health NOT_SERVING, both recover, nothing acknowledged lost), and the
start-up check over an S3 bucket."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from minio import Minio

import storage
from kyso import db
from kyso.app import Application, components
from kyso.catalogue import Catalogue, CatalogueEntry
from kyso.config import Config, load_config
from kyso.reconcile import reconcile
from kyso.server import Server
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc
from tests.storage.conftest import incomplete_uploads, raw_client
from tests.support.rgw import RgwHandle, new_bucket_name

from .conftest import token

# The first test in a process starts the Ceph gateway (tests/support/rgw.py): minutes on a
# busy machine, counted in that test's time.
pytestmark = [pytest.mark.s3, pytest.mark.timeout(900)]

MiB = 1024 * 1024
DOCUMENTS = "kyso.v1.DocumentService"


def _auth(config: Config) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(config, 'workflow')}")]


def _upload_requests(data: bytes, *, chunk: int = 256 * 1024):
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename="văn bản.pdf",
            content_type="application/pdf",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
    )
    for start in range(0, len(data), chunk):
        yield documents_pb2.UploadRequest(chunk=data[start : start + chunk])


async def _download(stub, ref: common_pb2.DocumentRef, config: Config) -> bytes:
    pieces = [
        p.chunk
        async for p in stub.Download(
            documents_pb2.DownloadRequest(ref=ref), metadata=_auth(config), timeout=60
        )
    ]
    return b"".join(pieces)


@pytest.fixture
def s3_credentials_env(rgw: RgwHandle) -> Iterator[None]:
    """The gateway's keys in the environment, as ``open_store`` reads them; restored after."""
    names = ("KYSO_S3_ACCESS_KEY", "KYSO_S3_SECRET_KEY")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["KYSO_S3_ACCESS_KEY"] = rgw.access_key
    os.environ["KYSO_S3_SECRET_KEY"] = rgw.secret_key
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_config(write_config: Callable[[str], Path], rgw: RgwHandle, s3_credentials_env) -> Config:
    path = write_config("")
    text = path.read_text().replace(
        "[storage]\n",
        f'[storage]\nbackend = "s3"\n\n[storage.s3]\nendpoint = "{rgw.endpoint}"\n'
        f'bucket = "{new_bucket_name("docs")}"\nsecure = false\n\n[storage.filesystem_unused]\n',
        1,
    )
    # The base configuration's filesystem path stays under a section nobody reads: drop it.
    text = text.replace("[storage.filesystem_unused]\n", "")
    lines = [line for line in text.splitlines() if not line.startswith("path = ")]
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


@pytest.fixture
async def s3_server(s3_config: Config) -> AsyncIterator[Server]:
    app = Application.open(s3_config)
    srv = Server(s3_config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def _health(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=DOCUMENTS), timeout=5
    )
    return int(answer.status)


async def _wait_for_health(channel: grpc.aio.Channel, wanted: int, *, within: float = 60) -> None:
    import asyncio

    deadline = time.monotonic() + within
    while (status := await _health(channel)) != wanted:
        assert time.monotonic() < deadline, f"health stayed {status}, wanted {wanted}"
        await asyncio.sleep(0.1)


async def test_round_trip_through_the_s3_store(s3_server: Server) -> None:
    config = s3_server.config
    assert isinstance(s3_server.app.store, storage.S3Store)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s3_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        for size in (0, 1000, 20 * MiB + 3):  # empty, one PUT, multipart
            data = os.urandom(size)
            stored = await stub.Upload(_upload_requests(data), metadata=_auth(config))
            assert stored.sha256 == hashlib.sha256(data).hexdigest()
            assert await _download(stub, stored.ref, config) == data
            request = documents_pb2.StatRequest(ref=stored.ref)
            info = await stub.Stat(request, metadata=_auth(config))
            assert info.document.size == size


async def test_a_wrong_declared_sha256_stores_nothing_at_either_address(
    s3_server: Server, rgw: RgwHandle
) -> None:
    config = s3_server.config
    store = s3_server.app.store
    assert isinstance(store, storage.S3Store)
    data = os.urandom(20 * MiB + 5)  # more than one part: the streaming multipart upload
    declared = hashlib.sha256(data[:-1]).hexdigest()

    def requests() -> Iterator[documents_pb2.UploadRequest]:
        first, *rest = _upload_requests(data)
        first.metadata.sha256 = declared
        yield first
        yield from rest

    async with grpc.aio.insecure_channel(f"127.0.0.1:{s3_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Upload(requests(), metadata=_auth(config), timeout=60)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "declared" in err.value.details()
    assert not store.exists(storage.ObjectRef(declared))
    assert not store.exists(storage.ObjectRef(hashlib.sha256(data).hexdigest()))
    assert incomplete_uploads(raw_client(rgw), store.config.bucket) == []


async def test_a_download_abandoned_midway_leaves_the_service_serving(s3_server: Server) -> None:
    config = s3_server.config
    data = os.urandom(12 * MiB)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s3_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        stored = await stub.Upload(_upload_requests(data), metadata=_auth(config))
        for _ in range(3):
            call = stub.Download(
                documents_pb2.DownloadRequest(ref=stored.ref), metadata=_auth(config), timeout=60
            )
            assert len((await call.read()).chunk) > 0
            call.cancel()
        assert await _download(stub, stored.ref, config) == data


async def test_gateway_killed_mid_run_is_unavailable_then_recovers_losing_nothing(
    s3_server: Server, rgw: RgwHandle
) -> None:
    config = s3_server.config
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s3_server.port}") as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        acked: dict[str, bytes] = {}
        for _ in range(5):
            data = os.urandom(300_000)
            stored = await stub.Upload(_upload_requests(data), metadata=_auth(config))
            acked[stored.ref.ref] = data
        await _wait_for_health(channel, health_pb2.HealthCheckResponse.SERVING)

        rgw.kill()
        try:
            await _wait_for_health(channel, health_pb2.HealthCheckResponse.NOT_SERVING)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Upload(
                    _upload_requests(os.urandom(100_000)), metadata=_auth(config), timeout=60
                )
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "cannot be reached" in err.value.details()
            first = next(iter(acked))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _download(stub, common_pb2.DocumentRef(ref=first), config)
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            # The catalogue is in the database, which is up: Stat still answers.
            info = await stub.Stat(
                documents_pb2.StatRequest(ref=common_pb2.DocumentRef(ref=first)),
                metadata=_auth(config),
            )
            assert info.document.size == 300_000
        finally:
            rgw.restart()

        await _wait_for_health(channel, health_pb2.HealthCheckResponse.SERVING)
        data = os.urandom(200_000)
        stored = await stub.Upload(_upload_requests(data), metadata=_auth(config), timeout=60)
        acked[stored.ref.ref] = data
        for ref, data in acked.items():
            assert await _download(stub, common_pb2.DocumentRef(ref=ref), config) == data


def test_start_up_check_over_an_s3_bucket(rgw: RgwHandle, sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        db.upgrade(engine, components())
        catalogue = Catalogue(engine)
        store = storage.S3Store(
            storage.S3Config(endpoint=rgw.endpoint, bucket=new_bucket_name("rec"), secure=False),
            credentials=storage.S3Credentials(access_key=rgw.access_key, secret_key=rgw.secret_key),
        )
        both, orphans = [], []
        for i in range(6):
            stored = store.put(b"s3 document %d" % i, content_type="application/pdf", metadata={})
            if i % 2:
                orphans.append(str(stored.ref))
            else:
                both.append(str(stored.ref))
                catalogue.record(
                    CatalogueEntry(ref=str(stored.ref), size=stored.size, content_type="x/y")
                )
        missing = f"sha256/{hashlib.sha256(b'never stored').hexdigest()}"
        catalogue.record(CatalogueEntry(ref=missing, size=12, content_type="x/y"))

        listed = [str(ref) for ref in store.iter_refs()]
        assert listed == sorted(both + orphans)

        report = reconcile(store=store, catalogue=catalogue, min_age=timedelta(0))
        assert report.missing == (missing,)
        assert sorted(report.catalogued) == sorted(orphans)
        assert catalogue.get(orphans[0]).size == len(b"s3 document 1")
        assert catalogue.get(missing).size == 12  # kept
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(900)  # a thousand uploads and kills; slow on a busy machine
def test_sigkill_during_uploads_to_s3_loses_nothing(
    s3_config: Config, rgw: RgwHandle, tmp_path: Path
) -> None:
    from .test_storage_faults import _free_port, catalogue_against, uploads_under_sigkill

    assert s3_config.source is not None
    port = _free_port()
    text = s3_config.source.read_text()
    s3_config.source.write_text(
        text.replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"')
    )
    env = {
        **os.environ,
        "KYSO_S3_ACCESS_KEY": rgw.access_key,
        "KYSO_S3_SECRET_KEY": rgw.secret_key,
    }
    # 300 rather than 1,000: each S3 upload is a HEAD and a PUT on a shared gateway.
    run = uploads_under_sigkill(s3_config.source, port, tmp_path / "serve.log", env=env, total=300)

    # Nothing partial is visible: every object in the bucket hashes to its key.
    raw = Minio(rgw.endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, secure=False)
    bucket = s3_config.storage.s3.bucket
    keys = [o.object_name for o in raw.list_objects(bucket, recursive=True)]
    assert len(keys) == len(set(run.acked.values()))
    for key in keys:
        response = raw.get_object(bucket, key)
        try:
            assert key == f"sha256/{hashlib.sha256(response.read()).hexdigest()}"
        finally:
            response.close()
            response.release_conn()
    store = storage.S3Store(
        storage.S3Config(endpoint=rgw.endpoint, bucket=bucket, secure=False),
        credentials=storage.S3Credentials(access_key=rgw.access_key, secret_key=rgw.secret_key),
    )
    report = catalogue_against(store, s3_config.database.url)
    assert report.complete
    assert report.missing == ()
    assert report.rows_checked == report.objects_checked == len(run.acked)
