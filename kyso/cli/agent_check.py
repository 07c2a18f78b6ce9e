"""What the agent checks before the official's token signs a prepared PDF.

Whoever called PrepareSignature (any clerk of the unit) chose the title the agent shows and could
pair it with another document's digest. So the agent fetches the prepared PDF itself and signs
only when all of this holds:
- the PDF's signature placeholder (its last ``/ByteRange [a b c d]``) covers the whole file
  except the ``<hex>`` hole of ``/Contents``: ``a = 0``, ``b < c``, ``c + d`` = the file's size;
- the digest of those two ranges is the ``messageDigest`` of the signed attributes;
- the digest of the signed attributes is the ``data_to_sign`` the token will sign.
- with ``document_sha256`` (a document prepared again at the time of signing): the prepared PDF
  is an incremental update of that very document (a prefix ending at an ``%%EOF`` has that
  SHA-256), so what is signed is what the official was shown.
What it shows (pages, SHA-256) is then read from those bytes, not from the request.
The PDF is hostile input: any parser failure is a refusal, never a crash.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

from asn1crypto import cms

__all__ = ["Inspected", "PreparedMismatch", "inspect_prepared"]

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")
_HOLE = re.compile(rb"<[0-9A-Fa-f]*>")


class PreparedMismatch(Exception):
    """The prepared PDF is not what the digest to sign commits to: nothing may be signed."""


@dataclass(frozen=True, slots=True)
class Inspected:
    """What the agent read from the prepared PDF itself."""

    sha256: str
    pages: int | None


def inspect_prepared(
    pdf: bytes,
    *,
    digest_algorithm: str,
    signed_attributes: bytes,
    data_to_sign: bytes,
    document_sha256: str | None = None,
) -> Inspected:
    """Check ``pdf`` against what the token would sign (see the module docstring)."""
    matches = list(_BYTE_RANGE.finditer(pdf))
    if not matches:
        raise PreparedMismatch("the prepared PDF has no signature placeholder (/ByteRange)")
    a, b, c, d = (int(v) for v in matches[-1].groups())
    if a != 0 or not 0 < b < c or c + d != len(pdf) or not _HOLE.fullmatch(pdf[b:c]):
        raise PreparedMismatch(
            f"the prepared PDF's /ByteRange [{a} {b} {c} {d}] does not cover the whole file"
            f" ({len(pdf)} bytes) but the signature"
        )
    try:
        digest = hashlib.new(digest_algorithm, pdf[a : a + b] + pdf[c : c + d]).digest()
        committed = hashlib.new(digest_algorithm, signed_attributes).digest()
    except ValueError:
        raise PreparedMismatch(f"unknown digest algorithm {digest_algorithm!r}") from None
    if committed != data_to_sign:
        raise PreparedMismatch("the digest to sign is not the digest of the signed attributes")
    if _message_digest(signed_attributes) != digest:
        raise PreparedMismatch(
            "the signed attributes commit to another document than the prepared PDF"
        )
    if document_sha256 is not None and not _extends(pdf[:b], document_sha256):
        raise PreparedMismatch(
            "the document prepared again is not an update of the document shown before"
        )
    return Inspected(sha256=hashlib.sha256(pdf).hexdigest(), pages=_pages(pdf))


_EOF = re.compile(rb"%%EOF")
_TRAILING = b" \t\r\n\x00\x0c"


def _extends(head: bytes, document_sha256: str) -> bool:
    """Whether ``head`` starts with a document of that SHA-256: one ending at an ``%%EOF`` and
    the blank bytes (white space, NULs) after it, whichever of them it kept."""
    for end in _EOF.finditer(head):
        cut = end.end()
        while True:
            if hashlib.sha256(head[:cut]).hexdigest() == document_sha256:
                return True
            if cut >= len(head) or head[cut] not in _TRAILING or cut - end.end() > 256:
                break
            cut += 1
    return False


def _message_digest(signed_attributes: bytes) -> bytes | None:
    try:
        attributes = cms.CMSAttributes.load(signed_attributes)
        for attribute in attributes:
            if attribute["type"].native == "message_digest":
                value: bytes = attribute["values"][0].native
                return value
    except Exception:  # hostile bytes: whatever the parser raises, they commit to nothing
        return None
    return None


def _pages(pdf: bytes) -> int | None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        count = PdfFileReader(io.BytesIO(pdf), strict=False).root["/Pages"]["/Count"]
        return int(count)
    except Exception:  # hostile input: an unreadable page tree shows as unknown
        return None
