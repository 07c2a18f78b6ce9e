"""Typed edXML packages and status packets (QCVN 102:2016/BTTTT), independent of XML.

Optional text fields are ``None`` when the sender left them out or wrote a placeholder (``N/A``).
Times are timezone-aware; edXML writes them without a zone, meaning Vietnam time (+07:00).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "VIETNAM_TIME",
    "Attachment",
    "Business",
    "BusinessType",
    "DocumentCode",
    "DocumentType",
    "ManifestReference",
    "MessageHeader",
    "Organization",
    "OtherInfo",
    "Package",
    "PromulgationInfo",
    "ReceiverChange",
    "Replacement",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusCode",
    "StatusPacket",
    "TraceHeader",
]

VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True, slots=True, kw_only=True)
class Organization:
    """A From or To block; ``organ_id`` is the unit code."""

    organ_id: str
    organ_name: str | None = None
    organization_in_charge: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentCode:
    """Số (``number``, e.g. 7816) and ký hiệu (``notation``, e.g. VPCP-TTĐT)."""

    number: str
    notation: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PromulgationInfo:
    place: str | None = None
    date: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentType:
    """The integer ``type`` code (values differ between senders) and its name."""

    type: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignerInfo:
    """Who signed the paper document (SignerInfo; older packages: Author, Function = position)."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherInfo:
    """Priority 0 normal … 4 scheduled flash, and the paper's print details."""

    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseFor:
    """The document a package or status answers."""

    organ_id: str
    document_id: str
    code: str | None = None
    promulgation_date: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageHeader:
    """The document's metadata. ``to`` holds the routing recipients; ``to_places`` is only the
    "nơi nhận" list printed on the paper. ``document_id`` is opaque, unique per sender."""

    from_: Organization
    to: tuple[Organization, ...]
    document_id: str
    subject: str
    code: DocumentCode | None = None
    promulgation: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: date | None = None
    to_places: tuple[str, ...] = ()
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceHeader:
    """A unit or hub the package passed, and when."""

    organ_id: str
    timestamp: datetime


class BusinessType(enum.IntEnum):
    """BussinessDocType: what the package does to the document it names."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverChange:
    """An update's change of recipients: ``added`` (ReceiverType 1) or removed (0)."""

    organ_id: str
    added: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Replacement:
    """A replace: the replaced document and the units it was sent to."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Business:
    """The Bussiness block; ``document_id`` names the target of a revoke/update/replace."""

    type: BusinessType = BusinessType.NEW
    reason: str | None = None
    document_id: str | None = None
    staff: StaffInfo | None = None
    paper: int | None = None
    receivers: tuple[ReceiverChange, ...] = ()
    replacements: tuple[Replacement, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestReference:
    """A manifest entry; ``content_id`` is kept without its ``cid:`` prefix."""

    content_id: str
    content_type: str | None = None
    attachment_name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """An attachment's decoded bytes (unpacked when the sender wrapped it in a ZIP)."""

    content_id: str
    content: bytes = field(repr=False)
    content_type: str | None = None
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """A whole edXML package."""

    header: MessageHeader
    traces: tuple[TraceHeader, ...] = ()
    business: Business = field(default_factory=Business)
    manifest: tuple[ManifestReference, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    signed_by_hub: str | None = None
    """The hub whose key signed the package on its sender's behalf (kyso's ``SignedByHub`` in
    the signed header); None: signed by a key of the sender itself."""


class StatusCode(enum.StrEnum):
    """The business status codes a recipient reports back to the sender."""

    ARRIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    COMPLETED = "06"
    REVOKE_REQUESTED = "13"
    AGREED = "15"
    REFUSED = "16"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusPacket:
    """A status sent back to a document's sender: ``response_for.organ_id`` is that sender."""

    response_for: ResponseFor
    from_: Organization
    code: StatusCode
    timestamp: datetime
    description: str | None = None
    staff: StaffInfo | None = None
    signed_by_hub: str | None = None
    """The hub whose key signed the packet on the recipient's behalf (``SignedByHub``)."""
