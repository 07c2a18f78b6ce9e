"""Opening an untrusted PDF for signing, and checking where the signature goes.

Every parser failure becomes a precise ``SigningError``: the document is rejected cleanly,
never half-processed. Streams are decoded with pyHanko's default limits for untrusted input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation import read_certification_data

from signer.errors import (
    CertificationForbidsSigning,
    DocumentTooLarge,
    FieldNotFound,
    NotAPdf,
    PageNotFound,
    PdfCorrupt,
    PdfEncrypted,
    RectangleInvalid,
)

__all__ = ["Placement", "Rect", "open_for_signing", "resolve_placement"]

Rect = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in PDF user units, origin at the page's lower left corner."""

# The PDF header may be preceded by junk (ISO 32000-1, 7.5.2 allows readers to search the first
# 1024 bytes); anything later is not a PDF.
_HEADER_WINDOW = 1024


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where the signature goes: an existing empty field, or a new field on page + rectangle.

    ``page`` is 1-based. A new invisible signature has no rectangle.
    """

    field_name: str
    existing: bool
    page: int = 1
    rect: Rect | None = None


_COPY_CHUNK = 1 << 20


def open_for_signing(pdf: bytes, *, max_size: int) -> IncrementalPdfFileWriter:
    """Parse ``pdf`` for an incremental update, or raise the precise error.

    Invariant: the returned writer's source is ``pdf`` itself (nothing is copied or repaired),
    so the signed output is ``pdf`` followed by one incremental update.
    """
    if len(pdf) > max_size:
        raise DocumentTooLarge(
            f"the document is {len(pdf):,} bytes; the limit is {max_size:,} bytes. "
            "Split it or ask the operator to raise the limit."
        )
    if b"%PDF-" not in pdf[:_HEADER_WINDOW]:
        raise NotAPdf("the document is not a PDF (no %PDF- header); send the PDF file itself")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=True)
        if reader.encrypted:
            raise PdfEncrypted(
                "the PDF is encrypted or password-protected; remove the protection and send "
                "it again"
            )
        # Touch what signing needs, so damage shows here and not halfway through signing.
        _ = reader.root["/Pages"]
        _ = reader.root.get("/AcroForm")
        certification = read_certification_data(reader)
        writer = IncrementalPdfFileWriter.from_reader(reader)
        # The original bytes are copied to the output in chunks of this size: pyHanko's 4 KiB
        # means 2,500 calls for a 10 MB document (a fifth of its signing time, profiled).
        writer.IO_CHUNK_SIZE = _COPY_CHUNK
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise PdfCorrupt(
            "the PDF is truncated or damaged and cannot be signed; re-export it from its source "
            f"application ({type(exc).__name__})"
        ) from exc
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise CertificationForbidsSigning(
            "the PDF carries a certification signature that forbids any change, including "
            "more signatures; sign the document before it is certified"
        )
    return writer


def resolve_placement(
    writer: IncrementalPdfFileWriter,
    *,
    field_name: str | None,
    page: int | None,
    rect: Rect | None,
    default_name: str,
) -> Placement:
    """Check the requested field, or page and rectangle, against the document.

    - ``field_name`` alone must name an existing, empty signature field;
    - ``page`` (1-based, default 1) and ``rect`` place a new field (named ``field_name`` or
      ``default_name``); ``rect=None`` makes it invisible.
    """
    reader = writer.prev
    empty_fields = {
        name: field for name, _value, field in enumerate_sig_fields(reader, filled_status=False)
    }
    if field_name is not None and page is None and rect is None:
        if field_name not in empty_fields:
            filled = {name for name, _v, _f in enumerate_sig_fields(reader, filled_status=True)}
            why = "is already signed" if field_name in filled else "does not exist"
            raise FieldNotFound(
                f"signature field {field_name!r} {why}; name an empty signature field or give "
                "a page and rectangle for a new one"
            )
        return Placement(field_name=field_name, existing=True)
    name = field_name or default_name
    if name in empty_fields or name in {
        n for n, _v, _f in enumerate_sig_fields(reader, filled_status=True)
    }:
        raise FieldNotFound(
            f"a field named {name!r} already exists; use it by name alone, or choose another name",
            field="field_name",
        )
    number = 1 if page is None else page
    page_count = int(reader.root["/Pages"]["/Count"])
    if not 1 <= number <= page_count:
        raise PageNotFound(f"page {number} does not exist; the document has {page_count} page(s)")
    if rect is not None:
        _check_rect(rect, _media_box(reader, number - 1), number)
    return Placement(field_name=name, existing=False, page=number, rect=rect)


def _media_box(reader: PdfFileReader, index: int) -> Rect:
    page_obj, _ = reader.find_page_for_modification(index)  # type: ignore[no-untyped-call]
    page_dict = page_obj.get_object()
    box = page_dict.get("/MediaBox")
    node = page_dict
    while box is None and "/Parent" in node:
        node = node["/Parent"].get_object()
        box = node.get("/MediaBox")
    if not isinstance(box, generic.ArrayObject) or len(box) != 4:
        raise RectangleInvalid("the page has no usable /MediaBox, so no rectangle fits on it")
    x1, y1, x2, y2 = (float(v) for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _check_rect(rect: Rect, media: Rect, page: int) -> None:
    x1, y1, x2, y2 = rect
    if not (x2 > x1 and y2 > y1):
        raise RectangleInvalid(
            f"rectangle {rect} is empty or inverted; give (x1, y1, x2, y2) with x2 > x1, y2 > y1"
        )
    mx1, my1, mx2, my2 = media
    if x1 < mx1 or y1 < my1 or x2 > mx2 or y2 > my2:
        raise RectangleInvalid(
            f"rectangle {rect} is outside page {page} ({mx1:g}, {my1:g}, {mx2:g}, {my2:g})"
        )
