"""``kyso archive status|extend|renew|versions``: the long-term evidence of stored signed PDFs
(``ArchiveService``).

``status`` prints how many current versions end their evidence within 30, 90 and 365 days
(``--json``: one object); ``extend REF --level B-LT|B-LTA`` raises one document and prints the
new version's ref; ``renew`` runs the server's renewal now (operators); ``versions REF`` lists a
document's versions, oldest first. Text is Vietnamese first (``--lang en`` for English).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kyso.cli.common import add_client_arguments, client_target, die, open_channel

__all__ = ["register"]

_TEXT = {
    "vi": {
        "documents": "Tài liệu đã ký đang lưu (phiên bản hiện hành)",
        "within": "Hết hiệu lực chứng cứ trong {days} ngày",
        "ended": "Đã hết hiệu lực chứng cứ",
        "no_end": "Không xác định ngày hết",
        "failing": "Gia hạn đang lỗi (sẽ thử lại)",
        "renewed": "Phiên bản đã gia hạn",
        "unreadable": "PDF không đọc được",
        "margin": "Gia hạn trước {days} ngày",
        "soonest": "Sớm hết nhất",
        "extended": "Phiên bản mới",
        "already": "Đã gia hạn trước đó; phiên bản hiện hành",
        "run": "Đã quét {scanned}, đã gia hạn {renewed}, lỗi {failed}",
    },
    "en": {
        "documents": "Stored signed documents (current versions)",
        "within": "Evidence ending within {days} days",
        "ended": "Evidence already ended",
        "no_end": "No known end",
        "failing": "Renewal failing (retried)",
        "renewed": "Renewed versions",
        "unreadable": "Unreadable PDFs",
        "margin": "Renewed {days} days ahead",
        "soonest": "Ending soonest",
        "extended": "New version",
        "already": "Renewed before; current version",
        "run": "Scanned {scanned}, renewed {renewed}, failed {failed}",
    },
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "archive", help="long-term evidence of stored signed PDFs: status, extend, renew"
    )
    sub = parser.add_subparsers(dest="archive_command", required=True)

    status = sub.add_parser(
        "status", help="how many documents end their evidence within 30, 90 and 365 days"
    )
    _common(status)
    status.set_defaults(func=_status)

    extend = sub.add_parser("extend", help="raise a stored signed PDF to B-LT or B-LTA")
    extend.add_argument("ref", help="sha256/<hex> of the stored document")
    extend.add_argument("--level", choices=("B-LT", "B-LTA"), required=True)
    _common(extend)
    extend.set_defaults(func=_extend)

    renew = sub.add_parser("renew", help="renew what is due now (operators)")
    _common(renew)
    renew.set_defaults(func=_renew)

    versions = sub.add_parser("versions", help="a document's versions, oldest first")
    versions.add_argument("ref", help="sha256/<hex> of any version")
    _common(versions)
    versions.set_defaults(func=_versions)


def _common(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--lang", choices=("vi", "en"), default="vi", help="default vi")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the call")


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    import grpc

    from kyso.v1 import archive_pb2_grpc

    target = client_target(args)
    with open_channel(target) as channel:
        stub = archive_pb2_grpc.ArchiveServiceStub(channel)
        try:
            return getattr(stub, method)(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            die(f"{method}: {exc.code().name}: {exc.details()}")


def _time(stamp: Any) -> str | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    text: str = stamp.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def _status(args: argparse.Namespace) -> int:
    from kyso.v1 import archive_pb2

    answer = _call(args, "GetArchiveStatus", archive_pb2.GetArchiveStatusRequest())
    report = {
        "now": _time(answer.now),
        "documents": answer.documents,
        "within_days": {
            "30": answer.within_30_days,
            "90": answer.within_90_days,
            "365": answer.within_365_days,
        },
        "ended": answer.ended,
        "no_end": answer.no_end,
        "failing": answer.failing,
        "renewed": answer.renewed,
        "unreadable": answer.unreadable,
        "margin_days": answer.margin_days,
        "soonest": [
            {"ref": d.ref.ref, "evidence_end": _time(d.evidence_end), "reason": d.reason}
            for d in answer.soonest
        ],
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    text = _TEXT[args.lang]
    print(f"{text['documents']}: {answer.documents}")
    for days in ("30", "90", "365"):
        print(f"  {text['within'].format(days=days)}: {report['within_days'][days]}")
    print(f"  {text['ended']}: {answer.ended}")
    print(f"  {text['no_end']}: {answer.no_end}")
    print(f"{text['failing']}: {answer.failing}")
    print(f"{text['renewed']}: {answer.renewed}")
    print(f"{text['unreadable']}: {answer.unreadable}")
    print(text["margin"].format(days=answer.margin_days))
    if report["soonest"]:
        print(f"{text['soonest']}:")
        for item in report["soonest"]:
            print(f"  {item['evidence_end']}  {item['reason']:<18}  {item['ref']}")
    return 0


def _extend(args: argparse.Namespace) -> int:
    from kyso.v1 import archive_pb2, common_pb2

    level = {"B-LT": archive_pb2.EXTEND_LEVEL_B_LT, "B-LTA": archive_pb2.EXTEND_LEVEL_B_LTA}
    answer = _call(
        args,
        "ExtendDocument",
        archive_pb2.ExtendDocumentRequest(
            ref=common_pb2.DocumentRef(ref=args.ref), level=level[args.level]
        ),
    )
    report = {
        "previous": answer.previous.ref,
        "current": answer.current.ref,
        "level": answer.level,
        "created": answer.created,
        "evidence_end": _time(answer.evidence_end),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        text = _TEXT[args.lang]
        label = text["extended"] if answer.created else text["already"]
        print(f"{label} ({answer.level}): {answer.current.ref}")
    return 0


def _renew(args: argparse.Namespace) -> int:
    from kyso.v1 import archive_pb2

    answer = _call(args, "RunRenewal", archive_pb2.RunRenewalRequest())
    report = {
        "scanned": answer.scanned,
        "renewed": answer.renewed,
        "failed": answer.failed,
        "errors": list(answer.errors),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(_TEXT[args.lang]["run"].format(**report))
        for error in answer.errors:
            print(f"  {error}")
    return 1 if answer.failed else 0


def _versions(args: argparse.Namespace) -> int:
    from kyso.v1 import archive_pb2, common_pb2

    answer = _call(
        args,
        "ListVersions",
        archive_pb2.ListVersionsRequest(ref=common_pb2.DocumentRef(ref=args.ref)),
    )
    refs = [v.ref for v in answer.versions]
    if args.json:
        print(json.dumps({"versions": refs}, indent=2))
    else:
        for ref in refs:
            print(ref)
    return 0
