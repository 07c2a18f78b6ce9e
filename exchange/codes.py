"""Unit identifiers (mã định danh) and Vietnamese name folding.

A unit code has four dot-separated groups, ``V1V2V3.Z1Z2.Y1Y2.MX1X2`` (levels 4, 3, 2, 1 read
left to right): three digits, two digits, two digits, then a capital letter and two digits. The
code says nothing reliable about the unit's parent: since 2025 communes hang directly under
provinces, so the parent is directory data, never derived from here.
"""

from __future__ import annotations

import re
import unicodedata

from exchange.errors import InvalidUnitCode

__all__ = ["fold_name", "validate_unit_code"]

_UNIT_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")


def validate_unit_code(code: str, *, field: str = "code") -> str:
    """Return ``code`` unchanged when it has the V1V2V3.Z1Z2.Y1Y2.MX1X2 form; raise otherwise."""
    if not _UNIT_CODE.fullmatch(code):
        shown = code if len(code) <= 40 else code[:40] + "…"
        raise InvalidUnitCode(
            f"unit code {shown!r} is not of the form 000.00.00.H49"
            " (three digits, two, two, then a capital letter and two digits)",
            field=field,
        )
    return code


def fold_name(text: str) -> str:
    """Fold a Vietnamese name for searching: lowercase, no diacritics, đ → d, single spaces.

    ``fold_name("Sở Nội vụ Quảng Ninh") == "so noi vu quang ninh"``. Search terms are folded the
    same way, so a search with or without diacritics finds the same units.
    """
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())
