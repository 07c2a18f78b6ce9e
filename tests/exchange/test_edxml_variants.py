"""Packages as other systems write them: every variant of docs/edxml.md reads the same."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import date, datetime

import pytest
from lxml import etree

from exchange import PackageInvalid
from exchange.edxml import (
    VIETNAM_TIME,
    BusinessType,
    CryptographyKey,
    DocumentType,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
    StaffInfo,
    StatusCode,
    TrustPolicy,
    open_package,
    open_status,
)
from exchange.edxml.dsig import sign_tree

E = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
PDF = b"%PDF-1.4\n" + b"0123456789" * 300


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def foreign_package(
    *,
    root: str = '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" xmlns:xlink="http://www.w3.org/1999/xlink">',
    close: str = "</edXML>",
    business: str = "Business",
    timestamp: str = "29/11/2026 08:15:00",
    attachment: bytes = PDF,
    signature: str = "<DigitalSignature/>",
) -> bytes:
    encoded = base64.encodebytes(attachment).decode()  # wrapped at 76 columns, as some do
    return f"""<?xml version="1.0" encoding="utf-8"?>
{root}
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.02.H49</OrganId><OrganName>Sở Nội vụ Quảng Ninh</OrganName>
          <OrganAdd>N/A</OrganAdd><Email>N/A</Email><Telephone></Telephone></From>
        <To><OrganId>000.00.02.H41</OrganId><OrganName>Sở Nội vụ Nghệ An</OrganName></To>
        <To><OrganId> 000.00.03.H41 </OrganId></To>
        <Code><CodeNumber>7816</CodeNumber><CodeNotation>VPCP-TTĐT</CodeNotation></Code>
        <PromulgationInfo><Place>Hà Nội</Place>
          <PromulgationDate>30/09/2015</PromulgationDate></PromulgationInfo>
        <DocumentType><Type>18</Type><TypeName>Công văn</TypeName>
          <TypeDetail>CV</TypeDetail></DocumentType>
        <Subject>Về việc thử nghiệm liên thông</Subject>
        <Content>N/A</Content>
        <Author><Competence>TL.</Competence><Function>Chánh Văn phòng</Function>
          <FullName>Lê Văn D</FullName></Author>
        <DueDate>N/A</DueDate>
        <ToPlaces><Place>Như trên</Place><Place>N/A</Place></ToPlaces>
        <OtherInfo><Priority>0</Priority><Direction>1</Direction><PageAmount>2</PageAmount>
          <Appendixes>Phụ lục</Appendixes></OtherInfo>
        <SteeringType>0</SteeringType>
        <DocumentId>7c9e6679-7425-40de-944b-e07fc1f90ae7</DocumentId>
        <SomethingNew>ignored</SomethingNew>
      </MessageHeader>
      <TraceHeaderList id="1" version="1.0" mustUnderstand="1">
        <TraceHeader><OrganId>000.00.02.H49</OrganId><Timestamp>{timestamp}</Timestamp></TraceHeader>
        <{business}><{business}DocType>1</{business}DocType><{business}DocReason>Nhầm</{business}DocReason>
          <DocumentId>old-doc</DocumentId><Paper>0</Paper></{business}>
      </TraceHeaderList>
      {signature}
    </edXMLHeader>
    <edXMLBody>
      <edXMLManifest version="1.0">
        <Reference xlink:href="cid:file-1" type="application/pdf">
          <AttachmentName>vb.pdf</AttachmentName></Reference>
        <Reference><ContentId>cid:file-2</ContentId><ContentType>application/pdf</ContentType></Reference>
      </edXMLManifest>
    </edXMLBody>
  </edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment><ContentType>application/pdf</ContentType><ContentId>file-1</ContentId>
      <AttachmentName>vb.pdf</AttachmentName><ContentTransferEncoded>{encoded}</ContentTransferEncoded></Attachment>
    <Attachment><ContentId>&lt;file-2&gt;</ContentId><AttachmentName>pl.pdf</AttachmentName>
      <ContentTransferEncoded>{base64.b64encode(b"second").decode()}</ContentTransferEncoded></Attachment>
  </AttachmentEncoded>
{close}""".encode()


LENIENT = TrustPolicy(require_signature=False)


def test_a_foreign_package_reads_with_every_variant() -> None:
    opened = open_package(foreign_package(), policy=LENIENT)
    package, header = opened.package, opened.package.header
    assert not opened.signature.signed
    assert header.from_.organ_id == "000.00.02.H49"
    assert header.from_.organ_add is None
    assert header.from_.email is None
    assert header.from_.telephone is None
    assert [t.organ_id for t in header.to] == ["000.00.02.H41", "000.00.03.H41"]
    assert header.document_id == "7c9e6679-7425-40de-944b-e07fc1f90ae7"  # a UUID: opaque
    assert header.promulgation == PromulgationInfo(place="Hà Nội", date=date(2015, 9, 30))
    assert header.document_type == DocumentType(type=18, name="Công văn")
    assert header.content is None
    assert header.due_date is None
    assert header.signer == SignerInfo(  # Author, with Function as the position
        competence="TL.", position="Chánh Văn phòng", full_name="Lê Văn D"
    )
    assert header.to_places == ("Như trên",)
    assert header.other_info == OtherInfo(priority=0, page_amount=2, appendixes=("Phụ lục",))
    assert header.steering_type == 0
    assert package.traces[0].timestamp == datetime(2026, 11, 29, 8, 15, tzinfo=VIETNAM_TIME)
    assert package.business.type is BusinessType.REVOKE
    assert package.business.document_id == "old-doc"
    assert [m.content_id for m in package.manifest] == ["file-1", "file-2"]
    assert package.manifest[0].content_type == "application/pdf"
    assert [a.content_id for a in package.attachments] == ["file-1", "file-2"]
    assert package.attachments[0].content == PDF


@pytest.mark.parametrize(
    "root",
    [
        f'<edXML:edXML xmlns:edXML="{E}" xmlns="{E}" xmlns:xlink="http://www.w3.org/1999/xlink">',
        '<edXML xmlns:xlink="http://www.w3.org/1999/xlink">',
    ],
    ids=["prefixed-root", "no-namespace"],
)
def test_namespace_forms_read_the_same(root: str) -> None:
    close = "</edXML:edXML>" if root.startswith("<edXML:") else "</edXML>"
    reference = open_package(foreign_package(), policy=LENIENT).package
    assert (
        open_package(foreign_package(root=root, close=close), policy=LENIENT).package == reference
    )


@pytest.mark.parametrize("spelling", ["Bussiness", "Business"])
@pytest.mark.parametrize("timestamp", ["2026/11/29 08:15:00", "29/11/2026 08:15:00"])
def test_both_spellings_and_timestamp_formats(spelling: str, timestamp: str) -> None:
    package = open_package(
        foreign_package(business=spelling, timestamp=timestamp), policy=LENIENT
    ).package
    assert package.business.type is BusinessType.REVOKE
    assert package.traces[0].timestamp == datetime(2026, 11, 29, 8, 15, tzinfo=VIETNAM_TIME)


def test_zip_wrapped_attachment_is_unpacked() -> None:
    package = open_package(foreign_package(attachment=_zip("vb.pdf", PDF)), policy=LENIENT).package
    assert package.attachments[0].content == PDF


def test_office_files_and_declared_archives_are_kept_as_sent() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a .docx is a ZIP with several entries
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    docx = buffer.getvalue()
    assert (
        open_package(foreign_package(attachment=docx), policy=LENIENT)
        .package.attachments[0]
        .content
        == docx
    )


def test_a_signed_foreign_package_reads_the_same_as_unsigned(
    rsa_key: CryptographyKey, policy: TrustPolicy
) -> None:
    data = foreign_package(signature="")
    signed = sign_tree(etree.fromstring(data), key=rsa_key)
    assert open_package(signed, policy=policy).package == open_package(data, policy=LENIENT).package


def test_manifest_reference_without_its_attachment_is_refused() -> None:
    data = foreign_package().replace(
        b"<ContentId>file-1</ContentId>", b"<ContentId>file-9</ContentId>"
    )
    with pytest.raises(PackageInvalid, match=r"Reference\[1\] names attachment 'file-1'") as caught:
        open_package(data, policy=LENIENT)
    assert caught.value.field == "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            b"<To><OrganId>000.00.02.H41</OrganId>",
            b"<To><OrganId>H41</OrganId>",
            r"To\[1\]/OrganId",
        ),
        (
            b"<DocumentId>7c9e6679-7425-40de-944b-e07fc1f90ae7</DocumentId>",
            b"",
            "MessageHeader/DocumentId is missing",
        ),
        (
            b"<Type>18</Type>",
            b"<Type>eighteen</Type>",
            "DocumentType/Type is 'eighteen', which is not a whole",
        ),
        (
            b"<PromulgationDate>30/09/2015",
            b"<PromulgationDate>2015.09.30",
            "PromulgationDate is '2015.09.30'",
        ),
        (b"<BusinessDocType>1", b"<BusinessDocType>7", "must be 0 \\(new\\), 1"),
        (b"<DocumentId>old-doc</DocumentId>", b"", "DocumentId must name the document to revoke"),
        (b"<Timestamp>29/11/2026 08:15:00", b"<Timestamp>yesterday", "is not a timestamp"),
        (b"<edXMLEnvelope>", b"<edXMLEnvelope><edXMLHeader/>", "has 2 edXMLHeader elements"),
    ],
)
def test_bad_fields_are_refused_naming_the_element(old: bytes, new: bytes, message: str) -> None:
    data = foreign_package().replace(old, new, 1)
    assert data != foreign_package()
    with pytest.raises(PackageInvalid, match=message):
        open_package(data, policy=LENIENT)


def test_package_without_recipients_is_refused() -> None:
    data = foreign_package()
    start, end = data.index(b"<To>"), data.rindex(b"</To>") + len(b"</To>")
    with pytest.raises(PackageInvalid, match="has no To: name at least one recipient"):
        open_package(data[:start] + data[end:], policy=LENIENT)


def test_foreign_status_packet_reads() -> None:
    data = """<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>
      <Status><ResponseFor><OrganId>000.00.02.H49</OrganId><Code>7816/VPCP</Code>
        <PromulgationDate>2015/09/30</PromulgationDate><DocumentId>doc-1</DocumentId></ResponseFor>
        <From><OrganId>000.00.02.H41</OrganId></From>
        <StaffInfo><Staff>Văn thư</Staff></StaffInfo>
        <StatusCode>3</StatusCode><Description>N/A</Description>
        <Timestamp>30/09/2015 10:00:00</Timestamp>
      </Status></edXMLHeader><edXMLBody/></edXMLEnvelope></edXML>""".encode()
    status = open_status(data, policy=LENIENT).status
    assert status.code is StatusCode.ACCEPTED
    assert status.response_for.document_id == "doc-1"
    assert status.description is None
    assert status.staff == StaffInfo(staff="Văn thư")
    with pytest.raises(PackageInvalid, match="StatusCode is '07'; known codes are 01, 02"):
        open_status(data.replace(b"<StatusCode>3", b"<StatusCode>07"), policy=LENIENT)
