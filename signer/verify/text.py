"""The verification report as text for a person, in Vietnamese (default) or English.

Every code of the schema has a sentence in both languages here (a test checks the catalogues
are complete); times are shown in Vietnam time (+07:00) as ``dd.MM.yyyy HH:mm:ss +07:00``, the
form used on signature stamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Literal, TypeVar

from signer.verify.report import (
    Finding,
    Indication,
    ModificationLevel,
    Problem,
    RevocationStatus,
    SignatureKind,
    SignatureReport,
    SubIndication,
    VerificationReport,
)

__all__ = [
    "FINDING_TEXT",
    "INDICATION_TEXT",
    "LANGUAGES",
    "PROBLEM_TEXT",
    "SUB_INDICATION_TEXT",
    "Language",
    "describe_finding",
    "describe_problem",
    "render_text",
]

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = ("vi", "en")
_VIETNAM = timezone(timedelta(hours=7))

INDICATION_TEXT: Mapping[Indication, Mapping[Language, str]] = {
    Indication.TOTAL_PASSED: {"vi": "HỢP LỆ (TOTAL-PASSED)", "en": "VALID (TOTAL-PASSED)"},
    Indication.INDETERMINATE: {
        "vi": "CHƯA XÁC ĐỊNH ĐƯỢC (INDETERMINATE)",
        "en": "CANNOT BE DETERMINED (INDETERMINATE)",
    },
    Indication.TOTAL_FAILED: {"vi": "KHÔNG HỢP LỆ (TOTAL-FAILED)", "en": "INVALID (TOTAL-FAILED)"},
}

SUB_INDICATION_TEXT: Mapping[SubIndication, Mapping[Language, str]] = {
    SubIndication.FORMAT_FAILURE: {
        "vi": "cấu trúc chữ ký hoặc tệp PDF không hợp lệ",
        "en": "the signature or PDF structure is not valid",
    },
    SubIndication.HASH_FAILURE: {
        "vi": "giá trị băm của dữ liệu được ký không khớp: nội dung đã bị thay đổi",
        "en": "the hash of the signed data does not match: the content was changed",
    },
    SubIndication.SIG_CRYPTO_FAILURE: {
        "vi": "giá trị chữ ký không đúng với khóa công khai của chứng thư",
        "en": "the signature value does not verify with the certificate's public key",
    },
    SubIndication.REVOKED: {
        "vi": "chứng thư ký đã bị thu hồi trước thời điểm ký",
        "en": "the signing certificate was revoked before the signature was made",
    },
    SubIndication.NOT_YET_VALID: {
        "vi": "chứng thư ký chưa có hiệu lực tại thời điểm ký",
        "en": "the signing certificate was not yet valid when signing",
    },
    SubIndication.SIG_CONSTRAINTS_FAILURE: {
        "vi": "chữ ký không thỏa các ràng buộc của trường chữ ký",
        "en": "the signature does not meet the signature field's constraints",
    },
    SubIndication.CHAIN_CONSTRAINTS_FAILURE: {
        "vi": "chứng thư không thỏa ràng buộc của chuỗi (ví dụ mục đích sử dụng khóa)",
        "en": "a certificate fails the chain constraints (e.g. key usage)",
    },
    SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE: {
        "vi": "không kiểm tra được chuỗi chứng thư",
        "en": "the certificate chain could not be validated",
    },
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: {
        "vi": "thuật toán hoặc độ dài khóa không được chấp nhận",
        "en": "an algorithm or key size is not acceptable",
    },
    SubIndication.EXPIRED: {
        "vi": "chứng thư đã hết hạn",
        "en": "a certificate has expired",
    },
    SubIndication.POLICY_PROCESSING_ERROR: {
        "vi": "lỗi xử lý chính sách chữ ký",
        "en": "error processing the signature policy",
    },
    SubIndication.SIGNATURE_POLICY_NOT_AVAILABLE: {
        "vi": "không có chính sách chữ ký",
        "en": "the signature policy is not available",
    },
    SubIndication.TIMESTAMP_ORDER_FAILURE: {
        "vi": "thứ tự các dấu thời gian không hợp lệ",
        "en": "the time-stamps are out of order",
    },
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: {
        "vi": "không tìm thấy chứng thư của người ký",
        "en": "the signer's certificate was not found",
    },
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: {
        "vi": "không có chuỗi chứng thư tới một điểm tin cậy đã cấu hình",
        "en": "no certificate chain to a configured trust anchor",
    },
    SubIndication.REVOKED_NO_POE: {
        "vi": "chứng thư ký đã bị thu hồi và không có bằng chứng chữ ký có trước khi thu hồi",
        "en": "the signing certificate is revoked and nothing proves the signature predates it",
    },
    SubIndication.REVOKED_CA_NO_POE: {
        "vi": "một chứng thư CA trong chuỗi đã bị thu hồi",
        "en": "a CA certificate in the chain is revoked",
    },
    SubIndication.OUT_OF_BOUNDS_NO_POE: {
        "vi": "chứng thư ký đã hết hạn hoặc chưa có hiệu lực và không có dấu thời gian chứng minh",
        "en": "the signing certificate is outside its validity and no time-stamp proves otherwise",
    },
    SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE: {
        "vi": "dữ liệu thu hồi không nằm trong khoảng thời gian cần thiết",
        "en": "the revocation data does not cover the required time",
    },
    SubIndication.OUT_OF_BOUNDS_NOT_REVOKED: {
        "vi": "chứng thư ngoài thời hạn hiệu lực (không bị thu hồi)",
        "en": "the certificate is outside its validity (not revoked)",
    },
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: {
        "vi": "thuật toán hoặc độ dài khóa không được chấp nhận (ví dụ SHA-1, RSA dưới 2048 bit)",
        "en": "an algorithm or key size is refused (e.g. SHA-1, RSA below 2048 bits)",
    },
    SubIndication.NO_POE: {
        "vi": "không có bằng chứng về thời điểm tồn tại (dấu thời gian không hợp lệ)",
        "en": "no proof of existence (the time-stamp is not valid)",
    },
    SubIndication.TRY_LATER: {
        "vi": "thiếu dữ liệu thu hồi (OCSP/CRL); thử lại với --online hoặc khi có dữ liệu",
        "en": "revocation data (OCSP/CRL) is missing; retry with --online or when available",
    },
    SubIndication.SIGNED_DATA_NOT_FOUND: {
        "vi": "không đọc được dữ liệu được ký",
        "en": "the signed data cannot be read",
    },
    SubIndication.GENERIC: {"vi": "lỗi không xác định", "en": "unspecified problem"},
    SubIndication.FORBIDDEN_MODIFICATION: {
        "vi": "tài liệu đã bị sửa đổi sau khi ký theo cách không được phép",
        "en": "the document was changed after signing in a way that is not allowed",
    },
    SubIndication.UNSIGNED_CHANGES: {
        "vi": "có thay đổi (điền biểu mẫu/chú thích) sau chữ ký cuối cùng mà không ai ký",
        "en": "form filling or annotations after the last signature that nobody signed",
    },
    SubIndication.NO_SIGNATURE_FOUND: {
        "vi": "tài liệu không có chữ ký số",
        "en": "the document has no digital signature",
    },
    SubIndication.RESOURCE_LIMIT: {
        "vi": "tài liệu vượt giới hạn xử lý nên không được đánh giá",
        "en": "the document exceeds a processing limit and was not judged",
    },
}

PROBLEM_TEXT: Mapping[str, Mapping[Language, str]] = {
    "BYTE_RANGE_INVALID": {
        "vi": "vùng dữ liệu được ký (/ByteRange) không bao trọn phiên bản của chữ ký",
        "en": "the signed byte range (/ByteRange) does not cover the signature's whole revision",
    },
    "SIGNATURE_UNREADABLE": {
        "vi": "không đọc được chữ ký (/ByteRange, /Contents hoặc CMS hỏng)",
        "en": "the signature cannot be read (/ByteRange, /Contents or CMS damaged)",
    },
    "HASH_MISMATCH": {
        "vi": "giá trị băm không khớp: dữ liệu được ký đã bị thay đổi",
        "en": "digest mismatch: the signed bytes were changed",
    },
    "SIGNATURE_INVALID": {
        "vi": "giá trị chữ ký không hợp lệ",
        "en": "the signature value is invalid",
    },
    "MODIFIED_AFTER_SIGNING": {
        "vi": "tài liệu bị sửa đổi sau khi ký (nội dung, trang, hình ảnh hoặc đối tượng khác)",
        "en": "the document was modified after signing (content, pages, images or other objects)",
    },
    "TIMESTAMP_INVALID": {
        "vi": "dấu thời gian của chữ ký không hợp lệ hoặc không tin cậy",
        "en": "the signature time-stamp is invalid or untrusted",
    },
    "SEED_VALUE_VIOLATION": {
        "vi": "chữ ký vi phạm ràng buộc của trường chữ ký",
        "en": "the signature violates the signature field's seed values",
    },
    "KEY_USAGE": {
        "vi": "chứng thư không cho phép ký (thiếu digitalSignature/nonRepudiation)",
        "en": "the certificate does not allow signing (no digitalSignature/nonRepudiation)",
    },
    "ALGORITHM_NO_POE": {
        "vi": "thuật toán chỉ được chấp nhận trước một ngày nhất định, và không có dấu thời gian "
        "tin cậy chứng minh chữ ký tồn tại trước ngày đó",
        "en": "the algorithm is acceptable only before a date, and no trusted time-stamp proves "
        "the signature existed before it",
    },
    "ALGORITHM_ACCEPTED_WITH_POE": {
        "vi": "thuật toán đã hết hạn sử dụng nhưng được chấp nhận: dấu thời gian tin cậy chứng "
        "minh chữ ký tồn tại trước ngày hết hạn",
        "en": "an algorithm past its end date, accepted: a trusted time-stamp proves the "
        "signature existed before that date",
    },
    "ECDSA_LABEL_ACCEPTED": {
        "vi": "chữ ký ECDSA ghi nhãn thuật toán không chuẩn; giá trị được kiểm tra như ECDSA và "
        "được chấp nhận theo quy tắc thuật toán",
        "en": "an ECDSA value with a non-standard algorithm label; checked as ECDSA and accepted "
        "by the algorithm rules",
    },
    "ECDSA_LABEL_REFUSED": {
        "vi": "chữ ký ECDSA ghi nhãn thuật toán không chuẩn; quy tắc thuật toán không chấp nhận "
        "(quyết định chính sách, không phải giá trị chữ ký sai)",
        "en": "an ECDSA value with a non-standard algorithm label, refused by the algorithm rules "
        "(a policy decision, not a bad signature value)",
    },
}
# Trust problems are reported under their sub-indication's code.
PROBLEM_TEXT = {**PROBLEM_TEXT, **{s.value: t for s, t in SUB_INDICATION_TEXT.items()}}

FINDING_TEXT: Mapping[str, Mapping[Language, str]] = {
    "NOT_A_PDF": {"vi": "tệp không phải PDF", "en": "the file is not a PDF"},
    "UNREADABLE": {
        "vi": "không đọc được tệp PDF (hỏng, bị cắt hoặc cấu trúc sai)",
        "en": "the PDF cannot be read (damaged, truncated or malformed)",
    },
    "LIMIT_EXCEEDED": {
        "vi": "vượt giới hạn xử lý (kích thước, số đối tượng, tỉ lệ giải nén, thời gian, bộ nhớ)",
        "en": "a processing limit was exceeded (size, objects, decompression, time, memory)",
    },
    "ENCRYPTED": {
        "vi": "tài liệu được mã hóa bằng mật khẩu người dùng",
        "en": "the document is encrypted with a user password",
    },
    "TRAILING_DATA": {
        "vi": "có dữ liệu sau dấu kết thúc %%EOF cuối cùng, không chữ ký nào bao gồm",
        "en": "data after the last %%EOF that no signature covers",
    },
    "UNSIGNED_UPDATE": {
        "vi": "bản cập nhật sau chữ ký cuối cùng, không được ký",
        "en": "incremental update after the last signature, not signed",
    },
    "DSS_UNREADABLE": {
        "vi": "không đọc được kho dữ liệu xác thực (DSS) của tài liệu",
        "en": "the document's validation data store (DSS) cannot be read",
    },
    "NO_SIGNATURE": {"vi": "tài liệu không có chữ ký", "en": "the document has no signature"},
    "TOLERANT_READING": {
        "vi": "tệp được đọc ở chế độ dung thứ (trình đọc chặt chẽ từ chối một chi tiết cấu trúc); "
        "mỗi chữ ký vẫn được kiểm tra trên đúng các byte nó ký",
        "en": "read tolerantly (the strict reader refused a structural detail); each signature "
        "was still checked on exactly the bytes it signs",
    },
    "UNREADABLE_UPDATE": {
        "vi": "tài liệu bị sửa đổi sau khi ký: không đọc được bản cập nhật phía sau",
        "en": "modified after signing: the update that follows cannot be read",
    },
    "VERIFIER_CRASHED": {
        "vi": "tiến trình kiểm tra bị dừng bất thường khi đọc tài liệu này",
        "en": "the verifying process ended abnormally on this document",
    },
}

_MODIFICATION_TEXT: Mapping[ModificationLevel, Mapping[Language, str]] = {
    ModificationLevel.NONE: {"vi": "không có", "en": "none"},
    ModificationLevel.LTA_UPDATES: {
        "vi": "chỉ bổ sung dữ liệu xác thực/dấu thời gian",
        "en": "validation data / time-stamps only",
    },
    ModificationLevel.FORM_FILLING: {
        "vi": "điền biểu mẫu, thêm chữ ký",
        "en": "form filling, further signatures",
    },
    ModificationLevel.ANNOTATIONS: {"vi": "chú thích", "en": "annotations"},
    ModificationLevel.OTHER: {"vi": "thay đổi khác (không được phép)", "en": "other (not allowed)"},
}

_REVOCATION_TEXT: Mapping[RevocationStatus, Mapping[Language, str]] = {
    RevocationStatus.GOOD: {"vi": "chưa bị thu hồi", "en": "not revoked"},
    RevocationStatus.REVOKED: {"vi": "ĐÃ BỊ THU HỒI", "en": "REVOKED"},
    RevocationStatus.UNKNOWN: {"vi": "không có dữ liệu", "en": "no data"},
    RevocationStatus.NOT_CHECKED: {"vi": "chưa kiểm tra", "en": "not checked"},
    RevocationStatus.NO_DATA: {
        "vi": "không xác định: chứng thư không chỉ nguồn thu hồi và tài liệu không chứa dữ liệu "
        "thu hồi cho nó",
        "en": "not established: the certificate names no revocation source and the document "
        "carries no revocation data for it",
    },
}

_LOCATION_TEXT: Mapping[str, Mapping[Language, str]] = {
    "dss": {"vi": "DSS", "en": "DSS"},
    "vri": {"vi": "DSS/VRI", "en": "DSS/VRI"},
    "signed-attribute": {
        "vi": "thuộc tính ký adbe-revocationInfoArchival",
        "en": "signed attribute adbe-revocationInfoArchival",
    },
    "cms": {"vi": "trường crls của CMS", "en": "the CMS crls field"},
    "timestamp": {"vi": "trong dấu thời gian của chữ ký", "en": "in the signature's time-stamp"},
}

_FORMAT_TEXT: Mapping[str, Mapping[Language, str]] = {
    "cms": {
        "vi": "CMS (không phải chữ ký PAdES cơ sở)",
        "en": "CMS (not a PAdES baseline signature)",
    },
    "cades": {"vi": "CAdES (PAdES)", "en": "CAdES (PAdES)"},
    "cades-without-signing-certificate": {
        "vi": "khai báo CAdES nhưng thiếu thuộc tính signing-certificate-v2: chữ ký CMS, không đạt "
        "PAdES B-B",
        "en": "declared CAdES but without signing-certificate-v2: a CMS signature, not PAdES B-B",
    },
    "timestamp": {"vi": "dấu thời gian RFC 3161", "en": "RFC 3161 time-stamp"},
}

_LABELS: Mapping[str, Mapping[Language, str]] = {
    "title": {"vi": "BÁO CÁO KIỂM TRA CHỮ KÝ SỐ", "en": "DIGITAL SIGNATURE VERIFICATION REPORT"},
    "document": {"vi": "Tài liệu", "en": "Document"},
    "size": {"vi": "byte", "en": "bytes"},
    "revisions": {"vi": "Số phiên bản", "en": "Revisions"},
    "result": {"vi": "Kết luận", "en": "Result"},
    "reason": {"vi": "Lý do", "en": "Reason"},
    "verified_at": {"vi": "Thời điểm kiểm tra", "en": "Verified at"},
    "mode": {"vi": "Chế độ", "en": "Mode"},
    "online": {"vi": "trực tuyến (cho phép tải OCSP/CRL)", "en": "online (OCSP/CRL fetching)"},
    "offline": {"vi": "ngoại tuyến", "en": "offline"},
    "trust": {"vi": "Hồ sơ tin cậy", "en": "Trust profiles"},
    "none": {"vi": "(không có)", "en": "(none)"},
    "signature": {"vi": "Chữ ký", "en": "Signature"},
    "doc_timestamp": {"vi": "Dấu thời gian tài liệu", "en": "Document time-stamp"},
    "field": {"vi": "trường", "en": "field"},
    "signer": {"vi": "Người ký", "en": "Signer"},
    "serial": {"vi": "Số hiệu chứng thư", "en": "Certificate serial"},
    "issuer": {"vi": "Tổ chức cấp", "en": "Issuer"},
    "claimed_time": {"vi": "Thời gian ký (tự khai)", "en": "Claimed signing time"},
    "timestamp": {"vi": "Dấu thời gian", "en": "Time-stamp"},
    "integrity": {"vi": "Toàn vẹn", "en": "Integrity"},
    "intact": {"vi": "nguyên vẹn", "en": "intact"},
    "broken": {"vi": "KHÔNG nguyên vẹn", "en": "NOT intact"},
    "anchor": {"vi": "Chuỗi tin cậy tới", "en": "Chain to anchor"},
    "untrusted": {"vi": "không tin cậy", "en": "not trusted"},
    "revocation": {"vi": "Tình trạng thu hồi", "en": "Revocation"},
    "changes": {"vi": "Thay đổi sau khi ký", "en": "Changes after signing"},
    "level": {"vi": "Mức PAdES đạt", "en": "PAdES level reached"},
    "algorithm": {"vi": "Thuật toán", "en": "Algorithm"},
    "key_usage": {"vi": "Mục đích khóa", "en": "Key usage"},
    "problems": {"vi": "Vấn đề", "en": "Problems"},
    "findings": {"vi": "Ghi nhận về tài liệu", "en": "Document findings"},
    "revision": {"vi": "phiên bản", "en": "revision"},
    "unknown": {"vi": "không rõ", "en": "unknown"},
    "ok": {"vi": "đạt", "en": "acceptable"},
    "refused": {"vi": "KHÔNG chấp nhận", "en": "REFUSED"},
    "whole": {"vi": "bao trọn tài liệu", "en": "covers the whole document"},
    "embedded": {"vi": "dữ liệu nhúng", "en": "embedded data"},
    "fetched": {"vi": "tải trực tuyến", "en": "fetched online"},
    "found": {"vi": "Dữ liệu thu hồi trong tài liệu", "en": "Revocation data in the document"},
    "about_signer": {"vi": "về chứng thư người ký", "en": "about the signer's certificate"},
    "format": {"vi": "Định dạng chữ ký", "en": "Signature format"},
}


_K = TypeVar("_K")


def _t(catalogue: Mapping[_K, Mapping[Language, str]], key: _K, lang: Language) -> str:
    entry = catalogue.get(key)
    return entry[lang] if entry is not None else str(key)


def _time(moment: datetime | None, lang: Language) -> str:
    if moment is None:
        return _LABELS["unknown"][lang]
    return moment.astimezone(_VIETNAM).strftime("%d.%m.%Y %H:%M:%S +07:00")


def describe_problem(problem: Problem, lang: Language = "vi") -> str:
    text = _t(PROBLEM_TEXT, problem.code, lang)
    return f"{text} [{problem.code}{': ' + problem.detail if problem.detail else ''}]"


def describe_finding(finding: Finding, lang: Language = "vi") -> str:
    text = _t(FINDING_TEXT, finding.code, lang)
    where = []
    if finding.revision is not None:
        where.append(f"{_LABELS['revision'][lang]} {finding.revision}")
    if finding.offset is not None:
        where.append(f"@{finding.offset}+{finding.length}")
    if finding.modification_level is not None:
        where.append(_t(_MODIFICATION_TEXT, finding.modification_level, lang))
    suffix = f" ({'; '.join(where)})" if where else ""
    detail = f" [{finding.code}: {finding.detail}]" if finding.detail else f" [{finding.code}]"
    return f"{finding.severity.value.upper()}: {text}{suffix}{detail}"


def render_text(report: VerificationReport, *, lang: Language = "vi") -> str:
    """The whole report as plain text (UTF-8, one item per line)."""
    label = {key: value[lang] for key, value in _LABELS.items()}
    lines = [label["title"], "=" * len(label["title"])]
    lines.append(
        f"{label['document']}: SHA-256 {report.document_sha256} "
        f"({report.document_size} {label['size']}); {label['revisions']}: {report.revisions}"
    )
    lines.append(f"{label['verified_at']}: {_time(report.verified_at, lang)}")
    lines.append(f"{label['mode']}: {label['online'] if report.online else label['offline']}")
    lines.append(f"{label['trust']}: {', '.join(report.trust_profiles) or label['none']}")
    lines.append(f"{label['result']}: {_t(INDICATION_TEXT, report.indication, lang)}")
    if report.sub_indication is not None:
        lines.append(
            f"{label['reason']}: {_t(SUB_INDICATION_TEXT, report.sub_indication, lang)} "
            f"[{report.sub_indication.value}]"
        )
    for index, signature in enumerate(report.signatures, start=1):
        lines.append("")
        lines.extend(_signature_lines(index, signature, lang))
    if report.findings:
        lines.append("")
        lines.append(f"{label['findings']}:")
        lines.extend(f"  - {describe_finding(f, lang)}" for f in report.findings)
    return "\n".join(lines) + "\n"


def _signature_lines(index: int, sig: SignatureReport, lang: Language) -> list[str]:
    label = {key: value[lang] for key, value in _LABELS.items()}
    kind = label["signature"] if sig.kind is SignatureKind.SIGNATURE else label["doc_timestamp"]
    verdict = _t(INDICATION_TEXT, sig.indication, lang)
    if sig.sub_indication is not None:
        verdict += f" / {sig.sub_indication.value}"
    lines = [f"{kind} {index} ({label['field']} {sig.field_name}): {verdict}"]
    if sig.signer is not None:
        lines.append(f"  {label['signer']}: {sig.signer.subject}")
        lines.append(f"  {label['serial']}: {sig.signer.serial}")
        lines.append(f"  {label['issuer']}: {sig.signer.issuer}")
    if sig.kind is SignatureKind.SIGNATURE:
        lines.append(f"  {label['claimed_time']}: {_time(sig.claimed_signing_time, lang)}")
    if sig.timestamp is not None:
        state = label["ok"] if sig.timestamp.trusted else label["untrusted"]
        lines.append(
            f"  {label['timestamp']}: {_time(sig.timestamp.time, lang)} "
            f"({sig.timestamp.tsa_subject}; {state})"
        )
    integrity = label["intact"] if sig.intact and sig.signature_valid else label["broken"]
    if sig.covers_whole_document:
        integrity += f", {label['whole']}"
    lines.append(f"  {label['integrity']}: {integrity} ({sig.coverage.value})")
    lines.append(f"  {label['anchor']}: {sig.trust_anchor or label['untrusted']}")
    revocation = _t(_REVOCATION_TEXT, sig.revocation.status, lang)
    if sig.revocation.revoked_at is not None:
        revocation += f" ({_time(sig.revocation.revoked_at, lang)}, {sig.revocation.reason})"
    source = {"embedded": label["embedded"], "online": label["fetched"]}.get(
        sig.revocation.source.value
    )
    if source:
        revocation += f" [{source}]"
    lines.append(f"  {label['revocation']}: {revocation}")
    for item in sig.revocation.found:
        about = f", {label['about_signer']}" if item.about_signer else ""
        lines.append(
            f"    {label['found']}: {item.kind.upper()} {item.issuer} "
            f"({_time(item.produced_at, lang)}; "
            f"{_t(_LOCATION_TEXT, item.location.value, lang)}{about})"
        )
    if sig.modification_level is not None:
        lines.append(
            f"  {label['changes']}: {_t(_MODIFICATION_TEXT, sig.modification_level, lang)}"
        )
    if sig.signature_format is not None:
        lines.append(f"  {label['format']}: {_t(_FORMAT_TEXT, sig.signature_format, lang)}")
    if sig.kind is SignatureKind.SIGNATURE:
        lines.append(f"  {label['level']}: {sig.level_reached.value}")
    if sig.algorithm is not None:
        algo = sig.algorithm
        verdict = label["ok"] if algo.acceptable else label["refused"]
        lines.append(
            f"  {label['algorithm']}: {algo.signature} / {algo.digest}, "
            f"{algo.key_algorithm.upper()} {algo.key_bits} bit ({verdict})"
        )
        lines.extend(f"    - {describe_problem(note, lang)}" for note in algo.notes)
    if sig.key_usage:
        lines.append(f"  {label['key_usage']}: {', '.join(sig.key_usage)}")
    if sig.problems:
        lines.append(f"  {label['problems']}:")
        lines.extend(f"    - {describe_problem(p, lang)}" for p in sig.problems)
    return lines
