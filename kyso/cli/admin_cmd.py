"""``kyso admin status``: an operator's view of a running server in one screen.

It asks the server, not the database: health (with the reason of each dependency down) over
gRPC, and the metrics endpoint (``server.metrics_address``; see ``kyso.metrics``). The view
itself — dependencies, tokens, certificates and their expiry (keys, TLS, TSA), the ledger and
its last tree head, the backlogs, the hubs with their links and the hops waiting for each — is
built by ``kyso.operator_view``, which the console's operator page uses too. ``--json`` prints
the same as one object.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kyso.cli.common import (
    add_client_arguments,
    client_target,
    die,
    load_or_exit,
    open_channel,
    resolve_config_path,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("admin", help="operator's views of a running server")
    sub = parser.add_subparsers(dest="admin_command", required=True)
    status = sub.add_parser(
        "status",
        help="dependencies, keys and certificate expiry, hubs and links, backlogs, last tree head",
    )
    add_client_arguments(status)
    status.add_argument(
        "--metrics",
        help="the metrics endpoint, host:port (default: server.metrics_address of the config)",
    )
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from kyso import operator_view

    config = load_or_exit(resolve_config_path(args.config))
    target = client_target(args, need_token=False)
    health, down = _health(target, args.timeout)
    metrics_address = args.metrics or config.server.metrics_address
    if not metrics_address:
        die("no metrics endpoint: set server.metrics_address or give --metrics host:port")
    try:
        samples = operator_view.parse_metrics(operator_view.scrape(metrics_address, args.timeout))
    except operator_view.MetricsUnavailable as exc:
        die(str(exc))
    view = operator_view.build(server=target.address, health=health, down=down, samples=samples)
    if args.json:
        print(json.dumps(view.to_json(), ensure_ascii=False, indent=2))
    else:
        print(operator_view.render_text(view))
    return 0 if view.serving else 1


def _health(target: Any, timeout: float) -> tuple[str, tuple[str, ...]]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from kyso.operator_view import down_reasons

    with open_channel(target) as channel:
        try:
            reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"UNREACHABLE ({exc.code().name})", (str(exc.details()),)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return status, down_reasons(call.trailing_metadata())
