"""Stores under test: each contract test runs on the filesystem adapter and on S3 (Ceph RGW).

``store_kit`` bundles a fresh store with the out-of-band tools a test needs to break it
(``corrupt``) and to look behind it (``object_count``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio

from storage import FilesystemStore, ObjectRef, ObjectStore, S3Config, S3Credentials, S3Store
from tests.support.rgw import RgwHandle, new_bucket_name

MiB = 1024 * 1024


@dataclass(frozen=True)
class StoreKit:
    store: ObjectStore
    kind: str
    corrupt: Callable[[ObjectRef, bytes], None]
    """Replace the stored bytes of ``ref`` behind the store's back."""
    object_count: Callable[[ObjectRef], int]
    """How many physical copies (files, S3 object versions) hold ``ref``."""


def raw_client(rgw: RgwHandle) -> Minio:
    return Minio(rgw.endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, secure=False)


def incomplete_uploads(client: Minio, bucket: str) -> list[str]:
    """Keys of the bucket's multipart uploads that were started and neither completed nor
    aborted (invisible as objects, but they would still hold space).

    ListMultipartUploads is private in minio-py too; test_minio_private.py pins it."""
    return [upload.object_name for upload in client._list_multipart_uploads(bucket).uploads]


def s3_config(rgw: RgwHandle, **overrides: object) -> S3Config:
    settings: dict[str, object] = {
        "endpoint": rgw.endpoint,
        "bucket": new_bucket_name(),
        "secure": False,
        "object_lock": True,
        "part_size": 8 * MiB,
        "spool_memory_bytes": 4 * MiB,
    }
    settings.update(overrides)
    return S3Config(**settings)  # type: ignore[arg-type]


def s3_store(rgw: RgwHandle, **overrides: object) -> S3Store:
    creds = S3Credentials(access_key=rgw.access_key, secret_key=rgw.secret_key)
    return S3Store(s3_config(rgw, **overrides), credentials=creds)


def filesystem_kit(root: Path) -> StoreKit:
    store = FilesystemStore(root)

    def path(ref: ObjectRef) -> Path:
        return root / "objects" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256

    def corrupt(ref: ObjectRef, data: bytes) -> None:
        os.chmod(path(ref), 0o644)
        path(ref).write_bytes(data)

    def object_count(ref: ObjectRef) -> int:
        return sum(1 for p in path(ref).parent.iterdir() if p.name == ref.sha256)

    return StoreKit(store=store, kind="filesystem", corrupt=corrupt, object_count=object_count)


def s3_kit(rgw: RgwHandle) -> StoreKit:
    store = s3_store(rgw)
    raw = raw_client(rgw)
    bucket = store.config.bucket

    def corrupt(ref: ObjectRef, data: bytes) -> None:
        import io

        # A new version under the same key, as a careless tool with write access would do.
        raw.put_object(bucket, str(ref), io.BytesIO(data), len(data))

    def object_count(ref: ObjectRef) -> int:
        listed = raw.list_objects(bucket, prefix=str(ref), include_version=True)
        return sum(1 for o in listed if o.object_name == str(ref))

    return StoreKit(store=store, kind="s3", corrupt=corrupt, object_count=object_count)


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> StoreKit:
    if request.param == "filesystem":
        return filesystem_kit(tmp_path / "store")
    return s3_kit(request.getfixturevalue("rgw"))


def pseudo_random_chunks(total: int, *, chunk: int = MiB, seed: int = 7) -> Iterator[bytes]:
    """Yield ``total`` bytes of reproducible, incompressible data in chunks, made on the fly."""
    import hashlib

    block = hashlib.sha512(str(seed).encode()).digest() * (chunk // 64)
    made = 0
    counter = 0
    while made < total:
        # Vary every chunk so that the content is not a repetition of one block.
        piece = counter.to_bytes(8, "big") + block[8:]
        piece = piece[: min(chunk, total - made)]
        made += len(piece)
        counter += 1
        yield piece


def pseudo_random_bytes(total: int, *, seed: int = 7) -> bytes:
    return b"".join(pseudo_random_chunks(total, seed=seed))
