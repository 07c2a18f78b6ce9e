"""``kyso dev init``: the development token, PKI and configuration (never for production)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = subparsers.add_parser("dev", help="development environment (tokens, PKI, config)")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    init = dev_sub.add_parser(
        "init", help="create (or reuse) the development tokens, PKI and kyso.toml"
    )
    init.add_argument("--home", default="var/dev", help="where to put it all (default ./var/dev)")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from kyso.dev.setup import set_up

    set_up(Path(args.home))
    return 0
