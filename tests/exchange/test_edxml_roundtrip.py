"""Packages and status packets written by kyso read back identical, signed with RSA and ECDSA."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest
from lxml import etree

from exchange.edxml import (
    VIETNAM_TIME,
    Attachment,
    Business,
    BusinessType,
    CryptographyKey,
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
    TrustPolicy,
    build_package,
    build_status,
    open_package,
    open_status,
)
from exchange.errors import SignatureInvalid
from tests.exchange.conftest import NOI_VU_NA, NOI_VU_QN

AT = datetime(2026, 11, 29, 14, 5, 9, tzinfo=VIETNAM_TIME)
STAFF = StaffInfo(
    department="Văn phòng", staff="Nguyễn Thị B", mobile="0912345678", email="b@qn.gov.vn"
)


def full_package(business: Business | None = None) -> Package:
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 8
    return Package(
        header=MessageHeader(
            from_=Organization(
                organ_id=NOI_VU_QN,
                organ_name="Sở Nội vụ Quảng Ninh",
                organization_in_charge="UBND tỉnh Quảng Ninh",
                organ_add="Phường Hồng Hà, TP Hạ Long",
                email="snv@quangninh.gov.vn",
                telephone="02033835678",
                fax="02033835679",
                website="https://snv.quangninh.gov.vn",
            ),
            to=(
                Organization(organ_id=NOI_VU_NA, organ_name="Sở Nội vụ Nghệ An"),
                Organization(organ_id="000.00.03.H41"),
            ),
            document_id="000.00.02.H49,2026/11/29,1234/SNV-VP",
            subject="Về việc phối hợp rà soát danh mục thủ tục hành chính",
            code=DocumentCode(number="1234", notation="SNV-VP"),
            promulgation=PromulgationInfo(place="Quảng Ninh", date=date(2026, 11, 29)),
            document_type=DocumentType(type=1, name="Công văn"),
            content="Sở Nội vụ đề nghị…",
            signer=SignerInfo(
                competence="KT. GIÁM ĐỐC", position="Phó Giám đốc", full_name="Trần Văn C"
            ),
            due_date=date(2026, 12, 15),
            to_places=("Như trên", "Lưu: VT"),
            other_info=OtherInfo(
                priority=1,
                sphere_of_promulgation="Liên thông văn bản",
                typer_notation="VP",
                promulgation_amount=2,
                page_amount=3,
                appendixes=("Phụ lục I", "Phụ lục II"),
            ),
            response_for=(
                ResponseFor(
                    organ_id=NOI_VU_NA,
                    document_id="000.00.02.H41,2026/11/20,99/SNV",
                    code="99/SNV",
                    promulgation_date=date(2026, 11, 20),
                ),
            ),
            steering_type=2,
        ),
        traces=(TraceHeader(organ_id=NOI_VU_QN, timestamp=AT),),
        business=business or Business(),
        manifest=(
            ManifestReference(
                content_id="att-1",
                content_type="application/pdf",
                attachment_name="cong-van.pdf",
                description="Công văn",
            ),
        ),
        attachments=(
            Attachment(
                content_id="att-1",
                content=pdf,
                content_type="application/pdf",
                name="cong-van.pdf",
                description="Công văn",
            ),
        ),
    )


BUSINESSES = [
    Business(),
    Business(
        type=BusinessType.REVOKE, reason="Ban hành nhầm", document_id="doc-0", staff=STAFF, paper=0
    ),
    Business(
        type=BusinessType.UPDATE,
        reason="Bổ sung nơi nhận",
        document_id="doc-0",
        staff=STAFF,
        paper=0,
        receivers=(
            ReceiverChange(organ_id="000.00.04.H41", added=True),
            ReceiverChange(organ_id="000.00.03.H41", added=False),
        ),
    ),
    Business(
        type=BusinessType.REPLACE,
        reason="Thay thế văn bản",
        document_id="doc-0",
        replacements=(Replacement(document_id="doc-0", organ_ids=(NOI_VU_NA, "000.00.03.H41")),),
    ),
]


@pytest.mark.parametrize("business", BUSINESSES, ids=lambda b: b.type.name)
@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_signed_package_round_trips(
    request: pytest.FixtureRequest, policy: TrustPolicy, business: Business, key_name: str
) -> None:
    key: CryptographyKey = request.getfixturevalue(key_name)
    package = full_package(business)
    data = build_package(package, key=key)
    opened = open_package(data, policy=policy)
    assert opened.package == package
    assert opened.signature.signed
    assert opened.signature.algorithm == key.algorithm
    assert not opened.signature.weak
    assert opened.signature.signer == key.certificate


def test_written_form_is_the_documented_one(rsa_key: CryptographyKey) -> None:
    data = build_package(full_package(BUSINESSES[1]), key=rsa_key)
    root = etree.fromstring(data)
    ns = {
        "e": "http://www.mic.gov.vn/TBT/QCVN_102_2016",
        "ds": "http://www.w3.org/2000/09/xmldsig#",
    }
    assert root.prefix == "edXML"
    assert None not in root.nsmap
    header = root.find("e:edXMLEnvelope/e:edXMLHeader", ns)
    assert [etree.QName(c).localname for c in header] == [
        "MessageHeader",
        "TraceHeaderList",
        "Signature",
    ]
    assert (
        header.findtext("e:TraceHeaderList/e:TraceHeader/e:Timestamp", namespaces=ns)
        == "2026/11/29 14:05:09"
    )
    assert header.find("e:TraceHeaderList/e:Bussiness/e:BussinessDocType", ns).text == "1"
    assert header.find("e:MessageHeader/e:SignerInfo/e:Position", ns) is not None
    assert (
        header.findtext("e:MessageHeader/e:PromulgationInfo/e:PromulgationDate", namespaces=ns)
        == "2026/11/29"
    )
    ref = root.find("e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest/e:Reference", ns)
    assert ref.get("{http://www.w3.org/1999/xlink}href") == "cid:att-1"
    assert ref.findtext("e:ContentId", namespaces=ns) == "att-1"
    sig = header.find("ds:Signature", ns)
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", ns).get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    assert sig.find("ds:SignedInfo/ds:Reference", ns).get("URI") == ""
    assert (
        sig.find("ds:SignedInfo/ds:Reference/ds:DigestMethod", ns)
        .get("Algorithm")
        .endswith("#sha256")
    )
    assert sig.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", ns) is not None
    assert b"N/A" not in data


def test_unsigned_package_round_trips_when_policy_allows(authority) -> None:
    package = full_package()
    data = build_package(package, key=None)
    opened = open_package(
        data, policy=TrustPolicy(anchors=(authority.certificate,), require_signature=False)
    )
    assert opened.package == package
    assert not opened.signature.signed


@pytest.mark.parametrize("code", list(StatusCode))
def test_status_packets_round_trip(
    rsa_key: CryptographyKey, policy: TrustPolicy, code: StatusCode
) -> None:
    status = StatusPacket(
        response_for=ResponseFor(
            organ_id=NOI_VU_QN,
            document_id="doc-1",
            code="1234/SNV-VP",
            promulgation_date=date(2026, 11, 29),
        ),
        from_=Organization(organ_id=NOI_VU_NA, organ_name="Sở Nội vụ Nghệ An"),
        code=code,
        timestamp=AT,
        description="Đã vào sổ",
        staff=STAFF,
    )
    opened = open_status(build_status(status, key=rsa_key), policy=policy)
    assert opened.status == status
    assert opened.signature.signed


def test_re_signing_replaces_the_old_signature(
    rsa_key: CryptographyKey, ec_key: CryptographyKey, policy
) -> None:
    from exchange.edxml.dsig import sign_tree

    once = build_package(full_package(), key=rsa_key)
    twice = sign_tree(etree.fromstring(once), key=ec_key)
    signatures = etree.fromstring(twice).findall(".//{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert len(signatures) == 1
    assert open_package(twice, policy=policy).signature.algorithm == "ecdsa-sha256"


def test_a_hub_signing_for_its_unit_says_so_in_the_signed_header(
    rsa_key: CryptographyKey, policy: TrustPolicy
) -> None:
    """kyso:SignedByHub names the hub whose key signed on the unit's behalf; it is inside the
    signed content (changing it breaks the signature) and read back from there."""
    package = replace(full_package(), signed_by_hub="H49")
    data = build_package(package, key=rsa_key)
    assert open_package(data, policy=policy).package == package
    root = etree.fromstring(data)
    [stated] = root.iter("{urn:kyso:edxml:1}SignedByHub")
    assert etree.QName(stated.getparent()).localname == "edXMLHeader"
    stated.text = "G22"
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_package(etree.tostring(root), policy=policy)
    status = StatusPacket(
        response_for=ResponseFor(organ_id=NOI_VU_QN, document_id="doc-1"),
        from_=Organization(organ_id=NOI_VU_NA),
        code=StatusCode.ACCEPTED,
        timestamp=AT,
        signed_by_hub="H41",
    )
    assert open_status(build_status(status, key=rsa_key), policy=policy).status == status
    assert b"SignedByHub" not in build_package(full_package(), key=rsa_key)
