"""``kyso sign IN.pdf -o OUT.pdf --key ALIAS …``: seal a PDF with an organisation key."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

from kyso.cli.common import client_target, die, open_channel
from kyso.cli.documents_run import fetch
from kyso.cli.signing_args import (
    APPEARANCES,
    LEVELS,
    document_input,
    placement,
)
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc

__all__ = ["sign"]


def sign(args: argparse.Namespace) -> int:
    path = Path(args.input)
    by_ref = args.input.startswith("sha256/")
    if not by_ref and not path.is_file():
        die(f"{path}: no such file")
    where = placement(args)
    target = client_target(args)
    with open_channel(target) as channel:
        document = (
            common_pb2.DocumentInput(ref=common_pb2.DocumentRef(ref=args.input))
            if by_ref
            else document_input(channel, path)
        )
        request = signing_pb2.SignPdfRequest(
            document=document,
            key_alias=args.key,
            level=LEVELS[args.level] if args.level else signing_pb2.SIGNATURE_LEVEL_UNSPECIFIED,
            appearance=APPEARANCES[args.appearance],
            placement=where,
            reason=args.reason,
            location=args.location,
            contact=args.contact,
            certify=args.certify,
        )
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        try:
            reply = stub.SignPdf(request, timeout=120)
        except grpc.RpcError as exc:
            die(f"signing failed: {exc.code().name}: {exc.details()}")
        # Small inputs come back inline; a document passed by ref is fetched by its ref.
        content = reply.content or fetch(channel, reply.document.ref.ref)
    partial = args.output.with_name(args.output.name + ".part")
    partial.write_bytes(content)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(args.output)
    level = signing_pb2.SignatureLevel.Name(reply.level).removeprefix("SIGNATURE_LEVEL_")
    if args.json:
        import json

        result = {
            "file": str(args.output),
            "key": args.key,
            "level": level.replace("_", "-"),
            "ref": reply.document.ref.ref,
            "ledger_index": reply.ledger_index,
        }
        print(json.dumps(result))
        return 0
    print(
        f"{args.output}: signed with {args.key} at {level.replace('_', '-')}; "
        f"stored as {reply.document.ref.ref}; ledger entry {reply.ledger_index}"
    )
    return 0
