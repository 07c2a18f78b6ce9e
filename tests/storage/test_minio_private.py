"""What kyso relies on in the minio SDK's private API (``storage/_minio_private.py``), pinned.

Three kinds of checks, each failing with a message that names the call that changed:
- the signatures of the private ``Minio`` methods (no server needed): an upgrade that drops or
  renames one, or a parameter kyso passes, or adds a required one, fails here first;
- a real round trip of each call through the Ceph RADOS Gateway: create → parts → complete
  gives the object with our headers and bytes; create → part → abort leaves nothing;
- no other production module touches a private ``Minio`` name.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import minio
import pytest
from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error

from storage import _minio_private
from tests.storage.conftest import MiB, incomplete_uploads, pseudo_random_bytes, raw_client
from tests.support.rgw import RgwHandle, new_bucket_name

_ROOT = Path(__file__).resolve().parents[2]
_PRODUCTION = ("kyso", "signer", "exchange", "audit", "hsm", "storage")

# Minio private method → the keyword arguments kyso passes to it.
_RELIED_ON: dict[str, tuple[str, ...]] = {
    "_create_multipart_upload": ("bucket_name", "object_name", "headers"),
    "_upload_part": (
        "bucket_name",
        "object_name",
        "data",
        "headers",
        "upload_id",
        "part_number",
    ),
    "_complete_multipart_upload": ("bucket_name", "object_name", "upload_id", "parts"),
    "_abort_multipart_upload": ("bucket_name", "object_name", "upload_id"),
    # Only the tests call this one (conftest.incomplete_uploads).
    "_list_multipart_uploads": ("bucket_name",),
}


def _changed(call: str, detail: str) -> str:
    return (
        f"minio {minio.__version__}: {call} changed ({detail}); storage/_minio_private.py "
        "relies on it: adapt that module (and its docstring's checked versions) or pin minio "
        "back in constraints.txt"
    )


@pytest.mark.parametrize("name", sorted(_RELIED_ON))
def test_the_private_methods_take_what_kyso_passes(name: str) -> None:
    call = f"Minio.{name}"
    method = getattr(Minio, name, None)
    assert callable(method), _changed(call, "it is gone")
    signature = inspect.signature(method)
    params = {n: p for n, p in signature.parameters.items() if n != "self"}
    passed = _RELIED_ON[name]
    missing = [n for n in passed if n not in params]
    assert not missing, _changed(call, f"no parameter {', '.join(missing)}: now {signature}")
    positional_only = [n for n in passed if params[n].kind is inspect.Parameter.POSITIONAL_ONLY]
    assert not positional_only, _changed(call, f"{positional_only} became positional-only")
    required = [
        n
        for n, p in params.items()
        if n not in passed
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    assert not required, _changed(call, f"new required parameter {required}: now {signature}")


def test_part_is_built_from_a_number_and_an_etag() -> None:
    try:
        part = Part(part_number=3, etag="abc")
    except TypeError as exc:
        pytest.fail(_changed("minio.datatypes.Part", f"Part(part_number=, etag=) fails: {exc}"))
    assert (part.part_number, part.etag) == (3, "abc"), _changed(
        "minio.datatypes.Part", "part_number/etag do not read back"
    )


def test_no_other_production_module_touches_a_private_minio_name() -> None:
    private = {n for n in dir(Minio) if n.startswith("_") and not n.startswith("__")}
    allowed = _ROOT / "storage" / "_minio_private.py"
    found = []
    for package in _PRODUCTION:
        for path in sorted((_ROOT / package).rglob("*.py")):
            if path == allowed or "/v1/" in path.as_posix():
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in private:
                    found.append(f"{path.relative_to(_ROOT)}:{node.lineno} .{node.attr}")
                if isinstance(node, ast.ImportFrom) and node.module == "minio.helpers":
                    found.append(f"{path.relative_to(_ROOT)}:{node.lineno} minio.helpers")
    assert not found, f"move these into storage/_minio_private.py: {found}"


@pytest.fixture
def bucket(rgw: RgwHandle) -> str:
    name = new_bucket_name("pin")
    raw_client(rgw).make_bucket(name)
    return name


@pytest.mark.s3
def test_create_parts_complete_stores_the_object_with_our_headers(
    rgw: RgwHandle, bucket: str
) -> None:
    client = raw_client(rgw)
    parts = [pseudo_random_bytes(5 * MiB, seed=41), b"the short last part"]
    data = b"".join(parts)
    digest = hashlib.sha256(data).hexdigest()
    key = f"sha256/{digest}"
    upload_id = _minio_private.create_multipart_upload(
        client,
        bucket=bucket,
        key=key,
        headers={
            "x-amz-meta-kyso-sha256": digest,
            "x-amz-meta-title": "c%C3%B4ng%20v%C4%83n",
            "Content-Type": "application/pdf",
        },
    )
    assert isinstance(upload_id, str), _changed(
        "Minio._create_multipart_upload", "it no longer answers the upload id"
    )
    assert upload_id, _changed("Minio._create_multipart_upload", "an empty upload id")
    etags = [
        _minio_private.upload_part(
            client, bucket=bucket, key=key, upload_id=upload_id, number=n, data=part
        )
        for n, part in enumerate(parts, start=1)
    ]
    assert all(isinstance(e, str) and e for e in etags), _changed(
        "Minio._upload_part", f"it no longer answers the part's ETag: {etags!r}"
    )
    with pytest.raises(S3Error):  # an uncompleted upload is not an object
        client.stat_object(bucket, key)
    assert incomplete_uploads(client, bucket) == [key]

    _minio_private.complete_multipart_upload(
        client, bucket=bucket, key=key, upload_id=upload_id, etags=etags
    )

    stat = client.stat_object(bucket, key)
    headers = {k.lower(): v for k, v in (stat.metadata or {}).items()}
    assert stat.size == len(data), _changed("Minio._complete_multipart_upload", "wrong size")
    assert headers.get("x-amz-meta-kyso-sha256") == digest, _changed(
        "Minio._create_multipart_upload", "our metadata headers are not sent"
    )
    assert headers.get("x-amz-meta-title") == "c%C3%B4ng%20v%C4%83n"
    assert stat.content_type == "application/pdf", _changed(
        "Minio._create_multipart_upload", "the Content-Type header is not sent"
    )
    response = client.get_object(bucket, key)
    try:
        assert hashlib.sha256(response.read()).hexdigest() == digest, _changed(
            "Minio._upload_part / _complete_multipart_upload", "the parts' bytes or order differ"
        )
    finally:
        response.close()
        response.release_conn()
    assert incomplete_uploads(client, bucket) == []


@pytest.mark.s3
def test_create_part_abort_leaves_nothing(rgw: RgwHandle, bucket: str) -> None:
    client = raw_client(rgw)
    key = "sha256/" + "0" * 64
    upload_id = _minio_private.create_multipart_upload(
        client, bucket=bucket, key=key, headers={"Content-Type": "application/pdf"}
    )
    _minio_private.upload_part(
        client, bucket=bucket, key=key, upload_id=upload_id, number=1, data=b"x" * 1024
    )
    assert incomplete_uploads(client, bucket) == [key]

    _minio_private.abort_multipart_upload(client, bucket=bucket, key=key, upload_id=upload_id)

    assert incomplete_uploads(client, bucket) == [], _changed(
        "Minio._abort_multipart_upload", "the upload is still pending after the abort"
    )
    assert list(client.list_objects(bucket, recursive=True)) == []
    with pytest.raises(S3Error) as err:  # the aborted id is gone: no part can land later
        _minio_private.upload_part(
            client, bucket=bucket, key=key, upload_id=upload_id, number=2, data=b"late"
        )
    assert err.value.code == "NoSuchUpload"
