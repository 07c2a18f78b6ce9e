"""Small PDFs made by code for the signer's tests and benchmark (no external generator)."""

from __future__ import annotations

import io
import random
import zlib

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign.fields import SigFieldSpec, append_signature_field

__all__ = ["encrypted_pdf", "make_pdf", "pdf_with_empty_field"]

A4 = (595, 842)


def make_pdf(*, pages: int = 1, size: int = 0, title: str = "Quyết định số 123/QĐ-UBND") -> bytes:
    """An A4 PDF with ``pages`` pages of text, padded (incompressible data) to about ``size``."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    ascii_title = title.encode("ascii", "replace")
    page_ids = []
    pages_id = len(objects) + 2 * pages + 1
    for number in range(1, pages + 1):
        text = b"BT /F1 14 Tf 72 560 Td (%s - page %d) Tj ET" % (ascii_title, number)
        stream = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_id, A4[0], A4[1], font, stream)
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)) == pages_id
    extra = b""
    if size:
        rng = random.Random(size)
        padding = zlib.compress(rng.randbytes(size), 0)
        pad = add(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(padding)
            + padding
            + b"\nendstream"
        )
        extra = b" /KysoTestPadding %d 0 R" % pad
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages_id, extra))
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for index, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (index, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, catalog, xref)
    )
    return out.getvalue()


def pdf_with_empty_field(name: str, box: tuple[int, int, int, int]) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(make_pdf()))
    append_signature_field(writer, SigFieldSpec(sig_field_name=name, box=box))
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def encrypted_pdf() -> bytes:
    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(make_pdf())))
    writer.encrypt("owner-secret", "user-secret")  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()
