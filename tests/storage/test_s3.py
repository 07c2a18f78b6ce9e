"""S3-only behaviour, shown against a real Ceph RADOS Gateway: object lock, credentials, the
gateway's interoperability quirks, outages, presigned downloads, bucket set-up."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from minio.commonconfig import COMPLIANCE, ENABLED
from minio.error import S3Error
from minio.retention import Retention as MinioRetention

from storage import (
    CredentialsRejected,
    DeclaredHashMismatch,
    ObjectRef,
    Retention,
    RetentionMode,
    S3Config,
    S3Credentials,
    S3Store,
    StorageConfigError,
    StorageUnavailable,
)
from storage.s3 import _parts, parse_s3_datetime
from tests.storage.conftest import (
    MiB,
    incomplete_uploads,
    pseudo_random_bytes,
    raw_client,
    s3_config,
    s3_store,
)
from tests.support.rgw import RgwHandle, new_bucket_name

pytestmark = pytest.mark.s3


def _put(store: S3Store, data: bytes, retention: Retention | None = None) -> ObjectRef:
    return store.put(
        io.BytesIO(data), content_type="application/pdf", metadata={}, retention=retention
    ).ref


def test_compliance_retention_cannot_be_deleted_or_shortened(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    ref = _put(store, b"signed document", Retention(mode=RetentionMode.COMPLIANCE, days=2))
    stat = store.stat(ref)
    assert stat.retention is not None
    assert stat.retention.mode is RetentionMode.COMPLIANCE
    raw = raw_client(rgw)
    bucket = store.config.bucket
    version = raw.stat_object(bucket, str(ref)).version_id
    assert version

    with pytest.raises(S3Error) as deleting:
        raw.remove_object(bucket, str(ref), version_id=version)
    assert deleting.value.code == "AccessDenied"
    shorter = MinioRetention(COMPLIANCE, datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(S3Error) as shortening:
        raw.set_object_retention(bucket, str(ref), shorter, version_id=version)
    assert shortening.value.code == "AccessDenied"

    after = store.stat(ref)
    assert after.retention == stat.retention
    with store.open(ref) as reader:
        assert reader.read() == b"signed document"


def test_wrong_credentials_are_refused_with_a_clear_error(rgw: RgwHandle) -> None:
    good = s3_store(rgw)
    good.check()  # creates the bucket
    for creds in (
        S3Credentials(access_key=rgw.access_key, secret_key="not-the-secret"),
        S3Credentials(access_key="NOSUCHKEY", secret_key=rgw.secret_key),
    ):
        bad = S3Store(good.config, credentials=creds)
        with pytest.raises(CredentialsRejected, match="refused the credentials") as refused:
            bad.put(io.BytesIO(b"x"), content_type="text/plain", metadata={})
        assert rgw.secret_key not in str(refused.value)
        assert "not-the-secret" not in str(refused.value)
        with pytest.raises(CredentialsRejected):
            bad.check()
    assert "not-the-secret" not in repr(
        S3Credentials(access_key=rgw.access_key, secret_key="not-the-secret")
    )


def test_quirk_complete_multipart_upload_returns_an_empty_etag(rgw: RgwHandle) -> None:
    store = s3_store(rgw, part_size=5 * MiB)
    data = pseudo_random_bytes(12 * MiB, seed=21)
    raw = raw_client(rgw)
    store.check()
    result = raw.put_object(
        store.config.bucket, "quirk/multipart", io.BytesIO(data), len(data), part_size=5 * MiB
    )
    assert not result.etag  # the gateway's answer to CompleteMultipartUpload carries no ETag

    stored = store.put(io.BytesIO(data), content_type="application/pdf", metadata={})
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    with store.open(stored.ref) as reader:
        assert hashlib.sha256(b"".join(reader.chunks())).hexdigest() == stored.sha256


def test_quirk_retention_dates_with_nanoseconds_are_read(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    before = datetime.now(UTC)
    ref = _put(store, b"retained", Retention(mode=RetentionMode.GOVERNANCE, days=1))
    with pytest.raises(ValueError, match="does not match format"):
        raw_client(rgw).get_object_retention(store.config.bucket, str(ref))
    state = store.stat(ref).retention
    assert state is not None
    assert state.mode is RetentionMode.GOVERNANCE
    assert before + timedelta(days=1) - timedelta(minutes=5) < state.retain_until
    assert state.retain_until < before + timedelta(days=1, minutes=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T12:55:36.184000000Z", datetime(2026, 11, 30, 12, 55, 36, 184000, UTC)),
        ("2026-11-30T12:55:36.123456789Z", datetime(2026, 11, 30, 12, 55, 36, 123456, UTC)),
        ("2026-11-30T12:55:36Z", datetime(2026, 11, 30, 12, 55, 36, tzinfo=UTC)),
        ("2026-11-30T12:55:36.5+00:00", datetime(2026, 11, 30, 12, 55, 36, 500000, UTC)),
    ],
)
def test_s3_dates_parse_with_any_fraction(text: str, expected: datetime) -> None:
    assert parse_s3_datetime(text) == expected


@pytest.mark.parametrize("part", [7, 10, 1000, 33_334, 100_003, 200_000])
@pytest.mark.parametrize("chunk", [1, 3, 10, 999, 1000, 4096, 100_003, 300_000])
def test_parts_regroup_any_chunks_into_whole_parts(part: int, chunk: int) -> None:
    data = bytes(range(256)) * 390 + b"end"  # 100,003 bytes
    digest = hashlib.sha256()
    parts = list(_parts((data[i : i + chunk] for i in range(0, len(data), chunk)), digest, part))
    assert b"".join(parts) == data
    assert all(len(p) == part for p in parts[:-1])
    assert 0 < len(parts[-1]) <= part
    assert digest.digest() == hashlib.sha256(data).digest()


def test_parts_of_empty_content_is_one_empty_part_and_a_whole_part_is_not_copied() -> None:
    assert list(_parts(iter([]), hashlib.sha256(), 10)) == [b""]
    whole = bytes(range(16))
    assert next(_parts([whole], hashlib.sha256(), 16)) is whole


def test_bucket_is_created_with_versioning(rgw: RgwHandle) -> None:
    store = s3_store(rgw, object_lock=False)
    raw = raw_client(rgw)
    assert not raw.bucket_exists(store.config.bucket)
    store.check()
    assert raw.bucket_exists(store.config.bucket)
    assert raw.get_bucket_versioning(store.config.bucket).status == ENABLED


def test_object_lock_on_a_bucket_made_without_it_is_a_config_error(rgw: RgwHandle) -> None:
    bucket = new_bucket_name()
    raw_client(rgw).make_bucket(bucket)
    with pytest.raises(StorageConfigError, match="without object lock"):
        s3_store(rgw, bucket=bucket, object_lock=True).check()


def test_presigned_get_downloads_without_credentials(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    ref = _put(store, b"public for a minute")
    url = store.presigned_get_url(ref, expires=timedelta(minutes=1))
    assert rgw.secret_key not in url
    answer = urllib3.PoolManager().request("GET", url)
    assert answer.status == 200
    assert answer.data == b"public for a minute"
    with pytest.raises(ValueError, match="expire"):
        store.presigned_get_url(ref, expires=timedelta(days=8))


def test_credentials_come_from_environment_or_files(tmp_path: Path) -> None:
    direct = S3Credentials.from_env({"KYSO_S3_ACCESS_KEY": "AK", "KYSO_S3_SECRET_KEY": "SK"})
    assert (direct.access_key, direct.secret_key) == ("AK", "SK")
    (tmp_path / "secret").write_text("SK2\n")
    from_file = S3Credentials.from_env(
        {"KYSO_S3_ACCESS_KEY": "AK", "KYSO_S3_SECRET_KEY_FILE": str(tmp_path / "secret")}
    )
    assert from_file.secret_key == "SK2"
    with pytest.raises(StorageConfigError, match="KYSO_S3_SECRET_KEY"):
        S3Credentials.from_env({"KYSO_S3_ACCESS_KEY": "AK"})


def test_config_rejects_a_scheme_in_the_endpoint() -> None:
    with pytest.raises(StorageConfigError, match="without a scheme"):
        S3Config(endpoint="http://127.0.0.1:9000", bucket="b")


@pytest.mark.slow
def test_gateway_killed_then_restarted_loses_nothing(rgw: RgwHandle) -> None:
    store = s3_store(rgw, retries=1, backoff_seconds=0.05, connect_timeout=1.0)
    acknowledged = {
        _put(store, f"document {i}".encode()): f"document {i}".encode() for i in range(20)
    }
    rgw.kill()
    try:
        with pytest.raises(StorageUnavailable, match="cannot be reached"):
            store.check()
        with pytest.raises(StorageUnavailable):
            _put(store, b"written during the outage")
        with pytest.raises(StorageUnavailable):
            store.open(next(iter(acknowledged)))
        with pytest.raises(StorageUnavailable):
            store.stat(next(iter(acknowledged)))
    finally:
        rgw.restart()
    store.check()
    for ref, data in acknowledged.items():
        with store.open(ref) as reader:
            assert reader.read() == data
    assert store.exists(_put(store, b"written after the outage"))


@pytest.mark.slow
def test_a_put_during_a_short_outage_is_retried_with_backoff(rgw: RgwHandle) -> None:
    # Retry budget ≈ 0 + 0.4 + 0.8 + 1.6 + 3.2 + 6.4 + 12.8 s: far longer than a restart.
    store = s3_store(rgw, retries=8, backoff_seconds=0.2, connect_timeout=1.0)
    store.check()
    rgw.kill()
    outcome: dict[str, object] = {}

    def writer() -> None:
        try:
            outcome["ref"] = _put(store, b"sent while the gateway was down")
        except BaseException as exc:  # asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        # The first connection attempts are refused while the gateway is down.
        thread.join(timeout=0.5)
    finally:
        rgw.restart()
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    ref = outcome["ref"]
    assert isinstance(ref, ObjectRef)
    with store.open(ref) as reader:
        assert reader.read() == b"sent while the gateway was down"


def test_config_of_an_unused_store_names_no_secret(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    assert rgw.secret_key not in repr(store)
    assert rgw.secret_key not in repr(store.config)
    assert isinstance(s3_config(rgw), S3Config)


def _in_chunks(data: bytes, size: int = 700_000) -> Iterator[bytes]:
    """Chunks that do not line up with the parts, as a gRPC stream delivers them."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _incomplete_uploads(rgw: RgwHandle, store: S3Store) -> list[str]:
    return incomplete_uploads(raw_client(rgw), store.config.bucket)


def test_a_declared_digest_streams_into_a_multipart_upload(rgw: RgwHandle) -> None:
    store = s3_store(rgw, part_size=5 * MiB)
    data = pseudo_random_bytes(12 * MiB + 123, seed=31)
    digest = hashlib.sha256(data).hexdigest()
    stored = store.put(
        _in_chunks(data),
        content_type="application/pdf",
        metadata={"title": "công văn"},
        expected_sha256=digest,
        retention=Retention(mode=RetentionMode.GOVERNANCE, days=1),
    )
    assert stored.sha256 == digest
    assert stored.size == len(data)
    assert dict(stored.metadata) == {"title": "công văn"}
    assert stored.retention is not None
    assert stored.retention.mode is RetentionMode.GOVERNANCE
    with store.open(stored.ref) as reader:
        assert hashlib.sha256(b"".join(reader.chunks())).hexdigest() == digest
    assert _incomplete_uploads(rgw, store) == []
    # Re-put of stored content: the bytes are still checked, nothing is uploaded again.
    again = store.put(
        _in_chunks(data), content_type="application/pdf", metadata={}, expected_sha256=digest
    )
    assert again.ref == stored.ref
    with pytest.raises(DeclaredHashMismatch, match="nothing was stored"):
        store.put(
            _in_chunks(data[:-1] + b"x"),
            content_type="application/pdf",
            metadata={},
            expected_sha256=digest,
        )


@pytest.mark.parametrize("size", [3 * MiB, 12 * MiB], ids=["one-put", "multipart"])
def test_a_wrong_declared_digest_leaves_nothing(rgw: RgwHandle, size: int) -> None:
    store = s3_store(rgw, part_size=5 * MiB)
    data = pseudo_random_bytes(size, seed=32)
    declared = hashlib.sha256(data + b"the bytes the client meant").hexdigest()
    with pytest.raises(DeclaredHashMismatch, match="nothing was stored"):
        store.put(
            _in_chunks(data), content_type="application/pdf", metadata={}, expected_sha256=declared
        )
    assert not store.exists(ObjectRef(declared))
    assert not store.exists(ObjectRef(hashlib.sha256(data).hexdigest()))
    assert _incomplete_uploads(rgw, store) == []
    assert list(store.iter_refs()) == []


def test_gateway_killed_mid_streaming_upload_loses_nothing_acknowledged(rgw: RgwHandle) -> None:
    store = s3_store(rgw, part_size=5 * MiB, retries=1, backoff_seconds=0.05, connect_timeout=1.0)
    acknowledged = {}
    for seed in (41, 42):
        data = pseudo_random_bytes(11 * MiB, seed=seed)
        ref = store.put(
            _in_chunks(data),
            content_type="application/pdf",
            metadata={},
            expected_sha256=hashlib.sha256(data).hexdigest(),
        ).ref
        acknowledged[ref] = data
    lost = pseudo_random_bytes(16 * MiB, seed=43)

    def killed_after_two_parts() -> Iterator[bytes]:
        for n, chunk in enumerate(_in_chunks(lost, MiB)):
            if n == 11:  # two 5 MiB parts are on their way or stored
                rgw.kill()
            yield chunk

    try:
        with pytest.raises(StorageUnavailable):
            store.put(
                killed_after_two_parts(),
                content_type="application/pdf",
                metadata={},
                expected_sha256=hashlib.sha256(lost).hexdigest(),
            )
    finally:
        rgw.restart()
    store.check()
    assert not store.exists(ObjectRef(hashlib.sha256(lost).hexdigest()))
    for ref, data in acknowledged.items():
        with store.open(ref) as reader:
            assert (
                hashlib.sha256(b"".join(reader.chunks())).digest() == hashlib.sha256(data).digest()
            )
    # The interrupted upload is sent again after the restart and completes.
    again = store.put(
        _in_chunks(lost),
        content_type="application/pdf",
        metadata={},
        expected_sha256=hashlib.sha256(lost).hexdigest(),
    )
    assert again.size == len(lost)
