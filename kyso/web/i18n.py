"""The console's words, Vietnamese first, English second (one catalogue, checked complete).

Report codes (sub-indications, problems, findings) take their sentences from
``signer.verify.text``, so the console and ``kyso verify`` say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["LANGUAGES", "MESSAGES", "Language", "language_of", "translate"]

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = ("vi", "en")

MESSAGES: Mapping[str, tuple[str, str]] = {
    "app_name": ("Bảng điều khiển kiểm tra kyso", "kyso auditors' console"),
    "nav_verify": ("Kiểm tra PDF", "Verify a PDF"),
    "nav_history": ("Lịch sử văn bản", "Document history"),
    "nav_ledger": ("Sổ cái", "Ledger"),
    "nav_public": ("Tra cứu công khai", "Public check"),
    "sign_out": ("Đăng xuất", "Sign out"),
    "signed_in_as": ("Đã đăng nhập:", "Signed in as"),
    "sign_in_title": ("Đăng nhập kiểm tra viên", "Auditor sign-in"),
    "sign_in_help": (
        "Nhập mã truy cập do quản trị viên cấp cho bạn.",
        "Enter the access token your administrator gave you.",
    ),
    "token": ("Mã truy cập", "Access token"),
    "sign_in": ("Đăng nhập", "Sign in"),
    "sign_in_failed": ("Mã truy cập không đúng.", "The access token is not right."),
    "sign_in_required": (
        "Vui lòng đăng nhập để dùng trang này.",
        "Please sign in to use this page.",
    ),
    "csrf_refused": (
        "Yêu cầu bị từ chối: biểu mẫu đã hết hạn hoặc không đến từ trang này. Hãy tải lại"
        " trang và thử lại.",
        "Request refused: the form expired or did not come from this site. Reload the page"
        " and try again.",
    ),
    "too_large": (
        "Tệp quá lớn: tối đa {limit} MB.",
        "The file is too large: at most {limit} MB.",
    ),
    "no_file": ("Hãy chọn một tệp PDF.", "Choose a PDF file."),
    "rate_limited": (
        "Bạn đã tra cứu quá nhiều lần. Vui lòng thử lại sau một phút.",
        "Too many checks from your address. Please try again in a minute.",
    ),
    "service_error": ("Dịch vụ kyso trả lời:", "The kyso service answered:"),
    "verify_title": ("Kiểm tra chữ ký số trên tệp PDF", "Verify the signatures of a PDF"),
    "verify_help": (
        "Chọn hoặc kéo thả tệp PDF đã ký. Tệp chỉ được dùng để kiểm tra.",
        "Choose or drop a signed PDF. The file is used only for the check.",
    ),
    "pdf_file": ("Tệp PDF", "PDF file"),
    "verify_button": ("Kiểm tra", "Verify"),
    "result_title": ("Kết quả kiểm tra", "Verification result"),
    "document": ("Văn bản", "Document"),
    "overall": ("Kết luận chung", "Overall"),
    "valid": ("Hợp lệ", "Valid"),
    "not_valid": ("Không hợp lệ", "Not valid"),
    "cannot_tell": ("Chưa xác định được", "Cannot tell"),
    "summary": ("Tóm tắt", "Summary"),
    "signature_n": ("Chữ ký {n}", "Signature {n}"),
    "signed_by": ("Người ký", "Signed by"),
    "organisation": ("Cơ quan, tổ chức", "Organisation"),
    "signed_at": ("Thời điểm ký", "Signed at"),
    "reason": ("Lý do", "Reason"),
    "no_signature": ("Văn bản không có chữ ký số nào.", "The document carries no signature."),
    "details": ("Chi tiết", "Details"),
    "certificate": ("Chứng thư số", "Certificate"),
    "issuer": ("Đơn vị cấp", "Issuer"),
    "serial": ("Số hiệu", "Serial"),
    "validity": ("Hiệu lực", "Validity"),
    "chain": ("Chuỗi chứng thư", "Certificate chain"),
    "claimed_time": ("Thời điểm người ký khai", "Time claimed by the signer"),
    "timestamp_time": ("Thời điểm theo dấu thời gian", "Time-stamp time"),
    "none": ("không có", "none"),
    "revocation": ("Kiểm tra thu hồi", "Revocation check"),
    "revocation_source": ("Nguồn dữ liệu thu hồi", "Revocation data from"),
    "level": ("Mức PAdES đạt được", "PAdES level reached"),
    "changes_after": ("Thay đổi sau khi ký", "Changes after signing"),
    "algorithm": ("Thuật toán", "Algorithm"),
    "problems": ("Vấn đề phát hiện", "Problems found"),
    "timeline": ("Các phiên bản của văn bản", "The document's revisions"),
    "revision_original": ("Phiên bản {n}: bản gốc", "Revision {n}: the original"),
    "revision_signed": ("Phiên bản {n}: {what}", "Revision {n}: {what}"),
    "revision_unsigned": (
        "Phiên bản {n}: thay đổi không có chữ ký ({level})",
        "Revision {n}: unsigned change ({level})",
    ),
    "diagnostic": ("Dữ liệu chẩn đoán (JSON)", "Diagnostic data (JSON)"),
    "downloads": ("Tải về", "Downloads"),
    "download_json": ("Báo cáo JSON", "JSON report"),
    "download_pdf": ("Báo cáo PDF có đóng dấu số", "PDF report sealed by kyso"),
    "download_bundle": ("Gói bằng chứng (ZIP)", "Evidence bundle (ZIP)"),
    "bundle_no_events": (
        "Chưa thể lập gói bằng chứng: sổ cái chưa có sự kiện nào về văn bản này được một đầu"
        " cây đã ký bao gồm (nếu văn bản vừa được ký, hãy thử lại sau ít phút).",
        "No evidence bundle yet: no ledger event about this document is covered by a signed"
        " tree head (if it was just signed, try again in a few minutes).",
    ),
    "see_history": ("Xem lịch sử văn bản này", "See this document's history"),
    "findings": ("Nhận xét về văn bản", "About the document"),
    "history_title": ("Lịch sử của văn bản trong sổ cái", "A document's history in the ledger"),
    "history_help": (
        "Tra theo mã SHA-256, theo mã văn bản edXML (DocumentId), hoặc chọn tệp để tính mã.",
        "Look up by SHA-256, by edXML DocumentId, or choose the file to compute it.",
    ),
    "sha256": ("Mã SHA-256", "SHA-256"),
    "document_id": ("Mã văn bản (DocumentId)", "DocumentId"),
    "or_file": ("hoặc tệp", "or the file"),
    "look_up": ("Tra cứu", "Look up"),
    "events": ("Sự kiện trong sổ cái", "Ledger events"),
    "no_events": (
        "Sổ cái không có sự kiện nào về văn bản này.",
        "The ledger has no event about it.",
    ),
    "index": ("Số thứ tự", "Index"),
    "time": ("Thời gian", "Time"),
    "event": ("Sự kiện", "Event"),
    "actor": ("Thực hiện bởi", "By"),
    "unit": ("Đơn vị", "Unit"),
    "proof": ("Chứng minh có trong sổ cái", "Proof of inclusion"),
    "proof_ok": ("đã kiểm tra ✓", "checked ✓"),
    "proof_pending": ("chờ cây ký tiếp theo", "awaiting the next signed head"),
    "proof_bad": ("KHÔNG khớp", "does NOT hold"),
    "route": ("Đường đi qua các trục", "Route across hubs"),
    "no_route": ("Văn bản chưa đi qua trục nào.", "The document did not travel through a hub."),
    "head": ("Đầu cây đã ký mới nhất", "Latest signed tree head"),
    "head_size": ("Số mục", "Size"),
    "head_root": ("Gốc Merkle", "Merkle root"),
    "head_time": ("Thời điểm ký", "Signed at"),
    "head_signer": ("Người ký", "Signed by"),
    "head_signature": ("Chữ ký của đầu cây", "Head signature"),
    "head_fingerprint": ("Dấu vân tay chứng thư", "Certificate fingerprint"),
    "no_head": ("Chưa có đầu cây nào được ký.", "No tree head has been signed yet."),
    "ledger_title": ("Sổ cái kiểm toán", "The audit ledger"),
    "consistency_title": ("Kiểm tra tính nhất quán", "Consistency check"),
    "consistency_help": (
        "Dán một đầu cây cũ bạn đã lưu (JSON như dưới đây, hoặc 'số mục gốc-hex') để kiểm tra"
        " sổ cái hiện nay vẫn chứa nguyên vẹn nó.",
        "Paste an older head you kept (JSON as below, or 'size root-hex') to check that today's"
        " ledger still contains it unchanged.",
    ),
    "old_head": ("Đầu cây cũ", "Older head"),
    "check": ("Kiểm tra", "Check"),
    "consistent": (
        "Nhất quán: sổ cái hiện nay mở rộng đúng từ đầu cây cũ.",
        "Consistent: today's ledger extends the older head unchanged.",
    ),
    "inconsistent": (
        "KHÔNG nhất quán: {why}",
        "NOT consistent: {why}",
    ),
    "inc_larger": (
        "đầu cây cũ ({old} mục) lớn hơn sổ cái hiện nay ({new} mục)",
        "the older head ({old} entries) is larger than today's ledger ({new})",
    ),
    "inc_same_size": (
        "cùng số mục nhưng gốc Merkle khác: lịch sử đã bị viết lại",
        "same size but another Merkle root: the history was rewritten",
    ),
    "inc_empty": (
        "đầu cây 0 mục phải có gốc của cây rỗng",
        "a head of size 0 must have the empty tree's root",
    ),
    "inc_proof": (
        "chứng minh nhất quán từ {old} đến {new} mục không khớp: các mục cũ đã bị thay đổi",
        "the consistency proof from {old} to {new} entries does not hold: old entries changed",
    ),
    "bad_head": (
        "Không đọc được đầu cây đã dán: cần JSON có tree_size và root_hash, hoặc 'số gốc'.",
        "The pasted head cannot be read: give JSON with tree_size and root_hash, or 'size root'.",
    ),
    "public_title": ("Tra cứu kết quả đã ký", "Check a signed result"),
    "public_help": (
        "Chọn tệp PDF kết quả bạn nhận được để biết chữ ký số trên đó có hợp lệ không.",
        "Choose the signed PDF you received to learn whether its signatures are valid.",
    ),
    "nav_operator": ("Vận hành", "Operations"),
    "operator_sign_in_title": ("Đăng nhập người vận hành", "Operator sign-in"),
    "operator_sign_in_help": (
        "Nhập mã truy cập vận hành do quản trị viên cấp cho bạn.",
        "Enter the operator's access token your administrator gave you.",
    ),
    "auditors_only": (
        "Trang này dành cho kiểm tra viên. Bạn đang đăng nhập với vai trò người vận hành.",
        "This page is for auditors. You are signed in as an operator.",
    ),
    "operators_only": (
        "Trang này chỉ dành cho người vận hành. Bạn đang đăng nhập với vai trò kiểm tra viên.",
        "This page is for operators only. You are signed in as an auditor.",
    ),
    "operator_title": ("Tình trạng vận hành", "Operations status"),
    "operator_refresh": (
        "Trang tự tải lại mỗi {seconds} giây. Số liệu lúc {time}.",
        "The page reloads every {seconds} seconds. Figures as of {time}.",
    ),
    "server": ("Máy chủ kyso", "kyso server"),
    "health": ("Tình trạng chung", "Overall health"),
    "health_SERVING": ("đang phục vụ", "serving"),
    "health_NOT_SERVING": ("KHÔNG phục vụ", "NOT serving"),
    "health_other": ("không liên lạc được", "cannot be reached"),
    "down_reasons": ("Lý do", "Why"),
    "metrics_missing": (
        "Chưa cấu hình địa chỉ số liệu (metrics_address trong web.toml): trang chỉ hiển thị"
        " tình trạng chung.",
        "Metrics are not configured (metrics_address in web.toml): only the overall health"
        " is shown.",
    ),
    "metrics_error": ("Không đọc được số liệu: {why}", "Cannot read the metrics: {why}"),
    "dependencies": ("Thành phần phụ thuộc", "Dependencies"),
    "dependency": ("Thành phần", "Dependency"),
    "state": ("Trạng thái", "State"),
    "up": ("Hoạt động", "Up"),
    "down": ("NGỪNG", "DOWN"),
    "tokens": ("Thiết bị ký (token PKCS#11)", "Signing tokens (PKCS#11)"),
    "token_name": ("Token", "Token"),
    "certificates": ("Chứng thư số và hạn dùng", "Certificates and their expiry"),
    "not_after": ("Hết hạn lúc", "Valid until"),
    "days_left": ("Số ngày còn lại", "Days left"),
    "expires_soon": ("sắp hết hạn", "expires soon"),
    "expired": ("ĐÃ HẾT HẠN", "EXPIRED"),
    "cert_tls": ("Chứng thư TLS của máy chủ", "Server TLS certificate"),
    "cert_key": ("Khóa {alias}", "Key {alias}"),
    "cert_tsa": ("Máy chủ dấu thời gian {url}", "Time-stamping authority {url}"),
    "ledger_state": ("Sổ cái", "Ledger"),
    "ledger_entries": ("Số mục trong sổ cái", "Ledger entries"),
    "head_age": ("Đã ký cách đây", "Signed ago"),
    "no_head_yet": ("chưa có đầu cây nào được ký", "no tree head signed yet"),
    "age_seconds": ("{n} giây", "{n} s"),
    "age_minutes": ("{n} phút", "{n} min"),
    "age_hours": ("{n} giờ", "{n} h"),
    "age_days": ("{n} ngày", "{n} days"),
    "backlogs": ("Việc tồn đọng", "Backlogs"),
    "backlog_audit_outbox": (
        "Sự kiện chờ ghi vào sổ cái",
        "Ledger events waiting to be appended",
    ),
    "backlog_hops": ("Chặng chờ trục khác xác nhận", "Hops waiting for another hub"),
    "backlog_deliveries_queued": (
        "Văn bản chờ đơn vị nhận lấy về",
        "Deliveries waiting for their recipient",
    ),
    "backlog_quarantined_delivery": ("Văn bản bị cách ly", "Deliveries quarantined"),
    "backlog_quarantined_hop": ("Chặng bị cách ly", "Hops quarantined"),
    "backlog_webhooks_pending": ("Webhook chờ gửi", "Webhooks pending"),
    "backlog_webhooks_failed": ("Webhook gửi thất bại", "Webhooks given up"),
    "backlog_citizen_messages_pending": (
        "Tin nhắn công dân chờ gửi",
        "Citizens' messages pending",
    ),
    "backlog_citizen_messages_failed": (
        "Tin nhắn công dân gửi thất bại",
        "Citizens' messages given up",
    ),
    "backlog_webhook_endpoints_disabled": (
        "Điểm nhận webhook bị tắt",
        "Webhook endpoints disabled",
    ),
    "hubs": ("Các trục và liên kết", "Hubs and their links"),
    "hub": ("Trục", "Hub"),
    "root_unit": ("Đơn vị gốc", "Root unit"),
    "address": ("Địa chỉ", "Address"),
    "links": ("Liên kết (trục cha, trục ngang hàng)", "Links (parent, peers)"),
    "hops_waiting": ("Chặng đang chờ", "Hops waiting"),
    "parent_hub": ("trục cha {hub}", "parent {hub}"),
    "this_hub": ("trục này", "this hub"),
    "no_hubs": ("Máy chủ này không định tuyến văn bản.", "This server does not route documents."),
    "language": ("English", "Tiếng Việt"),
    "claimed": ("(người ký tự khai)", "(claimed by the signer)"),
    "yes": ("có", "yes"),
    "no": ("không", "no"),
}

# Event types in words.
EVENT_TEXT: Mapping[str, tuple[str, str]] = {
    "document.stored": ("Lưu văn bản", "Document stored"),
    "signature.sealed": ("Đóng dấu số (khóa của cơ quan)", "Sealed (organisation key)"),
    "signature.prepared": ("Chuẩn bị chữ ký (chờ người ký)", "Signature prepared"),
    "signature.completed": ("Người ký đã ký", "Signature completed"),
    "signature.cancelled": ("Hủy yêu cầu ký", "Signature cancelled"),
    "signature.expired": ("Yêu cầu ký hết hạn", "Signature request expired"),
    "package.sent": ("Gửi văn bản", "Sent"),
    "package.received": ("Nhận từ trục khác", "Received from another hub"),
    "package.forwarded": ("Chuyển tiếp sang trục", "Forwarded to a hub"),
    "package.delivered": ("Đến hộp thư đơn vị nhận", "Delivered to the recipient's inbox"),
    "package.acknowledged": ("Đơn vị nhận xác nhận", "Acknowledged by the recipient"),
    "package.rejected": ("Bị từ chối", "Rejected"),
    "status.changed": ("Cập nhật trạng thái", "Status changed"),
    "authz.denied": ("Từ chối truy cập", "Access denied"),
    "hub.inspected": ("Kiểm tra toàn trục", "Hub-wide inspection"),
}


def language_of(value: str | None) -> Language:
    return "en" if value == "en" else "vi"


def translate(key: str, lang: Language, **values: object) -> str:
    """The message ``key`` in ``lang`` with ``values`` filled in (a missing key raises)."""
    text = MESSAGES[key][0 if lang == "vi" else 1]
    return text.format(**values) if values else text
