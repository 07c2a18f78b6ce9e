"""``kyso notify …``: webhook endpoints, citizens' consents and messages (NotificationService).

- ``kyso notify create --unit CODE --url https://… [--type T]… [--personal-data]
  [--secret-file PATH]`` subscribes an endpoint; its secret (``whsec_…``) is written to
  ``--secret-file`` (mode 0600) or, without it, printed once on standard output;
- ``kyso notify list``, ``delete ID``, ``rotate ID [--secret-file PATH]``, ``test ID``,
  ``replay ID --since TIME [--until TIME]``, ``deliveries ID [--state failed]``;
- ``kyso notify consent --document ID --unit CODE --phone NUMBER`` (``--withdraw``) records a
  citizen's consent to be told by Zalo/SMS about a dossier;
- ``kyso notify messages [--document ID] [--state failed]``: what went to citizens (operator).

Every listing takes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from kyso.cli.common import add_client_arguments, client_target, die, open_channel

__all__ = ["register"]

_TYPES = (
    "document.delivered",
    "status.changed",
    "signature.waiting",
    "signature.completed",
    "signature.cancelled",
    "signature.expired",
    "pdf.sealed",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = subparsers.add_parser(
        "notify",
        help="webhook endpoints, citizens' consents and Zalo/SMS messages",
        description="Subscribe systems to events (Standard Webhooks) and follow what is sent.",
    )
    commands = notify.add_subparsers(dest="notify_command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=text, description=text)
        add_client_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    create = command("create", "subscribe an https:// endpoint to a unit's events")
    create.add_argument("--unit", required=True, help="the unit whose events are sent")
    create.add_argument("--url", required=True, help="https:// URL of the receiver")
    create.add_argument(
        "--type", action="append", default=[], choices=_TYPES, help="only this type (repeatable)"
    )
    create.add_argument(
        "--personal-data", action="store_true", help="include fields that name a person"
    )
    create.add_argument("--description", default="", help="a note for the operator")
    create.add_argument("--secret-file", type=Path, help="write the secret here (mode 0600)")
    create.set_defaults(func=_create)

    command("list", "the endpoints (an operator: all of them)").set_defaults(func=_list)

    delete = command("delete", "remove an endpoint")
    delete.add_argument("endpoint")
    delete.set_defaults(func=_delete)

    rotate = command("rotate", "a new secret; the old one signs beside it for a while")
    rotate.add_argument("endpoint")
    rotate.add_argument("--secret-file", type=Path, help="write the secret here (mode 0600)")
    rotate.set_defaults(func=_rotate)

    test = command("test", "send a kyso.test event to an endpoint")
    test.add_argument("endpoint")
    test.set_defaults(func=_test)

    replay = command("replay", "deliver an endpoint's events of a time range again")
    replay.add_argument("endpoint")
    replay.add_argument("--since", required=True, help="ISO 8601 time, e.g. 2026-12-07T08:00Z")
    replay.add_argument("--until", help="ISO 8601 time (default: now)")
    replay.set_defaults(func=_replay)

    deliveries = command("deliveries", "an endpoint's deliveries, newest first")
    deliveries.add_argument("endpoint")
    deliveries.add_argument("--state", choices=("pending", "delivered", "failed"))
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(func=_deliveries)

    consent = command("consent", "record a citizen's consent to Zalo/SMS about a dossier")
    consent.add_argument("--document", required=True, help="the dossier's document id")
    consent.add_argument("--unit", required=True, help="the unit handling the dossier")
    consent.add_argument("--phone", default="", help="the citizen's mobile number")
    consent.add_argument("--withdraw", action="store_true", help="withdraw the consent")
    consent.set_defaults(func=_consent)

    messages = command("messages", "messages sent (or not) to citizens (operator)")
    messages.add_argument("--document", default="", help="only this dossier")
    messages.add_argument("--state", choices=("pending", "sent", "failed"))
    messages.add_argument("--limit", type=int, default=50)
    messages.set_defaults(func=_messages)


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    from kyso.v1 import notifications_pb2_grpc

    with open_channel(client_target(args)) as channel:
        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        try:
            return getattr(stub, method)(request)
        except grpc.RpcError as exc:
            die(f"{method} failed: {exc.code().name}: {exc.details()}")


def _pb() -> Any:
    from kyso.v1 import notifications_pb2

    return notifications_pb2


def _print(args: argparse.Namespace, value: object, text: str) -> None:
    if args.json:
        print(json.dumps(value, ensure_ascii=False, indent=2))
    else:
        print(text)


def _secret_out(path: Path | None, secret: str) -> str:
    """Write the secret to ``path`` (0600) and say where, or return it to print once."""
    if path is None:
        return secret
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return f"(written to {path})"


def _time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        die(f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-12-07T08:00:00Z)")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(stamp: Any) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return str(stamp.ToDatetime(tzinfo=UTC).isoformat())


def _endpoint(item: Any) -> dict[str, object]:
    pb = _pb()
    return {
        "id": item.id,
        "owner": item.owner,
        "unit": item.unit_code,
        "url": item.url,
        "event_types": list(item.event_types),
        "personal_data": item.personal_data,
        "state": pb.EndpointState.Name(item.state).removeprefix("ENDPOINT_STATE_").lower(),
        "disabled_reason": item.disabled_reason,
        "paused_until": _iso(item.paused_until),
        "pending": item.pending,
        "failed": item.failed,
    }


def _create(args: argparse.Namespace) -> int:
    pb = _pb()
    reply = _call(
        args,
        "CreateEndpoint",
        pb.CreateEndpointRequest(
            unit_code=args.unit,
            url=args.url,
            event_types=args.type,
            personal_data=args.personal_data,
            description=args.description,
        ),
    )
    secret = _secret_out(args.secret_file, reply.secret)
    item = _endpoint(reply.endpoint)
    _print(args, {**item, "secret": secret}, f"{item['id']}\t{item['url']}\tsecret {secret}")
    return 0


def _list(args: argparse.Namespace) -> int:
    reply = _call(args, "ListEndpoints", _pb().ListEndpointsRequest())
    items = [_endpoint(e) for e in reply.endpoints]
    lines = [
        "\t".join(
            str(x)
            for x in (
                i["id"],
                i["unit"],
                i["state"],
                f"{i['pending']} pending",
                f"{i['failed']} failed",
                i["url"],
                i["disabled_reason"],
            )
        )
        for i in items
    ]
    _print(args, items, "\n".join(lines) if lines else "no endpoints")
    return 0


def _delete(args: argparse.Namespace) -> int:
    _call(args, "DeleteEndpoint", _pb().DeleteEndpointRequest(endpoint_id=args.endpoint))
    _print(args, {"deleted": args.endpoint}, f"deleted {args.endpoint}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    reply = _call(
        args, "RotateEndpointSecret", _pb().RotateEndpointSecretRequest(endpoint_id=args.endpoint)
    )
    secret = _secret_out(args.secret_file, reply.secret)
    until = _iso(reply.previous_valid_until)
    _print(
        args,
        {"secret": secret, "previous_valid_until": until},
        f"new secret {secret}; the previous one signs too until {until}",
    )
    return 0


def _test(args: argparse.Namespace) -> int:
    reply = _call(args, "SendTestEvent", _pb().SendTestEventRequest(endpoint_id=args.endpoint))
    _print(args, {"event_id": reply.event_id}, f"queued test event {reply.event_id}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    pb = _pb()
    request = pb.ReplayEventsRequest(endpoint_id=args.endpoint)
    request.since.FromDatetime(_time(args.since, "--since"))
    if args.until:
        request.until.FromDatetime(_time(args.until, "--until"))
    reply = _call(args, "ReplayEvents", request)
    _print(args, {"queued": reply.queued}, f"{reply.queued} events queued again")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    pb = _pb()
    outcome = {
        "pending": pb.DELIVERY_OUTCOME_PENDING,
        "delivered": pb.DELIVERY_OUTCOME_DELIVERED,
        "failed": pb.DELIVERY_OUTCOME_FAILED,
    }.get(args.state or "", pb.DELIVERY_OUTCOME_UNSPECIFIED)
    reply = _call(
        args,
        "ListDeliveries",
        pb.ListDeliveriesRequest(endpoint_id=args.endpoint, outcome=outcome, limit=args.limit),
    )
    items = [
        {
            "event_id": d.event_id,
            "type": d.event_type,
            "key": d.key,
            "outcome": pb.DeliveryOutcome.Name(d.outcome).removeprefix("DELIVERY_OUTCOME_").lower(),
            "attempts": d.attempts,
            "next_attempt_at": _iso(d.next_attempt_at),
            "last_status": d.last_status,
            "last_error": d.last_error,
            "delivered_at": _iso(d.delivered_at),
        }
        for d in reply.deliveries
    ]
    lines = [
        f"{i['event_id']}\t{i['type']}\t{i['key']}\t{i['outcome']}\t{i['attempts']} attempts"
        f"\t{i['last_error']}"
        for i in items
    ]
    _print(args, items, "\n".join(lines) if lines else "no deliveries")
    return 0


def _consent(args: argparse.Namespace) -> int:
    if not args.withdraw and not args.phone:
        die("--phone is needed (or --withdraw)")
    reply = _call(
        args,
        "SetCitizenConsent",
        _pb().SetCitizenConsentRequest(
            document_id=args.document, unit_code=args.unit, phone=args.phone, withdraw=args.withdraw
        ),
    )
    if reply.withdrawn:
        _print(args, {"withdrawn": True}, f"consent for {args.document} withdrawn")
    else:
        _print(args, {"phone": reply.phone}, f"consent for {args.document}: {reply.phone}")
    return 0


def _messages(args: argparse.Namespace) -> int:
    pb = _pb()
    state = {
        "pending": pb.MESSAGE_STATE_PENDING,
        "sent": pb.MESSAGE_STATE_SENT,
        "failed": pb.MESSAGE_STATE_FAILED,
    }.get(args.state or "", pb.MESSAGE_STATE_UNSPECIFIED)
    reply = _call(
        args,
        "ListCitizenMessages",
        pb.ListCitizenMessagesRequest(document_id=args.document, state=state, limit=args.limit),
    )
    items = [
        {
            "id": m.id,
            "document_id": m.document_id,
            "phone": m.phone,
            "status": m.status_code,
            "state": pb.MessageState.Name(m.state).removeprefix("MESSAGE_STATE_").lower(),
            "channel": m.channel,
            "tracking_id": m.tracking_id,
            "attempts": m.attempts,
            "last_error": m.last_error,
            "sent_at": _iso(m.sent_at),
        }
        for m in reply.messages
    ]
    lines = [
        f"{i['id']}\t{i['document_id']}\t{i['status']}\t{i['state']}\t{i['channel'] or '--'}"
        f"\t{i['attempts']} attempts\t{i['last_error']}"
        for i in items
    ]
    _print(args, items, "\n".join(lines) if lines else "no messages")
    return 0
