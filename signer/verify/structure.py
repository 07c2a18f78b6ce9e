"""Byte-level facts about a PDF that the parser does not report, and a faster hex-string reader.

- :func:`scan`: where the header is, how many ``N G obj`` headers the file holds (a cheap bound
  checked before the parser builds anything);
- :func:`revision_spans`: the byte span of each revision the parser reads (from its xref
  container to the ``%%EOF`` after it), and :func:`unaccounted_tail`: bytes after the last of
  them. A tail that is more than whitespace is data no revision (so no signature) accounts for,
  e.g. an update appended without an xref, or after a ``startxref`` that points back;
- :func:`install_fast_hex_reader`: pyHanko reads a hex string (a signature's ``/Contents``)
  one byte per call; this reader takes the whole run at once and falls back to pyHanko's own
  function for anything unusual (comments, bad digits, end of data), so results are identical.
"""

from __future__ import annotations

import binascii
import os
import re
from dataclasses import dataclass
from importlib.metadata import version
from typing import IO, Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = [
    "PDF_WHITESPACE",
    "RawScan",
    "eof_ends",
    "install_fast_hex_reader",
    "read_hex_string_fast",
    "revision_spans",
    "scan",
    "unaccounted_tail",
    "uninstall_fast_hex_reader",
]

PDF_WHITESPACE = b" \n\r\t\f\x00"
_HEADER = b"%PDF-"
_HEADER_WINDOW = 1024  # ISO 32000 readers accept the header within the first KiB
_EOF = b"%%EOF"
_HEX_RUN = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
_CHUNK = 16384


@dataclass(frozen=True, kw_only=True)
class RawScan:
    header_offset: int | None
    object_headers: int
    """An upper bound on the number of ``N G obj`` headers."""


def scan(data: bytes) -> RawScan:
    """The header position (None: not a PDF) and a bound on the indirect-object headers."""
    offset = data.find(_HEADER, 0, _HEADER_WINDOW + len(_HEADER))
    # Every "N G obj" header holds an "obj" that is not the tail of "endobj"; counting bytes in
    # C is an upper bound on the headers (stream data may contain "obj") at memchr speed.
    count = data.count(b"obj") - data.count(b"endobj")
    return RawScan(header_offset=None if offset < 0 else offset, object_headers=count)


def revision_spans(data: bytes, reader: PdfFileReader) -> list[tuple[int, int]]:
    """``(start, end)`` of each revision, 0-based; ``end`` is just after its ``%%EOF`` line.

    A revision whose ``%%EOF`` cannot be found after its xref container ends at the container.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for revision in range(reader.xrefs.total_revisions):
        container_end = reader.xrefs.get_xref_container_info(revision).end_location
        marker = data.find(_EOF, container_end)
        end = container_end if marker < 0 else marker + len(_EOF)
        # One end-of-line after %%EOF belongs to the revision.
        if data[end : end + 2] == b"\r\n":
            end += 2
        elif data[end : end + 1] in (b"\r", b"\n"):
            end += 1
        spans.append((start, end))
        start = end
    return spans


def eof_ends(data: bytes) -> list[int]:
    """Offsets just after each ``%%EOF`` marker (and its one end-of-line), in file order.

    Every revision of an incrementally updated PDF ends so; a reader that cannot parse the
    whole file can still try the prefixes that end at these offsets.
    """
    ends: list[int] = []
    at = data.find(_EOF)
    while at >= 0:
        end = at + len(_EOF)
        if data[end : end + 2] == b"\r\n":
            end += 2
        elif data[end : end + 1] in (b"\r", b"\n"):
            end += 1
        ends.append(end)
        at = data.find(_EOF, end)
    return ends


def unaccounted_tail(data: bytes, last_end: int) -> tuple[int, int] | None:
    """``(offset, length)`` of non-whitespace bytes after ``last_end``, or None."""
    tail = data[last_end:]
    if not tail.strip(PDF_WHITESPACE):
        return None
    return last_end, len(tail)


def read_hex_string_fast(stream: IO[bytes]) -> Any:
    """pyHanko's ``read_hex_string_from_stream``, reading the digits in one pass.

    The fast path takes a run of hex digits and whitespace up to ``>``; anything else (a comment,
    a bad character, the end of the data) rewinds and defers to pyHanko's reader, so every
    result and every error is pyHanko's own.
    """
    start = stream.tell()
    stream.read(1)  # the '<'
    parts: list[bytes] = []
    while True:
        chunk = stream.read(_CHUNK)
        run = _HEX_RUN.match(chunk)
        assert run is not None  # the pattern matches the empty string
        parts.append(chunk[: run.end()])
        if run.end() < len(chunk):
            if chunk[run.end() : run.end() + 1] != b">":
                break  # a comment or a bad character: pyHanko decides
            stream.seek(run.end() + 1 - len(chunk), os.SEEK_CUR)
            digits = b"".join(parts).translate(None, PDF_WHITESPACE)
            if len(digits) % 2:
                digits += b"0"
            return generic.pdf_string(binascii.unhexlify(digits))
        if not chunk:
            break  # end of data before '>': pyHanko raises its error
    stream.seek(start)
    return _STOCK_READER(stream)


_STOCK_READER = generic.read_hex_string_from_stream
_PINNED_PYHANKO = "0.38."


def install_fast_hex_reader() -> bool:
    """Use :func:`read_hex_string_fast` in this process's pyHanko parser; True if installed.

    It replaces a module-level function of pyHanko's parser (``generic.read_object`` looks it
    up at call time), so it is pinned to the pyHanko series it was checked against (tests
    compare both readers); on another version it is not installed and pyHanko's reader stays.
    """
    if not version("pyHanko").startswith(_PINNED_PYHANKO):
        return False
    generic.read_hex_string_from_stream = read_hex_string_fast
    return True


def uninstall_fast_hex_reader() -> None:
    """Restore pyHanko's own reader (tests compare the two)."""
    generic.read_hex_string_from_stream = _STOCK_READER
