"""``kyso request-signature IN.pdf --official CERT.pem``: ask an official to sign a document.

Prints the session id on stdout (for scripts); the document's SHA-256 and the expiry go to
stderr. The official then signs with ``kyso agent``; ``kyso download REF`` fetches the result.
Documents above the inline limit are uploaded first and sent by ref.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import grpc
from asn1crypto import pem

from kyso.cli.common import add_client_arguments, client_target, die, open_channel
from kyso.cli.placement import add_placement_arguments, placement
from kyso.v1 import common_pb2, documents_pb2, documents_pb2_grpc, signing_pb2, signing_pb2_grpc

__all__ = ["register"]

_INLINE_LIMIT = 4 * 1024 * 1024
_CHUNK = 1024 * 1024
_LEVELS = {
    "B-B": signing_pb2.SIGNATURE_LEVEL_B_B,
    "B-T": signing_pb2.SIGNATURE_LEVEL_B_T,
    "B-LT": signing_pb2.SIGNATURE_LEVEL_B_LT,
    "B-LTA": signing_pb2.SIGNATURE_LEVEL_B_LTA,
}
_APPEARANCES = {
    "none": signing_pb2.APPEARANCE_NONE,
    "seal": signing_pb2.APPEARANCE_SEAL,
    "text": signing_pb2.APPEARANCE_TEXT,
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "request-signature",
        help="ask an official to sign a PDF with their token; prints the session id",
    )
    parser.add_argument("file", type=Path, help="the PDF to sign")
    parser.add_argument(
        "--official",
        type=Path,
        required=True,
        help="the official's certificate (PEM or DER; a PEM may continue with its chain)",
    )
    parser.add_argument(
        "--chain", type=Path, action="append", default=[], help="an issuing CA certificate"
    )
    parser.add_argument("--appearance", choices=sorted(_APPEARANCES), default="none")
    add_placement_arguments(parser)
    parser.add_argument("--level", choices=list(_LEVELS), default="B-B")
    parser.add_argument("--title", default="", help="shown to the official (default: file name)")
    parser.add_argument("--reason", default="")
    parser.add_argument("--location", default="")
    add_client_arguments(parser)
    parser.set_defaults(func=_request)


def _request(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        die(f"{path}: no such file")
    certificates = _read_certificates(args.official)
    for extra in args.chain:
        certificates.extend(_read_certificates(extra))
    where = placement(args)
    target = client_target(args)
    with open_channel(target) as channel:
        try:
            document = _document_input(channel, path)
            reply = signing_pb2_grpc.SigningServiceStub(channel).PrepareSignature(
                signing_pb2.PrepareSignatureRequest(
                    document=document,
                    certificate=certificates[0],
                    chain=certificates[1:],
                    appearance=_APPEARANCES[args.appearance],
                    placement=where,
                    level=_LEVELS[args.level],
                    reason=args.reason,
                    location=args.location,
                    title=args.title or path.name,
                )
            )
        except grpc.RpcError as exc:
            die(f"request failed: {exc.code().name}: {exc.details()}")
    print(reply.session_id)
    expires = reply.expires_at.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"document SHA-256 {reply.document_sha256}; expires {expires}", file=sys.stderr)
    return 0


def _read_certificates(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        die(f"{path}: cannot read the certificate ({exc.strerror})")
    if pem.detect(data):
        found = [der for kind, _h, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"]
        if not found:
            die(f"{path}: no CERTIFICATE block in this PEM file")
        return found
    return [data]


def _document_input(channel: grpc.Channel, path: Path) -> common_pb2.DocumentInput:
    size = path.stat().st_size
    if size <= _INLINE_LIMIT:
        return common_pb2.DocumentInput(content=path.read_bytes(), filename=path.name)
    stored = documents_pb2_grpc.DocumentServiceStub(channel).Upload(_upload(path, size))
    return common_pb2.DocumentInput(ref=stored.ref, filename=path.name)


def _upload(path: Path, size: int) -> Iterator[documents_pb2.UploadRequest]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    yield documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(
            filename=path.name,
            content_type="application/pdf",
            sha256=digest.hexdigest(),
            size=size,
        )
    )
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            yield documents_pb2.UploadRequest(chunk=block)
