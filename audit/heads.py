"""Signed tree heads: the port for the signing key, the signed bytes, and verification.

A tree head commits to (tree size, root hash, time). The signed bytes are fixed-width and
carry a domain tag, so a head signature can never be mistaken for a signature over anything
else the same key signs::

    b"kyso-audit-tree-head-v1\\x00" ‖ uint64be(tree_size) ‖ uint64be(time in µs since the
    Unix epoch, UTC) ‖ root_hash (32 bytes)

The signing key is whatever the application plugs in as a ``HeadSigner`` (an HSM key in the
service). Verification needs only the certificate and ``cryptography``: it works offline, and
trusts exactly the certificates it is given (pinning: no chain building).
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from audit.errors import (
    HeadSignatureInvalid,
    HeadSignerUntrusted,
    HeadSigningFailed,
    InvalidTreeSize,
)
from audit.merkle import HASH_SIZE

__all__ = [
    "HEAD_DOMAIN_TAG",
    "HeadSigner",
    "SignatureAlgorithm",
    "SignedTreeHead",
    "TrustedCertificates",
    "certificate_sha256",
    "from_microseconds",
    "head_signed_data",
    "sign_tree_head",
    "to_microseconds",
    "verify_head",
]

HEAD_DOMAIN_TAG = b"kyso-audit-tree-head-v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SignatureAlgorithm(enum.StrEnum):
    """How a head signature is made; the value is stored with the head.

    ECDSA signatures are DER-encoded ``ECDSA-Sig-Value`` (as in X.509 and CMS); RSA-PSS uses
    MGF1 with the same hash and a salt as long as the hash.
    """

    RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    ECDSA_SHA256 = "ecdsa-sha256"
    ECDSA_SHA384 = "ecdsa-sha384"
    ED25519 = "ed25519"


@runtime_checkable
class HeadSigner(Protocol):
    """The port through which the application lends the ledger a signing key (an HSM key).

    ``sign`` returns a signature over ``data`` (the signer hashes it) in the form
    ``algorithm`` names; ``certificate`` is the DER X.509 certificate of the key.
    """

    @property
    def certificate(self) -> bytes: ...

    @property
    def algorithm(self) -> SignatureAlgorithm: ...

    def sign(self, data: bytes) -> bytes: ...


def to_microseconds(value: datetime) -> int:
    """``value`` (timezone-aware) as whole microseconds since the Unix epoch."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_microseconds(value: int) -> datetime:
    """The inverse of ``to_microseconds``, in UTC."""
    return _EPOCH + timedelta(microseconds=value)


def certificate_sha256(der: bytes) -> bytes:
    """The SHA-256 fingerprint of a DER certificate (how heads name their certificate)."""
    return hashlib.sha256(der).digest()


def head_signed_data(*, tree_size: int, root_hash: bytes, time: datetime) -> bytes:
    """The exact bytes a head signature covers (see the module docstring)."""
    if tree_size < 0:
        raise InvalidTreeSize(f"a tree size is ≥ 0, not {tree_size}")
    if len(root_hash) != HASH_SIZE:
        raise InvalidTreeSize(f"a root hash is {HASH_SIZE} bytes, not {len(root_hash)}")
    microseconds = to_microseconds(time)
    if microseconds < 0:
        raise InvalidTreeSize("a tree head time is after 1970-01-01T00:00:00Z")
    return HEAD_DOMAIN_TAG + struct.pack(">QQ", tree_size, microseconds) + root_hash


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedTreeHead:
    """A signed commitment to the first ``tree_size`` entries of the ledger.

    ``time`` is UTC with microsecond precision; ``certificate`` is the signer's DER certificate.
    """

    tree_size: int
    root_hash: bytes
    time: datetime
    algorithm: SignatureAlgorithm
    signature: bytes
    certificate: bytes

    @property
    def signed_data(self) -> bytes:
        """The bytes ``signature`` covers."""
        return head_signed_data(tree_size=self.tree_size, root_hash=self.root_hash, time=self.time)

    @property
    def certificate_sha256(self) -> bytes:
        """The SHA-256 fingerprint of ``certificate``."""
        return certificate_sha256(self.certificate)


class TrustedCertificates:
    """The head-signing certificates an auditor trusts, by fingerprint (DER input)."""

    __slots__ = ("_by_fingerprint",)

    def __init__(self, certificates: Iterable[bytes]) -> None:
        self._by_fingerprint = {certificate_sha256(der): der for der in certificates}

    def __contains__(self, der: object) -> bool:
        return isinstance(der, bytes) and certificate_sha256(der) in self._by_fingerprint

    def __len__(self) -> int:
        return len(self._by_fingerprint)


def _check_signature(
    *, certificate: x509.Certificate, algorithm: SignatureAlgorithm, signature: bytes, data: bytes
) -> None:
    """Raise ``InvalidSignature``/``TypeError`` unless ``signature`` over ``data`` verifies."""
    key = certificate.public_key()
    match algorithm:
        case SignatureAlgorithm.RSA_PKCS1V15_SHA256 | SignatureAlgorithm.RSA_PSS_SHA256:
            if not isinstance(key, rsa.RSAPublicKey):
                raise TypeError("the certificate's key is not an RSA key")
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if algorithm is SignatureAlgorithm.RSA_PKCS1V15_SHA256
                else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            )
            key.verify(signature, data, pad, hashes.SHA256())
        case SignatureAlgorithm.ECDSA_SHA256 | SignatureAlgorithm.ECDSA_SHA384:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TypeError("the certificate's key is not an EC key")
            digest: hashes.HashAlgorithm = (
                hashes.SHA256() if algorithm is SignatureAlgorithm.ECDSA_SHA256 else hashes.SHA384()
            )
            key.verify(signature, data, ec.ECDSA(digest))
        case SignatureAlgorithm.ED25519:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise TypeError("the certificate's key is not an Ed25519 key")
            key.verify(signature, data)


def verify_head(head: SignedTreeHead, *, trusted: TrustedCertificates) -> None:
    """Check that ``head`` is signed by a trusted certificate, validly, within its validity.

    Raises ``HeadSignerUntrusted`` (certificate not trusted) or ``HeadSignatureInvalid``
    (signature wrong, key/algorithm mismatch, unreadable certificate, time outside validity).
    """
    what = f"the tree head of size {head.tree_size} signed at {head.time.isoformat()}"
    if head.certificate not in trusted:
        raise HeadSignerUntrusted(
            f"{what} is signed by certificate sha256:{head.certificate_sha256.hex()}, which is"
            " not among the trusted head-signing certificates; if the ledger's signing key was"
            " rotated, add its new certificate to the trusted set"
        )
    try:
        certificate = x509.load_der_x509_certificate(head.certificate)
        algorithm = SignatureAlgorithm(head.algorithm)
        _check_signature(
            certificate=certificate,
            algorithm=algorithm,
            signature=head.signature,
            data=head.signed_data,
        )
    except InvalidSignature as exc:
        raise HeadSignatureInvalid(
            f"the signature of {what} does not verify: the head was altered or re-signed"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise HeadSignatureInvalid(f"{what} cannot be verified: {exc}") from exc
    if not (certificate.not_valid_before_utc <= head.time <= certificate.not_valid_after_utc):
        raise HeadSignatureInvalid(f"{what} was signed outside its certificate's validity period")


def sign_tree_head(
    signer: HeadSigner, *, tree_size: int, root_hash: bytes, time: datetime
) -> SignedTreeHead:
    """Sign (``tree_size``, ``root_hash``, ``time``) with ``signer`` and check the result.

    The signature is verified against the signer's own certificate before it is returned, so a
    misconfigured key (wrong algorithm, certificate of another key) fails here, loudly, rather
    than leaving heads no auditor can verify.
    """
    time = from_microseconds(to_microseconds(time))  # what is signed is what is stored
    data = head_signed_data(tree_size=tree_size, root_hash=root_hash, time=time)
    try:
        certificate = bytes(signer.certificate)
        algorithm = SignatureAlgorithm(signer.algorithm)
        signature = bytes(signer.sign(data))
    except Exception as exc:
        # The signer is foreign code (an HSM adapter): whatever it raises, the ledger reports
        # one error the operator can act on, with the cause chained.
        raise HeadSigningFailed(
            f"the head signer failed ({type(exc).__name__}); check the ledger's HSM key"
            " and its certificate"
        ) from exc
    head = SignedTreeHead(
        tree_size=tree_size,
        root_hash=root_hash,
        time=time,
        algorithm=algorithm,
        signature=signature,
        certificate=certificate,
    )
    try:
        verify_head(head, trusted=TrustedCertificates([certificate]))
    except HeadSignatureInvalid as exc:
        raise HeadSigningFailed(
            f"the head signer produced a signature that does not verify with its own"
            f" certificate ({exc}); check that the key, certificate and algorithm belong together"
        ) from exc
    return head
