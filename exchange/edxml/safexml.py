"""Hardened XML parsing for packages from outside: no DTD, no entities, no network, with limits.

Invariants: a document over ``max_package_bytes``, not in UTF-8, declaring a DOCTYPE, deeper than
``max_depth``, with more than ``max_elements`` elements or an attribute longer than
``max_attribute_chars`` is refused before anything reads it. Comments and processing
instructions are dropped at parse time (they are not signed content: exclusive c14n without
comments ignores them). Every parser failure becomes ``PackageInvalid``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from exchange.errors import PackageInvalid, PackageTooLarge

__all__ = ["Limits", "parse_xml"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Size limits for untrusted packages.

    libxml2 without ``huge_tree`` also caps any single text node at 10 MB, so one base64
    attachment can hold at most about 7.5 MB; a larger file must be sent by reference.
    ``max_expanded_bytes`` bounds the decoded (and unwrapped) attachments of one package
    together: many small ZIP bombs cannot add up to more than it.
    """

    max_package_bytes: int = 32 * 1024 * 1024
    max_depth: int = 24
    max_elements: int = 50_000
    max_attribute_chars: int = 4096
    max_attachment_bytes: int = 16 * 1024 * 1024
    max_zip_ratio: int = 100
    max_attachments: int = 200
    max_expanded_bytes: int = 64 * 1024 * 1024


_FEED_BYTES = 64 * 1024
"""How much is parsed between two checks of the limits: the first excess stops the parse
within one such piece, before the rest of the document is built into a tree."""


_FIRST_FEED_BYTES = 4096


def _parser() -> etree.XMLPullParser:
    # A new parser per document: a pull parser keeps the document's state until closed.
    return etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(data: bytes, *, limits: Limits) -> etree._Element:
    """Parse untrusted XML bytes within ``limits``; return the root element.

    The limits on depth, element count and attribute length are checked while parsing, piece
    by piece: a document over any of them costs at most one piece beyond the limit, never the
    whole tree.
    """
    if len(data) > limits.max_package_bytes:
        raise PackageTooLarge(
            f"the package is {len(data)} bytes, over the limit of {limits.max_package_bytes}"
        )
    if data[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in data[:4]:
        raise PackageInvalid("the package must be encoded in UTF-8")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PackageInvalid("DOCTYPE and ENTITY declarations are not allowed in a package")
    parser = _parser()
    counter = _Counter(limits)
    try:
        # A first small piece, so that what is wrong at the very start (nesting too deep) is
        # what the refusal names; then the element count, told from the bytes alone (a few
        # scans in C): a flood of elements costs next to nothing, where parsing up to the
        # limit took tens of milliseconds of processor time.
        parser.feed(data[:_FIRST_FEED_BYTES])
        counter.take(parser.read_events())
        start_tags = _start_tags(data)
        if start_tags is not None and start_tags > limits.max_elements:
            raise PackageInvalid(f"the package has more than {limits.max_elements} elements")
        for offset in range(_FIRST_FEED_BYTES, len(data), _FEED_BYTES):
            parser.feed(data[offset : offset + _FEED_BYTES])
            counter.take(parser.read_events())
        root = parser.close()
        counter.take(parser.read_events())
    except etree.XMLSyntaxError as exc:
        # libxml2's own caps (nesting 256 deep) may stop a piece before it is counted: what
        # was parsed up to there names the kyso limit that was passed, when one was.
        counter.take(parser.read_events())
        raise PackageInvalid(f"the package is not well-formed XML: {exc.msg}") from exc
    if root.getroottree().docinfo.doctype:
        raise PackageInvalid("DOCTYPE declarations are not allowed in a package")
    return root


def _start_tags(data: bytes) -> int | None:
    """The number of start tags, when the bytes alone tell it; None when they do not.

    In XML with no comment, CDATA section or processing instruction (but the declaration),
    ``<`` cannot stand in text or attribute values, so every ``<`` opens a start tag, an end
    tag (``</``) or the declaration (``<?``). With any ``<!`` or another ``<?`` the count would
    be only an upper bound, and the parse counts instead.
    """
    if b"<!" in data:
        return None
    declarations = data.count(b"<?")
    if declarations > 1 or (
        declarations == 1 and not data.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml")
    ):
        return None
    return data.count(b"<") - data.count(b"</") - declarations


class _Counter:
    """Depth, elements and attribute lengths seen so far; raises at the first excess."""

    __slots__ = ("count", "depth", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.depth = 0
        self.count = 0

    def take(self, events: Iterable[tuple[str, etree._Element]]) -> None:
        limits = self.limits
        for event, element in events:
            if event == "end":
                self.depth -= 1
                continue
            self.depth += 1
            self.count += 1
            if self.depth > limits.max_depth:
                raise PackageInvalid(
                    f"the package nests elements deeper than {limits.max_depth} levels"
                )
            if self.count > limits.max_elements:
                raise PackageInvalid(f"the package has more than {limits.max_elements} elements")
            for value in element.attrib.values():
                if len(value) > limits.max_attribute_chars:
                    raise PackageInvalid(
                        f"an attribute of element {etree.QName(element).localname} is longer "
                        f"than {limits.max_attribute_chars} characters"
                    )
