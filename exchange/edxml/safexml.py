"""Hardened XML parsing for packages from outside: no DTD, no entities, no network, with limits.

Invariants: a document over ``max_package_bytes``, not in UTF-8, declaring a DOCTYPE, deeper than
``max_depth``, with more than ``max_elements`` elements or an attribute longer than
``max_attribute_chars`` is refused before anything reads it. Comments and processing
instructions are dropped at parse time (they are not signed content: exclusive c14n without
comments ignores them). Every parser failure becomes ``PackageInvalid``.
"""

from __future__ import annotations

import threading
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


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers keep state and must not be shared between threads.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_xml(data: bytes, *, limits: Limits) -> etree._Element:
    """Parse untrusted XML bytes within ``limits``; return the root element."""
    if len(data) > limits.max_package_bytes:
        raise PackageTooLarge(
            f"the package is {len(data)} bytes, over the limit of {limits.max_package_bytes}"
        )
    if data[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in data[:4]:
        raise PackageInvalid("the package must be encoded in UTF-8")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PackageInvalid("DOCTYPE and ENTITY declarations are not allowed in a package")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise PackageInvalid(f"the package is not well-formed XML: {exc.msg}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise PackageInvalid("DOCTYPE declarations are not allowed in a package")
    if root.find("/".join(["*"] * limits.max_depth)) is not None:
        raise PackageInvalid(f"the package nests elements deeper than {limits.max_depth} levels")
    count = 0
    for element in root.iter():
        count += 1
        for value in element.attrib.values():
            if len(value) > limits.max_attribute_chars:
                raise PackageInvalid(
                    f"an attribute of element {etree.QName(element).localname} is longer than"
                    f" {limits.max_attribute_chars} characters"
                )
    if count > limits.max_elements:
        raise PackageInvalid(f"the package has more than {limits.max_elements} elements")
    return root
