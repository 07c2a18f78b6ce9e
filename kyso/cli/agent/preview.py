"""The official's preview page: the documents as they will be signed, on this machine only.

``Preview`` serves, on 127.0.0.1 and a free port, under a random path (another local user who
does not know the URL gets 404), one page listing the documents with their details, each page
rendered as PNG by poppler's ``pdftoppm`` (offline: nothing is fetched from any network, the
page has no script and no external resource), the signature's box drawn where it will go, a
tick box per document and a "Ký các văn bản này" (sign these) button. The button posts the
chosen sessions back to the agent (with the page's one-time token), which then asks for the
PIN in the terminal. The server runs in a thread of the agent and stops when the agent ends.
"""

from __future__ import annotations

import html
import http.server
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kyso.cli.text import Language

__all__ = ["MAX_PAGES", "Preview", "PreviewDocument"]

MAX_PAGES = 30
"""Pages rendered per document (the signature's page is always among them)."""
_RENDER_DPI = 72  # one pixel per point: the box is drawn in the page's own units
_SIZE = re.compile(rb"Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts")

_TEXT: Mapping[str, Mapping[Language, str]] = {
    "heading": {"vi": "Văn bản chờ ký", "en": "Documents waiting for your signature"},
    "intro": {
        "vi": "Kiểm tra từng văn bản; ô đỏ là nơi chữ ký sẽ được đặt. Bỏ chọn văn bản không"
        " muốn ký rồi bấm “Ký các văn bản này”; nhập mã PIN ở cửa sổ dòng lệnh.",
        "en": "Check each document; the red box is where the signature goes. Untick what you"
        " do not want to sign, press “Sign these”, then enter the PIN in the terminal.",
    },
    "sign": {"vi": "Ký các văn bản này", "en": "Sign these"},
    "page": {"vi": "Trang", "en": "Page"},
    "done": {
        "vi": "Đã chuyển về kyso agent: nhập mã PIN ở cửa sổ dòng lệnh. Có thể đóng trang này.",
        "en": "Handed back to kyso agent: enter the PIN in the terminal. You may close this page.",
    },
    "invisible": {
        "vi": "Chữ ký không hiển thị trên trang.",
        "en": "The signature is not drawn on any page.",
    },
    "duplicate": {"vi": "Trùng với văn bản số", "en": "Same document as number"},
}


@dataclass(frozen=True)
class PreviewDocument:
    number: int
    details: Sequence[tuple[str, str]]
    """(label, value) lines shown above the pages"""
    title: str
    session_id: str
    pdf: bytes
    page: int | None
    rect: tuple[float, float, float, float] | None
    duplicates: Sequence[int] = ()


class Preview:
    """``with Preview(docs, lang) as preview: preview.url``; ``preview.choices`` gets the list
    of chosen 0-based indexes when the button is pressed."""

    def __init__(self, documents: Sequence[PreviewDocument], *, lang: Language) -> None:
        if shutil.which("pdftoppm") is None or shutil.which("pdfinfo") is None:
            raise OSError("pdftoppm/pdfinfo (poppler-utils) are not installed")
        self._documents = list(documents)
        self._lang = lang
        self._secret = secrets.token_urlsafe(18)
        self._form_token = secrets.token_urlsafe(18)
        self._dir = tempfile.TemporaryDirectory(prefix="kyso-preview-")
        self._sizes: dict[int, dict[int, tuple[float, float]]] = {}
        self._render_lock = threading.Lock()
        self.choices: queue.Queue[list[int]] = queue.Queue()
        for index, doc in enumerate(self._documents):
            path = Path(self._dir.name) / f"{index}.pdf"
            path.write_bytes(doc.pdf)
            self._sizes[index] = _page_sizes(path)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kyso-preview", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{self._secret}/"

    def __enter__(self) -> Preview:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    # -- rendering ------------------------------------------------------------------------

    def _pages_to_show(self, index: int) -> list[int]:
        count = len(self._sizes[index])
        pages = list(range(1, min(count, MAX_PAGES) + 1))
        target = self._documents[index].page
        if target and target > MAX_PAGES and target <= count:
            pages.append(target)
        return pages

    def _png(self, index: int, page: int) -> bytes | None:
        if page not in self._sizes.get(index, {}):
            return None
        out = Path(self._dir.name) / f"{index}-{page}"
        png = out.with_suffix(".png")
        with self._render_lock:
            if not png.exists():
                subprocess.run(
                    [
                        "pdftoppm",
                        "-png",
                        "-r",
                        str(_RENDER_DPI),
                        "-f",
                        str(page),
                        "-l",
                        str(page),
                        "-singlefile",
                        str(Path(self._dir.name) / f"{index}.pdf"),
                        str(out),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
        return png.read_bytes()

    def _page_html(self) -> str:
        t = {key: value[self._lang] for key, value in _TEXT.items()}
        parts = [
            "<!doctype html><html lang='vi'><head><meta charset='utf-8'>",
            f"<title>kyso — {html.escape(t['heading'])}</title>",
            "<style>body{font-family:sans-serif;margin:1.5em;background:#f4f4f4}"
            "section{background:#fff;padding:1em;margin-bottom:1.5em;border:1px solid #ccc}"
            ".page{position:relative;display:inline-block;margin:.5em;border:1px solid #999}"
            ".page img{display:block}"
            ".sig-box{position:absolute;box-sizing:border-box;border:3px solid #d00;"
            "background:rgba(221,0,0,.12)}"
            ".dup{color:#b00;font-weight:bold}dt{font-weight:bold;float:left;width:11em}"
            "dd{margin-left:12em}button{font-size:1.2em;padding:.5em 1.5em}</style>",
            "</head><body>",
            f"<h1>{html.escape(t['heading'])}</h1><p>{html.escape(t['intro'])}</p>",
            f"<form method='post' action='/{self._secret}/sign'>",
            f"<input type='hidden' name='token' value='{self._form_token}'>",
        ]
        for index, doc in enumerate(self._documents):
            parts.append(f"<section class='document' id='doc-{doc.number}'>")
            parts.append(
                f"<h2><label><input type='checkbox' name='choose' value='{index}' checked> "
                f"{doc.number}. {html.escape(doc.title)}</label></h2><dl>"
            )
            for label, value in doc.details:
                parts.append(f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>")
            parts.append("</dl>")
            if doc.duplicates:
                others = ", ".join(str(n) for n in doc.duplicates)
                parts.append(f"<p class='dup'>{html.escape(t['duplicate'])} {others}</p>")
            if doc.rect is None:
                parts.append(f"<p class='invisible'>{html.escape(t['invisible'])}</p>")
            for page in self._pages_to_show(index):
                width, height = self._sizes[index][page]
                parts.append(
                    f"<div class='page' data-page='{page}'><img alt='{t['page']} {page}' "
                    f"src='/{self._secret}/doc/{index}/page/{page}.png' "
                    f"width='{round(width)}' height='{round(height)}'>"
                )
                if doc.rect is not None and (doc.page or 1) == page:
                    x1, y1, x2, y2 = doc.rect
                    left, right = sorted((x1, x2))
                    bottom, top = sorted((y1, y2))
                    top_share = (height - top) / height * 100
                    parts.append(
                        "<div class='sig-box' "
                        f"style='left:{left / width * 100:.3f}%;top:{top_share:.3f}%;"
                        f"width:{(right - left) / width * 100:.3f}%;"
                        f"height:{(top - bottom) / height * 100:.3f}%'></div>"
                    )
                parts.append("</div>")
            parts.append("</section>")
        parts.append(f"<button type='submit' id='sign'>{html.escape(t['sign'])}</button>")
        parts.append("</form></body></html>")
        return "".join(parts)

    # -- HTTP -----------------------------------------------------------------------------

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        preview = self
        prefix = f"/{self._secret}/"
        page_path = re.compile(rf"^{re.escape(prefix)}doc/(\d+)/page/(\d+)\.png$")

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "kyso-agent-preview"

            def log_message(self, format: str, *args: Any) -> None:
                return  # nothing about the documents in the terminal

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header(
                    "Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'"
                )
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == prefix:
                    body = preview._page_html().encode("utf-8")
                    self._send(200, body, "text/html; charset=utf-8")
                    return
                found = page_path.match(self.path)
                if found:
                    png = preview._png(int(found.group(1)), int(found.group(2)))
                    if png is not None:
                        self._send(200, png, "image/png")
                        return
                self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                if self.path != f"{prefix}sign":
                    self._send(404, b"not found", "text/plain")
                    return
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 16)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                if form.get("token") != [preview._form_token]:
                    self._send(403, b"forbidden", "text/plain")
                    return
                chosen = sorted(
                    {
                        int(v)
                        for v in form.get("choose", [])
                        if v.isdigit() and int(v) < len(preview._documents)
                    }
                )
                preview.choices.put(chosen)
                done = _TEXT["done"][preview._lang]
                body = (
                    "<!doctype html><html><head><meta charset='utf-8'><title>kyso</title></head>"
                    f"<body><p id='handed-back'>{html.escape(done)}</p></body></html>"
                ).encode()
                self._send(200, body, "text/html; charset=utf-8")

        return Handler


def _page_sizes(path: Path) -> dict[int, tuple[float, float]]:
    """Page number -> (width, height) in points, from ``pdfinfo`` (hostile input: a PDF it
    cannot read shows no pages)."""
    try:
        done = subprocess.run(
            ["pdfinfo", "-f", "1", "-l", str(MAX_PAGES * 100), str(path)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(n): (float(w), float(h)) for n, w, h in _SIZE.findall(done.stdout)}
