"""The minio SDK's non-public API that the S3 adapter relies on, and nothing else.

Why it is needed: a put whose SHA-256 the client declared streams its bytes straight into a
multipart upload at ``sha256/<declared>``, and the upload must be completed only if the digest
of all the bytes equals the declared one, and aborted otherwise (see ``storage.s3``). minio-py's
public API has no way to do that: ``put_object`` draws the whole stream and completes the
upload itself, with no hook between the last part and CompleteMultipartUpload, so a mismatch
found after the last byte would already be a visible object. The four S3 calls of a multipart
upload exist in the SDK only as private methods of ``Minio``, and ``Part`` (the list that
CompleteMultipartUpload takes) is used by nothing public:

- ``Minio._create_multipart_upload`` — CreateMultipartUpload with our headers (metadata,
  content type, object-lock retention), answers the upload id;
- ``Minio._upload_part`` — UploadPart of bytes already in memory, answers the part's ETag;
- ``Minio._complete_multipart_upload`` with ``minio.datatypes.Part`` — CompleteMultipartUpload,
  called only after the digest check;
- ``Minio._abort_multipart_upload`` — AbortMultipartUpload on a mismatch or any failure, so
  nothing stays visible at the address and no parts hold space.

Checked against minio 7.2.20 (the version ``constraints.txt`` pins) and, by reading its source,
7.2.0: the same methods with the same parameter names. ``tests/storage/test_minio_private.py``
pins the signatures and does a real round trip of each call against the Ceph RADOS Gateway, so
an upgrade that changes one fails a test naming the call.

Invariants: every call is made with keyword arguments, so a renamed or reordered parameter is a
``TypeError`` at the call, never bytes sent with the wrong meaning; no other module of kyso's
production code touches a private name of the minio SDK; the caller owns error mapping (the
SDK's exceptions pass through unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minio import Minio
from minio.datatypes import Part

__all__ = [
    "abort_multipart_upload",
    "complete_multipart_upload",
    "create_multipart_upload",
    "upload_part",
]


def create_multipart_upload(
    client: Minio, *, bucket: str, key: str, headers: Mapping[str, str]
) -> str:
    """Start a multipart upload of ``key`` with ``headers``; return its upload id."""
    # A copy: the SDK adds a default Content-Type to the dict it is given.
    upload_id: str = client._create_multipart_upload(
        bucket_name=bucket, object_name=key, headers=dict(headers)
    )
    return upload_id


def upload_part(
    client: Minio, *, bucket: str, key: str, upload_id: str, number: int, data: bytes
) -> str:
    """Upload part ``number`` (from 1) of ``upload_id``; return its ETag."""
    etag: str = client._upload_part(
        bucket_name=bucket,
        object_name=key,
        data=data,
        headers=None,
        upload_id=upload_id,
        part_number=number,
    )
    return etag


def complete_multipart_upload(
    client: Minio, *, bucket: str, key: str, upload_id: str, etags: Sequence[str]
) -> None:
    """Complete ``upload_id`` from its parts' ETags, in part order (part 1 first).

    The answer is not returned: Ceph's gateway sends an empty ETag, so callers stat the object.
    """
    client._complete_multipart_upload(
        bucket_name=bucket,
        object_name=key,
        upload_id=upload_id,
        parts=[Part(part_number=n, etag=etag) for n, etag in enumerate(etags, start=1)],
    )


def abort_multipart_upload(client: Minio, *, bucket: str, key: str, upload_id: str) -> None:
    """Abort ``upload_id``: its parts are discarded and no object appears."""
    client._abort_multipart_upload(bucket_name=bucket, object_name=key, upload_id=upload_id)
