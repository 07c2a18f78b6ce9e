"""``kyso upload FILE`` and ``kyso download REF -o FILE``: streaming, constant memory."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from kyso.cli.common import add_client_arguments, client_target, die, open_channel
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc

__all__ = ["fetch", "register", "upload_requests"]

CHUNK = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upload = subparsers.add_parser("upload", help="store a document; prints its ref")
    upload.add_argument("file", type=Path)
    upload.add_argument("--content-type", default="", help="default: guessed from the name")
    upload.add_argument("--json", action="store_true", help="print the ref and size as JSON")
    add_client_arguments(upload)
    upload.set_defaults(func=_upload)

    download = subparsers.add_parser("download", help="fetch a stored document by its ref")
    download.add_argument("ref", help="sha256/<hex>")
    download.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    download.add_argument("--json", action="store_true", help="print what was written as JSON")
    add_client_arguments(download)
    download.set_defaults(func=_download)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def upload_requests(path: Path, content_type: str) -> Iterator[documents_pb2.UploadRequest]:
    """The Upload stream for ``path``: metadata with its SHA-256 and size, then 1 MiB chunks."""
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename=path.name,
            content_type=content_type,
            sha256=_sha256_of(path),
            size=path.stat().st_size,
        )
    )
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            yield documents_pb2.UploadRequest(chunk=block)


def _guess_type(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _upload(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        die(f"{path}: no such file")
    target = client_target(args)
    with open_channel(target) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        try:
            stored = stub.Upload(upload_requests(path, args.content_type or _guess_type(path)))
        except grpc.RpcError as exc:
            die(f"upload failed: {exc.code().name}: {exc.details()}")
    if args.json:
        print(json.dumps({"ref": stored.ref.ref, "size": stored.size, "file": str(path)}))
        return 0
    print(stored.ref.ref)
    return 0


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


def _download(args: argparse.Namespace) -> int:
    target = client_target(args)
    output: Path = args.output
    partial = output.with_name(output.name + ".part")
    digest = hashlib.sha256()
    with open_channel(target) as channel:
        stub = documents_pb2_grpc.DocumentServiceStub(channel)
        request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=args.ref))
        try:
            with partial.open("wb") as handle:
                for piece in stub.Download(request):
                    digest.update(piece.chunk)
                    handle.write(piece.chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except grpc.RpcError as exc:
            partial.unlink(missing_ok=True)
            die(f"download failed: {exc.code().name}: {exc.details()}")
    if args.ref != f"sha256/{digest.hexdigest()}":
        partial.unlink(missing_ok=True)
        die("the bytes received do not match the ref; nothing was written")
    partial.replace(output)
    if args.json:
        print(json.dumps({"ref": args.ref, "file": str(output), "size": output.stat().st_size}))
        return 0
    print(f"{output} ({output.stat().st_size} bytes)", file=sys.stderr)
    return 0
