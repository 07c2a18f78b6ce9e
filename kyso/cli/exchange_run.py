"""The exchange commands' work (``kyso.cli.exchange_cmd`` has their arguments; this module,
which imports gRPC and the generated code, is imported only when one of them runs)."""

from __future__ import annotations

import argparse
import json
import math
import mimetypes
import re
import sys
from pathlib import Path

import grpc

from kyso.cli.common import client_target, die, open_channel
from kyso.cli.text import Language, format_time, say, state_word, status_word
from kyso.cli.units import UnitNames
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

_STATE_NAMES = {
    exchange_pb2.DELIVERY_STATE_QUEUED: "queued",
    exchange_pb2.DELIVERY_STATE_FORWARDED: "forwarded",
    exchange_pb2.DELIVERY_STATE_DELIVERED: "delivered",
    exchange_pb2.DELIVERY_STATE_ACKNOWLEDGED: "acknowledged",
    exchange_pb2.DELIVERY_STATE_FAILED: "failed",
}


_KINDS = {
    "delivery": exchange_pb2.QUARANTINE_KIND_DELIVERY,
    "hop": exchange_pb2.QUARANTINE_KIND_HOP,
}
_KIND_NAMES = {value: name for name, value in _KINDS.items()}


def _fail(what: str, exc: grpc.RpcError, lang: Language = "en") -> None:
    detail = f"{exc.code().name}: {exc.details()}"
    found = _NO_ROUTE.search(exc.details() or "")
    if found:
        detail += "\n" + say("error.no_route", lang, unit=found.group(1))
    die(say("error.rpc", lang, what=what, detail=detail))


_NO_ROUTE = re.compile(r"no hub serves unit (\S+?)[:;]")


def _stub(channel: grpc.Channel) -> exchange_pb2_grpc.ExchangeServiceStub:
    return exchange_pb2_grpc.ExchangeServiceStub(channel)


def _send(args: argparse.Namespace) -> int:
    lang: Language = args.lang
    to_units = [c.strip() for c in args.to.split(",") if c.strip()]
    if not to_units:
        die("--to needs at least one unit code", code=2)
    request = exchange_pb2.SendRequest(
        from_unit=args.from_unit, to_units=to_units, document_id=args.document_id
    )
    if args.package is not None:
        if args.files:
            die("give either --package or files to attach, not both", code=2)
        request.package = _read(args.package)
    else:
        if not args.subject:
            die("--subject is needed to build a package (or give --package)", code=2)
        request.fields.subject = args.subject
        request.fields.code_number = args.number
        request.fields.code_notation = args.notation
        for path in args.files:
            request.fields.attachments.add(
                name=path.name,
                content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                content=_read(path),
            )
    with open_channel(client_target(args)) as channel:
        try:
            reply = _stub(channel).Send(request)
        except grpc.RpcError as exc:
            _fail("send", exc, lang)
        units = UnitNames(channel)
        recipients = [_recipient(r, units, lang) for r in reply.recipients]
    if args.json:
        _json({"document_id": reply.document_id, "recipients": recipients})
        return 0
    print(reply.document_id)
    for recipient in recipients:
        print(_recipient_line(recipient))
    return 0


def _inbox(args: argparse.Namespace) -> int:
    lang: Language = args.lang
    ack_ids: list[str] = list(args.ack or [])
    take = args.take or args.follow
    ack_all = args.ack is not None and not ack_ids  # --ack alone: everything listed
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    listed: list[dict[str, object]] = []
    acknowledged: list[str] = []
    lease_seconds = 0
    with open_channel(client_target(args)) as channel:
        stub = _stub(channel)
        units = UnitNames(channel)
        unit_name = units.name(args.unit) if args.json else ""
        try:
            if ack_ids:
                # Acknowledge the chosen ids, nothing else.
                reply = stub.Ack(exchange_pb2.AckRequest(unit_code=args.unit, delivery_ids=ack_ids))
                if args.json:
                    _json({"unit": args.unit, "acknowledged": ack_ids, "newly": reply.acknowledged})
                else:
                    print(say("inbox.acked", lang, count=reply.acknowledged), file=sys.stderr)
                return 0
            request = exchange_pb2.ReceiveRequest(
                unit_code=args.unit,
                max_deliveries=args.max,
                lease_seconds=args.lease,
                follow=args.follow,
                peek=not take,
            )
            for delivery in stub.Receive(request):
                entry = _delivery(delivery, units, lang)
                if delivery.HasField("lease_until") and delivery.HasField("delivered_at"):
                    held = delivery.lease_until.ToSeconds() - delivery.delivered_at.ToSeconds()
                    lease_seconds = max(lease_seconds, math.ceil(held))
                if args.save is not None:
                    saved = args.save / f"{delivery.delivery_id}.edxml"
                    saved.write_bytes(delivery.package_content)
                    entry["saved_to"] = str(saved)
                listed.append(entry)
                if not args.json:
                    _print_delivery(entry, lang)
                if ack_all and args.follow:
                    _ack(stub, args.unit, [delivery.delivery_id])
                    acknowledged.append(delivery.delivery_id)
            if ack_all and not args.follow:
                wanted = [str(e["delivery_id"]) for e in listed]
                if wanted:
                    _ack(stub, args.unit, wanted)
                    acknowledged = wanted
        except grpc.RpcError as exc:
            _fail("inbox", exc, lang)
    if args.json:
        _json(
            {
                "unit": args.unit,
                "unit_name": unit_name,
                "leased": take,
                "lease_seconds": lease_seconds if take else None,
                "deliveries": listed,
                "acknowledged": acknowledged,
            }
        )
        return 0
    print(say("inbox.count", lang, count=len(listed)), file=sys.stderr)
    if acknowledged:
        print(say("inbox.acked", lang, count=len(acknowledged)), file=sys.stderr)
    elif take and listed:
        print(say("inbox.lease", lang, seconds=lease_seconds, unit=args.unit), file=sys.stderr)
    elif not take:
        print(say("inbox.peek", lang), file=sys.stderr)
    return 0


def _delivery(
    delivery: exchange_pb2.Delivery, units: UnitNames, lang: Language
) -> dict[str, object]:
    return {
        "delivery_id": delivery.delivery_id,
        "document_id": delivery.document_id,
        "from_unit": delivery.from_unit,
        "from_unit_name": units.name(delivery.from_unit),
        "subject": delivery.subject,
        "trace": list(delivery.trace),
        "verification": delivery.verification,
        "lease_until": _iso(delivery.lease_until) if delivery.HasField("lease_until") else None,
    }


def _print_delivery(entry: dict[str, object], lang: Language) -> None:
    sender = str(entry["from_unit_name"] or "")
    code = str(entry["from_unit"])
    who = f"{sender} ({code})" if sender else code
    trace = "→".join(str(t) for t in entry["trace"])  # type: ignore[attr-defined]
    print(
        f"{entry['delivery_id']}\t{entry['document_id']}\t{say('inbox.from', lang, unit=who)}"
        f"\t{entry['subject']}\ttrace {trace}"
    )
    for line in str(entry["verification"]).splitlines():
        print(f"\t{line}")


def _ack(stub: exchange_pb2_grpc.ExchangeServiceStub, unit: str, ids: list[str]) -> None:
    stub.Ack(exchange_pb2.AckRequest(unit_code=unit, delivery_ids=ids))


def _status(args: argparse.Namespace) -> int:
    lang: Language = args.lang
    with open_channel(client_target(args)) as channel:
        stub = _stub(channel)
        units = UnitNames(channel)
        try:
            if args.code:
                if not args.unit:
                    die("--set needs --unit, the recipient unit setting the status", code=2)
                stub.UpdateStatus(
                    exchange_pb2.UpdateStatusRequest(
                        document_id=args.document,
                        from_unit=args.from_unit,
                        unit_code=args.unit,
                        status_code=args.code,
                        description=args.description,
                        staff=args.staff,
                    )
                )
                if args.json:
                    _json(
                        {
                            "document_id": args.document,
                            "unit_code": args.unit,
                            "status_code": args.code,
                            "status": status_word(args.code, lang),
                        }
                    )
                else:
                    print(
                        say(
                            "status.set",
                            lang,
                            document=args.document,
                            unit=units.label(args.unit),
                            status=status_word(args.code, lang),
                        )
                    )
                return 0
            reply = stub.Track(
                exchange_pb2.TrackRequest(document_id=args.document, from_unit=args.from_unit)
            )
        except grpc.RpcError as exc:
            _fail("status", exc, lang)
        recipients = [_recipient(r, units, lang) for r in reply.recipients]
    if args.json:
        _json(
            {"document_id": reply.document_id, "subject": reply.subject, "recipients": recipients}
        )
        return 0
    if reply.subject:
        print(f"{reply.document_id}\t{reply.subject}")
    for recipient in recipients:
        print(_recipient_line(recipient))
        for change in recipient["history"]:  # type: ignore[attr-defined]
            staff = f"\t{change['staff']}" if change["staff"] else ""
            note = f"\t{change['description']}" if change["description"] else ""
            print(f"\t{format_time_text(change['at'])}\t{change['status']}{staff}{note}")
    return 0


_BUSINESS = {0: "new", 1: "revoke", 2: "update", 3: "replace"}
_BUSINESS_WORDS: dict[str, dict[str, str]] = {
    "new": {"vi": "văn bản mới", "en": "new document"},
    "revoke": {"vi": "thu hồi", "en": "revocation"},
    "update": {"vi": "cập nhật", "en": "update"},
    "replace": {"vi": "thay thế", "en": "replacement"},
}


def _recipient(
    recipient: exchange_pb2.RecipientState, units: UnitNames, lang: Language
) -> dict[str, object]:
    state = _STATE_NAMES.get(recipient.state, "unknown")
    business = _BUSINESS.get(recipient.business_type, "new")
    return {
        "unit_code": recipient.unit_code,
        "unit_name": units.name(recipient.unit_code),
        "unit": units.label(recipient.unit_code),
        "state": state,
        "state_text": state_word(state, lang),
        "status_code": recipient.status_code,
        "status": status_word(recipient.status_code, lang) if recipient.status_code else "",
        "description": recipient.status_description,
        "updated_at": _iso(recipient.updated_at) if recipient.HasField("updated_at") else None,
        "business_type": business,
        "business_type_text": _BUSINESS_WORDS[business][lang],
        "detail": recipient.detail,
        "history": [
            {
                "code": change.code,
                "status": status_word(change.code, lang),
                "at": _iso(change.at),
                "description": change.description,
                "staff": change.staff,
            }
            for change in recipient.history
        ],
    }


def _recipient_line(recipient: dict[str, object]) -> str:
    status = recipient["status"] or "--"
    note = f"\t{recipient['description']}" if recipient["description"] else ""
    return f"{recipient['unit']}\t{recipient['state_text']}\t{status}{note}"


def format_time_text(iso: object) -> str:
    from datetime import datetime

    return format_time(datetime.fromisoformat(str(iso)))


def _iso(stamp: object) -> str:
    from datetime import UTC

    return stamp.ToDatetime(tzinfo=UTC).isoformat()  # type: ignore[attr-defined,no-any-return]


def _json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        die(f"{path}: {exc.strerror}")


def _quarantine(args: argparse.Namespace) -> int:
    with open_channel(client_target(args)) as channel:
        try:
            reply = _stub(channel).ListQuarantined(exchange_pb2.ListQuarantinedRequest())
        except grpc.RpcError as exc:
            _fail("listing the quarantine", exc)
    if args.json:
        print(json.dumps([_quarantined(i) for i in reply.items], ensure_ascii=False, indent=2))
        return 0
    for item in reply.items:
        print(
            "\t".join(
                [
                    _KIND_NAMES.get(item.kind, "unknown"),
                    item.id,
                    item.document_id,
                    f"from {item.from_unit}",
                    ",".join(item.to_units),
                    item.next_hub or "--",
                    f"{item.failures} failures",
                    item.reason,
                ]
            )
        )
    return 0


def _release(args: argparse.Namespace) -> int:
    request = exchange_pb2.ReleaseQuarantinedRequest(kind=_KINDS[args.kind], id=args.id)
    with open_channel(client_target(args)) as channel:
        try:
            reply = _stub(channel).ReleaseQuarantined(request)
        except grpc.RpcError as exc:
            _fail("release", exc)
    item = _quarantined(reply.released)
    if args.json:
        print(json.dumps(item, ensure_ascii=False, indent=2))
    else:
        print(f"released {item['kind']} {item['id']} of document {item['document_id']}")
    return 0


def _quarantined(item: exchange_pb2.QuarantinedItem) -> dict[str, object]:
    return {
        "kind": _KIND_NAMES.get(item.kind, "unknown"),
        "id": item.id,
        "document_id": item.document_id,
        "from_unit": item.from_unit,
        "to_units": list(item.to_units),
        "next_hub": item.next_hub or None,
        "failures": item.failures,
        "reason": item.reason,
        "quarantined_at": item.quarantined_at.ToDatetime().isoformat() + "Z",
    }
