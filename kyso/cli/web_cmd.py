"""``kyso web`` (the console of auditors and operators) and ``kyso evidence verify`` (a
bundle, offline)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kyso.cli.common import EXIT_CONFIG, die
from kyso.errors import ConfigError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    web = subparsers.add_parser(
        "web",
        help="serve the auditors' and operators' console (an API client)",
        description=(
            "Serve the console over HTTP. Auditors: verify a PDF, a document's history from the"
            " ledger, the ledger's signed tree head, evidence bundles. Operators: /van-hanh,"
            " the view of `kyso admin status`. Needs the `web` extra."
        ),
    )
    web.add_argument(
        "--settings",
        required=True,
        help="the console's settings file (web.toml; `kyso dev init` writes one)",
    )
    web.add_argument("--listen", help="HOST:PORT to serve on (default: from the settings)")
    web.set_defaults(func=_web)

    evidence = subparsers.add_parser("evidence", help="evidence bundles from the console")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = evidence_sub.add_parser(
        "verify",
        help="check an evidence bundle offline",
        description=(
            "Check an evidence bundle (ZIP) with no server: file hashes, the document against"
            " its report, the signed tree head, each ledger entry's inclusion proof, the sealed"
            " report. Exit 0: consistent; 1: not (the first fault is named); 2: bad usage."
        ),
    )
    verify.add_argument("bundle", help="the bundle ZIP file")
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CERT",
        help="a trusted head-signing certificate (DER or PEM); repeatable. Without it the"
        " head is checked against the certificate in the bundle",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=_evidence_verify)


def _web(args: argparse.Namespace) -> int:
    try:
        from kyso.web.app import serve
    except ImportError as exc:
        die(
            f"the console needs the `web` extra ({exc.name} is missing): "
            "`pip install -c constraints.txt -e '.[web]'` (`make run` does it)",
            code=EXIT_CONFIG,
        )
    from kyso.web.settings import load_settings

    try:
        settings = load_settings(Path(args.settings))
    except ConfigError as exc:
        die(str(exc), code=EXIT_CONFIG)
    return serve(settings, listen=args.listen)


def _certificate(path: str) -> bytes:
    from asn1crypto import pem

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        die(f"--trust: cannot read {path} ({exc.strerror})", code=EXIT_CONFIG)
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return data


def _evidence_verify(args: argparse.Namespace) -> int:
    from kyso.web.evidence import verify_bundle

    trusted = [_certificate(path) for path in args.trust]
    try:
        data = Path(args.bundle).read_bytes()
    except OSError as exc:
        die(f"cannot read {args.bundle} ({exc.strerror})", code=EXIT_CONFIG)
    result = verify_bundle(data, trusted=trusted)
    if args.json:
        json.dump(
            {
                "consistent": result.consistent,
                "fault": result.fault,
                "checked": result.checked,
                "document_sha256": result.document_sha256,
                "tree_size": result.tree_size,
                "entries": result.entries,
            },
            sys.stdout,
            ensure_ascii=False,
            indent=2,
        )
        print()
    elif result.consistent:
        print(
            f"consistent: document {result.document_sha256}, {result.entries} ledger entries"
            f" proven in the signed tree of size {result.tree_size}"
            f" (checked: {', '.join(result.checked)})"
        )
    else:
        print(f"NOT consistent: {result.fault}")
    return 0 if result.consistent else 1
