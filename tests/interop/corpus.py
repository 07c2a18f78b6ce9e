"""The interoperability corpus: what each case is, how it is made, and what kyso must say.

A case is made once per session (``Corpus.get`` caches by name) by independent tools under the
interop PKI; cases build on one another (``itext-certify2`` is the start of three others), so
the whole corpus costs one run of each tool step. ``EXPECTED`` is the contract the tests check
and the table in the report: tool × case → indication / sub-indication.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.interop.tools import Tools

__all__ = ["CASES", "Case", "Corpus", "append_unreadable_update", "flip_byte"]

PASSED = ("TOTAL-PASSED", None)


@dataclass(frozen=True)
class Case:
    name: str
    tools: str
    """Who signed, in order (``itext+pdfsig``)."""
    what: str
    expected: tuple[str, str | None]
    problem: str | None = None
    """A problem code the failing signature must carry (None: not checked)."""


CASES: tuple[Case, ...] = (
    # single signatures
    Case(
        "pdfsig-rsa-new-field",
        "pdfsig",
        "CMS, RSA, new invisible field (generation-1 objects)",
        PASSED,
    ),
    Case("pdfsig-rsa-existing-field", "pdfsig", "CMS, RSA, into the empty visible field", PASSED),
    Case("itext-cms-rsa-visible", "itext", "CMS, RSA, new visible field", PASSED),
    Case("itext-cades-rsa-invisible", "itext", "CAdES, RSA, new invisible field", PASSED),
    Case(
        "itext-cms-crl-in-signature",
        "itext",
        "CMS, RSA, CRL in adbe-revocationInfoArchival",
        PASSED,
    ),
    Case("pdfbox-cms-rsa-invisible", "pdfbox", "CMS, RSA, new invisible field", PASSED),
    Case("pdfbox-cms-crl-in-cms", "pdfbox", "CMS, RSA, CRL in the SignedData crls field", PASSED),
    Case("pdfbox-cades-ec-invisible", "pdfbox", "CAdES, P-256, new invisible field", PASSED),
    Case(
        "pdfbox-cades-no-signing-cert",
        "pdfbox",
        "CAdES sub-filter without signing-certificate-v2",
        PASSED,
    ),
    Case("endesive-cms-rsa-invisible", "endesive", "CMS, RSA, new invisible field", PASSED),
    Case("endesive-cms-rsa-visible", "endesive", "CMS, RSA, new visible field", PASSED),
    Case("signpdf-cms-rsa-invisible", "signpdf", "CMS, RSA, new invisible field", PASSED),
    Case(
        "signpdf-cades-rsa-invisible",
        "signpdf",
        "CAdES sub-filter (no signing-certificate-v2)",
        PASSED,
    ),
    # certification, then approval / form filling
    Case(
        "itext-certify2+pdfsig-existing",
        "itext+pdfsig",
        "P=2, approved in the existing field (/M on the widget)",
        PASSED,
    ),
    Case(
        "itext-certify2+pdfbox-existing",
        "itext+pdfbox",
        "P=2, approved in the existing field",
        PASSED,
    ),
    Case(
        "itext-certify2+itext-new-visible",
        "itext+itext",
        "P=2, approved in a new visible field",
        PASSED,
    ),
    Case("itext-certify2+pdfsig-new-field", "itext+pdfsig", "P=2, approved in a new field", PASSED),
    Case("itext-certify2+fill", "itext+itext", "P=2, then a text field filled (unsigned)", PASSED),
    Case("itext-certify3+annotation", "itext+itext", "P=3, then a note added (unsigned)", PASSED),
    Case(
        "itext-certify3+fill-and-approve",
        "itext+itext+pdfbox",
        "P=3, form filled, then approved",
        PASSED,
    ),
    # two tools in sequence
    Case("endesive+pdfbox", "endesive+pdfbox", "two approval signatures", PASSED),
    Case("itext+pdfsig", "itext+pdfsig", "two approval signatures", PASSED),
    Case("pdfbox+itext-existing", "pdfbox+itext", "second signature in the existing field", PASSED),
    Case("signpdf+itext", "signpdf+itext", "two approval signatures, the second visible", PASSED),
    # negatives
    Case(
        "pdfsig-flipped-byte",
        "pdfsig",
        "one signed byte changed",
        ("TOTAL-FAILED", "HASH_FAILURE"),
        "HASH_MISMATCH",
    ),
    Case(
        "itext-flipped-byte",
        "itext",
        "one signed byte changed",
        ("TOTAL-FAILED", "HASH_FAILURE"),
        "HASH_MISMATCH",
    ),
    Case(
        "itext+page-content-added",
        "itext+itext",
        "text drawn on the page after signing",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
    ),
    Case(
        "itext-certify2+page-content-added",
        "itext+itext",
        "P=2, then text drawn on the page",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
        "MODIFIED_AFTER_SIGNING",
    ),
    Case(
        "pdfbox-certify1+pdfsig",
        "pdfbox+pdfsig",
        "P=1, then an approval signature",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
        "MODIFIED_AFTER_SIGNING",
    ),
    Case(
        "itext-certify2+annotation",
        "itext+itext",
        "P=2, then a note added",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
        "MODIFIED_AFTER_SIGNING",
    ),
    Case(
        "itext-certify1+fill",
        "itext+itext",
        "P=1, then a text field filled",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
        "MODIFIED_AFTER_SIGNING",
    ),
    Case(
        "itext-no-signing-key-usage",
        "itext",
        "certificate with keyEncipherment only",
        ("INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
        "KEY_USAGE",
    ),
    Case(
        "pdfbox-expired-certificate",
        "pdfbox",
        "certificate expired a year ago, no time-stamp",
        ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE"),
    ),
    Case(
        "pdfbox+signpdf",
        "pdfbox+signpdf",
        "signpdf writes the existing /Fields back unreadably (an update no reader parses)",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
    ),
    Case(
        "pdfsig+unreadable-update",
        "pdfsig",
        "an update no strict or tolerant reader can parse appended",
        ("TOTAL-FAILED", "FORBIDDEN_MODIFICATION"),
    ),
)

BY_NAME = {case.name: case for case in CASES}


def flip_byte(data: bytes, marker: bytes = b"iText") -> bytes:
    """Change one byte inside the first occurrence of ``marker`` (the base's /Producer, signed)."""
    at = data.index(marker) + 3
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def append_unreadable_update(data: bytes) -> bytes:
    """An update that overlays the page but whose ``startxref`` points at nothing readable.

    Lenient viewers repair such files by scanning for objects and show the overlay; no xref
    leads to it, so a reader that follows the structure cannot parse the update.
    """
    numbers = [int(n) for n in re.findall(rb"/Size (\d+)", data)]
    size = max(numbers)
    text = b"BT /F1 24 Tf 72 700 Td (HUY BO) Tj ET"
    update = (
        b"\n%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n"
        b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size %d /Root 1 0 R >>\n"
        b"startxref\n%d\n%%%%EOF\n" % (size, len(text), text, size + 1, len(data) + 5)
    )
    return data + update


class Corpus:
    """Builds cases on demand with the tools and caches them (and their intermediates)."""

    def __init__(self, tools: Tools, kyso_seal: Callable[[bytes], bytes] | None = None) -> None:
        self.tools = tools
        self.kyso_seal = kyso_seal
        self._made: dict[str, bytes] = {}

    def get(self, name: str) -> bytes:
        if name not in self._made:
            self._made[name] = self._make(name)
        return self._made[name]

    def _make(self, name: str) -> bytes:
        t = self.tools
        match name:
            case "base":
                return t.itext_base()
            case "pdfsig-rsa-new-field":
                return t.pdfsig_sign(self.get("base"), field="PopplerSig")
            case "pdfsig-rsa-existing-field":
                return t.pdfsig_sign(self.get("base"), field="Approval", existing=True)
            case "itext-cms-rsa-visible":
                return t.itext_sign(self.get("base"), "rsa", "ITextSig", "rect=72,380,300,460")
            case "itext-cades-rsa-invisible":
                return t.itext_sign(self.get("base"), "rsa", "ITextSig", "cades")
            case "itext-cms-crl-in-signature":
                return t.itext_sign(self.get("base"), "crl", "ITextSig", "crl")
            case "pdfbox-cms-rsa-invisible":
                return t.pdfbox_sign(self.get("base"), "rsa", "BoxSig")
            case "pdfbox-cms-crl-in-cms":
                return t.pdfbox_sign(self.get("base"), "crl", "BoxSig", "crl")
            case "itext-certify3":
                return t.itext_sign(self.get("base"), "rsa", "Certification", "certify=3")
            case "itext-certify3+annotation":
                return t.itext_annotate(self.get("itext-certify3"))
            case "itext-certify2+annotation":
                return t.itext_annotate(self.get("itext-certify2"))
            case "pdfbox-cades-ec-invisible":
                return t.pdfbox_sign(self.get("base"), "ec", "BoxSig", "cades")
            case "pdfbox-cades-no-signing-cert":
                return t.pdfbox_sign(self.get("base"), "rsa", "BoxSig", "cades", "nosigcert")
            case "endesive-cms-rsa-invisible":
                return t.endesive_sign(self.get("base"), "rsa", "EndesiveSig")
            case "endesive-cms-rsa-visible":
                return t.endesive_sign(
                    self.get("base"), "rsa", "EndesiveSig", box=(72, 380, 300, 460)
                )
            case "itext-certify2":
                return t.itext_sign(self.get("base"), "rsa", "Certification", "certify=2")
            case "itext-certify2+pdfsig-existing":
                return t.pdfsig_sign(self.get("itext-certify2"), field="Approval", existing=True)
            case "itext-certify2+pdfbox-existing":
                return t.pdfbox_sign(self.get("itext-certify2"), "ec", "Approval", "existing")
            case "itext-certify2+itext-new-visible":
                return t.itext_sign(
                    self.get("itext-certify2"), "rsa", "Approval2", "cades", "rect=72,380,300,460"
                )
            case "itext-certify2+pdfsig-new-field":
                return t.pdfsig_sign(self.get("itext-certify2"), field="PopplerSig")
            case "itext-certify2+fill":
                return t.itext_fill(self.get("itext-certify2"), "hoten", "Nguyen Van A")
            case "itext-certify3+fill-and-approve":
                filled = t.itext_fill(self.get("itext-certify3"), "hoten", "Nguyen Van A")
                return t.pdfbox_sign(filled, "rsa", "Approval", "existing")
            case "signpdf-cms-rsa-invisible":
                return t.signpdf_sign(self.get("base"), "rsa")
            case "signpdf-cades-rsa-invisible":
                return t.signpdf_sign(self.get("base"), "rsa", cades=True)
            case "signpdf+itext":
                return t.itext_sign(
                    self.get("signpdf-cms-rsa-invisible"),
                    "rsa",
                    "ITextSig",
                    "cades",
                    "rect=72,380,300,460",
                )
            case "pdfbox+signpdf":
                return t.signpdf_sign(self.get("pdfbox-cms-rsa-invisible"), "rsa")
            case "endesive+pdfbox":
                return t.pdfbox_sign(self.get("endesive-cms-rsa-invisible"), "rsa", "BoxSig")
            case "itext+pdfsig":
                return t.pdfsig_sign(self.get("itext-cades-rsa-invisible"), field="PopplerSig")
            case "pdfbox+itext-existing":
                return t.itext_sign(
                    self.get("pdfbox-cms-rsa-invisible"), "rsa", "Approval", "existing", "cades"
                )
            case "pdfsig-flipped-byte":
                return flip_byte(self.get("pdfsig-rsa-new-field"))
            case "itext-flipped-byte":
                return flip_byte(self.get("itext-cades-rsa-invisible"))
            case "itext+page-content-added":
                return t.itext_overlay(self.get("itext-cades-rsa-invisible"))
            case "itext-certify2+page-content-added":
                return t.itext_overlay(self.get("itext-certify2"))
            case "pdfbox-certify1+pdfsig":
                certified = t.pdfbox_sign(self.get("base"), "rsa", "Certification", "certify=1")
                return t.pdfsig_sign(certified, field="Approval", existing=True)
            case "itext-certify1+fill":
                certified = t.itext_sign(self.get("base"), "rsa", "Certification", "certify=1")
                return t.itext_fill(certified, "hoten", "Nguyen Van A")
            case "itext-no-signing-key-usage":
                return t.itext_sign(self.get("base"), "nokeyusage", "ITextSig", "cades")
            case "pdfbox-expired-certificate":
                return t.pdfbox_sign(self.get("base"), "expired", "BoxSig", "cades")
            case "pdfsig+unreadable-update":
                return append_unreadable_update(self.get("pdfsig-rsa-new-field"))
            case "itext+kyso":
                assert self.kyso_seal is not None
                return self.kyso_seal(self.get("itext-cades-rsa-invisible"))
        raise KeyError(name)
