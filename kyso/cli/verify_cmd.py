"""``kyso verify FILE.pdf``: verify a PDF's signatures locally (no server), offline by default.

Trust anchors come from ``--trust PEM`` / ``--trust-fingerprint HEX`` when given, otherwise from
the configuration's ``[trust]`` section (``--config``, ``$KYSO_CONFIG`` or ./var/dev/kyso.toml if
it exists). The document is verified in a worker process with the verifier's memory cap and
timeout, like the service does.

Exit codes: 0 TOTAL-PASSED, 1 TOTAL-FAILED, 2 INDETERMINATE, 3 not a PDF or unreadable,
4 the command could not run (bad configuration or trust anchor). argparse's own usage errors
also exit 2, before anything is verified.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kyso.cli.common import resolve_config_path
from kyso.config import load_config
from kyso.errors import ConfigError

if TYPE_CHECKING:
    from signer.verify import TrustProfile

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
        help="verify the signatures of a PDF locally (exit 0 passed, 1 failed, 2 indeterminate, "
        "3 unreadable)",
    )
    verify.add_argument("file", metavar="FILE.pdf", help="the PDF to verify")
    verify.add_argument("--json", action="store_true", help="print the JSON report")
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
    verify.add_argument("--config", help="configuration file with a [trust] section")
    verify.set_defaults(func=_verify)


def _fail(message: str, code: int) -> int:
    print(f"kyso verify: {message}", file=sys.stderr)
    return code


def _verify(args: argparse.Namespace) -> int:
    from signer.verify import (
        Indication,
        TrustAnchorInvalid,
        TrustProfile,
        VerificationPolicy,
        Verifier,
        render_text,
        report_to_json,
    )

    # pyHanko logs each failed check with a traceback; the report already says it, in words.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    try:
        if args.trust or args.trust_fingerprint:
            profile = TrustProfile.from_sources(
                name="command-line",
                pem_files=[Path(p) for p in args.trust],
                fingerprints=args.trust_fingerprint,
            )
        else:
            profile = _configured_profile(args.config)
    except (TrustAnchorInvalid, ConfigError) as exc:
        return _fail(str(exc), EXIT_CANNOT_RUN)
    if profile.empty:
        print(
            "kyso verify: no trust anchor configured: no chain can be trusted "
            "(give --trust PEM or a [trust] section)",
            file=sys.stderr,
        )
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", EXIT_UNREADABLE)

    policy = VerificationPolicy(trust=(profile,), online=args.online)
    with Verifier(workers=1) as verifier:
        report = verifier.verify(data, policy)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A terminal without UTF-8 must not turn a verdict into a UnicodeEncodeError.
        sys.stdout.reconfigure(errors="backslashreplace")
    if args.json:
        print(report_to_json(report))
    else:
        print(render_text(report, lang=args.lang), end="")
    if not report.readable:
        return EXIT_UNREADABLE
    return {
        Indication.TOTAL_PASSED: EXIT_PASSED,
        Indication.TOTAL_FAILED: EXIT_FAILED,
        Indication.INDETERMINATE: EXIT_INDETERMINATE,
    }[report.indication]


def _configured_profile(explicit: str | None) -> TrustProfile:
    """The config's ``[trust]`` anchors as a profile (empty when there is no configuration)."""
    from signer.verify import TrustProfile

    path = resolve_config_path(explicit)
    if not explicit and not path.exists():
        return TrustProfile(name="none")
    config = load_config(path)
    return TrustProfile.from_sources(
        name=f"config:{path.name}",
        pem_files=config.trust.anchors,
        fingerprints=config.trust.fingerprints,
    )
