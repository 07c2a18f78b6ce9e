"""What ``kyso sign`` and ``kyso request-signature`` share: levels, appearances, where a
visible signature goes (``--field`` or ``--page``/``--rect``) and how the PDF travels.

A ``seal`` or ``text`` appearance with no ``--rect`` is placed by the server (on page 1, or
``--page``): the CLI sends no rectangle of its own. A PDF up to the inline limit travels in
the request; a larger one is uploaded first and passed by its ref.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kyso.cli.common import die

if TYPE_CHECKING:
    import grpc

    from kyso.v1 import common_pb2, signing_pb2

__all__ = [
    "APPEARANCES",
    "INLINE_LIMIT",
    "LEVELS",
    "add_placement_arguments",
    "document_input",
    "placement",
]

INLINE_LIMIT = 4 * 1024 * 1024 - 64 * 1024  # the server's (kyso.operations.documents)
# The protobuf enum values (SignatureLevel, Appearance), written out so that a command's
# --help need not import gRPC and the generated code (tests/kyso/test_cli_startup.py checks
# they match kyso/v1/signing_pb2).
LEVELS: dict[str, Any] = {"B-B": 1, "B-T": 2, "B-LT": 3, "B-LTA": 4}
APPEARANCES: dict[str, Any] = {"none": 1, "seal": 2, "text": 3}


def document_input(channel: grpc.Channel, path: Path) -> common_pb2.DocumentInput:
    """The PDF inline when small enough, else uploaded (streamed, hash declared) and by ref."""
    import grpc

    from kyso.cli.documents_run import upload_requests
    from kyso.v1 import common_pb2, documents_pb2_grpc

    if path.stat().st_size <= INLINE_LIMIT:
        return common_pb2.DocumentInput(content=path.read_bytes(), filename=path.name)
    stub = documents_pb2_grpc.DocumentServiceStub(channel)
    try:
        stored = stub.Upload(upload_requests(path, "application/pdf"))
    except grpc.RpcError as exc:
        die(f"upload failed: {exc.code().name}: {exc.details()}")
    return common_pb2.DocumentInput(ref=stored.ref, filename=path.name)


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--field", help="an existing empty signature field to use")
    where.add_argument("--rect", help="x1,y1,x2,y2 in points, origin bottom left (with --page)")
    parser.add_argument("--page", type=int, help="page for --rect, from 1 (default 1)")


def placement(args: argparse.Namespace) -> signing_pb2.Placement | None:
    """The request's Placement, or None for an invisible signature with no field named."""
    from kyso.v1 import signing_pb2

    if args.field:
        if args.page is not None:
            die("give --field, or --page and --rect, not both")
        return signing_pb2.Placement(field_name=args.field)
    page = args.page or 1
    if args.rect:
        try:
            x1, y1, x2, y2 = (float(v) for v in args.rect.split(","))
        except ValueError:
            die(f"--rect {args.rect!r}: give four numbers x1,y1,x2,y2")
    elif args.page is not None and args.appearance in ("seal", "text"):
        # a page alone: the server places the appearance on it (its default rectangle)
        return signing_pb2.Placement(rect=signing_pb2.PageRect(page=page))
    else:
        if args.page is not None:
            die("--page needs --rect")
        return None
    return signing_pb2.Placement(rect=signing_pb2.PageRect(page=page, x1=x1, y1=y1, x2=x2, y2=y2))
