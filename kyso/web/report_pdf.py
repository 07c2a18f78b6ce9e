"""The verification report as a PDF (A4, Noto Sans, Vietnamese diacritics embedded), for kyso
to seal with ``SignPdf`` so that the report itself can be verified.

The text is kyso's own human-readable report (``report_text``), headed with the document's
SHA-256 and the report JSON's SHA-256, so the sealed PDF binds the two.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.stamp import TextStamp, TextStampStyle

__all__ = ["FONT", "report_pdf"]

FONT = Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf")
_A4 = (595, 842)
_LINES_PER_PAGE = 62
_WIDTH = 100


def _lines(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines():
        lines.extend(textwrap.wrap(line, _WIDTH, subsequent_indent="    ") or [""])
    return lines


def report_pdf(*, report_text: str, report_json: str, document_sha256: str, title: str) -> bytes:
    """An A4 PDF of ``report_text`` under a header naming the document and the JSON report."""
    header = [
        title,
        f"SHA-256 (PDF): {document_sha256}",
        f"SHA-256 (report.json): {hashlib.sha256(report_json.encode('utf-8')).hexdigest()}",
        "",
    ]
    lines = header + _lines(report_text)
    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    style = TextStampStyle(
        stamp_text="%(text)s",
        text_box_style=TextBoxStyle(
            font=GlyphAccumulatorFactory(str(FONT), font_size=8), leading=12
        ),
        border_width=0,
        background=None,
    )
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    for number, chunk in enumerate(pages):
        contents = writer.add_object(generic.StreamObject(stream_data=b""))
        page = generic.DictionaryObject(  # type: ignore[no-untyped-call]
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Page"),
                generic.pdf_name("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, *_A4)]  # type: ignore[no-untyped-call]
                ),
                generic.pdf_name("/Resources"): generic.DictionaryObject(),  # type: ignore[no-untyped-call]
                generic.pdf_name("/Contents"): contents,
            }
        )
        writer.insert_page(page)  # type: ignore[no-untyped-call]
        stamp = TextStamp(writer, style, text_params={"text": "\n".join(chunk)})
        height = 12 * len(chunk) + 8
        stamp.apply(number, 36, _A4[1] - 36 - height)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()
