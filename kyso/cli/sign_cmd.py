"""``kyso sign``: its arguments; the command itself is in :mod:`kyso.cli.sign_run`, imported
only when it runs (gRPC and the stubs take longer to import than ``--help`` should take)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kyso.cli.common import add_client_arguments, lazy_command
from kyso.cli.signing_args import APPEARANCES, LEVELS, add_placement_arguments

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sign = subparsers.add_parser(
        "sign", help="sign a PDF with an organisation key held by the server's HSM"
    )
    sign.add_argument("input", help="the PDF, or a stored document's ref (sha256/<hex>)")
    sign.add_argument("-o", "--output", type=Path, required=True, help="where to write the result")
    sign.add_argument("--key", required=True, help="the key alias configured on the server")
    sign.add_argument("--level", choices=list(LEVELS), default=None, help="default: the key's")
    sign.add_argument("--appearance", choices=list(APPEARANCES), default="none")
    add_placement_arguments(sign)
    sign.add_argument("--reason", default="")
    sign.add_argument("--location", default="")
    sign.add_argument("--contact", default="")
    sign.add_argument("--certify", action="store_true", help="certification (DocMDP) signature")
    sign.add_argument("--json", action="store_true", help="print the result as JSON")
    add_client_arguments(sign)
    sign.set_defaults(func=lazy_command("kyso.cli.sign_run", "sign"))
