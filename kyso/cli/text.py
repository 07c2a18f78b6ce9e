"""What the people-facing commands say (``kyso agent``, the clerk's commands), in Vietnamese
(default) and English (``--lang en``).

The catalogue has the same shape as the verification report's (``signer.verify.text``): each key
maps to one sentence per language, and a test checks that every key has both. Kept free of heavy
imports (it is read at start-up). Times are shown as on signature stamps and in the
verification report: ``dd.MM.yyyy HH:mm:ss +07:00`` (Vietnam time).
"""

from __future__ import annotations

import argparse
import os
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

__all__ = [
    "LANGUAGES",
    "MESSAGES",
    "STATUS_WORDS",
    "Language",
    "add_lang_argument",
    "fold",
    "format_time",
    "say",
    "status_word",
]

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = ("vi", "en")
_VIETNAM = timezone(timedelta(hours=7))

MESSAGES: Mapping[str, Mapping[Language, str]] = {
    # -- kyso agent ---------------------------------------------------------------------------
    "agent.certificate": {
        "vi": "Chứng thư trên token: {subject}",
        "en": "Token certificate: {subject}",
    },
    "agent.nothing": {
        "vi": "Không có văn bản nào chờ chứng thư này ký.",
        "en": "Nothing waits for this certificate.",
    },
    "agent.count": {
        "vi": "{count} văn bản chờ ký:",
        "en": "{count} document(s) wait for this certificate:",
    },
    "agent.file": {"vi": "Tệp: {name}", "en": "File: {name}"},
    "agent.pages": {"vi": "{pages} trang", "en": "{pages} page(s)"},
    "agent.pages_unknown": {"vi": "không rõ số trang", "en": "pages unknown"},
    "agent.level": {"vi": "mức {level}", "en": "level {level}"},
    "agent.requester": {"vi": "Người đề nghị: {who}", "en": "Requested by: {who}"},
    "agent.unit": {"vi": "Đơn vị: {unit}", "en": "Unit: {unit}"},
    "agent.reason": {"vi": "Lý do: {reason}", "en": "Reason: {reason}"},
    "agent.location": {"vi": "Nơi ký: {location}", "en": "Location: {location}"},
    "agent.place_rect": {
        "vi": "Vị trí chữ ký: trang {page}, ô ({x1:g}, {y1:g})–({x2:g}, {y2:g}) điểm, {kind}",
        "en": "Signature placed: page {page}, box ({x1:g}, {y1:g})–({x2:g}, {y2:g}) pt, {kind}",
    },
    "agent.place_field": {
        "vi": "Vị trí chữ ký: ô ký có sẵn “{field}”, {kind}",
        "en": "Signature placed: existing field “{field}”, {kind}",
    },
    "agent.place_none": {
        "vi": "Vị trí chữ ký: chữ ký số không hiển thị trên trang",
        "en": "Signature placed: invisible (not drawn on any page)",
    },
    "agent.kind.seal": {"vi": "hình chữ ký, con dấu và khối chữ", "en": "signature, seal and text"},
    "agent.kind.text": {"vi": "khối chữ", "en": "text block"},
    "agent.kind.none": {"vi": "không hiển thị", "en": "invisible"},
    "agent.times": {
        "vi": "Đề nghị lúc {created} · hết hạn {expires}",
        "en": "Requested {created} · expires {expires}",
    },
    "agent.sha256": {
        "vi": "SHA-256 {digest} (tệp đã chuẩn bị, đã kiểm tra)",
        "en": "SHA-256 {digest} (the prepared PDF, as checked)",
    },
    "agent.session": {"vi": "Phiên {session}", "en": "Session {session}"},
    "agent.duplicate": {
        "vi": "CHÚ Ý: cùng một văn bản với số {others} (đề nghị ký nhiều lần)",
        "en": "WARNING: the same document as number {others} (requested more than once)",
    },
    "agent.refused": {
        "vi": "từ chối, không ký: {title}: {why}",
        "en": "refused, not signed: {title}: {why}",
    },
    "agent.nothing_signable": {
        "vi": "Không có văn bản nào ký được.",
        "en": "Nothing can be signed.",
    },
    "agent.ask": {
        "vi": "Ký văn bản nào? [tất cả / 1,3-5 / không{preview}] (1–{count}): ",
        "en": "Sign which? [all / 1,3-5 / none{preview}] (1–{count}): ",
    },
    "agent.ask_preview": {"vi": " / xem", "en": " / view"},
    "agent.bad_choice": {
        "vi": "“{part}”: chọn số từ 1 đến {count}, ví dụ 1,3-5; hoặc “tất cả” / “không”",
        "en": "“{part}”: choose numbers from 1 to {count}, e.g. 1,3-5; or “all” / “none”",
    },
    "agent.none_chosen": {
        "vi": "Không chọn văn bản nào; không ký gì.",
        "en": "Nothing chosen; nothing signed.",
    },
    "agent.chosen": {"vi": "Đã chọn: {numbers}", "en": "Chosen: {numbers}"},
    "agent.pin_prompt": {"vi": "Mã PIN của token: ", "en": "PIN of the token: "},
    "agent.pin_wrong": {"vi": "Sai mã PIN.", "en": "Wrong PIN."},
    "agent.pin_low": {
        "vi": "Token báo còn ít lần thử PIN.",
        "en": "The token says few PIN tries are left.",
    },
    "agent.pin_final": {
        "vi": "Token báo chỉ còn MỘT lần thử: nhập sai lần nữa token sẽ bị khoá.",
        "en": "The token says ONE try is left: another wrong PIN locks it.",
    },
    "agent.pin_unknown_tries": {
        "vi": "Token không cho biết còn bao nhiêu lần thử.",
        "en": "The token does not say how many tries are left.",
    },
    "agent.pin_again": {
        "vi": "Nhập lại mã PIN (lần cuối trong lượt chạy này).",
        "en": "Enter the PIN again (the last time in this run).",
    },
    "agent.pin_locked": {
        "vi": "Token đã bị khoá mã PIN: người quản trị token (SO) phải mở khoá. Chưa ký gì.",
        "en": "The token's PIN is locked: its security officer must unblock it. Nothing signed.",
    },
    "agent.pin_refused": {
        "vi": "Token không nhận mã PIN; không ký gì. Kiểm tra mã PIN rồi chạy lại.",
        "en": "The token did not accept the PIN; nothing signed. Check the PIN and run again.",
    },
    "agent.login_failed": {
        "vi": "Không đăng nhập được token: {error}",
        "en": "The token did not accept the login: {error}",
    },
    "agent.signed": {"vi": "đã ký: {title} -> {ref}", "en": "signed: {title} -> {ref}"},
    "agent.failed": {"vi": "không ký được: {title}: {why}", "en": "failed: {title}: {why}"},
    "agent.left_item": {"vi": "chưa ký: {title}", "en": "not signed yet: {title}"},
    "agent.stopped": {"vi": "dừng: {why}", "en": "stopped: {why}"},
    "agent.interrupted": {
        "vi": "đã dừng theo yêu cầu (Ctrl-C) sau văn bản đang ký",
        "en": "interrupted (Ctrl-C) after the document in hand",
    },
    "agent.interrupt_seen": {
        "vi": "Ctrl-C: ký nốt văn bản đang ký rồi dừng (nhấn lần nữa để thoát ngay).",
        "en": "Ctrl-C: finishing the document in hand, then stopping (again to quit now).",
    },
    "agent.token_stopped": {
        "vi": "token ngừng ký ({error})",
        "en": "the token stopped signing ({error})",
    },
    "agent.server_lost": {
        "vi": "không liên lạc được máy chủ ({error})",
        "en": "the server could not be reached ({error})",
    },
    "agent.mechanism": {
        "vi": "token không hỗ trợ cơ chế {mechanism}",
        "en": "mechanism {mechanism} is not supported",
    },
    "agent.totals": {
        "vi": "đã ký {signed}, lỗi {failed}, còn lại {left}",
        "en": "signed {signed}, failed {failed}, left {left}",
    },
    "agent.run_again": {
        "vi": "Chạy lại kyso agent để ký những văn bản còn lại.",
        "en": "Run the agent again to sign what is left.",
    },
    "agent.cannot_list": {
        "vi": "không lấy được danh sách văn bản chờ ký: {error}",
        "en": "cannot list pending signatures: {error}",
    },
    "agent.cannot_fetch": {
        "vi": "không tải được văn bản đã chuẩn bị: {error}",
        "en": "cannot fetch the prepared documents: {error}",
    },
    "agent.token_unusable": {
        "vi": "không dùng được token: {error}",
        "en": "cannot use the token: {error}",
    },
    "agent.no_module": {
        "vi": "chưa biết thư viện PKCS#11 của token: dùng --module, hoặc client.token_module"
        " (hoặc hsm.module) trong tệp cấu hình",
        "en": "no PKCS#11 library for the token: give --module, or client.token_module"
        " (or hsm.module) in the configuration",
    },
    "agent.yes_needs_selection": {
        "vi": "--yes ký mà không hỏi, nên cần chọn rõ: --session ID (lặp lại được)"
        " hoặc --requester TÊN",
        "en": "--yes signs without asking, so it needs an explicit selection: --session ID"
        " (repeatable) or --requester NAME",
    },
    "agent.preview_at": {
        "vi": "Xem văn bản trên trình duyệt: {url}  (bấm “Ký các văn bản này” hoặc Enter ở đây)",
        "en": "View the documents in a browser: {url}  (press “Sign these” there, or Enter here)",
    },
    "agent.preview_unavailable": {
        "vi": "Không mở được trang xem: {error}",
        "en": "The preview page could not be opened: {error}",
    },
    "agent.signing": {"vi": "Đang ký {count} văn bản…", "en": "Signing {count} document(s)…"},
    # -- the clerk's commands -----------------------------------------------------------------
    "inbox.count": {"vi": "{count} văn bản trong hộp thư", "en": "{count} deliveries"},
    "inbox.acked": {
        "vi": "đã xác nhận nhận {count} văn bản",
        "en": "{count} deliveries acknowledged",
    },
    "inbox.lease": {
        "vi": "Đã giữ (lease) các văn bản trên trong {seconds} giây: trong thời gian này chúng"
        " không hiện cho người khác; xác nhận bằng kyso inbox --unit {unit} --ack ID…",
        "en": "The deliveries above are leased for {seconds} s: hidden from others meanwhile;"
        " acknowledge with kyso inbox --unit {unit} --ack ID…",
    },
    "inbox.peek": {
        "vi": "Chỉ xem, chưa giữ văn bản nào (dùng --take để giữ rồi --ack ID để xác nhận).",
        "en": "Only listed, nothing leased (use --take to lease, then --ack ID to acknowledge).",
    },
    "inbox.from": {"vi": "từ {unit}", "en": "from {unit}"},
    "status.none": {
        "vi": "Văn bản {document} chưa có người nhận nào ở máy chủ này.",
        "en": "Document {document} has no recipients on this server.",
    },
    "status.set": {
        "vi": "{document}: {unit} đặt trạng thái {status}",
        "en": "{document}: {unit} set status {status}",
    },
    "request.status": {
        "vi": "Phiên {session}: {state}",
        "en": "Session {session}: {state}",
    },
    "request.sent": {
        "vi": "Đã gửi đề nghị ký (mã phiên ở dòng trên). SHA-256 của văn bản {digest};"
        " hết hạn {expires}. Theo dõi: kyso request-signature --status MÃ_PHIÊN",
        "en": "Signature requested (the session id is above). Document SHA-256 {digest};"
        " expires {expires}. Follow it: kyso request-signature --status ID",
    },
    "request.cancelled": {"vi": "Đã huỷ phiên {session}", "en": "Cancelled session {session}"},
    "directory.none": {
        "vi": "Không tìm thấy đơn vị nào khớp “{query}”.",
        "en": "No unit matches “{query}”.",
    },
    "directory.exported": {
        "vi": "đã xuất {count} đơn vị ra {path}",
        "en": "exported {count} units to {path}",
    },
    "error.rpc": {"vi": "{what} không thành công: {detail}", "en": "{what} failed: {detail}"},
    "error.no_route": {
        "vi": "Không có hub nào phục vụ đơn vị {unit}: hỏi người quản trị kyso của đơn vị mình"
        " (nhập danh bạ bằng kyso directory import, hoặc cấu hình [exchange.hubs])",
        "en": "No hub serves unit {unit}: ask your unit's kyso operator (import the directory"
        " with kyso directory import, or configure [exchange.hubs])",
    },
}

STATE_WORDS: Mapping[str, Mapping[Language, str]] = {
    "open": {"vi": "đang chờ ký", "en": "waiting for the official"},
    "completing": {"vi": "đang hoàn tất chữ ký", "en": "being completed"},
    "completed": {"vi": "đã ký", "en": "signed"},
    "cancelled": {"vi": "đã huỷ", "en": "cancelled"},
    "expired": {"vi": "đã hết hạn", "en": "expired"},
    "waiting_approval": {"vi": "chờ phê duyệt từ xa", "en": "waiting for remote approval"},
    "rejected": {"vi": "bị từ chối", "en": "rejected"},
    "queued": {"vi": "đang chờ gửi", "en": "queued"},
    "forwarded": {"vi": "đã chuyển tiếp", "en": "forwarded"},
    "delivered": {"vi": "đã đến hộp thư", "en": "delivered"},
    "acknowledged": {"vi": "đã nhận", "en": "acknowledged"},
    "failed": {"vi": "gửi lỗi", "en": "failed"},
}

STATUS_WORDS: Mapping[str, Mapping[Language, str]] = {
    "01": {"vi": "Đã đến", "en": "Arrived"},
    "02": {"vi": "Từ chối tiếp nhận", "en": "Rejected"},
    "03": {"vi": "Đã tiếp nhận", "en": "Accepted"},
    "04": {"vi": "Đã phân công", "en": "Assigned"},
    "05": {"vi": "Đang xử lý", "en": "In progress"},
    "06": {"vi": "Hoàn thành", "en": "Completed"},
    "13": {"vi": "Đề nghị thu hồi", "en": "Revocation requested"},
    "15": {"vi": "Đồng ý thu hồi", "en": "Revocation agreed"},
    "16": {"vi": "Từ chối thu hồi", "en": "Revocation refused"},
}


def say(key: str, lang: Language, /, **values: object) -> str:
    """The sentence ``key`` in ``lang``, with ``values`` filled in."""
    return MESSAGES[key][lang].format(**values)


def status_word(code: str, lang: Language) -> str:
    """``03 Đã tiếp nhận``: a business status code with its word (the code alone if unknown)."""
    word = STATUS_WORDS.get(code)
    return f"{code} {word[lang]}" if word else code or "--"


def state_word(state: str, lang: Language) -> str:
    word = STATE_WORDS.get(state)
    return word[lang] if word else state


def format_time(moment: datetime | None, lang: Language = "vi") -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_VIETNAM).strftime("%d.%m.%Y %H:%M:%S +07:00")


def fold(text: str) -> str:
    """Lower case without Vietnamese diacritics (``Tất Cả`` -> ``tat ca``): for matching typed
    answers however the keyboard produced them."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


def add_lang_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("KYSO_LANG", "vi")
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=default if default in LANGUAGES else "vi",
        help="language of the messages (default vi, or $KYSO_LANG)",
    )
