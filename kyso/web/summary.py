"""A verification report (``report_json``, schema kyso.verification/1) in words a
non-specialist reads: one line per signature (who, for which organisation, when, and valid /
not valid / cannot tell with the reason), details per signature, and the revisions in order.

Pure functions over the JSON (readers ignore fields they do not know), so a newer report
schema within version 1 renders the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from kyso.web.i18n import Language, translate
from signer.verify.text import FINDING_TEXT, PROBLEM_TEXT

__all__ = [
    "SignatureView",
    "Timeline",
    "format_time",
    "overall",
    "signature_views",
    "timeline",
    "verdict",
]

_VIETNAM = timezone(timedelta(hours=7))
_VERDICT = {"TOTAL-PASSED": "valid", "TOTAL-FAILED": "not_valid", "INDETERMINATE": "cannot_tell"}
_MODIFICATION = {
    "none": ("không có", "none"),
    "lta-updates": ("chỉ bổ sung dữ liệu xác thực, dấu thời gian", "validation data only"),
    "form-filling": ("điền biểu mẫu, thêm chữ ký", "form filling, further signatures"),
    "annotations": ("chú thích", "annotations"),
    "other": ("thay đổi khác (không được phép)", "other changes (not allowed)"),
}
_REVOCATION = {
    "good": ("chưa bị thu hồi", "not revoked"),
    "revoked": ("ĐÃ BỊ THU HỒI", "REVOKED"),
    "unknown": ("không có dữ liệu", "no data"),
    "not-checked": ("chưa kiểm tra", "not checked"),
}
_SOURCE = {
    "embedded": ("nhúng trong văn bản (DSS/CMS)", "embedded in the document (DSS/CMS)"),
    "online": ("tải trực tuyến (OCSP/CRL)", "fetched online (OCSP/CRL)"),
    "none": ("không có", "none"),
}


def _pick(pair: tuple[str, str], lang: Language) -> str:
    return pair[0] if lang == "vi" else pair[1]


def format_time(value: str | None, lang: Language) -> str:
    """An ISO time in Vietnam time (dd/mm/yyyy HH:MM:SS, +07:00)."""
    if not value:
        return translate("none", lang)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_VIETNAM).strftime("%d/%m/%Y %H:%M:%S (+07:00)")


def _name_parts(human: str) -> dict[str, str]:
    """asn1crypto's human-friendly name ("Common Name: A, Organization: B") as a dict."""
    parts: dict[str, str] = {}
    for piece in human.split(", "):
        label, sep, value = piece.partition(": ")
        if sep:
            parts[label.strip()] = value.strip()
    return parts


def verdict(indication: str | None) -> str:
    """``valid``, ``not_valid`` or ``cannot_tell`` (a message key)."""
    return _VERDICT.get(indication or "", "cannot_tell")


def _reason(code: str | None, lang: Language) -> str:
    if not code:
        return ""
    text = PROBLEM_TEXT.get(code)
    return text[lang] if text else code


@dataclass(frozen=True, slots=True)
class SignatureView:
    number: int
    verdict: str
    signer: str
    organisation: str
    when: str
    when_claimed: bool
    reason: str
    details: list[tuple[str, str]] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _details(sig: dict[str, Any], lang: Language) -> list[tuple[str, str]]:
    cert = sig.get("signer") or {}
    revocation = sig.get("revocation") or {}
    algorithm = sig.get("algorithm") or {}
    stamp = sig.get("timestamp") or {}
    validity = (
        f"{format_time(cert.get('not_before'), lang)} → {format_time(cert.get('not_after'), lang)}"
    )
    return [
        (translate("certificate", lang), str(cert.get("subject", "—"))),
        (translate("issuer", lang), str(cert.get("issuer", "—"))),
        (translate("serial", lang), str(cert.get("serial", "—"))),
        (translate("validity", lang), validity),
        (translate("claimed_time", lang), format_time(sig.get("claimed_signing_time"), lang)),
        (
            translate("timestamp_time", lang),
            format_time(sig.get("timestamp_time"), lang)
            + (f" — {stamp.get('tsa_subject')}" if stamp.get("tsa_subject") else ""),
        ),
        (
            translate("revocation", lang),
            _pick(_REVOCATION.get(str(revocation.get("status")), ("—", "—")), lang),
        ),
        (
            translate("revocation_source", lang),
            _pick(_SOURCE.get(str(revocation.get("source")), ("—", "—")), lang),
        ),
        (translate("level", lang), str(sig.get("level_reached") or "—")),
        (
            translate("changes_after", lang),
            _pick(_MODIFICATION.get(str(sig.get("modification_level")), ("—", "—")), lang),
        ),
        (
            translate("algorithm", lang),
            " / ".join(
                str(algorithm.get(k))
                for k in ("digest", "signature", "key_algorithm", "key_bits")
                if algorithm.get(k)
            )
            or "—",
        ),
    ]


def signature_views(report: dict[str, Any], lang: Language) -> list[SignatureView]:
    views = []
    for number, sig in enumerate(report.get("signatures") or [], start=1):
        cert = sig.get("signer") or {}
        parts = _name_parts(str(cert.get("subject", "")))
        stamped = sig.get("timestamp_time")
        problems = []
        for problem in sig.get("problems") or []:
            text = _reason(problem.get("code"), lang)
            if text and text not in problems:
                problems.append(text)
        views.append(
            SignatureView(
                number=number,
                verdict=verdict(sig.get("indication")),
                signer=parts.get("Common Name") or str(cert.get("subject") or "—"),
                organisation=parts.get("Organization") or parts.get("Organizational Unit") or "—",
                when=format_time(stamped or sig.get("claimed_signing_time"), lang),
                when_claimed=not stamped,
                reason=_reason(sig.get("sub_indication"), lang)
                or (problems[0] if problems else ""),
                details=_details(sig, lang),
                chain=[str(c.get("subject", "")) for c in sig.get("chain") or []],
                problems=problems,
            )
        )
    return views


def overall(report: dict[str, Any], lang: Language) -> tuple[str, str]:
    """The document's verdict key and its reason in words."""
    return verdict(report.get("indication")), _reason(report.get("sub_indication"), lang)


def findings(report: dict[str, Any], lang: Language) -> list[str]:
    texts = []
    for finding in report.get("findings") or []:
        text = FINDING_TEXT.get(str(finding.get("code")))
        texts.append(text[lang] if text else str(finding.get("code")))
    return texts


@dataclass(frozen=True, slots=True)
class Timeline:
    revision: int
    text: str


def timeline(report: dict[str, Any], lang: Language) -> list[Timeline]:
    """The document's revisions in order: the original, each signature, each unsigned change."""
    items = [Timeline(0, translate("revision_original", lang, n=0))]
    for number, sig in enumerate(report.get("signatures") or [], start=1):
        revision = sig.get("signed_revision")
        if revision is None:
            continue
        cert = sig.get("signer") or {}
        who = _name_parts(str(cert.get("subject", ""))).get("Common Name", "")
        label = translate("signature_n", lang, n=number)
        when = format_time(sig.get("timestamp_time") or sig.get("claimed_signing_time"), lang)
        items.append(
            Timeline(
                int(revision),
                translate("revision_signed", lang, n=revision, what=f"{label} — {who}, {when}"),
            )
        )
    for finding in report.get("findings") or []:
        if finding.get("code") == "UNSIGNED_UPDATE" and finding.get("revision") is not None:
            level = _pick(
                _MODIFICATION.get(str(finding.get("modification_level")), ("?", "?")), lang
            )
            items.append(
                Timeline(
                    int(finding["revision"]),
                    translate("revision_unsigned", lang, n=finding["revision"], level=level),
                )
            )
    return sorted(items, key=lambda item: item.revision)
