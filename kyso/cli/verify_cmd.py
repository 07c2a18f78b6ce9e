"""``kyso verify PATH…``: verify the signatures of PDFs locally (no server), offline by default.

PATH is a PDF or a folder; folders are walked recursively for ``*.pdf`` files (any case; symbolic
links to folders are not followed). Every document is verified in the verifier's worker
processes (one per core unless ``--jobs``), each with the verifier's memory cap and timeout, like
the service does.

Output: one file given → the full report (text, or ``--json``); several files or a folder → one
line per file and a summary table (passed / failed / indeterminate / unreadable) in Vietnamese or
English, or with ``--json`` one JSON report per line (``path`` added); on a terminal, a progress
bar on stderr. Trust anchors come from ``--trust PEM`` / ``--trust-fingerprint HEX`` when given,
otherwise from the configuration's ``[trust]`` section (``--config``, ``$KYSO_CONFIG`` or
./var/dev/kyso.toml if it exists); the algorithm rules from ``[verify] algorithms`` when set,
otherwise the rules shipped with kyso.

Exit codes (for a batch: the worst result, in the order 1 > 3 > 2 > 0): 0 TOTAL-PASSED,
1 TOTAL-FAILED, 2 INDETERMINATE, 3 not a PDF, unreadable, or no PDF found, 4 the command could not
run (bad configuration or trust anchor). argparse's own usage errors also exit 2, before anything
is verified.

An edXML package (a file ending in ``.edxml``, or any file that starts as XML) is not a PDF:
it is sent to the server's VerifyPackage (the package signature and the PDFs it carries, with
the server's trust and policy; ``--server`` / the configuration's client section), and its
verdict counts like a PDF's.

Start-up: this module imports only the standard library and :mod:`kyso.cli.common`; the
verifier (pyHanko) and the configuration loader are imported when a verification runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kyso.cli.common import resolve_config_path

if TYPE_CHECKING:
    from signer.verify import TrustProfile
    from signer.verify.algorithms import AlgorithmRules

__all__ = [
    "EXIT_CANNOT_RUN",
    "EXIT_FAILED",
    "EXIT_INDETERMINATE",
    "EXIT_PASSED",
    "EXIT_UNREADABLE",
    "register",
]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INDETERMINATE = 2
EXIT_UNREADABLE = 3
EXIT_CANNOT_RUN = 4


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="verify the signatures of PDF files and folders locally (exit 0 passed, 1 failed, "
        "2 indeterminate, 3 unreadable)",
        description="Verify the signatures of PDF files, and of every *.pdf under the folders "
        "given, offline by default. Exit code: the worst result (1 failed, 3 unreadable, "
        "2 indeterminate, 0 passed), 4 when the command cannot run.",
    )
    verify.add_argument(
        "paths", nargs="+", metavar="PATH", help="a PDF file or a folder (searched recursively)"
    )
    verify.add_argument(
        "--json",
        action="store_true",
        help="one JSON report per line (schema kyso.verification/1, with its path)",
    )
    verify.add_argument(
        "--lang", choices=("vi", "en"), default="vi", help="report language (default vi)"
    )
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="a trust anchor certificate file (repeatable; replaces the configured anchors)",
    )
    verify.add_argument(
        "--trust-fingerprint",
        action="append",
        default=[],
        metavar="HEX",
        help="SHA-256 fingerprint of an anchor certificate carried in the document (repeatable)",
    )
    verify.add_argument(
        "--online", action="store_true", help="fetch OCSP/CRL when the document lacks them"
    )
    verify.add_argument("--config", help="configuration file with [trust] and [verify] sections")
    verify.add_argument(
        "--server", help="for edXML packages: the server that verifies them (default: config)"
    )
    verify.add_argument(
        "--algorithms",
        metavar="TOML",
        help="algorithm rules file (default: [verify] algorithms, else the rules shipped "
        "with kyso)",
    )
    verify.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="verification processes (default: one per core)",
    )
    verify.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )
    verify.set_defaults(func=_verify)


def _fail(message: str, code: int) -> int:
    print(f"kyso verify: {message}", file=sys.stderr)
    return code


def _verify(args: argparse.Namespace) -> int:
    import io
    import logging

    from kyso.cli.verify_batch import Batch, collect
    from kyso.errors import ConfigError
    from signer.verify import TrustAnchorInvalid, VerificationPolicy
    from signer.verify.algorithms import AlgorithmRulesInvalid

    # pyHanko logs each failed check with a traceback; the report already says it, in words.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    if args.jobs is not None and args.jobs < 1:
        return _fail("--jobs must be at least 1", EXIT_CANNOT_RUN)
    packages = [Path(p) for p in args.paths if _is_package(Path(p))]
    if packages:
        worst = _verify_packages(args, packages)
        args.paths = [p for p in args.paths if Path(p) not in packages]
        if not args.paths:
            return worst
        return _worst(worst, _verify(args))
    try:
        profile, rules = _configured(args)
    except (TrustAnchorInvalid, ConfigError, AlgorithmRulesInvalid) as exc:
        return _fail(str(exc), EXIT_CANNOT_RUN)
    if profile.empty:
        print(
            "kyso verify: no trust anchor configured: no chain can be trusted "
            "(give --trust PEM or a [trust] section)",
            file=sys.stderr,
        )
    files, missing = collect([Path(p) for p in args.paths])
    for path in missing:
        print(f"kyso verify: {path}: no such file or folder", file=sys.stderr)
    if not files and not missing:
        return _fail("no PDF file found under the paths given", EXIT_UNREADABLE)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A terminal without UTF-8 must not turn a verdict into a UnicodeEncodeError.
        sys.stdout.reconfigure(errors="backslashreplace")
    policy = VerificationPolicy(trust=(profile,), online=args.online, algorithms=rules)
    single = len(args.paths) == 1 and len(files) == 1 and not missing and files[0].is_file()
    single = single and not Path(args.paths[0]).is_dir()
    batch = Batch(
        policy,
        lang=args.lang,
        json_lines=args.json,
        detailed=single,
        progress=not args.no_progress and not single and sys.stderr.isatty(),
        jobs=args.jobs,
    )
    return batch.run(files, missing=missing)


_SEVERITY = (EXIT_PASSED, EXIT_INDETERMINATE, EXIT_UNREADABLE, EXIT_FAILED, EXIT_CANNOT_RUN)


def _worst(*codes: int) -> int:
    return max(codes, key=_SEVERITY.index)


def _is_package(path: Path) -> bool:
    """An edXML package: ``*.edxml``, or a file whose first bytes are XML (not a folder)."""
    if not path.is_file():
        return False
    if path.suffix.lower() in (".edxml", ".xml"):
        return True
    try:
        with path.open("rb") as source:
            head = source.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head.startswith(b"<")


def _verify_packages(args: argparse.Namespace, packages: list[Path]) -> int:
    """Each package through the server's VerifyPackage; the worst exit code."""
    import json

    import grpc

    from kyso.cli.common import client_target, open_channel
    from kyso.v1 import common_pb2, verification_pb2, verification_pb2_grpc

    codes = {
        verification_pb2.INDICATION_TOTAL_PASSED: EXIT_PASSED,
        verification_pb2.INDICATION_INDETERMINATE: EXIT_INDETERMINATE,
        verification_pb2.INDICATION_TOTAL_FAILED: EXIT_FAILED,
    }
    worst = EXIT_PASSED
    with open_channel(client_target(args)) as channel:
        stub = verification_pb2_grpc.VerificationServiceStub(channel)
        for path in packages:
            try:
                report = stub.VerifyPackage(
                    verification_pb2.VerifyPackageRequest(
                        package=common_pb2.DocumentInput(
                            content=path.read_bytes(), filename=path.name
                        ),
                        language=args.lang,
                    ),
                    timeout=300,
                )
            except OSError as exc:
                print(f"kyso verify: {path}: {exc.strerror}", file=sys.stderr)
                worst = _worst(worst, EXIT_UNREADABLE)
                continue
            except grpc.RpcError as exc:
                print(
                    f"kyso verify: {path}: the server could not verify this edXML package"
                    f" ({exc.code().name}: {exc.details()})",
                    file=sys.stderr,
                )
                code = EXIT_UNREADABLE if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 4
                worst = _worst(worst, code)
                continue
            worst = _worst(worst, codes.get(report.indication, EXIT_INDETERMINATE))
            if args.json:
                data = json.loads(report.report_json or "{}")
                data["path"] = str(path)
                data["kind"] = "edxml"
                print(json.dumps(data, ensure_ascii=False))
            else:
                print(f"{path} (edXML)")
                print(report.report_text)
    return worst


def _configured(args: argparse.Namespace) -> tuple[TrustProfile, AlgorithmRules]:
    """The trust profile and algorithm rules from the arguments and the configuration."""
    from kyso.config import load_config
    from signer.verify import TrustProfile
    from signer.verify.algorithms import AlgorithmRules

    path = resolve_config_path(args.config)
    config = load_config(path) if args.config or path.exists() else None
    if args.trust or args.trust_fingerprint:
        profile = TrustProfile.from_sources(
            name="command-line",
            pem_files=[Path(p) for p in args.trust],
            fingerprints=args.trust_fingerprint,
        )
    elif config is None:
        profile = TrustProfile(name="none")
    else:
        profile = TrustProfile.from_sources(
            name=f"config:{path.name}",
            pem_files=config.trust.anchors,
            fingerprints=config.trust.fingerprints,
        )
    if args.algorithms:
        rules = AlgorithmRules.load(Path(args.algorithms))
    elif config is not None and config.verify.algorithms is not None:
        rules = AlgorithmRules.load(config.verify.algorithms)
    else:
        rules = AlgorithmRules.shipped()
    return profile, rules
