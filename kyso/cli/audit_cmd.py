"""``kyso audit export DIR`` and ``kyso audit verify [--from-export DIR]``: offline, from the
database named by the configuration (or from an export), with no server involved.

Verification recomputes every leaf, every stored subtree hash and every signed tree head, and
names the first inconsistency. Heads are trusted only when signed by a certificate given with
``--trust`` or listed in ``[ledger] certificates``; certificates inside an export are never
trusted just because they are there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asn1crypto import pem

import audit
from kyso import db
from kyso.cli.common import die, load_or_exit, resolve_config_path

__all__ = ["register"]

EXIT_INCONSISTENT = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="export and verify the tamper-evident ledger")
    sub = parser.add_subparsers(dest="audit_command", required=True)

    export = sub.add_parser("export", help="write entries, tree heads and certificates to DIR")
    export.add_argument("directory", type=Path)
    export.add_argument("--config", help="configuration file (its [database] is read)")
    export.set_defaults(func=_export)

    verify = sub.add_parser(
        "verify", help="recompute the ledger offline; exit 0 when consistent, 1 otherwise"
    )
    verify.add_argument("--from-export", type=Path, help="verify an export instead of the database")
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        help="a head-signing certificate (PEM/DER)",
    )
    verify.add_argument("--config", help="configuration file ([database], [ledger] certificates)")
    verify.set_defaults(func=_verify)


def _export(args: argparse.Namespace) -> int:
    config = load_or_exit(resolve_config_path(args.config))
    engine = db.open_engine(config.database)
    try:
        summary = audit.export(engine, args.directory)
    except audit.AuditError as exc:
        die(str(exc))
    finally:
        engine.dispose()
    print(f"exported {summary.entries} entries and {summary.heads} tree heads to {args.directory}")
    return 0


def _der(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        die(f"{path}: {exc.strerror}")
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return bytes(data)


def _verify(args: argparse.Namespace) -> int:
    config_path = resolve_config_path(args.config)
    config = load_or_exit(config_path) if (args.config or config_path.exists()) else None
    trusted = [_der(p) for p in args.trust]
    if config is not None and not args.trust:
        trusted = [_der(p) for p in config.ledger.certificates]
    if not trusted:
        die("no head-signing certificate to trust: give --trust CERT or [ledger] certificates")
    if args.from_export is not None:
        report = audit.verify_export(args.from_export, trusted_certs=trusted)
        source = str(args.from_export)
    else:
        if config is None:
            die("no configuration: give --config, set KYSO_CONFIG, or use --from-export DIR")
        engine = db.open_engine(config.database)
        try:
            report = audit.verify_database(engine, trusted_certs=trusted)
        finally:
            engine.dispose()
        source = "the database"
    root = report.root_hash.hex()
    if report.ok:
        print(
            f"ledger OK ({source}): {report.entries_checked} entries, "
            f"{report.heads_checked} signed tree heads, root {root}"
        )
        return 0
    fault = report.first_inconsistency
    assert fault is not None
    where = ""
    if fault.first_entry is not None:
        last = (fault.end_entry or fault.first_entry + 1) - 1
        where = f" at entry {fault.first_entry}" + (
            f"..{last}" if last != fault.first_entry else ""
        )
    if fault.head_tree_size is not None:
        where += f" (tree head of size {fault.head_tree_size})"
    print(f"ledger INCONSISTENT ({source}): {fault.problem.value}{where}: {fault.message}")
    return EXIT_INCONSISTENT
