"""What the official reads before the PIN: each document's details, and the documents that
were requested more than once (the same bytes: the same SHA-256 of the document as given)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TextIO

from kyso.cli.agent_check import Inspected
from kyso.cli.text import Language, format_time, say
from kyso.v1 import signing_pb2

__all__ = ["duplicates", "level_name", "placement_text", "show", "summary_of"]

_LEVELS = {
    signing_pb2.SIGNATURE_LEVEL_B_B: "B-B",
    signing_pb2.SIGNATURE_LEVEL_B_T: "B-T",
    signing_pb2.SIGNATURE_LEVEL_B_LT: "B-LT",
    signing_pb2.SIGNATURE_LEVEL_B_LTA: "B-LTA",
}
_KINDS = {
    signing_pb2.APPEARANCE_SEAL: "seal",
    signing_pb2.APPEARANCE_TEXT: "text",
}


def level_name(item: signing_pb2.PendingSignature) -> str:
    return _LEVELS.get(item.level, "B-B")


def duplicates(items: Sequence[signing_pb2.PendingSignature]) -> dict[int, list[int]]:
    """Index -> the other indexes whose document is the same (by the document's SHA-256)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[item.document_sha256].append(index)
    return {
        index: [other for other in group if other != index]
        for group in groups.values()
        if len(group) > 1
        for index in group
    }


def placement_text(item: signing_pb2.PendingSignature, lang: Language) -> str:
    kind = _KINDS.get(item.appearance, "none")
    kind_text = say(f"agent.kind.{kind}", lang)
    if item.HasField("rect"):
        r = item.rect
        return say(
            "agent.place_rect",
            lang,
            page=r.page or 1,
            x1=r.x1,
            y1=r.y1,
            x2=r.x2,
            y2=r.y2,
            kind=kind_text,
        )
    if kind != "none" and item.field_name:
        return say("agent.place_field", lang, field=item.field_name, kind=kind_text)
    return say("agent.place_none", lang)


def requester_text(item: signing_pb2.PendingSignature) -> str:
    return f"{item.requester_name} ({item.requester})" if item.requester_name else item.requester


def unit_text(code: str, names: Mapping[str, str]) -> str:
    if not code:
        return "—"
    return f"{names[code]} ({code})" if code in names else code


def show(
    checked: Sequence[tuple[signing_pb2.PendingSignature, Inspected]],
    out: TextIO,
    *,
    lang: Language,
    units: Mapping[str, str],
) -> None:
    items = [item for item, _ in checked]
    twins = duplicates(items)
    print(say("agent.count", lang, count=len(checked)), file=out)
    for number, (item, seen) in enumerate(checked, start=1):
        pages = (
            say("agent.pages", lang, pages=seen.pages)
            if seen.pages is not None
            else say("agent.pages_unknown", lang)
        )
        created = format_time(item.created_at.ToDatetime(tzinfo=UTC), lang)
        expires = format_time(item.expires_at.ToDatetime(tzinfo=UTC), lang)
        lines = [
            f"{number:>4}. {item.title or '(—)'}",
            " · ".join(
                [
                    say("agent.file", lang, name=item.filename or "—"),
                    pages,
                    say("agent.level", lang, level=level_name(item)),
                ]
            ),
            " · ".join(
                [
                    say("agent.requester", lang, who=requester_text(item)),
                    say("agent.unit", lang, unit=unit_text(item.unit_code, units)),
                ]
            ),
        ]
        if item.reason or item.location:
            parts = []
            if item.reason:
                parts.append(say("agent.reason", lang, reason=item.reason))
            if item.location:
                parts.append(say("agent.location", lang, location=item.location))
            lines.append(" · ".join(parts))
        lines.append(placement_text(item, lang))
        lines.append(say("agent.times", lang, created=created, expires=expires))
        lines.append(say("agent.sha256", lang, digest=seen.sha256))
        lines.append(say("agent.session", lang, session=item.session_id))
        if number - 1 in twins:
            others = ", ".join(str(i + 1) for i in twins[number - 1])
            lines.append("!! " + say("agent.duplicate", lang, others=others))
        print(lines[0], file=out)
        for line in lines[1:]:
            print(f"      {line}", file=out)


def summary_of(
    item: signing_pb2.PendingSignature, seen: Inspected, units: Mapping[str, str]
) -> dict[str, object]:
    """One document as JSON (the preview page and ``--json``)."""
    rect = None
    if item.HasField("rect"):
        r = item.rect
        rect = {"page": r.page or 1, "x1": r.x1, "y1": r.y1, "x2": r.x2, "y2": r.y2}
    return {
        "session_id": item.session_id,
        "title": item.title,
        "filename": item.filename,
        "pages": seen.pages,
        "level": level_name(item),
        "requester": item.requester,
        "requester_name": item.requester_name,
        "unit_code": item.unit_code,
        "unit_name": units.get(item.unit_code, ""),
        "reason": item.reason,
        "location": item.location,
        "appearance": _KINDS.get(item.appearance, "none"),
        "field_name": item.field_name,
        "rect": rect,
        "created_at": item.created_at.ToDatetime(tzinfo=UTC).isoformat(),
        "expires_at": item.expires_at.ToDatetime(tzinfo=UTC).isoformat(),
        "document_sha256": item.document_sha256,
        "prepared_sha256": seen.sha256,
    }
