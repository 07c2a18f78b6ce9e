"""``kyso csc serve``: the CSC v2 facade over this server's keys (needs the ``csc`` extra)."""

from __future__ import annotations

import argparse
import asyncio

from kyso import logs
from kyso.cli.common import EXIT_CONFIG, die, load_or_exit, resolve_config_path
from kyso.errors import ConfigError, KysoError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    csc = subparsers.add_parser(
        "csc", help="the Cloud Signature Consortium (CSC v2) facade over this server's keys"
    )
    sub = csc.add_subparsers(dest="csc_command", required=True)
    serve = sub.add_parser(
        "serve", help="serve the CSC facade on [csc] address until SIGTERM/SIGINT"
    )
    serve.add_argument(
        "--config", help="configuration file (default: $KYSO_CONFIG or ./var/dev/kyso.toml)"
    )
    serve.add_argument("--address", help="host:port to listen on (default: [csc] address)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    config = load_or_exit(resolve_config_path(args.config))
    if args.address:
        import dataclasses

        config = dataclasses.replace(
            config, csc=dataclasses.replace(config.csc, address=args.address)
        )
    if not config.csc.address:
        die("csc.address: set it (or --address) to serve the CSC facade", code=EXIT_CONFIG)
    try:
        from kyso.csc.serve import serve
    except ImportError:
        die("the CSC facade needs the csc extra: pip install 'kyso[csc]'")
    logs.configure(level=config.server.log_level, fmt=config.server.log_format)
    try:
        asyncio.run(serve(config))
    except ConfigError as exc:
        die(str(exc), code=EXIT_CONFIG)
    except (OSError, KysoError) as exc:
        die(f"cannot start: {exc}")
    return 0
