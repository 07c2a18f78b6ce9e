"""``kyso serve``, ``kyso health`` and ``kyso db upgrade`` (``run_server`` also runs under
``kyso dev serve``)."""

from __future__ import annotations

import argparse
import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kyso import db, logs
from kyso.cli.common import (
    EXIT_CONFIG,
    add_client_arguments,
    client_target,
    die,
    load_or_exit,
    open_channel,
    resolve_config_path,
)
from kyso.config import Config
from kyso.errors import ConfigError
from kyso.health import FAILING_METADATA

__all__ = ["register", "run_server"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the gRPC service until SIGTERM/SIGINT")
    serve.add_argument(
        "--config", help="configuration file (default: $KYSO_CONFIG or ./var/dev/kyso.toml)"
    )
    serve.set_defaults(func=_serve)

    health = subparsers.add_parser("health", help="exit 0 only when the server answers SERVING")
    add_client_arguments(health)
    health.add_argument("--service", default="", help="a service name (default: the whole server)")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    health.set_defaults(func=_health)

    database = subparsers.add_parser("db", help="database administration")
    db_sub = database.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.add_argument("--config", help="configuration file")
    upgrade.set_defaults(func=_db_upgrade)


def _serve(args: argparse.Namespace) -> int:
    return run_server(load_or_exit(resolve_config_path(args.config)))


def run_server(config: Config) -> int:
    """Serve ``config`` until SIGTERM/SIGINT (``kyso serve``; ``kyso dev serve`` around it)."""
    from kyso.server import serve
    from kyso.startup import StartupError

    logs.configure(level=config.server.log_level, fmt=config.server.log_format)
    try:
        asyncio.run(serve(config))
    except (ConfigError, StartupError) as exc:
        # Start-up failures a person can fix (docs/operations.md, "Troubleshooting"): one line
        # naming the key to fix, exit 2.
        die(f"cannot start: {exc}", code=EXIT_CONFIG)
    except Exception as exc:
        # Not explained: still one line on standard error; the traceback goes to the log
        # (inside the JSON object when logs are JSON).
        logging.getLogger("kyso.serve").error("the server failed", exc_info=True)
        die(f"the server failed: {type(exc).__name__}: {exc}")
    return 0


def _health(args: argparse.Namespace) -> int:
    target = client_target(args, need_token=False)
    with open_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply, call = stub.Check.with_call(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            die(f"{target.address}: {exc.code().name}: {exc.details()}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    down = [
        value if isinstance(value, str) else value.decode()
        for key, value in call.trailing_metadata() or ()
        if key == FAILING_METADATA
    ]
    print(f"{target.address} {args.service or 'kyso'}: {status}")
    for line in down:
        print(f"  down: {line}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _db_upgrade(args: argparse.Namespace) -> int:
    from kyso.app import components

    config = load_or_exit(resolve_config_path(args.config))
    engine = db.open_engine(config.database)
    try:
        applied = db.upgrade(engine, components())
    finally:
        engine.dispose()
    for component, version, description in applied:
        print(f"applied {component} {version}: {description}")
    if not applied:
        print("the database is up to date")
    return 0
