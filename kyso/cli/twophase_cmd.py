"""``kyso request-signature IN.pdf --official CERT.pem``: ask an official to sign a document.

Prints the session id on stdout (for scripts); the document's SHA-256 and the expiry go to
stderr. The official then signs with ``kyso agent``; ``kyso download REF`` fetches the result.
Documents above the inline limit are uploaded first and sent by ref.

``kyso request-signature --status ID`` follows a request (waiting, signed with the signed
document's ref, cancelled, expired; when, by whom); ``--cancel ID [--reason TEXT]`` withdraws
it. ``--json`` prints each result as JSON; ``--lang en`` the messages in English.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from pathlib import Path

from kyso.cli.common import add_client_arguments, client_target, die, open_channel
from kyso.cli.remote_cmd import add_remote_arguments, request_remote
from kyso.cli.signing_args import (
    APPEARANCES,
    LEVELS,
    add_placement_arguments,
    document_input,
    placement,
)
from kyso.cli.text import Language, add_lang_argument, format_time, say, state_word

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "request-signature",
        help="ask an official to sign a PDF with their token; prints the session id",
    )
    parser.add_argument(
        "file", type=Path, nargs="*", help="the PDF to sign (with --remote: one or more)"
    )
    follow = parser.add_mutually_exclusive_group()
    follow.add_argument("--status", metavar="ID", help="show the state of request ID and exit")
    follow.add_argument("--cancel", metavar="ID", help="cancel request ID (still waiting)")
    add_lang_argument(parser)
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
    parser.add_argument(
        "--reason",
        default="",
        help="why (shown to the official; with --cancel, why it is withdrawn)",
    )
    parser.add_argument("--location", default="")
    add_client_arguments(parser)
    add_remote_arguments(parser)
    parser.set_defaults(func=_request)


def _request(args: argparse.Namespace) -> int:
    import grpc

    from kyso.v1 import signing_pb2, signing_pb2_grpc

    if args.status or args.cancel:
        if args.file:
            die("--status and --cancel take a request id, not files", code=2)
        return _follow(args)
    if not args.file:
        die("give the PDF to sign (or --status ID / --cancel ID)", code=2)
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
    if args.json:
        _json(
            {
                "session_id": reply.session_id,
                "document_sha256": reply.document_sha256,
                "expires_at": reply.expires_at.ToDatetime(tzinfo=UTC).isoformat(),
            }
        )
        return 0
    print(reply.session_id)
    expires = format_time(reply.expires_at.ToDatetime(tzinfo=UTC))
    print(
        say("request.sent", args.lang, digest=reply.document_sha256, expires=expires),
        file=sys.stderr,
    )
    return 0


def _follow(args: argparse.Namespace) -> int:
    import grpc

    from kyso.v1 import signing_pb2, signing_pb2_grpc

    lang: Language = args.lang
    with open_channel(client_target(args)) as channel:
        stub = signing_pb2_grpc.SigningServiceStub(channel)
        try:
            if args.cancel:
                stub.CancelSignature(
                    signing_pb2.CancelSignatureRequest(session_id=args.cancel, reason=args.reason)
                )
                if args.json:
                    _json({"session_id": args.cancel, "state": "cancelled"})
                else:
                    print(say("request.cancelled", lang, session=args.cancel))
                return 0
            reply = stub.GetSignature(signing_pb2.GetSignatureRequest(session_id=args.status))
        except grpc.RpcError as exc:
            what = "cancel" if args.cancel else "status"
            die(say("error.rpc", lang, what=what, detail=f"{exc.code().name}: {exc.details()}"))
    session = reply.session
    found = {
        "session_id": session.session_id,
        "state": reply.state,
        "state_text": state_word(reply.state, lang),
        "title": session.title,
        "filename": session.filename,
        "requester": session.requester,
        "unit_code": session.unit_code,
        "created_at": session.created_at.ToDatetime(tzinfo=UTC).isoformat(),
        "expires_at": session.expires_at.ToDatetime(tzinfo=UTC).isoformat(),
        "closed_at": (
            reply.closed_at.ToDatetime(tzinfo=UTC).isoformat()
            if reply.HasField("closed_at")
            else None
        ),
        "closed_by": reply.closed_by or None,
        "signed_ref": reply.result_ref or None,
    }
    if args.json:
        _json(found)
        return 0
    print(say("request.status", lang, session=session.session_id, state=found["state_text"]))
    print(f"  {session.title} ({session.filename})")
    created = format_time(session.created_at.ToDatetime(tzinfo=UTC))
    expires = format_time(session.expires_at.ToDatetime(tzinfo=UTC))
    print(f"  {created} → {expires}")
    if reply.HasField("closed_at"):
        closed = format_time(reply.closed_at.ToDatetime(tzinfo=UTC))
        print(f"  {closed} · {reply.closed_by}")
    if reply.result_ref:
        print(f"  {reply.result_ref}")
    return 0


def _json(value: object) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))


def _read_certificates(path: Path) -> list[bytes]:
    from asn1crypto import pem

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
