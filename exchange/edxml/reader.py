"""Reading edXML packages and status packets from a parsed tree — liberal in what it accepts.

Accepted variants (../docs/edxml.md lists them with the one form kyso writes):
- elements matched by local name, so a prefixed edXML namespace, a default namespace on the root,
  or none at all read the same; the XML-DSig ``Signature`` is skipped;
- ``Bussiness``/``Business`` (and their ``BussinessDocType``… children in either spelling);
- ``SignerInfo`` (Competence, Position, FullName) or the older ``Author`` (…, Function, …);
- timestamps ``yyyy/MM/dd HH:mm:ss`` or ``dd/MM/yyyy HH:mm:ss`` (and ISO 8601), Vietnam time
  unless a zone is given; dates ``yyyy/MM/dd``, ``dd/MM/yyyy`` or ``yyyy-MM-dd``;
- manifest references with ``xlink:href="cid:…"`` and/or child elements; content ids compared
  without the ``cid:`` prefix;
- placeholder values (``N/A``, ``-``, empty) read as absent; unknown elements ignored.

Required: From/OrganId and every To/OrganId as valid unit codes, at least one To, DocumentId;
each manifest reference must have its attachment. Failures name the element's path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from lxml import etree

from exchange.codes import validate_unit_code
from exchange.edxml.attachments import decode_attachment
from exchange.edxml.model import (
    VIETNAM_TIME,
    Attachment,
    Business,
    BusinessType,
    DocumentCode,
    DocumentType,
    ManifestReference,
    MessageHeader,
    Organization,
    OtherInfo,
    Package,
    PromulgationInfo,
    ReceiverChange,
    Replacement,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusPacket,
    TraceHeader,
)
from exchange.edxml.safexml import Limits
from exchange.errors import InvalidUnitCode, PackageInvalid

__all__ = [
    "MAX_DOCUMENT_ID_CHARS",
    "parse_date",
    "parse_timestamp",
    "read_package",
    "read_status",
]

MAX_DOCUMENT_ID_CHARS = 255
"""The longest DocumentId accepted: it keys routing, statuses and ledger events."""

_PLACEHOLDERS = frozenset({"", "n/a", "na", "-", "null", "none"})
_TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S")
_DATE_FORMATS = ("%Y/%m/%d", "%d/%m/%Y", "%Y-%m-%d")
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_T = TypeVar("_T")


class _Node:
    """An element with its path, giving children by local name (any namespace)."""

    __slots__ = ("_children", "element", "path")

    def __init__(self, element: etree._Element, path: str) -> None:
        self.element = element
        self.path = path
        self._children: dict[str, list[etree._Element]] | None = None

    def all(self, *names: str) -> list[_Node]:
        if self._children is None:
            # one pass over the children, indexed by local name ("{ns}Name" -> "Name")
            self._children = {}
            for child in self.element:
                tag = child.tag
                if isinstance(tag, str):
                    self._children.setdefault(tag.rpartition("}")[2], []).append(child)
        return [
            _Node(child, f"{self.path}/{name}[{index}]")
            for name in names
            for index, child in enumerate(self._children.get(name, ()), start=1)
        ]

    def one(self, *names: str) -> _Node | None:
        found = self.all(*names)
        if len(found) > 1:
            raise PackageInvalid(
                f"{self.path} has {len(found)} {names[0]} elements; exactly one is allowed",
                field=f"{self.path}/{names[0]}",
            )
        if found:
            found[0].path = found[0].path.rsplit("[", 1)[0]
        return found[0] if found else None

    def need(self, *names: str) -> _Node:
        node = self.one(*names)
        if node is None:
            raise PackageInvalid(
                f"{self.path}/{names[0]} is missing", field=f"{self.path}/{names[0]}"
            )
        return node

    def text(self, *names: str) -> str | None:
        node = self.one(*names)
        return None if node is None else node.value()

    def value(self) -> str | None:
        # itertext joins every text node, so nothing hides after a (removed) comment
        text = "".join(self.element.itertext()).strip()
        return None if text.lower() in _PLACEHOLDERS else text

    def parsed(self, names: tuple[str, ...], parse: Callable[[str], _T], what: str) -> _T | None:
        node = self.one(*names)
        raw = None if node is None else node.value()
        if raw is None or node is None:
            return None
        try:
            return parse(raw)
        except ValueError:
            raise PackageInvalid(
                f"{node.path} is {raw[:40]!r}, which is not {what}", field=node.path
            ) from None


def parse_timestamp(text: str) -> datetime:
    """A timestamp in any accepted form; Vietnam time when it carries no zone."""
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=VIETNAM_TIME)
        except ValueError:
            continue
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM_TIME)


def parse_date(text: str) -> date:
    """A date in any accepted form (a trailing time, if any, is ignored)."""
    head = text.split()[0] if text.split() else text
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(head, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


def _int(text: str) -> int:
    return int(text)


def _unit_code(node: _Node, name: str = "OrganId") -> str:
    child = node.need(name)
    raw = child.value()
    if raw is None:
        raise PackageInvalid(f"{child.path} is empty", field=child.path)
    try:
        return validate_unit_code(raw, field=child.path)
    except InvalidUnitCode as exc:
        raise PackageInvalid(f"{child.path}: {exc}", field=child.path) from exc


def _organization(node: _Node) -> Organization:
    return Organization(
        organ_id=_unit_code(node),
        organ_name=node.text("OrganName"),
        organization_in_charge=node.text("OrganizationInCharge"),
        organ_add=node.text("OrganAdd"),
        email=node.text("Email"),
        telephone=node.text("Telephone"),
        fax=node.text("Fax"),
        website=node.text("Website"),
    )


def _document_id(node: _Node) -> str:
    """The node's DocumentId: present, and short enough to be recorded and routed."""
    document_id = node.text("DocumentId")
    where = f"{node.path}/DocumentId"
    if document_id is None:
        raise PackageInvalid(f"{where} is missing", field=where)
    if len(document_id) > MAX_DOCUMENT_ID_CHARS:
        raise PackageInvalid(
            f"{where} has {len(document_id)} characters; at most {MAX_DOCUMENT_ID_CHARS} are"
            " accepted (the standard's form is OrganId,yyyy/MM/dd,Number/Notation)",
            field=where,
        )
    return document_id


def _response_for(node: _Node) -> ResponseFor:
    document_id = _document_id(node)
    return ResponseFor(
        organ_id=_unit_code(node),
        document_id=document_id,
        code=node.text("Code"),
        promulgation_date=node.parsed(("PromulgationDate",), parse_date, "a date"),
    )


def _staff(node: _Node | None) -> StaffInfo | None:
    if node is None:
        return None
    return StaffInfo(
        department=node.text("Department"),
        staff=node.text("Staff"),
        mobile=node.text("Mobile"),
        email=node.text("Email"),
    )


def _message_header(node: _Node) -> MessageHeader:
    to = tuple(_organization(n) for n in node.all("To"))
    if not to:
        raise PackageInvalid(
            f"{node.path} has no To: name at least one recipient", field=f"{node.path}/To"
        )
    document_id = _document_id(node)
    code = node.one("Code")
    promulgation = node.one("PromulgationInfo")
    doc_type = node.one("DocumentType")
    signer = node.one("SignerInfo", "Author")
    other = node.one("OtherInfo")
    to_places = node.one("ToPlaces")
    code_number = code.text("CodeNumber") if code else None
    return MessageHeader(
        from_=_organization(node.need("From")),
        to=to,
        document_id=document_id,
        subject=node.text("Subject") or "",
        code=(
            DocumentCode(number=code_number, notation=code.text("CodeNotation"))
            if code and code_number
            else None
        ),
        promulgation=(
            PromulgationInfo(
                place=promulgation.text("Place"),
                date=promulgation.parsed(("PromulgationDate",), parse_date, "a date"),
            )
            if promulgation
            else None
        ),
        document_type=(
            DocumentType(
                type=doc_type.parsed(("Type",), _int, "a whole number"),
                name=doc_type.text("TypeName"),
            )
            if doc_type
            else None
        ),
        content=node.text("Content"),
        signer=(
            SignerInfo(
                competence=signer.text("Competence"),
                position=signer.text("Position", "Function"),
                full_name=signer.text("FullName"),
            )
            if signer
            else None
        ),
        due_date=node.parsed(("DueDate",), parse_date, "a date"),
        to_places=tuple(
            v for v in (p.value() for p in (to_places.all("Place") if to_places else [])) if v
        ),
        other_info=(
            OtherInfo(
                priority=other.parsed(("Priority",), _int, "a whole number"),
                sphere_of_promulgation=other.text("SphereOfPromulgation"),
                typer_notation=other.text("TyperNotation"),
                promulgation_amount=other.parsed(("PromulgationAmount",), _int, "a whole number"),
                page_amount=other.parsed(("PageAmount",), _int, "a whole number"),
                appendixes=_appendixes(other),
            )
            if other
            else None
        ),
        response_for=tuple(_response_for(n) for n in node.all("ResponseFor")),
        steering_type=node.parsed(("SteeringType",), _int, "a whole number"),
    )


def _appendixes(other: _Node) -> tuple[str, ...]:
    # Appendixes holds either text (some senders) or Appendix children (what kyso writes).
    found: list[str | None] = []
    for block in other.all("Appendixes"):
        items = block.all("Appendix")
        found.extend([item.value() for item in items] if items else [block.value()])
    return tuple(v for v in found if v)


def _business(node: _Node | None) -> Business:
    if node is None:
        return Business()
    raw_type = node.parsed(("BussinessDocType", "BusinessDocType"), _int, "a whole number")
    try:
        kind = BusinessType(raw_type or 0)
    except ValueError:
        raise PackageInvalid(
            f"{node.path}/BussinessDocType is {raw_type}; it must be 0 (new), 1 (revoke),"
            " 2 (update) or 3 (replace)",
            field=f"{node.path}/BussinessDocType",
        ) from None
    info = node.one("BussinessDocumentInfo", "BusinessDocumentInfo")
    receivers: list[ReceiverChange] = []
    receiver_list = info.one("ReceiverList") if info else None
    for receiver in receiver_list.all("Receiver") if receiver_list else []:
        receiver_type = receiver.parsed(("ReceiverType",), _int, "0 or 1")
        receivers.append(ReceiverChange(organ_id=_unit_code(receiver), added=receiver_type == 1))
    replacements: list[Replacement] = []
    replacement_list = node.one("ReplacementInfoList")
    for item in replacement_list.all("ReplacementInfo") if replacement_list else []:
        organ_list = item.one("OrganIdList")
        replaced = item.text("DocumentId")
        if replaced is None:
            raise PackageInvalid(
                f"{item.path}/DocumentId is missing", field=f"{item.path}/DocumentId"
            )
        replacements.append(
            Replacement(
                document_id=replaced,
                organ_ids=tuple(
                    v
                    for v in (o.value() for o in (organ_list.all("OrganId") if organ_list else []))
                    if v
                ),
            )
        )
    target = node.text("DocumentId")
    if kind is not BusinessType.NEW and target is None:
        raise PackageInvalid(
            f"{node.path}/DocumentId must name the document to {kind.name.lower()}",
            field=f"{node.path}/DocumentId",
        )
    return Business(
        type=kind,
        reason=node.text("BussinessDocReason", "BusinessDocReason"),
        document_id=target,
        staff=_staff(node.one("StaffInfo")),
        paper=node.parsed(("Paper",), _int, "a whole number"),
        receivers=tuple(receivers),
        replacements=tuple(replacements),
    )


def _strip_cid(content_id: str) -> str:
    content_id = content_id.strip()
    if content_id[:4].lower() == "cid:":
        content_id = content_id[4:]
    return content_id.strip("<>")


def _manifest(node: _Node | None) -> tuple[ManifestReference, ...]:
    if node is None:
        return ()
    references: list[ManifestReference] = []
    for ref in node.all("Reference"):
        raw_id = ref.text("ContentId") or ref.element.get(_XLINK_HREF) or ref.element.get("href")
        if not raw_id:
            raise PackageInvalid(
                f"{ref.path} has neither xlink:href nor ContentId", field=f"{ref.path}/ContentId"
            )
        references.append(
            ManifestReference(
                content_id=_strip_cid(raw_id),
                content_type=ref.text("ContentType") or ref.element.get("type"),
                attachment_name=ref.text("AttachmentName"),
                description=ref.text("Description"),
            )
        )
    return tuple(references)


def _attachments(node: _Node | None, *, limits: Limits) -> tuple[Attachment, ...]:
    if node is None:
        return ()
    attachments: list[Attachment] = []
    items = node.all("Attachment")
    if len(items) > limits.max_attachments:
        raise PackageInvalid(
            f"{node.path} has {len(items)} attachments; at most {limits.max_attachments} are"
            " accepted in one package (send the others in further packages)",
            field=f"{node.path}/Attachment",
        )
    left = limits.max_expanded_bytes
    for item in items:
        content_id = item.text("ContentId")
        if content_id is None:
            raise PackageInvalid(
                f"{item.path}/ContentId is missing", field=f"{item.path}/ContentId"
            )
        encoded = item.need("ContentTransferEncoded")
        name = item.text("AttachmentName")
        content_type = item.text("ContentType")
        content = decode_attachment(
            "".join(encoded.element.itertext()),
            name=name,
            content_type=content_type,
            field=encoded.path,
            limits=limits,
            budget=left,
        )
        left -= len(content)
        attachments.append(
            Attachment(
                content_id=_strip_cid(content_id),
                content=content,
                content_type=content_type,
                name=name,
                description=item.text("Description"),
            )
        )
    return tuple(attachments)


def _root(element: etree._Element) -> _Node:
    local = etree.QName(element).localname
    if local != "edXML":
        raise PackageInvalid(f"the root element is {local}; an edXML package starts with edXML")
    return _Node(element, "edXML")


def read_package(element: etree._Element, *, limits: Limits) -> Package:
    """The package in ``element`` (the edXML root: pass only signed content, see dsig)."""
    root = _root(element)
    envelope = root.need("edXMLEnvelope")
    header = envelope.need("edXMLHeader")
    trace_list = header.one("TraceHeaderList")
    traces: list[TraceHeader] = []
    for trace in trace_list.all("TraceHeader") if trace_list else []:
        moment = trace.parsed(("Timestamp",), parse_timestamp, "a timestamp")
        if moment is None:
            raise PackageInvalid(
                f"{trace.path}/Timestamp is missing", field=f"{trace.path}/Timestamp"
            )
        traces.append(TraceHeader(organ_id=_unit_code(trace), timestamp=moment))
    body = envelope.one("edXMLBody")
    manifest = _manifest(body.one("edXMLManifest") if body else None)
    attachment_node = root.one("AttachmentEncoded") or envelope.one("AttachmentEncoded")
    attachments = _attachments(attachment_node, limits=limits)
    present = {a.content_id for a in attachments}
    for index, reference in enumerate(manifest, start=1):
        if reference.content_id not in present:
            path = f"edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[{index}]"
            raise PackageInvalid(
                f"{path} names attachment {reference.content_id!r}, which the package lacks",
                field=path,
            )
    return Package(
        header=_message_header(header.need("MessageHeader")),
        traces=tuple(traces),
        business=_business(trace_list.one("Bussiness", "Business") if trace_list else None),
        manifest=manifest,
        attachments=attachments,
        signed_by_hub=header.text("SignedByHub"),
    )


def read_status(element: etree._Element) -> StatusPacket:
    """The status packet in ``element`` (the edXML root: pass only signed content)."""
    header = _root(element).need("edXMLEnvelope").need("edXMLHeader")
    status = header.need("Status", "MessageStatus")
    raw_code = status.text("StatusCode")
    try:
        code = StatusCode((raw_code or "").zfill(2))
    except ValueError:
        raise PackageInvalid(
            f"{status.path}/StatusCode is {raw_code!r}; known codes are"
            f" {', '.join(c.value for c in StatusCode)}",
            field=f"{status.path}/StatusCode",
        ) from None
    moment = status.parsed(("Timestamp",), parse_timestamp, "a timestamp")
    if moment is None:
        raise PackageInvalid(
            f"{status.path}/Timestamp is missing", field=f"{status.path}/Timestamp"
        )
    return StatusPacket(
        response_for=_response_for(status.need("ResponseFor")),
        from_=_organization(status.need("From")),
        code=code,
        timestamp=moment,
        description=status.text("Description"),
        staff=_staff(status.one("StaffInfo")),
        signed_by_hub=header.text("SignedByHub"),
    )
