"""Entry point of the ``kyso`` command.

Start-up is kept short (``kyso --help`` and ``kyso COMMAND --help`` well under 0.3 s): the
subcommand modules import gRPC, pyHanko, SQLAlchemy and the application, which take seconds, so
only the module of the command being run is imported. The table :data:`COMMANDS` names each
command's module and its one-line help (what ``kyso --help`` lists without importing anything);
``tests/kyso/test_cli_startup.py`` checks that the table matches what the modules register and
that ``kyso --help`` imports none of the heavy packages.

To add a subcommand: write ``kyso/cli/NAME_cmd.py`` with ``register(subparsers)`` (heavy imports
inside the functions that run the command) and add its commands to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from kyso import __version__

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(NamedTuple):
    module: str
    """Module under ``kyso.cli`` whose ``register(subparsers)`` adds this command."""
    help: str
    """The line ``kyso --help`` shows; the same as the module's own ``help=``."""


COMMANDS: dict[str, Command] = {
    "serve": Command("server_cmds", "run the gRPC service until SIGTERM/SIGINT"),
    "health": Command("server_cmds", "exit 0 only when the server answers SERVING"),
    "admin": Command("admin_cmd", "operator's views of a running server"),
    "db": Command("server_cmds", "database administration"),
    "dev": Command(
        "dev_cmds", "development environment (tokens, PKI, config); needs kyso[devtools]"
    ),
    "upload": Command("documents_cmd", "store a document; prints its ref"),
    "download": Command("documents_cmd", "fetch a stored document by its ref"),
    "sign": Command("sign_cmd", "sign a PDF with an organisation key held by the server's HSM"),
    "request-signature": Command(
        "twophase_cmd", "ask an official to sign a PDF with their token; prints the session id"
    ),
    "agent": Command(
        "agent_cmd", "sign the documents waiting for the official whose token is plugged in"
    ),
    "verify": Command(
        "verify_cmd",
        "verify the signatures of PDF files and folders locally (exit 0 passed, 1 failed, "
        "2 indeterminate, 3 unreadable)",
    ),
    "audit": Command("audit_cmd", "export and verify the tamper-evident ledger"),
    "archive": Command(
        "archive_cmd", "long-term evidence of stored signed PDFs: status, extend, renew"
    ),
    "hsm": Command("hsm_cmd", "inspect PKCS#11 modules, tokens and keys"),
    "send": Command("exchange_cmd", "send a document to units (edXML exchange)"),
    "inbox": Command("exchange_cmd", "list (and acknowledge) a unit's inbox"),
    "status": Command("exchange_cmd", "statuses of a sent document, or set one"),
    "exchange": Command("exchange_cmd", "operate the exchange: the quarantine"),
    "directory": Command(
        "directory_cmd", "find units by name; import or export the unit directory"
    ),
    "web": Command("web_cmd", "serve the auditors' and operators' console (an API client)"),
    "csc": Command(
        "csc_cmd", "the Cloud Signature Consortium (CSC v2) facade over this server's keys"
    ),
    "remote": Command("remote_cmd", "remote-signing providers ([remote.NAME]) and their requests"),
    "evidence": Command("web_cmd", "evidence bundles from the console"),
    "notify": Command("notify_cmd", "webhook endpoints, citizens' consents and Zalo/SMS messages"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``kyso`` parser. With ``argv``, only the module of the command it names is imported
    (the other commands are listed by name and help); without, every module is (all commands
    complete, for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="kyso",
        description=(
            "kyso: PAdES signing on PKCS#11 tokens, document storage, edXML exchange, audit"
        ),
    )
    parser.add_argument("--version", action="version", version=f"kyso {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if argv is None:
        wanted = {command.module for command in COMMANDS.values()}
    else:
        chosen = COMMANDS.get(_command_name(argv) or "")
        wanted = {chosen.module} if chosen else set()
    registered: set[str] = set()
    for name, command in COMMANDS.items():
        if command.module in wanted:
            if command.module not in registered:
                registered.add(command.module)
                module = importlib.import_module(f"kyso.cli.{command.module}")
                module.register(subparsers)
        else:
            # Listed for ``kyso --help`` and for argparse's "invalid choice"; never run.
            subparsers.add_parser(name, help=command.help, add_help=False)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    """The first word that is not an option: the top-level parser has no option with a value."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments).parse_args(arguments)
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
