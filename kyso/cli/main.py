"""Entry point of the ``kyso`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kyso import __version__
from kyso.cli import (
    agent_cmd,
    audit_cmd,
    csc_cmd,
    dev_cmds,
    directory_cmd,
    documents_cmd,
    exchange_cmd,
    hsm_cmd,
    remote_cmd,
    server_cmds,
    sign_cmd,
    twophase_cmd,
    verify_cmd,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyso",
        description=(
            "kyso: PAdES signing on PKCS#11 tokens, document storage, edXML exchange, audit"
        ),
    )
    parser.add_argument("--version", action="version", version=f"kyso {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        server_cmds,
        dev_cmds,
        documents_cmd,
        sign_cmd,
        twophase_cmd,
        agent_cmd,
        verify_cmd,
        audit_cmd,
        hsm_cmd,
        exchange_cmd,
        directory_cmd,
        csc_cmd,
        remote_cmd,
    ):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`kyso … | head`): not an error of ours, and nothing to say.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
