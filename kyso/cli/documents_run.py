"""``kyso upload FILE`` and ``kyso download REF -o FILE``: streaming, constant memory.

When the server offers direct transfer (an S3 store with ``[storage] direct_transfer``), the
bytes go straight to and from the S3 service through presigned URLs: upload (of a file of at
least ``DIRECT_MIN_BYTES``; a smaller one streams, see there) declares the file's
SHA-256 and size (``BeginDirectUpload``), PUTs the file, and has the server check and catalogue
it (``CompleteDirectUpload``); download fetches the URL of ``GetDownloadUrl`` and checks the
SHA-256 while writing. A server without it answers FAILED_PRECONDITION (or, an older one,
UNIMPLEMENTED), and the command streams through the server instead; ``--no-direct`` always
streams. Nothing is written at ``-o`` unless every byte checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from kyso.cli.common import client_target, die, open_channel
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

__all__ = ["DIRECT_MIN_BYTES", "download", "fetch", "upload", "upload_requests"]

CHUNK = 1024 * 1024
DIRECT_MIN_BYTES = 1024 * 1024
"""Smaller files are uploaded through the server even when it offers direct transfer: a
direct upload writes the object twice (staging, then content address) and removes one,
where a streamed one writes it once, and under 1 MiB the bytes' trip through the server
costs less than the extra writes (bench/bench_documents.py, ``documents.direct_put_100kb``)."""


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def upload_requests(
    path: Path, content_type: str, *, sha256: str | None = None
) -> Iterator[documents_pb2.UploadRequest]:
    """The Upload stream for ``path``: metadata with its SHA-256 and size, then 1 MiB chunks."""
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename=path.name,
            content_type=content_type,
            sha256=sha256 or _sha256_of(path),
            size=path.stat().st_size,
        )
    )
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            yield documents_pb2.UploadRequest(chunk=block)


def _guess_type(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


_NOT_OFFERED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED)


def upload(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        die(f"{path}: no such file")
    content_type = args.content_type or _guess_type(path)
    target = client_target(args)
    with open_channel(target) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        sha256 = _sha256_of(path)
        direct = not args.no_direct and path.stat().st_size >= DIRECT_MIN_BYTES
        stored = _direct_upload(stub, path, content_type, sha256) if direct else None
        if stored is None:
            try:
                stored = stub.Upload(upload_requests(path, content_type, sha256=sha256))
            except grpc.RpcError as exc:
                die(f"upload failed: {exc.code().name}: {exc.details()}")
    if args.json:
        print(json.dumps({"ref": stored.ref.ref, "size": stored.size, "file": str(path)}))
        return 0
    print(stored.ref.ref)
    return 0


def _direct_upload(
    stub: documents_pb2_grpc.DocumentServiceStub, path: Path, content_type: str, sha256: str
) -> common_pb2.StoredDocument | None:
    """Upload ``path`` by direct transfer; None when the server does not offer it."""
    import urllib3

    size = path.stat().st_size
    try:
        grant = stub.BeginDirectUpload(
            documents_pb2.BeginDirectUploadRequest(
                filename=path.name, content_type=content_type, sha256=sha256, size=size
            )
        )
    except grpc.RpcError as exc:
        if exc.code() in _NOT_OFFERED:
            return None
        die(f"upload failed: {exc.code().name}: {exc.details()}")
    http = urllib3.PoolManager(blocksize=CHUNK)
    try:
        with path.open("rb") as handle:
            answer = http.request(
                "PUT",
                grant.url,
                body=handle,
                headers={**grant.headers, "Content-Length": str(size)},
                retries=urllib3.Retry(total=3, backoff_factor=0.5, allowed_methods=None),
            )
    except urllib3.exceptions.HTTPError as exc:
        die(f"upload failed: the object store cannot be reached ({type(exc).__name__})")
    if answer.status != 200:
        die(f"upload failed: the object store answered HTTP {answer.status}")
    request = documents_pb2.CompleteDirectUploadRequest(upload_id=grant.upload_id)
    try:
        completed = stub.CompleteDirectUpload(request)
    except grpc.RpcError as exc:
        die(f"upload failed: {exc.code().name}: {exc.details()}")
    stored: common_pb2.StoredDocument = completed.document
    return stored


def fetch(channel: grpc.Channel, ref: str) -> bytes:
    """A stored document's bytes, checked against its ref (for documents small enough to hold)."""
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref))
    try:
        data = b"".join(piece.chunk for piece in stub.Download(request))
    except grpc.RpcError as exc:
        die(f"download failed: {exc.code().name}: {exc.details()}")
    if ref != f"sha256/{hashlib.sha256(data).hexdigest()}":
        die("the bytes received do not match the ref")
    return data


def download(args: argparse.Namespace) -> int:
    target = client_target(args)
    output: Path = args.output
    partial = output.with_name(output.name + ".part")
    with open_channel(target) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        ref = common_pb2.DocumentRef(ref=args.ref)
        pieces = None if args.no_direct else _direct_pieces(stub, ref)
        if pieces is None:
            request = documents_pb2.DownloadRequest(ref=ref)
            pieces = (piece.chunk for piece in stub.Download(request))
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as handle:
                for piece in pieces:
                    digest.update(piece)
                    handle.write(piece)
                handle.flush()
                os.fsync(handle.fileno())
        except grpc.RpcError as exc:
            partial.unlink(missing_ok=True)
            die(f"download failed: {exc.code().name}: {exc.details()}")
        except _TransferFailed as exc:
            partial.unlink(missing_ok=True)
            die(f"download failed: {exc}")
    if args.ref != f"sha256/{digest.hexdigest()}":
        partial.unlink(missing_ok=True)
        die("the bytes received do not match the ref; nothing was written")
    partial.replace(output)
    if args.json:
        print(json.dumps({"ref": args.ref, "file": str(output), "size": output.stat().st_size}))
        return 0
    print(f"{output} ({output.stat().st_size} bytes)", file=sys.stderr)
    return 0


class _TransferFailed(Exception):
    """The object store did not give the bytes of a presigned URL."""


def _direct_pieces(
    stub: documents_pb2_grpc.DocumentServiceStub, ref: common_pb2.DocumentRef
) -> Iterator[bytes] | None:
    """The document's bytes from its presigned URL (checked by the caller against the ref);
    None when the server does not offer direct transfer."""
    import urllib3

    try:
        grant = stub.GetDownloadUrl(documents_pb2.GetDownloadUrlRequest(ref=ref))
    except grpc.RpcError as exc:
        if exc.code() in _NOT_OFFERED:
            return None
        die(f"download failed: {exc.code().name}: {exc.details()}")
    if ref.ref != f"sha256/{grant.sha256}":
        die("the server gave a URL for another document; nothing was written")

    def pieces() -> Iterator[bytes]:
        try:
            answer = urllib3.PoolManager().request("GET", grant.url, preload_content=False)
            try:
                if answer.status != 200:
                    raise _TransferFailed(f"the object store answered HTTP {answer.status}")
                yield from answer.stream(4 * CHUNK)
            finally:
                answer.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise _TransferFailed(
                f"the object store cannot be reached ({type(exc).__name__})"
            ) from exc

    return pieces()
