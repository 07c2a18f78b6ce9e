"""``kyso admin status``: an operator's view of a running server in one screen.

It asks the server, not the database: health (with the reason of each dependency down) over
gRPC, and the state gauges from the metrics endpoint (``server.metrics_address``; see
``kyso.metrics``): dependencies, tokens, certificates and their expiry, the ledger and its last
tree head, the backlogs. Hubs and their links come from the configuration, with the hops
waiting for each. ``--json`` prints the same as one object.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from kyso.cli.common import (
    add_client_arguments,
    client_target,
    die,
    load_or_exit,
    open_channel,
    resolve_config_path,
)
from kyso.health import FAILING_METADATA

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
    config = load_or_exit(resolve_config_path(args.config))
    target = client_target(args, need_token=False)
    report: dict[str, Any] = {"server": target.address}
    report["health"], report["down"] = _health(target, args.timeout)
    metrics_address = args.metrics or config.server.metrics_address
    if not metrics_address:
        die("no metrics endpoint: set server.metrics_address or give --metrics host:port")
    samples = _scrape(metrics_address, args.timeout)
    report.update(_from_metrics(samples))
    waiting = report.pop("_hops", {})
    report["hubs"] = [
        {
            "id": name,
            "root_unit": hub.root_unit,
            "parent": hub.parent,
            "address": hub.address,
            "peers": list(hub.peers),
            "this_hub": name == config.exchange.hub_id,
            "hops_waiting": int(waiting.get(name, 0)),
        }
        for name, hub in config.exchange.hubs.items()
    ]
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print(report)
    healthy = report["health"] == "SERVING"
    return 0 if healthy else 1


def _health(target: Any, timeout: float) -> tuple[str, list[str]]:
    with open_channel(target) as channel:
        try:
            reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"UNREACHABLE ({exc.code().name})", [str(exc.details())]
    down = [
        value if isinstance(value, str) else value.decode()
        for key, value in call.trailing_metadata() or ()
        if key == FAILING_METADATA
    ]
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), down


def _scrape(address: str, timeout: float) -> list[tuple[str, dict[str, str], float]]:
    url = f"http://{address}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as exc:
        die(f"{url}: cannot read the metrics ({exc})")
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _from_metrics(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, Any]:
    now = time.time()
    out: dict[str, Any] = {
        "dependencies": {},
        "tokens": {},
        "certificates": {},
        "ledger": {},
        "backlogs": {},
        "_hops": {},
    }
    for name, labels, value in samples:
        if name == "kyso_dependency_up":
            out["dependencies"][labels["dependency"]] = "up" if value else "DOWN"
        elif name == "kyso_token_up":
            out["tokens"][labels["token"]] = "serving" if value else "DOWN"
        elif name == "kyso_certificate_expiry_timestamp_seconds":
            out["certificates"][labels["certificate"]] = {
                "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value)),
                "days_left": round((value - now) / 86400, 1),
            }
        elif name == "kyso_ledger_entries":
            out["ledger"]["entries"] = int(value)
        elif name == "kyso_ledger_head_tree_size":
            out["ledger"]["head_tree_size"] = int(value)
        elif name == "kyso_ledger_head_timestamp_seconds" and value:
            out["ledger"]["head_signed_at"] = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(value)
            )
            out["ledger"]["head_age_seconds"] = round(now - value)
        elif name == "kyso_audit_outbox_pending":
            out["backlogs"]["audit_outbox"] = int(value)
        elif name == "kyso_exchange_outbox_pending":
            out["_hops"][labels["hub"]] = int(value)
            out["backlogs"]["hops"] = out["backlogs"].get("hops", 0) + int(value)
        elif name == "kyso_exchange_deliveries_queued":
            out["backlogs"]["deliveries_queued"] = int(value)
        elif name in ("kyso_notify_deliveries", "kyso_notify_messages"):
            what = "webhooks" if name == "kyso_notify_deliveries" else "citizen_messages"
            out["backlogs"][f"{what}_{labels['state']}"] = int(value)
        elif name == "kyso_notify_endpoints_disabled":
            out["backlogs"]["webhook_endpoints_disabled"] = int(value)
    return out


def _print(report: dict[str, Any]) -> None:
    print(f"server        {report['server']}: {report['health']}")
    for line in report["down"]:
        print(f"  down        {line}")
    for name, state in sorted(report["dependencies"].items()):
        print(f"dependency    {name:<24} {state}")
    for name, state in sorted(report["tokens"].items()):
        print(f"token         {name:<24} {state}")
    for name, cert in sorted(report["certificates"].items()):
        left = cert["days_left"]
        flag = "  EXPIRED" if left < 0 else ("  expires soon" if left < 30 else "")
        print(f"certificate   {name:<24} until {cert['not_after']} ({left} days){flag}")
    ledger = report["ledger"]
    if ledger:
        head = (
            f"head {ledger.get('head_tree_size', '-')} signed {ledger['head_signed_at']}"
            f" ({ledger['head_age_seconds']} s ago)"
            if "head_signed_at" in ledger
            else "no head signed yet"
        )
        print(f"ledger        {ledger.get('entries', '-')} entries, {head}")
    for name, count in sorted(report["backlogs"].items()):
        print(f"backlog       {name:<24} {count}")
    for hub in report["hubs"]:
        links = ", ".join([*([f"parent {hub['parent']}"] if hub["parent"] else []), *hub["peers"]])
        here = " (this hub)" if hub["this_hub"] else ""
        print(
            f"hub           {hub['id']:<10}{here} root {hub['root_unit']} at"
            f" {hub['address'] or '-'}; links: {links or '-'}; hops waiting {hub['hops_waiting']}"
        )
