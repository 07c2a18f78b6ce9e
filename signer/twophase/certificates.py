"""Officials' certificates in two-phase signing: may this certificate sign, and with what.

- ``CertificateChecker.check``: the certificate must be valid now, carry digitalSignature or
  nonRepudiation, have a supported key, not be revoked (OCSP/CRL, hard fail) and chain to a
  configured trust anchor; otherwise ``CertificateRejected`` says which rule failed.
- ``signature_scheme``: the digest and token mechanism for the certificate's key.
- ``verify_signature_value``: the value the token returned must verify against the certificate
  over the session's signed attributes.

Invariant: nothing here holds or sees a private key; every decision is made from the
certificate, the configured anchors and the revocation answers.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from asn1crypto import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)

from signer.errors import RevocationUnavailable, SignatureValueInvalid, SigningError
from signer.revocation import RevocationCache
from signer.twophase.sessions import SigningSession

__all__ = [
    "CertificateChecker",
    "CertificateRejected",
    "RejectionReason",
    "signature_scheme",
    "signature_size",
    "verify_signature_value",
]

_CURVE_DIGESTS = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class RejectionReason(enum.Enum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    NO_SIGNING_USAGE = "no-signing-usage"
    UNTRUSTED = "untrusted"
    UNSUPPORTED_KEY = "unsupported-key"


class CertificateRejected(SigningError):
    """The official's certificate may not sign now; ``reason`` says which rule it breaks."""

    field = "certificate"

    def __init__(self, message: str, *, reason: RejectionReason) -> None:
        super().__init__(message)
        self.reason = reason


class CertificateChecker:
    """Decides whether an official's certificate may sign now (see ``check``).

    ``trust_roots``: the anchors a certificate must chain to; ``known_intermediates``: issuers
    the service knows (its keys' chains); ``revocation``: the process's revocation cache
    (thread-safe; shared with the signer's B-LT step).
    """

    def __init__(
        self,
        *,
        trust_roots: Sequence[x509.Certificate],
        known_intermediates: Sequence[x509.Certificate],
        revocation: RevocationCache,
    ) -> None:
        self._trust_roots = tuple(trust_roots)
        self._intermediates = tuple(known_intermediates)
        self._revocation = revocation

    async def check(
        self,
        certificate: x509.Certificate,
        *,
        chain: Sequence[x509.Certificate] = (),
        now: datetime | None = None,
    ) -> tuple[x509.Certificate, ...]:
        """Refuse a certificate that may not sign now; return its path's intermediates.

        ``chain`` may add intermediates to those the service knows (its keys' chains).
        Raises ``CertificateRejected`` (the reason), or ``RevocationUnavailable`` when the
        status cannot be learnt (a retry may succeed; nothing is decided).
        """
        moment = now or datetime.now(UTC)
        name = certificate.subject.human_friendly
        validity = certificate["tbs_certificate"]["validity"]
        not_before = validity["not_before"].native
        not_after = validity["not_after"].native
        if moment < not_before:
            raise CertificateRejected(
                f"the certificate of '{name}' is not valid before {not_before:%Y-%m-%d %H:%M} "
                "UTC; sign after that date or use a current certificate",
                reason=RejectionReason.NOT_YET_VALID,
            )
        if moment > not_after:
            raise CertificateRejected(
                f"the certificate of '{name}' expired on {not_after:%Y-%m-%d %H:%M} UTC; the "
                "official needs a renewed certificate on their token",
                reason=RejectionReason.EXPIRED,
            )
        usage = certificate.key_usage_value
        usages = set(usage.native) if usage is not None else set()
        if not usages & {"digital_signature", "non_repudiation"}:
            raise CertificateRejected(
                f"the certificate of '{name}' does not allow signing (its key usage has neither "
                "digitalSignature nor nonRepudiation); use the official's signing certificate",
                reason=RejectionReason.NO_SIGNING_USAGE,
            )
        signature_scheme(certificate)  # an unsupported key is refused here, not at complete
        roots = list(self._trust_roots)
        if not roots:
            raise CertificateRejected(
                "no trust anchors are configured, so no official's certificate can be accepted; "
                "the operator must configure trust.anchors",
                reason=RejectionReason.UNTRUSTED,
            )
        candidates = [*chain, *self._intermediates]
        path = await self._path(certificate, candidates, roots, moment)
        intermediates = tuple(path[1:-1])[::-1]
        data = await self._revocation.collect([certificate, *intermediates, path[0]], now=moment)
        context = ValidationContext(
            trust_roots=roots,
            other_certs=list(intermediates),
            ocsps=list(data.ocsps),
            crls=list(data.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
            moment=moment,
        )
        validator = CertificateValidator(
            certificate, intermediate_certs=list(intermediates), validation_context=context
        )
        try:
            await validator.async_validate_path()
        except RevokedError as exc:
            raise CertificateRejected(
                f"the certificate of '{name}' is revoked ({exc}); the official needs a new "
                "certificate",
                reason=RejectionReason.REVOKED,
            ) from exc
        except InsufficientRevinfoError as exc:
            raise RevocationUnavailable(
                f"the revocation status of '{name}' could not be established ({exc}); try again "
                "later"
            ) from exc
        except (PathBuildingError, PathValidationError) as exc:
            raise CertificateRejected(
                f"the certificate of '{name}' does not validate ({exc})",
                reason=RejectionReason.UNTRUSTED,
            ) from exc
        return intermediates

    async def _path(
        self,
        certificate: x509.Certificate,
        candidates: list[x509.Certificate],
        roots: list[x509.Certificate],
        moment: datetime,
    ) -> list[x509.Certificate]:
        """The certification path, root first (no revocation checked yet)."""
        context = ValidationContext(
            trust_roots=roots,
            other_certs=candidates,
            allow_fetching=False,
            revocation_mode="soft-fail",
            moment=moment,
        )
        validator = CertificateValidator(
            certificate, intermediate_certs=candidates, validation_context=context
        )
        name = certificate.subject.human_friendly
        try:
            path = await validator.async_validate_path()
        except (ExpiredError, NotYetValidError) as exc:
            raise CertificateRejected(
                f"an issuer of '{name}' is not valid now ({exc})", reason=RejectionReason.UNTRUSTED
            ) from exc
        except PathBuildingError as exc:
            raise CertificateRejected(
                f"the certificate of '{name}' does not chain to a trusted root of this service "
                "(send its issuing CA certificates in chain, or ask the operator to trust the "
                "root)",
                reason=RejectionReason.UNTRUSTED,
            ) from exc
        except PathValidationError as exc:
            raise CertificateRejected(
                f"the certificate of '{name}' does not validate ({exc})",
                reason=RejectionReason.UNTRUSTED,
            ) from exc
        return [c for c in path if isinstance(c, x509.Certificate)]


def signature_scheme(certificate: x509.Certificate) -> tuple[str, str]:
    """``(digest algorithm, mechanism)`` for the certificate's key; ``CertificateRejected``."""
    key = certificate.public_key
    if key.algorithm == "rsa":
        return "sha256", "rsa_pkcs1v15"
    if key.algorithm == "ec" and key.curve[1] in _CURVE_DIGESTS:
        return _CURVE_DIGESTS[key.curve[1]], "ecdsa"
    raise CertificateRejected(
        f"the key of '{certificate.subject.human_friendly}' ({key.algorithm}) is not supported "
        "for two-phase signing; RSA and EC P-256/P-384/P-521 keys are",
        reason=RejectionReason.UNSUPPORTED_KEY,
    )


def verify_signature_value(session: SigningSession, value: bytes) -> None:
    """Raise ``SignatureValueInvalid`` unless ``value`` signs the session's signed attributes
    with the key of the session's certificate."""
    certificate = x509.Certificate.load(session.certificate)
    public = serialization.load_der_public_key(certificate.public_key.dump())
    digest = hashlib.new(session.digest_algorithm, session.signed_attributes).digest()
    prehashed = utils.Prehashed(_HASHES[session.digest_algorithm]())
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(value, digest, padding.PKCS1v15(), prehashed)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(value, digest, ec.ECDSA(prehashed))
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError) as exc:
        raise SignatureValueInvalid(
            "the signature value does not verify against the certificate given at prepare "
            f"('{certificate.subject.human_friendly}'): it was made by another key or over "
            "other data, or it is damaged. Nothing was embedded; the session stays open"
        ) from exc


def signature_size(certificate: x509.Certificate) -> int:
    """Upper bound of a signature value's size in bytes for the certificate's key."""
    size = (int(certificate.public_key.bit_size) + 7) // 8
    if certificate.public_key.algorithm == "ec":
        size = 2 * size + 9  # DER SEQUENCE of two INTEGERs
    return size
