"""What the subcommands share: finding the configuration, reaching a server, failing cleanly.

Client subcommands find the server and credentials from ``--server`` / ``--config`` /
``KYSO_CONFIG``, defaulting to the development configuration ``./var/dev/kyso.toml``.

Imported by every subcommand at start-up, so it imports only the standard library at module
level: gRPC (:mod:`kyso.cli.channel`) and the configuration loader are imported when used.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import grpc

    from kyso.config import Config

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_CONFIG",
    "ClientTarget",
    "add_client_arguments",
    "client_target",
    "die",
    "lazy_command",
    "open_channel",
    "resolve_config_path",
]

DEFAULT_CONFIG = Path("var/dev/kyso.toml")
EXIT_CONFIG = 2


def lazy_command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command function imported only when the command runs (``--help`` stays fast)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        function: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return function(args)

    return run


def die(message: str, *, code: int = 1) -> NoReturn:
    print(f"kyso: {message}", file=sys.stderr)
    raise SystemExit(code)


def resolve_config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("KYSO_CONFIG", str(DEFAULT_CONFIG)))


def load_or_exit(path: Path) -> Config:
    """Load the configuration or print one line naming the problem and exit 2."""
    from kyso.config import load_config
    from kyso.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        die(str(exc), code=EXIT_CONFIG)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        help="server address host:port, or replicas ip:port,ip:port (default: from the config)",
    )
    parser.add_argument(
        "--config", help="configuration file (default: $KYSO_CONFIG or ./var/dev/kyso.toml)"
    )


@dataclass(frozen=True, slots=True)
class ClientTarget:
    address: str
    token: str | None
    ca_pem: bytes | None
    certificate_pem: bytes | None = None
    private_key_pem: bytes | None = field(default=None, repr=False)


def client_target(args: argparse.Namespace, *, need_token: bool = True) -> ClientTarget:
    """Where to connect and with what credential, from the arguments and the configuration."""
    path = resolve_config_path(args.config)
    token = os.environ.get("KYSO_API_TOKEN")
    if path.exists() or args.config:
        config = load_or_exit(path)
        address = args.server or config.client.server
        if token is None and config.client.token_file is not None:
            try:
                token = config.client.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                die(f"client.token_file: cannot read {config.client.token_file} ({exc.strerror})")
        ca_pem = config.client.ca_file.read_bytes() if config.client.ca_file else None
        certificate = config.client.certificate
        private_key = config.client.private_key
        certificate_pem = certificate.read_bytes() if certificate else None
        private_key_pem = private_key.read_bytes() if private_key else None
    else:
        address, ca_pem = args.server or "127.0.0.1:50051", None
        certificate_pem = private_key_pem = None
    if need_token and not token and certificate_pem is None:
        die("no credential: set KYSO_API_TOKEN, client.token_file or client.certificate")
    from kyso.config import is_loopback

    # several replicas: `ip:port,ip:port` (kyso.cli.channel.grpc_target)
    if token and ca_pem is None and not all(is_loopback(a) for a in address.split(",")):
        die(
            f"refusing to send the API token in the clear to {address}: give client.ca_file"
            " (TLS) or reach the server on a loopback address"
        )
    return ClientTarget(
        address=address,
        token=token,
        ca_pem=ca_pem,
        certificate_pem=certificate_pem,
        private_key_pem=private_key_pem,
    )


def open_channel(target: ClientTarget, *, options: Sequence[tuple[str, int]] = ()) -> grpc.Channel:
    """A channel carrying the bearer token on every call (over TLS when a CA is configured)."""
    from kyso.cli.channel import open_channel as _open

    return _open(target, options=options)
