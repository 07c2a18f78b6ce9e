"""A TrueType font subset prepared once and embedded into many PDFs as-is (Type0, Identity-H).

Why not pyHanko's glyph accumulator: it re-parses and re-subsets the whole font for every
signature (tens of milliseconds, most of it decoding kerning tables that are then dropped). A
stamp's text is known per key except for the digits of the time, so the subset is made once
per key from that alphabet, compressed once, and every document gets the same bytes.

Invariants:
- the subset keeps the original glyph ids (``retain_gids``), so text is encoded by the full
  font's cmap and widths come from its ``hmtx``; no shaping is applied (Vietnamese is written
  with precomposed NFC characters, which have their own glyphs in Noto);
- widths are scaled to 1000 units per em in the PDF whatever the font's own unit size (the bug
  pyHanko 0.38 has with 2048-unit fonts cannot happen here);
- every glyph has a ToUnicode entry, so text extraction returns exactly the text written.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fontTools import subset
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter

__all__ = ["PreparedFont", "normalise"]

# pyHanko's object constructors are untyped; these typed aliases keep mypy strict here.
_number = cast(Callable[[int], generic.NumberObject], generic.NumberObject)
_dictionary = cast(Callable[[dict[Any, Any]], generic.DictionaryObject], generic.DictionaryObject)


def normalise(text: str) -> str:
    """NFC: precomposed Vietnamese letters, one glyph each."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, eq=False)
class PreparedFont:
    """A font subset with everything a PDF needs, ready to copy into any writer."""

    base_font: str
    font_file: bytes
    """The subset TTF, zlib-compressed."""
    font_file_length: int
    gids: dict[str, int]
    widths: dict[int, int]
    """Advance per glyph id, in 1/1000 em."""
    ascent: int
    descent: int
    cap_height: int
    bbox: tuple[int, int, int, int]

    @classmethod
    def build(cls, path: Path, alphabet: str) -> PreparedFont:
        """Subset the font at ``path`` to ``alphabet``; raise ValueError for a missing glyph."""
        alphabet = "".join(sorted(set(normalise(alphabet)) - {"\n"}))
        font = TTFont(str(path))
        cmap = font.getBestCmap()
        missing = [c for c in alphabet if ord(c) not in cmap]
        if missing:
            raise ValueError(f"font {path.name} has no glyph for {''.join(missing)!r}")
        scale = 1000 / font["head"].unitsPerEm
        order = font.getGlyphOrder()
        gid_of_name = {name: index for index, name in enumerate(order)}
        gids = {c: gid_of_name[cmap[ord(c)]] for c in alphabet}
        hmtx = font["hmtx"]
        widths = {gid: round(hmtx[order[gid]][0] * scale) for gid in set(gids.values())}
        head, hhea, os2 = font["head"], font["hhea"], font["OS/2"]
        metrics = {
            "ascent": round(hhea.ascent * scale),
            "descent": round(hhea.descent * scale),
            "cap_height": round(getattr(os2, "sCapHeight", hhea.ascent) * scale),
            "bbox": tuple(round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)),
        }
        # The kerning and substitution tables are the subsetter's slow part and are not used
        # (no shaping): drop them before subsetting.
        for tag in ("GPOS", "GSUB", "GDEF", "kern", "DSIG"):
            if tag in font:
                del font[tag]
        options = subset.Options()
        options.retain_gids = True
        options.layout_features = []
        options.hinting = False
        options.notdef_outline = True
        options.name_IDs = []
        options.drop_tables += ["GPOS", "GSUB", "GDEF", "kern", "DSIG", "STAT", "MVAR", "HVAR"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(c) for c in alphabet])
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
        raw = out.getvalue()
        tag = "".join(chr(ord("A") + b % 26) for b in hashlib.sha256(raw).digest()[:6])
        postscript = font["name"].getDebugName(6) or path.stem
        return cls(
            base_font=f"{tag}+{postscript}",
            font_file=zlib.compress(raw, 9),
            font_file_length=len(raw),
            gids=gids,
            widths=widths,
            **metrics,
        )

    def covers(self, text: str) -> bool:
        return all(c in self.gids for c in normalise(text))

    def encode(self, text: str) -> bytes:
        """The text as a PDF hex string of 2-byte glyph ids (for ``Tj``)."""
        return b"<" + "".join(f"{self.gids[c]:04X}" for c in normalise(text)).encode() + b">"

    def width(self, text: str, size: float) -> float:
        """Advance width of ``text`` at ``size`` points (a no-break space counts as a space)."""
        text = normalise(text).replace("\u00a0", " ")
        return sum(self.widths[self.gids[c]] for c in text) * size / 1000

    def register(self, writer: BasePdfFileWriter) -> generic.IndirectObject:
        """Add the font's objects to ``writer``; return the Type0 font dictionary's reference."""
        font_file = writer.add_object(
            generic.StreamObject(
                {
                    pdf_name("/Length1"): _number(self.font_file_length),
                    pdf_name("/Filter"): pdf_name("/FlateDecode"),
                },
                encoded_data=self.font_file,
            )
        )
        descriptor = writer.add_object(
            _dictionary(
                {
                    pdf_name("/Type"): pdf_name("/FontDescriptor"),
                    pdf_name("/FontName"): pdf_name("/" + self.base_font),
                    pdf_name("/Flags"): _number(4),  # symbolic (CID font)
                    pdf_name("/FontBBox"): generic.ArrayObject(_number(v) for v in self.bbox),
                    pdf_name("/ItalicAngle"): _number(0),
                    pdf_name("/Ascent"): _number(self.ascent),
                    pdf_name("/Descent"): _number(self.descent),
                    pdf_name("/CapHeight"): _number(self.cap_height),
                    pdf_name("/StemV"): _number(80),
                    pdf_name("/FontFile2"): font_file,
                }
            )
        )
        widths = generic.ArrayObject()
        for gid in sorted(self.widths):
            widths.append(_number(gid))
            widths.append(generic.ArrayObject([_number(self.widths[gid])]))
        cid_font = writer.add_object(
            _dictionary(
                {
                    pdf_name("/Type"): pdf_name("/Font"),
                    pdf_name("/Subtype"): pdf_name("/CIDFontType2"),
                    pdf_name("/BaseFont"): pdf_name("/" + self.base_font),
                    pdf_name("/CIDSystemInfo"): _dictionary(
                        {
                            pdf_name("/Registry"): generic.TextStringObject("Adobe"),
                            pdf_name("/Ordering"): generic.TextStringObject("Identity"),
                            pdf_name("/Supplement"): _number(0),
                        }
                    ),
                    pdf_name("/FontDescriptor"): descriptor,
                    pdf_name("/CIDToGIDMap"): pdf_name("/Identity"),
                    pdf_name("/DW"): _number(1000),
                    pdf_name("/W"): widths,
                }
            )
        )
        to_unicode = writer.add_object(generic.StreamObject(stream_data=self._to_unicode_cmap()))
        return writer.add_object(
            _dictionary(
                {
                    pdf_name("/Type"): pdf_name("/Font"),
                    pdf_name("/Subtype"): pdf_name("/Type0"),
                    pdf_name("/BaseFont"): pdf_name("/" + self.base_font),
                    pdf_name("/Encoding"): pdf_name("/Identity-H"),
                    pdf_name("/DescendantFonts"): generic.ArrayObject([cid_font]),
                    pdf_name("/ToUnicode"): to_unicode,
                }
            )
        )

    def _to_unicode_cmap(self) -> bytes:
        entries = sorted((gid, char) for char, gid in self.gids.items())
        lines = [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
            "/CMapName /Adobe-Identity-UCS def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            "<0000> <FFFF>",
            "endcodespacerange",
        ]
        # bfchar blocks hold at most 100 entries each (PDF/PostScript CMap limit).
        for start in range(0, len(entries), 100):
            block = entries[start : start + 100]
            lines.append(f"{len(block)} beginbfchar")
            lines.extend(
                f"<{gid:04X}> <{char.encode('utf-16-be').hex().upper()}>" for gid, char in block
            )
            lines.append("endbfchar")
        lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
        return "\n".join(lines).encode("ascii")
