"""Signature verification: tampering, trust, policy, weak algorithms, attacks on what is read."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.signer import SignatureReference, XMLSigner

from exchange import (
    PackageInvalid,
    SignatureInvalid,
    UnsignedPackageRefused,
    UntrustedSigner,
    WeakSignatureRefused,
)
from exchange.edxml import CryptographyKey, Organization, TrustPolicy, build_package, open_package
from exchange.edxml.writer import package_tree
from tests.exchange.conftest import NOI_VU_NA, simple_package
from tests.exchange.pki import NOW, Authority

E = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = "http://www.w3.org/2000/09/xmldsig#"
ATTACKER = "000.00.09.H41"


@pytest.fixture(scope="module")
def signed(rsa_key: CryptographyKey) -> bytes:
    return build_package(simple_package(), key=rsa_key)


def _tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_a_changed_byte_breaks_the_signature(signed: bytes, policy: TrustPolicy) -> None:
    tampered = signed.replace("Về việc báo cáo".encode(), "Về việc hủy bỏ".encode())
    assert tampered != signed
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_package(tampered, policy=policy)


def test_a_second_unsigned_header_in_the_envelope_breaks_the_signature(
    signed: bytes, policy
) -> None:
    root = _tree(signed)
    header = root.find(f"{{{E}}}edXMLEnvelope/{{{E}}}edXMLHeader")
    forged = copy.deepcopy(header.find(f"{{{E}}}MessageHeader"))
    forged.find(f"{{{E}}}To/{{{E}}}OrganId").text = ATTACKER
    header.insert(0, forged)
    with pytest.raises((SignatureInvalid, PackageInvalid)):
        open_package(_bytes(root), policy=policy)


def test_signature_wrapping_does_not_change_what_is_routed(
    signed: bytes, policy: TrustPolicy
) -> None:
    """The attacker hides a forged MessageHeader inside the Signature (removed by the enveloped
    transform, so the digest still matches) and moves the Signature first: a reader of the raw
    input finds the forged header first. kyso reads only what was signed."""
    root = _tree(signed)
    header = root.find(f"{{{E}}}edXMLEnvelope/{{{E}}}edXMLHeader")
    signature = header.find(f"{{{DS}}}Signature")
    forged = copy.deepcopy(header.find(f"{{{E}}}MessageHeader"))
    forged.find(f"{{{E}}}To/{{{E}}}OrganId").text = ATTACKER
    ds_object = etree.SubElement(signature, f"{{{DS}}}Object")
    ds_object.append(forged)
    header.insert(0, signature)
    attacked = _bytes(root)

    naive = _tree(attacked).find(f".//{{{E}}}MessageHeader/{{{E}}}To/{{{E}}}OrganId").text
    assert naive == ATTACKER  # the attack works on a reader of the raw input

    opened = open_package(attacked, policy=policy)
    assert [t.organ_id for t in opened.package.header.to] == [NOI_VU_NA]


def test_comment_injection_does_not_change_what_is_routed(
    signed: bytes, policy: TrustPolicy
) -> None:
    """A comment inside an OrganId survives exclusive c14n (comments are not signed): a reader
    taking the first text node sees a different value. kyso reads the whole signed text."""
    attacked = signed.replace(
        f"<edXML:OrganId>{NOI_VU_NA}</edXML:OrganId>".encode(),
        b"<edXML:OrganId>000.00.0<!-- split -->2.H41</edXML:OrganId>",
    )
    assert attacked != signed
    naive = _tree(attacked).find(f".//{{{E}}}To/{{{E}}}OrganId").text
    assert naive == "000.00.0"
    opened = open_package(attacked, policy=policy)
    assert opened.signature.signed
    assert [t.organ_id for t in opened.package.header.to] == [NOI_VU_NA]


def test_a_reference_to_part_of_the_package_is_refused(rsa_key: CryptographyKey, policy) -> None:
    """A signature over one element (URI="#id") leaves the rest open to wrapping: refused."""
    root = package_tree(simple_package())
    root.find(f"{{{E}}}edXMLEnvelope/{{{E}}}edXMLHeader/{{{E}}}MessageHeader").set("Id", "mh")
    signer = XMLSigner(c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    signed = signer.sign(
        root,
        key=rsa_key._key,
        cert=[rsa_key.certificate],
        reference_uri=[SignatureReference(URI="#mh")],
    )
    with pytest.raises(SignatureInvalid, match='one Reference with URI=""'):
        open_package(_bytes(signed), policy=policy)


def test_two_signatures_are_refused(signed: bytes, policy: TrustPolicy) -> None:
    root = _tree(signed)
    header = root.find(f"{{{E}}}edXMLEnvelope/{{{E}}}edXMLHeader")
    header.append(copy.deepcopy(header.find(f"{{{DS}}}Signature")))
    with pytest.raises(SignatureInvalid, match="2 signatures"):
        open_package(_bytes(root), policy=policy)


def test_a_signer_from_another_authority_is_untrusted(signed: bytes) -> None:
    other = Authority.create("Some Other CA")
    with pytest.raises(UntrustedSigner, match="does not chain to a trust anchor"):
        open_package(signed, policy=TrustPolicy(anchors=(other.certificate,)))


def test_the_sender_certificate_is_pinned(signed: bytes, rsa_key, ec_key, authority) -> None:
    pinned = TrustPolicy(sender_certificates=(rsa_key.certificate,))
    assert open_package(signed, policy=pinned).signature.signer == rsa_key.certificate
    both = TrustPolicy(anchors=(authority.certificate,), sender_certificates=(ec_key.certificate,))
    with pytest.raises(UntrustedSigner, match="not by a certificate of the sender"):
        open_package(signed, policy=both)


def test_without_any_trust_configured_nothing_is_trusted(signed: bytes) -> None:
    with pytest.raises(UntrustedSigner, match="no trust anchor or sender certificate"):
        open_package(signed, policy=TrustPolicy())


def test_an_expired_certificate_is_untrusted(authority: Authority, policy: TrustPolicy) -> None:
    old = authority.issue("Old key", not_before=NOW - dt.timedelta(days=60), days=30)
    data = build_package(simple_package(), key=old)
    with pytest.raises(UntrustedSigner):
        open_package(data, policy=policy)
    at_signing = TrustPolicy(anchors=policy.anchors, at=NOW - dt.timedelta(days=45))
    assert open_package(data, policy=at_signing).signature.signed


@pytest.mark.parametrize("empty_signature", [b"", b"<edXML:DigitalSignature/>"])
def test_unsigned_packages_are_refused_by_default(policy, empty_signature: bytes) -> None:
    data = build_package(simple_package(), key=None).replace(
        b"</edXML:TraceHeaderList>", b"</edXML:TraceHeaderList>" + empty_signature
    )
    with pytest.raises(UnsignedPackageRefused, match="not signed"):
        open_package(data, policy=policy)
    lenient = TrustPolicy(anchors=policy.anchors, require_signature=False)
    assert not open_package(data, policy=lenient).signature.signed


class _Sha1Signer(XMLSigner):
    """Makes the old rsa-sha1 signatures some systems still send (kyso never does)."""

    def check_deprecated_methods(self) -> None:
        pass


def test_rsa_sha1_is_read_reported_weak_and_refused_unless_allowed(rsa_key, policy) -> None:
    signer = _Sha1Signer(
        signature_algorithm=SignatureMethod.RSA_SHA1,
        digest_algorithm=DigestAlgorithm.SHA1,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    data = _bytes(
        signer.sign(package_tree(simple_package()), key=rsa_key._key, cert=[rsa_key.certificate])
    )
    with pytest.raises(WeakSignatureRefused, match="SHA-1"):
        open_package(data, policy=policy)
    auditor = TrustPolicy(anchors=policy.anchors, allow_weak=True)
    report = open_package(data, policy=auditor).signature
    assert (report.signed, report.weak, report.algorithm) == (True, True, "rsa-sha1")


def test_signing_never_produces_sha1(rsa_key, ec_key) -> None:
    for key in (rsa_key, ec_key):
        data = build_package(simple_package(), key=key)
        assert b"sha1" not in data.lower()


def test_recipients_added_by_the_signed_content_only(rsa_key, policy) -> None:
    package = simple_package(to=(NOI_VU_NA, "000.00.03.H41"))
    opened = open_package(build_package(package, key=rsa_key), policy=policy)
    assert opened.package.header.to == (
        Organization(organ_id=NOI_VU_NA),
        Organization(organ_id="000.00.03.H41"),
    )
