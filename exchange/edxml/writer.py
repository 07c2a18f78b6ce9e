"""Writing edXML packages and status packets — one form, always the same.

The form kyso writes (docs/edxml.md shows a full example):
- UTF-8, the ``edXML`` prefix bound to ``http://www.mic.gov.vn/TBT/QCVN_102_2016`` on the root
  (never a default namespace), ``xlink`` bound on the root;
- the spellings ``Bussiness``/``BussinessDocType``… and ``SignerInfo`` (Competence, Position,
  FullName), as in the national SDKs;
- timestamps ``yyyy/MM/dd HH:mm:ss`` and dates ``yyyy/MM/dd``, in Vietnam time (+07:00);
- manifest references with ``xlink:href="cid:ID"`` and the child elements Description,
  AttachmentName, ContentType, ContentId (``ID``, without ``cid:``); attachments base64 on one
  line, never ZIP-wrapped;
- absent values are left out (never ``N/A``); elements in the order of QCVN 102's tables;
- no signature: ``dsig.sign_package`` adds it in ``edXMLHeader``, after ``TraceHeaderList``.
"""

from __future__ import annotations

import base64
from datetime import date, datetime

from lxml import etree

from exchange.edxml.model import (
    VIETNAM_TIME,
    Business,
    BusinessType,
    MessageHeader,
    Organization,
    Package,
    ResponseFor,
    StaffInfo,
    StatusPacket,
    TraceHeader,
)

__all__ = [
    "EDXML_NS",
    "XLINK_NS",
    "format_date",
    "format_timestamp",
    "package_tree",
    "status_tree",
    "write_package",
    "write_status",
]

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XLINK_NS = "http://www.w3.org/1999/xlink"
KYSO_NS = "urn:kyso:edxml:1"
"""kyso's extension: ``kyso:SignedByHub`` in ``edXMLHeader`` names the hub whose key signed the
package (or status packet) on behalf of its unit; other readers ignore it."""
_NSMAP = {"edXML": EDXML_NS, "xlink": XLINK_NS}


def format_timestamp(moment: datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam time."""
    return moment.astimezone(VIETNAM_TIME).strftime("%Y/%m/%d %H:%M:%S")


def format_date(day: date) -> str:
    """``yyyy/MM/dd``."""
    return day.strftime("%Y/%m/%d")


def _el(parent: etree._Element, name: str, text: object = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{EDXML_NS}}}{name}")
    if text is not None:
        element.text = str(text)
    return element


def _opt(parent: etree._Element, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, datetime):
        value = format_timestamp(value)
    elif isinstance(value, date):
        value = format_date(value)
    _el(parent, name, value)


def _organization(parent: etree._Element, name: str, org: Organization) -> None:
    node = _el(parent, name)
    _el(node, "OrganId", org.organ_id)
    _opt(node, "OrganizationInCharge", org.organization_in_charge)
    _opt(node, "OrganName", org.organ_name)
    _opt(node, "OrganAdd", org.organ_add)
    _opt(node, "Email", org.email)
    _opt(node, "Telephone", org.telephone)
    _opt(node, "Fax", org.fax)
    _opt(node, "Website", org.website)


def _response_for(parent: etree._Element, response: ResponseFor) -> None:
    node = _el(parent, "ResponseFor")
    _el(node, "OrganId", response.organ_id)
    _opt(node, "Code", response.code)
    _opt(node, "PromulgationDate", response.promulgation_date)
    _el(node, "DocumentId", response.document_id)


def _staff(parent: etree._Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    node = _el(parent, "StaffInfo")
    _opt(node, "Department", staff.department)
    _opt(node, "Staff", staff.staff)
    _opt(node, "Mobile", staff.mobile)
    _opt(node, "Email", staff.email)


def _message_header(parent: etree._Element, header: MessageHeader) -> None:
    node = _el(parent, "MessageHeader")
    _organization(node, "From", header.from_)
    for recipient in header.to:
        _organization(node, "To", recipient)
    if header.code is not None:
        code = _el(node, "Code")
        _el(code, "CodeNumber", header.code.number)
        _opt(code, "CodeNotation", header.code.notation)
    if header.promulgation is not None:
        info = _el(node, "PromulgationInfo")
        _opt(info, "Place", header.promulgation.place)
        _opt(info, "PromulgationDate", header.promulgation.date)
    if header.document_type is not None:
        kind = _el(node, "DocumentType")
        _opt(kind, "Type", header.document_type.type)
        _opt(kind, "TypeName", header.document_type.name)
    _el(node, "Subject", header.subject)
    _opt(node, "Content", header.content)
    if header.signer is not None:
        signer = _el(node, "SignerInfo")
        _opt(signer, "Competence", header.signer.competence)
        _opt(signer, "Position", header.signer.position)
        _opt(signer, "FullName", header.signer.full_name)
    _opt(node, "DueDate", header.due_date)
    if header.to_places:
        places = _el(node, "ToPlaces")
        for place in header.to_places:
            _el(places, "Place", place)
    if header.other_info is not None:
        other = _el(node, "OtherInfo")
        info = header.other_info
        _opt(other, "Priority", info.priority)
        _opt(other, "SphereOfPromulgation", info.sphere_of_promulgation)
        _opt(other, "TyperNotation", info.typer_notation)
        _opt(other, "PromulgationAmount", info.promulgation_amount)
        _opt(other, "PageAmount", info.page_amount)
        if info.appendixes:
            appendixes = _el(other, "Appendixes")
            for appendix in info.appendixes:
                _el(appendixes, "Appendix", appendix)
    for response in header.response_for:
        _response_for(node, response)
    _opt(node, "SteeringType", header.steering_type)
    _el(node, "DocumentId", header.document_id)


def _trace_list(
    parent: etree._Element, traces: tuple[TraceHeader, ...], business: Business
) -> None:
    node = _el(parent, "TraceHeaderList")
    for trace in traces:
        item = _el(node, "TraceHeader")
        _el(item, "OrganId", trace.organ_id)
        _el(item, "Timestamp", format_timestamp(trace.timestamp))
    bus = _el(node, "Bussiness")
    _el(bus, "BussinessDocType", int(business.type))
    _opt(bus, "BussinessDocReason", business.reason)
    _opt(bus, "DocumentId", business.document_id)
    _staff(bus, business.staff)
    _opt(bus, "Paper", business.paper)
    if business.type is BusinessType.UPDATE and business.receivers:
        info = _el(bus, "BussinessDocumentInfo")
        receivers = _el(info, "ReceiverList")
        for change in business.receivers:
            receiver = _el(receivers, "Receiver")
            _el(receiver, "ReceiverType", 1 if change.added else 0)
            _el(receiver, "OrganId", change.organ_id)
    if business.type is BusinessType.REPLACE and business.replacements:
        replacements = _el(bus, "ReplacementInfoList")
        for replacement in business.replacements:
            item = _el(replacements, "ReplacementInfo")
            _el(item, "DocumentId", replacement.document_id)
            organs = _el(item, "OrganIdList")
            for organ_id in replacement.organ_ids:
                _el(organs, "OrganId", organ_id)


def _signed_by_hub(header: etree._Element, hub: str | None) -> None:
    if hub:
        element = etree.SubElement(header, f"{{{KYSO_NS}}}SignedByHub", nsmap={"kyso": KYSO_NS})
        element.text = hub


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def package_tree(package: Package) -> etree._Element:
    """The package as an lxml tree (unsigned), in kyso's written form."""
    root = etree.Element(f"{{{EDXML_NS}}}edXML", nsmap=_NSMAP)
    envelope = _el(root, "edXMLEnvelope")
    header = _el(envelope, "edXMLHeader")
    _message_header(header, package.header)
    _trace_list(header, package.traces, package.business)
    _signed_by_hub(header, package.signed_by_hub)
    body = _el(envelope, "edXMLBody")
    manifest = _el(body, "edXMLManifest")
    manifest.set("version", "1.0")
    for reference in package.manifest:
        ref = _el(manifest, "Reference")
        ref.set(f"{{{XLINK_NS}}}href", f"cid:{reference.content_id}")
        _opt(ref, "Description", reference.description)
        _opt(ref, "AttachmentName", reference.attachment_name)
        _opt(ref, "ContentType", reference.content_type)
        _el(ref, "ContentId", reference.content_id)
    if package.attachments:
        encoded = _el(root, "AttachmentEncoded")
        for attachment in package.attachments:
            item = _el(encoded, "Attachment")
            _opt(item, "ContentType", attachment.content_type)
            _el(item, "ContentId", attachment.content_id)
            _opt(item, "Description", attachment.description)
            _opt(item, "AttachmentName", attachment.name)
            _el(
                item, "ContentTransferEncoded", base64.b64encode(attachment.content).decode("ascii")
            )
    return root


def write_package(package: Package) -> bytes:
    """The package as UTF-8 XML bytes (unsigned)."""
    return _serialize(package_tree(package))


def status_tree(status: StatusPacket) -> etree._Element:
    """The status packet as an lxml tree (unsigned)."""
    root = etree.Element(f"{{{EDXML_NS}}}edXML", nsmap=_NSMAP)
    envelope = _el(root, "edXMLEnvelope")
    header = _el(envelope, "edXMLHeader")
    node = _el(header, "Status")
    _response_for(node, status.response_for)
    _organization(node, "From", status.from_)
    _el(node, "StatusCode", status.code.value)
    _opt(node, "Description", status.description)
    _el(node, "Timestamp", format_timestamp(status.timestamp))
    _staff(node, status.staff)
    _signed_by_hub(header, status.signed_by_hub)
    _el(envelope, "edXMLBody")
    return root


def write_status(status: StatusPacket) -> bytes:
    """The status packet as UTF-8 XML bytes (unsigned)."""
    return _serialize(status_tree(status))
