"""``kyso request-signature IN.pdf --official CERT.pem``: ask an official to sign a document.

Prints the session id on stdout (for scripts); the document's SHA-256 and the expiry go to
stderr. The official then signs with ``kyso agent``; ``kyso download REF`` fetches the result.
Documents above the inline limit are uploaded first and sent by ref.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from pathlib import Path

import grpc
from asn1crypto import pem

from kyso.cli.common import add_client_arguments, client_target, die, open_channel
from kyso.cli.remote_cmd import add_remote_arguments, request_remote
from kyso.cli.signing_args import (
    APPEARANCES,
    LEVELS,
    add_placement_arguments,
    document_input,
    placement,
)
from kyso.v1 import signing_pb2, signing_pb2_grpc

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "request-signature",
        help="ask an official to sign a PDF with their token; prints the session id",
    )
    parser.add_argument(
        "file", type=Path, nargs="+", help="the PDF to sign (with --remote: one or more)"
    )
    parser.add_argument(
        "--official",
        type=Path,
        help="the official's certificate (PEM or DER; a PEM may continue with its chain)",
    )
    parser.add_argument(
        "--chain", type=Path, action="append", default=[], help="an issuing CA certificate"
    )
    parser.add_argument("--appearance", choices=sorted(APPEARANCES), default="none")
    add_placement_arguments(parser)
    parser.add_argument(
        "--level",
        choices=list(LEVELS),
        default=None,
        help="PAdES level (default B-B; with --remote the provider's level, B-LT)",
    )
    parser.add_argument("--title", default="", help="shown to the official (default: file name)")
    parser.add_argument("--reason", default="")
    parser.add_argument("--location", default="")
    add_client_arguments(parser)
    add_remote_arguments(parser)
    parser.set_defaults(func=_request)


def _request(args: argparse.Namespace) -> int:
    args.level_given = args.level is not None
    args.level = args.level or "B-B"
    if args.remote:
        return request_remote(args, args.file)
    if args.official is None:
        die("--official: give the official's certificate (or --remote PROVIDER --user ID)")
    if len(args.file) != 1:
        die("give one PDF (several only with --remote)")
    path: Path = args.file[0]
    if not path.is_file():
        die(f"{path}: no such file")
    certificates = _read_certificates(args.official)
    for extra in args.chain:
        certificates.extend(_read_certificates(extra))
    where = placement(args)
    target = client_target(args)
    with open_channel(target) as channel:
        try:
            document = document_input(channel, path)
            reply = signing_pb2_grpc.SigningServiceStub(channel).PrepareSignature(
                signing_pb2.PrepareSignatureRequest(
                    document=document,
                    certificate=certificates[0],
                    chain=certificates[1:],
                    appearance=APPEARANCES[args.appearance],
                    placement=where,
                    level=LEVELS[args.level],
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
