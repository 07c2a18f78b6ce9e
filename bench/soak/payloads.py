"""What the soak's clients send: small PDFs, XML bombs and ZIP bombs.

The bombs are the hostile inputs of issue 14: an edXML package of 10⁶ empty elements (4 MB, under
the 4 MiB inline limit), one nested 50,000 levels deep, one with a 3 MB attribute; and a ZIP
"wrapper" attachment that just passes the per-attachment checks (one file, unpacked size under
``max_attachment_bytes`` and under 100 times its packed size) — harmless alone, 90 of them in one
Send unpack to about 1.4 GiB.
"""

from __future__ import annotations

import io
import os
import zipfile

__all__ = ["XML_BOMBS", "pdf", "zip_bomb"]


def pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII), so that every document can be different."""
    stream = b"BT /F1 14 Tf 72 700 Td (%s) Tj ET" % text.encode("ascii")
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return bytes(out)


def _many_elements() -> bytes:
    return b"<r>" + b"<a/>" * 1_000_000 + b"</r>"


def _deep_nesting() -> bytes:
    return b"<a>" * 50_000 + b"</a>" * 50_000


def _huge_attribute() -> bytes:
    return b'<r a="' + b"x" * 3_000_000 + b'"/>'


XML_BOMBS = {
    "xml_many_elements": _many_elements,
    "xml_deep_nesting": _deep_nesting,
    "xml_huge_attribute": _huge_attribute,
}
"""Attack name → a function making its package (called once; the bytes are reused)."""


def zip_bomb(*, unpacked: int = 16 * 1024 * 1024 - 1024, ratio: int = 100) -> bytes:
    """A one-file ZIP that unpacks to ``unpacked`` bytes, just under ``ratio`` × its own size.

    Zeros compress about 1000:1; a random tail (incompressible) brings the packed size up to
    ``unpacked / ratio`` so that a check of the ratio alone lets it through.
    """
    tail = unpacked // ratio
    while True:
        content = bytes(unpacked - tail) + os.urandom(tail)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("bao-cao.pdf", content)
        data = buffer.getvalue()
        if len(data) * ratio >= unpacked:
            return data
        tail += unpacked // ratio // 20
