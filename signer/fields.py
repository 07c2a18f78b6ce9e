"""Signature fields and where a signature goes: helpers shared by both signing flows.

``signer.document`` checks a request's field, page and rectangle against the document; this
module adds what the server-side engine (``signer.engine``) and the two-phase signer
(``signer.twophase``) both do around it: open and place in one step (with the next free
``SignatureN`` name), look up an existing field's rectangle, describe a new field for pyHanko,
size and lay out a visible stamp, and say who signs as the stamp shows it.

Invariants:
- every function reads the document as it was before this signature (``writer.prev``): the
  incremental update being built is never consulted;
- a visible appearance always ends with a non-empty rectangle, or ``RectangleInvalid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from asn1crypto import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, enumerate_sig_fields

from signer.appearance import (
    VIETNAM_TIME,
    AppearanceKind,
    KysoStampStyle,
    PreparedStamp,
    StampIdentity,
)
from signer.document import Placement, Rect, open_for_signing, resolve_placement
from signer.errors import RectangleInvalid

__all__ = [
    "PlacementRequest",
    "Target",
    "default_field_name",
    "default_seal_rect",
    "field_rect",
    "has_signatures",
    "new_field_spec",
    "open_target",
    "page_box",
    "place_stamp",
    "stamp_identity",
]


class PlacementRequest(Protocol):
    """What ``open_target`` reads of a request (``SignRequest`` and ``PrepareRequest`` have it):
    the document, and an existing field's name or a page and rectangle for a new one."""

    @property
    def pdf(self) -> bytes: ...
    @property
    def field_name(self) -> str | None: ...
    @property
    def page(self) -> int | None: ...
    @property
    def rect(self) -> Rect | None: ...


@dataclass(frozen=True, kw_only=True)
class Target:
    """A document opened for signing, where its signature goes, and the signing instant.

    ``signing_time`` is whole seconds in Vietnam time: the stamp, the /M entry and the signed
    attributes all show this one instant.
    """

    writer: IncrementalPdfFileWriter
    placement: Placement
    signing_time: datetime


def open_target(request: PlacementRequest, *, max_size: int) -> Target:
    """Open ``request.pdf`` and check the requested placement (see ``resolve_placement``); a new
    field without a name gets the first free ``SignatureN``."""
    writer = open_for_signing(request.pdf, max_size=max_size)
    placement = resolve_placement(
        writer,
        field_name=request.field_name,
        page=request.page,
        rect=request.rect,
        default_name=default_field_name(writer),
    )
    signing_time = datetime.now(VIETNAM_TIME).replace(microsecond=0)
    return Target(writer=writer, placement=placement, signing_time=signing_time)


def has_signatures(writer: Any) -> bool:
    """Whether the document already carries a filled signature field."""
    return any(True for _ in enumerate_sig_fields(writer.prev, filled_status=True))


def default_field_name(writer: Any) -> str:
    """The first ``SignatureN`` (N = 1, 2, …) that names no field of the document."""
    taken = {name for name, _v, _f in enumerate_sig_fields(writer.prev)}
    number = 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"


def field_rect(writer: Any, name: str) -> Rect | None:
    """The normalised rectangle of signature field ``name``; ``None`` if absent or empty."""
    for field_name, _value, field_ref in enumerate_sig_fields(writer.prev, with_name=name):
        if field_name == name:
            field_dict = field_ref.get_object()
            # A field and its one widget are often merged; otherwise the widget is its kid.
            annot = field_dict if "/Rect" in field_dict else field_dict["/Kids"][0].get_object()
            x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                return None
            return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return None


SEAL_SIZE = (235.0, 110.0)
"""Width and height (points) of the default seal rectangle on an A4 page or larger."""
SEAL_MARGINS = (30.0, 60.0)
"""Its distance (points) from the page's right edge and from its bottom edge."""
_A4 = (595.0, 842.0)


def default_seal_rect(box: tuple[float, float, float, float]) -> Rect:
    """Where a seal goes when the request places it nowhere: the signature block of a
    result, at the bottom right of the page. On A4 and larger pages a 235 × 110 point
    rectangle 30 points from the right edge and 60 above the bottom — (330, 60, 565, 170) on
    A4 portrait; on smaller pages the same shape scaled down with the page (A5: 0.71)."""
    x1, y1, x2, y2 = box
    scale = min(1.0, (x2 - x1) / _A4[0], (y2 - y1) / _A4[1])
    width, height = SEAL_SIZE[0] * scale, SEAL_SIZE[1] * scale
    right, bottom = x2 - SEAL_MARGINS[0] * scale, y1 + SEAL_MARGINS[1] * scale
    return (right - width, bottom, right, bottom + height)


def page_box(writer: Any, page: int) -> tuple[float, float, float, float]:
    """The media box of 1-based ``page``, normalised."""
    from signer.document import _media_box

    return _media_box(writer.prev, page - 1)


def new_field_spec(
    placement: Placement, *, doc_mdp_update_value: MDPPerm | None = None
) -> SigFieldSpec | None:
    """pyHanko's description of the field to create; ``None`` when the field exists."""
    if placement.existing:
        return None
    return SigFieldSpec(
        sig_field_name=placement.field_name,
        on_page=placement.page - 1,
        box=placement.rect,  # type: ignore[arg-type]
        doc_mdp_update_value=doc_mdp_update_value,
    )


def place_stamp(
    stamp: PreparedStamp,
    *,
    kind: AppearanceKind,
    placement: Placement,
    writer: Any,
    signing_time: datetime,
) -> tuple[Placement, KysoStampStyle]:
    """Lay ``stamp`` out in its rectangle; the placement (given a rectangle if it had none).

    The rectangle is the existing field's, the requested one, or without one: for a ``text``
    stamp the top right corner of the page sized to the text, for a ``seal`` stamp
    ``default_seal_rect`` of the page.
    """
    rect = placement.rect
    if placement.existing:
        rect = field_rect(writer, placement.field_name)
    elif rect is None and kind is AppearanceKind.TEXT:
        rect = stamp.text_form_rect(page_box(writer, placement.page))  # type: ignore[assignment]
        placement = Placement(
            field_name=placement.field_name, existing=False, page=placement.page, rect=rect
        )
    elif rect is None and kind is AppearanceKind.SEAL:
        rect = default_seal_rect(page_box(writer, placement.page))
        placement = Placement(
            field_name=placement.field_name, existing=False, page=placement.page, rect=rect
        )
    if rect is None:
        raise RectangleInvalid(
            f"the {kind.value} appearance needs a rectangle or an existing visible field; "
            "give page and rect, or use appearance none"
        )
    x1, y1, x2, y2 = rect
    placed = stamp.layout(x2 - x1, y2 - y1, signing_time)
    return placement, KysoStampStyle(stamp=stamp, placed=placed)


def stamp_identity(certificate: x509.Certificate, *, organisation: str) -> StampIdentity:
    """Who signs: the certificate's common name (else its whole subject) and first e-mail
    address among its subject alternative names, with ``organisation`` as given."""
    subject = certificate.subject.native
    name = subject.get("common_name") or certificate.subject.human_friendly
    alt_names = certificate.subject_alt_name_value
    emails = [str(v) for v in alt_names.native if "@" in str(v)] if alt_names is not None else []
    return StampIdentity(
        signer_name=str(name),
        organisation=organisation,
        email=emails[0] if emails else None,
    )
