"""Enveloped XML-DSig for edXML packages and status packets.

Signing: exclusive c14n, the enveloped-signature transform, SHA-256 digests, rsa-sha256 or
ecdsa-sha256, one Reference with ``URI=""`` (the whole document, attachments included), and
KeyInfo/X509Data with the signer's certificate and its issuers (``SigningKey.chain``); the
Signature goes at the end of ``edXMLHeader``.
The key is a port (``SigningKey``), so a PKCS#11 key from hsm plugs in as well as a software key.
SHA-1 is never produced.

Verification (``verify_signed``) establishes, in this order: at most one Signature; an algorithm
the policy accepts (SHA-1 is reported as weak and refused unless ``allow_weak``); the signing
certificate chains to a trust anchor and/or is one of the sender's certificates; the signature
value and digest verify (signxml); the one Reference covers the whole document. It returns the
element signxml rebuilt from the *signed* bytes — the only tree the caller may read. Anything an
attacker added outside what was signed (a second MessageHeader hidden in the Signature, comments
splitting an OrganId) is not in it.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from exchange.edxml.safexml import Limits, parse_xml
from exchange.errors import (
    PackageInvalid,
    SignatureInvalid,
    SigningFailed,
    UnsignedPackageRefused,
    UntrustedSigner,
    WeakSignatureRefused,
)

__all__ = [
    "DS_NS",
    "CryptographyKey",
    "SignatureAlgorithm",
    "SignatureReport",
    "SigningKey",
    "TrustPolicy",
    "sign_tree",
    "verify_signed",
]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SignatureAlgorithm = Literal["rsa-sha256", "ecdsa-sha256"]

_SIGN_METHODS: dict[str, SignatureMethod] = {
    "rsa-sha256": SignatureMethod.RSA_SHA256,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
}
_STRONG_METHODS = frozenset(
    m for m in SignatureMethod if "SHA1" not in m.name and "HMAC" not in m.name
)
_WEAK_METHODS = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1})
_STRONG_DIGESTS = frozenset(d for d in DigestAlgorithm if "SHA1" not in d.name)


class SigningKey(Protocol):
    """A key that signs for a package: the port an hsm key or a software key implements.

    ``sign(data)`` signs ``data`` (hashing it with SHA-256 itself) and returns the signature as
    PKCS#1 v1.5 for RSA or DER-encoded (r, s) for ECDSA — what ``cryptography`` returns.
    ``chain`` holds the certificate's issuers (nearest first, anchor optional): they travel in
    KeyInfo so that every hub can build the path to its anchors without holding intermediates.
    """

    @property
    def algorithm(self) -> SignatureAlgorithm: ...

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> Sequence[x509.Certificate]: ...

    def sign(self, data: bytes) -> bytes: ...


class CryptographyKey:
    """A ``SigningKey`` over a ``cryptography`` private key (development and tests)."""

    def __init__(
        self,
        *,
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        self._key = private_key
        self._certificate = certificate
        self._chain = tuple(chain)

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return "rsa-sha256" if isinstance(self._key, rsa.RSAPrivateKey) else "ecdsa-sha256"

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        return self._chain

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


class _SignxmlKey:
    """What signxml calls: ``sign(data, …)`` and ``key_size``, forwarded to the port."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        public = key.certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise SigningFailed("the signing certificate holds neither an RSA nor an EC key")
        self.key_size = public.key_size

    def sign(self, data: bytes, *_args: Any, **_kwargs: Any) -> bytes:
        return self._key.sign(data)


def sign_tree(root: etree._Element, *, key: SigningKey) -> bytes:
    """Sign the edXML tree ``root`` in place (any old signature is replaced); return its bytes."""
    header = root.find("{*}edXMLEnvelope/{*}edXMLHeader")
    if header is None:
        raise PackageInvalid("the package has no edXMLHeader to hold the signature")
    for old in [e for e in header if etree.QName(e).localname in ("Signature", "DigitalSignature")]:
        header.remove(old)
    etree.SubElement(header, f"{{{DS_NS}}}Signature", Id="placeholder", nsmap={"ds": DS_NS})
    signer = XMLSigner(
        signature_algorithm=_SIGN_METHODS[key.algorithm],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        # signxml only needs sign() and key_size from the key object (see _SignxmlKey)
        signed = signer.sign(
            root, key=cast(Any, _SignxmlKey(key)), cert=[key.certificate, *key.chain]
        )
    except (InvalidInput, ValueError, TypeError) as exc:
        raise SigningFailed(f"the {key.algorithm} key could not sign the package") from exc
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustPolicy:
    """Whom to trust: ``anchors`` (root certificates) and/or the sender's own certificates.

    With anchors, the signing certificate must chain to one (``intermediates`` help build the
    chain, beside those in the package); with ``sender_certificates``, it must be one of them;
    with both, both hold. ``at`` is the validation time (now when None).
    """

    anchors: Sequence[x509.Certificate] = ()
    sender_certificates: Sequence[x509.Certificate] = ()
    intermediates: Sequence[x509.Certificate] = ()
    require_signature: bool = True
    allow_weak: bool = False
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureReport:
    """What verification found: ``signed`` False for an unsigned package the policy accepted."""

    signed: bool
    algorithm: str | None = None
    weak: bool = False
    signer: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def signer_subject(self) -> str | None:
        return self.signer.subject.rfc4514_string() if self.signer is not None else None


def _key_usage_allows_signing(
    _policy: verification.Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ValueError("its key usage allows neither digitalSignature nor nonRepudiation")


def _check_trust(
    leaf: x509.Certificate, extra: Sequence[x509.Certificate], policy: TrustPolicy, at: datetime
) -> tuple[x509.Certificate, ...]:
    subject = leaf.subject.rfc4514_string()
    if not policy.anchors and not policy.sender_certificates:
        raise UntrustedSigner(
            "no trust anchor or sender certificate is configured to verify against"
        )
    if policy.sender_certificates and leaf not in policy.sender_certificates:
        raise UntrustedSigner(
            f"the package is signed by {subject}, not by a certificate of the sender"
        )
    if not policy.anchors:
        return (leaf,)
    key = tuple(c.fingerprint(hashes.SHA256()) for c in (leaf, *extra, *policy.intermediates))
    key += (b"|", *(c.fingerprint(hashes.SHA256()) for c in policy.anchors))
    cached = _CHAINS.get(key)
    if cached is not None and cached[1] <= at <= cached[2]:
        return cached[0]
    chain = _build_chain(leaf, extra, policy, at)
    if len(_CHAINS) >= _CHAIN_CACHE_SIZE:
        _CHAINS.clear()
    _CHAINS[key] = (
        chain,
        max(c.not_valid_before_utc for c in chain),
        min(c.not_valid_after_utc for c in chain),
    )
    return chain


# Verified chains, reused while the validation time stays inside every certificate's validity
# (the only time-dependent part of path validation here: revocation is the caller's concern).
# Most packages come from a few hundred unit keys, so path building is done once per key.
_CHAIN_CACHE_SIZE = 4096
_CHAINS: dict[tuple[bytes, ...], tuple[tuple[x509.Certificate, ...], datetime, datetime]] = {}


def _build_chain(
    leaf: x509.Certificate, extra: Sequence[x509.Certificate], policy: TrustPolicy, at: datetime
) -> tuple[x509.Certificate, ...]:
    subject = leaf.subject.rfc4514_string()
    ee_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.KeyUsage, verification.Criticality.AGNOSTIC, _key_usage_allows_signing
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(policy.anchors)))
        .time(at)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, [*extra, *policy.intermediates])
    except verification.VerificationError as exc:
        raise UntrustedSigner(
            f"the signing certificate of {subject} does not chain to a trust anchor: {exc}"
        ) from exc
    return tuple(verified.chain)


def verify_signed(
    data: bytes, *, policy: TrustPolicy, limits: Limits
) -> tuple[etree._Element, SignatureReport]:
    """Parse and verify a signed edXML document; return the signed content and the report.

    The returned element is what was signed (for an unsigned document the policy accepts: the
    parsed input, reported ``signed=False``). Never read the raw input instead.
    """
    root = parse_xml(data, limits=limits)
    signatures = list(root.iter(f"{{{DS_NS}}}Signature"))
    if not signatures:
        if policy.require_signature:
            raise UnsignedPackageRefused(
                "the package is not signed and this hub accepts only signed packages; sign it"
                " with the sending unit's key"
            )
        return root, SignatureReport(signed=False)
    if len(signatures) > 1:
        raise SignatureInvalid(
            f"the package holds {len(signatures)} signatures; exactly one is allowed"
        )
    signature = signatures[0]
    method_el = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod")
    try:
        method = SignatureMethod(method_el.get("Algorithm") if method_el is not None else "")
    except ValueError:
        raise SignatureInvalid("the signature names no known SignatureMethod") from None
    weak = method in _WEAK_METHODS
    if method not in _STRONG_METHODS and not weak:
        raise SignatureInvalid(f"signature method {method.value} is not accepted")
    if weak and not policy.allow_weak:
        raise WeakSignatureRefused(
            "the package is signed with SHA-1, which is no longer accepted; ask the sender to"
            " sign with rsa-sha256 or ecdsa-sha256"
        )
    references = signature.findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        raise SignatureInvalid(
            'the signature must have one Reference with URI="" covering the whole package'
        )
    certs_text = [
        "".join(e.itertext())
        for e in signature.iterfind(
            f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
        )
    ]
    if not certs_text:
        raise UntrustedSigner("the signature carries no X509Certificate to identify the signer")
    try:
        certs = [x509.load_der_x509_certificate(_b64(t)) for t in certs_text]
    except ValueError as exc:
        raise SignatureInvalid("an X509Certificate in the signature cannot be read") from exc
    at = policy.at or datetime.now(UTC)
    chain = _check_trust(certs[0], certs[1:], policy, at)
    config = SignatureConfiguration(
        signature_methods=_STRONG_METHODS | (_WEAK_METHODS if weak else frozenset()),
        digest_algorithms=_STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if weak else frozenset()),
        verification_time=at,
        expect_references=1,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=certs[0], expect_config=config)
    except (InvalidSignature, InvalidInput, InvalidCertificate) as exc:
        raise SignatureInvalid(f"the package signature does not verify: {exc}") from exc
    signed = getattr(result, "signed_xml", None)
    if signed is None:
        raise SignatureInvalid("the signed content is not an XML document")
    report = SignatureReport(
        signed=True,
        algorithm=method.value.rsplit("#", 1)[-1],
        weak=weak,
        signer=certs[0],
        chain=chain,
    )
    return signed, report


def _b64(text: str) -> bytes:
    try:
        return binascii.a2b_base64("".join(text.split()))
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
