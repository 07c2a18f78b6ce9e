"""Direct transfer on the S3 adapter, against a real Ceph RADOS Gateway: a client PUTs to a
presigned staging URL; adoption checks size and SHA-256 before anything reaches the content
address, and a refused or missing upload leaves nothing there."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pytest
import urllib3

from storage import (
    DeclaredHashMismatch,
    DirectTransferStore,
    FilesystemStore,
    ObjectRef,
    Retention,
    RetentionMode,
    S3Store,
    StagedObjectMissing,
)
from tests.storage.conftest import MiB, pseudo_random_bytes, raw_client, s3_store
from tests.support.rgw import RgwHandle

pytestmark = pytest.mark.s3

_http = urllib3.PoolManager()


def _name() -> str:
    return secrets.token_urlsafe(24)


def _stage(store: S3Store, name: str, data: bytes) -> None:
    put = store.staging_put(name, expires=timedelta(minutes=5), content_type="application/pdf")
    answer = _http.request("PUT", put.url, body=data, headers=dict(put.headers))
    assert answer.status == 200, answer.data


def _versions(rgw: RgwHandle, store: S3Store, key: str) -> list[str]:
    listed = raw_client(rgw).list_objects(store.config.bucket, prefix=key, include_version=True)
    return [str(o.version_id) for o in listed if o.object_name == key]


def test_the_filesystem_store_has_no_direct_transfer(tmp_path) -> None:
    assert not isinstance(FilesystemStore(tmp_path / "store"), DirectTransferStore)


@pytest.mark.parametrize(
    "size",
    [1000, 9 * MiB + 7],  # put again from memory; copied server-side (over 1 MiB)
)
def test_a_staged_upload_is_checked_then_adopted_with_retention(rgw: RgwHandle, size: int) -> None:
    store = s3_store(rgw)  # object lock on, as production buckets are
    assert isinstance(store, DirectTransferStore)
    data = pseudo_random_bytes(size)
    digest = hashlib.sha256(data).hexdigest()
    name = _name()
    _stage(store, name, data)
    stored = store.adopt_staged(
        name,
        sha256=digest,
        size=len(data),
        content_type="application/pdf",
        metadata={"uploader": "wf"},
        retention=Retention(RetentionMode.GOVERNANCE, 1),
    )
    assert stored.ref == ObjectRef(digest)
    described = store.stat(stored.ref)
    assert described.size == len(data)
    assert described.content_type == "application/pdf"
    assert described.metadata["uploader"] == "wf"
    assert described.retention is not None
    assert described.retention.mode is RetentionMode.GOVERNANCE
    with store.open(stored.ref) as reader:
        assert reader.read() == data
    assert list(store.iter_refs()) == [stored.ref]  # the staging object is not a document
    store.discard_staged(name)
    assert _versions(rgw, store, f"staging/{name}") == []
    store.discard_staged(name)  # idempotent


def test_other_bytes_than_declared_reach_no_content_address(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    declared = b"the document the client declared"
    sent = b"the document the client declared, and more"
    name = _name()
    _stage(store, name, sent)
    # wrong size: refused before the bytes are read
    with pytest.raises(DeclaredHashMismatch, match="bytes, not the declared"):
        store.adopt_staged(
            name,
            sha256=hashlib.sha256(declared).hexdigest(),
            size=len(declared),
            content_type="text/plain",
            metadata={},
        )
    # right size, wrong digest
    with pytest.raises(DeclaredHashMismatch, match="not the declared"):
        store.adopt_staged(
            name,
            sha256=hashlib.sha256(declared).hexdigest(),
            size=len(sent),
            content_type="text/plain",
            metadata={},
        )
    for content in (declared, sent):
        assert not store.exists(ObjectRef(hashlib.sha256(content).hexdigest()))
    assert list(store.iter_refs()) == []
    store.discard_staged(name)
    assert _versions(rgw, store, f"staging/{name}") == []


def test_nothing_staged_is_refused(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    with pytest.raises(StagedObjectMissing, match="PUT the bytes"):
        store.adopt_staged(_name(), sha256="0" * 64, size=0, content_type="text/plain", metadata={})


def test_every_version_of_a_staging_key_is_discarded(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    name = _name()
    for n in range(3):  # a client that PUT three times
        _stage(store, name, b"try %d" % n)
    assert len(_versions(rgw, store, f"staging/{name}")) == 3
    stored = store.adopt_staged(
        name,
        sha256=hashlib.sha256(b"try 2").hexdigest(),
        size=5,
        content_type="text/plain",
        metadata={},
    )
    store.discard_staged(name)
    assert _versions(rgw, store, f"staging/{name}") == []
    with store.open(stored.ref) as reader:
        assert reader.read() == b"try 2"


def test_staging_names_and_expiry_are_bounded(rgw: RgwHandle) -> None:
    store = s3_store(rgw)
    with pytest.raises(ValueError, match="staging name"):
        store.staging_put("../sha256/x", expires=timedelta(minutes=1), content_type="")
    with pytest.raises(ValueError, match="expire"):
        store.staging_put(_name(), expires=timedelta(days=8), content_type="")
