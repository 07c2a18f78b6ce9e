"""Two-phase signing: the service prepares a PDF, the official's token signs a digest elsewhere,
the service completes the PDF. The official's private key never comes near this code.

- ``TwoPhaseSigner.check_certificate``: the official's certificate must be valid now, carry
  digitalSignature or nonRepudiation, not be revoked (OCSP/CRL, hard fail) and chain to a
  configured trust anchor; otherwise ``CertificateRejected`` says which rule failed.
- ``TwoPhaseSigner.prepare``: reserve the signature field (pyHanko's interrupted signing), build
  the CMS signed attributes over the document's byte-range digest and return what the token must
  sign: the digest of the DER-encoded signed attributes (``data_to_sign``).
- ``TwoPhaseSigner.complete``: check the prepared document against the digest recorded at
  prepare, verify the signature value against the certificate (``SignatureValueInvalid`` before
  anything is embedded), embed the CMS with the level's time-stamp, then the DSS (B-LT) and the
  document time-stamp (B-LTA).
- ``SessionStore``: the sessions (``signer.schema``), with exactly-once completion: a session is
  claimed by a conditional UPDATE on its state, so of concurrent completions one wins.

Invariant: completion uses only what prepare recorded (document, signed attributes,
certificate); the caller contributes the signature value and nothing else.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import io
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from asn1crypto import cms, parser, x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import (
    PdfPostSignatureDocument,
    PdfSignatureMetadata,
    PdfSigner,
    PostSignInstructions,
    PreSignValidationStatus,
)
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signer.appearance import (
    VIETNAM_TIME,
    AppearanceKind,
    KysoStampStyle,
    PreparedStamp,
    StampIdentity,
)
from signer.document import Placement, Rect, open_for_signing, resolve_placement
from signer.errors import (
    CertificationForbidsSigning,
    PdfCorrupt,
    RectangleInvalid,
    RevocationUnavailable,
    SignatureValueInvalid,
    SigningError,
    TimestampUnavailable,
)
from signer.revocation import RevocationCache
from signer.schema import sessions
from signer.service import Level, SignerSettings
from signer.timestamps import FailoverTimeStamper

__all__ = [
    "CertificateRejected",
    "CompletedDocument",
    "PrepareRequest",
    "PreparedDocumentAltered",
    "PreparedSignature",
    "RejectionReason",
    "SessionClosed",
    "SessionNotFound",
    "SessionState",
    "SessionStore",
    "SigningSession",
    "TwoPhaseSigner",
    "closed_error",
    "decode_cursor",
    "encode_cursor",
    "new_session_id",
    "signature_scheme",
    "split_der",
    "verify_signature_value",
]

# Room for signed attributes, SignerInfo framing and algorithm identifiers (as signer.service).
_CMS_OVERHEAD = 1500
_TOKEN_SLACK = 1024
_CURVE_DIGESTS = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


# -- errors -----------------------------------------------------------------------------------


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


class SessionNotFound(SigningError):
    """No signing session has this id."""

    field = "session_id"


class SessionClosed(SigningError):
    """The session is completed, cancelled, expired, or being completed by another request."""

    field = "session_id"

    def __init__(self, message: str, *, state: SessionState) -> None:
        super().__init__(message)
        self.state = state


class PreparedDocumentAltered(SigningError):
    """The stored prepared document no longer matches the digest recorded at prepare."""


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrepareRequest:
    """One document to prepare for ``certificate`` (already checked by ``check_certificate``).

    ``chain``: the intermediates of the validated path, nearest issuer first (embedded in the
    CMS). ``page`` is 1-based; ``rect`` is ``(x1, y1, x2, y2)`` in points.
    """

    pdf: bytes = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    chain: tuple[x509.Certificate, ...] = field(repr=False)
    level: Level = Level.B_B
    appearance: AppearanceKind = AppearanceKind.NONE
    reason: str | None = None
    location: str | None = None
    field_name: str | None = None
    page: int | None = None
    rect: Rect | None = None


@dataclass(frozen=True, kw_only=True)
class PreparedSignature:
    """The document in its final pre-signing state and what the token must sign.

    ``data_to_sign`` = ``digest_algorithm``(``signed_attributes``): the token signs it with a
    raw/prehashed mechanism (RSA PKCS#1 v1.5 over DigestInfo, or ECDSA).
    """

    pdf: bytes = field(repr=False)
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    signed_attributes: bytes = field(repr=False)
    data_to_sign: bytes
    digest_algorithm: str
    mechanism: str
    field_name: str
    signer_name: str
    signing_time: datetime


@dataclass(frozen=True, kw_only=True)
class CompletedDocument:
    pdf: bytes = field(repr=False)
    sha256: str
    level: Level


class SessionState(enum.Enum):
    OPEN = "open"
    COMPLETING = "completing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class SigningSession:
    """One prepared signature waiting for (or done with) the official's token. See schema."""

    id: str
    state: SessionState
    certificate: bytes = field(repr=False)
    chain: tuple[bytes, ...] = field(repr=False)
    signer_name: str
    requester: str
    unit_code: str
    title: str
    filename: str
    level: Level
    digest_algorithm: str
    mechanism: str
    signed_attributes: bytes = field(repr=False)
    data_to_sign: bytes
    document_sha256: str
    source_ref: str
    prepared_ref: str
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    field_name: str
    created_at: datetime
    expires_at: datetime
    result_ref: str | None = None

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.certificate).hexdigest()

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


# -- the PDF and CMS work ---------------------------------------------------------------------


class TwoPhaseSigner:
    """Prepares and completes PDF signatures for certificates whose keys are elsewhere.

    Per process: the revocation cache, the TSA client, and the prepared stamps per
    (certificate, appearance) — an official signs many documents with one certificate.
    Thread-safe: callers may run its coroutines on event loops in several threads (the shared
    parts are locked or read-only once built).
    """

    def __init__(
        self, *, settings: SignerSettings, known_intermediates: Sequence[x509.Certificate] = ()
    ) -> None:
        self._settings = settings
        self._intermediates = tuple(known_intermediates)
        self._revocation = RevocationCache(timeout=settings.revocation_timeout)
        self._timestamper = (
            FailoverTimeStamper(settings.tsa_urls, timeout=settings.tsa_timeout)
            if settings.tsa_urls
            else None
        )
        self._token_size: int | None = None
        self._stamps: dict[tuple[bytes, AppearanceKind], PreparedStamp] = {}
        self._stamps_lock = threading.Lock()

    async def check_certificate(
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
        roots = list(self._settings.trust_roots)
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

    async def prepare(self, request: PrepareRequest) -> PreparedSignature:
        """Reserve the field, digest the document, build the signed attributes."""
        certificate = request.certificate
        digest_algorithm, mechanism = signature_scheme(certificate)
        timestamper = self._timestamper_for(request.level)
        writer = open_for_signing(request.pdf, max_size=self._settings.max_document_size)
        placement = resolve_placement(
            writer,
            field_name=request.field_name,
            page=request.page,
            rect=request.rect,
            default_name=_default_field_name(writer),
        )
        signing_time = datetime.now(VIETNAM_TIME).replace(microsecond=0)
        identity = _identity(certificate)
        style = None
        if request.appearance is not AppearanceKind.NONE:
            placement, style = self._appearance(
                request.appearance, certificate, identity, placement, writer, signing_time
            )
        meta = PdfSignatureMetadata(
            field_name=placement.field_name,
            md_algorithm=digest_algorithm,
            subfilter=SigSeedSubFilter.PADES,
            reason=request.reason,
            location=request.location,
        )
        field_spec = None
        if not placement.existing:
            field_spec = SigFieldSpec(
                sig_field_name=placement.field_name,
                on_page=placement.page - 1,
                box=placement.rect,  # type: ignore[arg-type]
            )
        size = _signature_size(certificate)
        external = _external_signer(certificate, request.chain, bytes(size))
        pdf_signer = PdfSigner(meta, signer=external, stamp_style=style, new_field_spec=field_spec)
        reserve = _CMS_OVERHEAD + size + sum(len(c.dump()) for c in (certificate, *request.chain))
        if timestamper is not None:
            reserve += await self._timestamp_token_size(timestamper) + _TOKEN_SLACK
        try:
            session = pdf_signer.init_signing_session(writer)
            # The time on the stamp and the /M entry are one instant.
            session.system_time = signing_time
            tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=2 * reserve)
            buffer = io.BytesIO()
            prepared, _ = tbs.digest_tbs_document(output=buffer)
            attributes = await external.signed_attrs(
                prepared.document_digest,
                digest_algorithm,
                attr_settings=PdfCMSSignedAttributes(
                    signing_time=signing_time, cades_signed_attrs=meta.cades_signed_attr_spec
                ),
                use_pades=True,
            )
        except SigningError:
            raise
        except PyHankoSigningError as exc:
            if "forbids" in str(exc):
                raise CertificationForbidsSigning(
                    "the document's certification forbids further signatures"
                ) from exc
            raise PdfCorrupt(f"the PDF cannot be prepared for signing: {exc}") from exc
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            raise PdfCorrupt(
                f"the PDF cannot be prepared for signing ({type(exc).__name__}: {exc})"
            ) from exc
        der = attributes.dump()
        return PreparedSignature(
            pdf=buffer.getvalue(),
            document_digest=prepared.document_digest,
            reserved_start=prepared.reserved_region_start,
            reserved_end=prepared.reserved_region_end,
            signed_attributes=der,
            data_to_sign=hashlib.new(digest_algorithm, der).digest(),
            digest_algorithm=digest_algorithm,
            mechanism=mechanism,
            field_name=placement.field_name,
            signer_name=identity.signer_name,
            signing_time=signing_time,
        )

    async def complete(
        self, session: SigningSession, *, prepared_pdf: bytes, signature_value: bytes
    ) -> CompletedDocument:
        """Embed ``signature_value`` in the prepared document of ``session``.

        Raises ``SignatureValueInvalid`` (nothing embedded) when the value does not verify,
        ``PreparedDocumentAltered`` when the stored document is not the one prepared.
        """
        _check_prepared(session, prepared_pdf)
        verify_signature_value(session, signature_value)
        certificate = x509.Certificate.load(session.certificate)
        chain = tuple(x509.Certificate.load(der) for der in session.chain)
        timestamper = self._timestamper_for(session.level)
        external = _external_signer(certificate, chain, signature_value)
        attributes = cms.CMSAttributes.load(session.signed_attributes)
        container = await external.async_sign_prescribed_attributes(
            session.digest_algorithm, attributes, timestamper=timestamper
        )
        output = io.BytesIO(prepared_pdf)
        byte_range = PreparedByteRangeDigest(
            document_digest=session.document_digest,
            reserved_region_start=session.reserved_start,
            reserved_region_end=session.reserved_end,
        )
        try:
            contents = byte_range.fill_with_cms(output, container)
        except PyHankoSigningError as exc:
            raise SigningError(
                f"the signature container does not fit the space reserved at prepare ({exc}); "
                "cancel this session and prepare the document again"
            ) from exc
        if session.level in (Level.B_LT, Level.B_LTA):
            assert timestamper is not None
            await self._add_validation_data(
                output, contents, certificate, chain, timestamper, lta=session.level is Level.B_LTA
            )
        pdf = output.getvalue()
        return CompletedDocument(
            pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), level=session.level
        )

    # -- internals ----------------------------------------------------------------------------

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

    def _timestamper_for(self, level: Level) -> FailoverTimeStamper | None:
        if level is Level.B_B:
            return None
        if self._timestamper is None:
            raise TimestampUnavailable(
                f"level {level.value} needs a time-stamp, but no time-stamping authority is "
                "configured; configure one or request level B-B"
            )
        return self._timestamper

    async def _timestamp_token_size(self, timestamper: FailoverTimeStamper) -> int:
        if self._token_size is None:
            token = await timestamper.async_dummy_response("sha256")
            self._token_size = len(token.dump())
        return self._token_size

    async def _add_validation_data(
        self,
        output: io.BytesIO,
        contents: bytes,
        certificate: x509.Certificate,
        chain: tuple[x509.Certificate, ...],
        timestamper: FailoverTimeStamper,
        *,
        lta: bool,
    ) -> None:
        """B-LT: certificates and OCSP/CRL in the DSS; B-LTA: then a document time-stamp."""
        roots = list(self._settings.trust_roots)
        token = await timestamper.async_dummy_response("sha256")
        tsa_certs = [c.chosen for c in token["content"]["certificates"]]
        data = await self._revocation.collect([certificate, *chain, *tsa_certs, *roots])
        context = ValidationContext(
            trust_roots=roots,
            other_certs=[*chain, *tsa_certs],
            ocsps=list(data.ocsps),
            crls=list(data.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
        try:
            signer_path = await CertificateValidator(
                certificate, intermediate_certs=list(chain), validation_context=context
            ).async_validate_path()
            ts_paths = [p async for p in timestamper.validation_paths(context)]  # type: ignore[no-untyped-call]
        except (PathBuildingError, PathValidationError) as exc:
            raise RevocationUnavailable(
                f"the certificate or the TSA's does not validate for {'B-LTA' if lta else 'B-LT'} "
                f"({exc}); check the trust anchors and revocation data"
            ) from exc
        status = PreSignValidationStatus(
            signer_path=signer_path,
            validation_paths=[signer_path, *ts_paths],
            ts_validation_paths=ts_paths,
            ocsps_to_embed=list(data.ocsps),
            crls_to_embed=list(data.crls),
        )
        instructions = PostSignInstructions(
            validation_info=status,
            timestamper=timestamper if lta else None,
            timestamp_md_algorithm="sha256",
            embed_roots=False,
        )
        post = PdfPostSignatureDocument(
            contents, post_sign_instr=instructions, validation_context=context
        )
        await post.post_signature_processing(output)

    def _appearance(
        self,
        kind: AppearanceKind,
        certificate: x509.Certificate,
        identity: StampIdentity,
        placement: Placement,
        writer: Any,
        signing_time: datetime,
    ) -> tuple[Placement, KysoStampStyle]:
        key = (certificate.sha256, kind)
        with self._stamps_lock:
            stamp = self._stamps.get(key)
            if stamp is None:
                # The service holds no images of an official: the stamp is the text block.
                stamp = PreparedStamp.prepare(kind=kind, identity=identity)
                self._stamps[key] = stamp
        rect = placement.rect
        if placement.existing:
            rect = _field_rect(writer, placement.field_name)
        elif rect is None and kind is AppearanceKind.TEXT:
            rect = stamp.text_form_rect(_page_box(writer, placement.page))  # type: ignore[assignment]
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


def _check_prepared(session: SigningSession, pdf: bytes) -> None:
    start, end = session.reserved_start, session.reserved_end
    digest = hashlib.new(session.digest_algorithm)
    digest.update(memoryview(pdf)[:start])
    digest.update(memoryview(pdf)[end:])
    if not 0 < start < end <= len(pdf) or digest.digest() != session.document_digest:
        raise PreparedDocumentAltered(
            f"the prepared document of session {session.id} does not match its recorded digest; "
            "cancel the session and prepare the document again"
        )


def _external_signer(
    certificate: x509.Certificate, chain: Sequence[x509.Certificate], value: bytes
) -> ExternalSigner:
    # Built the same way at prepare and at complete: the signed attributes (which include the
    # CMS algorithm protection attribute) must not change between the two.
    return ExternalSigner(
        signing_cert=certificate,
        cert_registry=SimpleCertificateStore.from_certs(list(chain)),  # type: ignore[no-untyped-call]
        signature_value=value,
        embed_roots=False,
    )


def _signature_size(certificate: x509.Certificate) -> int:
    size = (int(certificate.public_key.bit_size) + 7) // 8
    if certificate.public_key.algorithm == "ec":
        size = 2 * size + 9  # DER SEQUENCE of two INTEGERs
    return size


def _identity(certificate: x509.Certificate) -> StampIdentity:
    subject = certificate.subject.native
    name = subject.get("common_name") or certificate.subject.human_friendly
    alt_names = certificate.subject_alt_name_value
    emails = [str(v) for v in alt_names.native if "@" in str(v)] if alt_names is not None else []
    return StampIdentity(
        signer_name=str(name),
        organisation=str(subject.get("organization_name", "")),
        email=emails[0] if emails else None,
    )


def _default_field_name(writer: Any) -> str:
    taken = {name for name, _v, _f in enumerate_sig_fields(writer.prev)}
    number = 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"


def _field_rect(writer: Any, name: str) -> Rect | None:
    for field_name, _value, field_ref in enumerate_sig_fields(writer.prev, with_name=name):
        if field_name == name:
            field_dict = field_ref.get_object()
            annot = field_dict if "/Rect" in field_dict else field_dict["/Kids"][0].get_object()
            x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                return None
            return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return None


def _page_box(writer: Any, page: int) -> tuple[float, float, float, float]:
    from signer.document import _media_box

    return _media_box(writer.prev, page - 1)


def split_der(data: bytes) -> tuple[bytes, ...]:
    """The DER structures of a concatenation (each is self-delimiting)."""
    out: list[bytes] = []
    position = 0
    while position < len(data):
        _class, _method, _tag, header, contents, trailer = parser.parse(data[position:])
        length = len(header) + len(contents) + len(trailer)
        out.append(data[position : position + length])
        position += length
    return tuple(out)


# -- sessions ---------------------------------------------------------------------------------


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class SessionStore:
    """Signing sessions in the database (``signer.schema.sessions``).

    Exactly-once: ``claim`` moves one session from ``open`` to ``completing`` with a conditional
    UPDATE (the database serialises the two writers: on PostgreSQL the second waits on the row
    lock and re-checks the condition, on SQLite writers take the database lock), so at most one
    caller holds a claim. A claim older than ``claim_lease`` (its holder crashed) may be taken
    over. ``finish`` and ``release`` act only with the claim's token.
    """

    def __init__(self, engine: sa.Engine, *, claim_lease: timedelta = timedelta(minutes=5)) -> None:
        self._engine = engine
        self._lease = claim_lease

    def create(self, session: SigningSession) -> None:
        with self._engine.begin() as conn:
            conn.execute(sessions.insert().values(**_row(session)))

    def get(self, session_id: str) -> SigningSession:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            raise SessionNotFound(
                f"no signing session {session_id!r}; check the id (it was printed by "
                "request-signature / returned by PrepareSignature)"
            )
        return _session(row)

    def list_open(
        self,
        *,
        certificate_sha256: str,
        now: datetime,
        unit_code: str | None = None,
        limit: int = 100,
        after: tuple[int, str] | None = None,
    ) -> list[SigningSession]:
        """Open, unexpired sessions for the certificate, oldest first, after a page cursor."""
        query = sa.select(sessions).where(
            sessions.c.certificate_sha256 == certificate_sha256,
            sessions.c.state == SessionState.OPEN.value,
            sessions.c.expires_us > _us(now),
        )
        if unit_code is not None:
            query = query.where(sessions.c.unit_code == unit_code)
        if after is not None:
            created, last_id = after
            query = query.where(
                sa.or_(
                    sessions.c.created_us > created,
                    sa.and_(sessions.c.created_us == created, sessions.c.id > last_id),
                )
            )
        query = query.order_by(sessions.c.created_us, sessions.c.id).limit(limit)
        with self._engine.connect() as conn:
            return [_session(row) for row in conn.execute(query)]

    def claim(self, session_id: str, *, now: datetime) -> str:
        """Take the right to complete the session; the claim token, or ``SessionClosed``."""
        token = secrets.token_hex(16)
        stale = _us(now - self._lease)
        with self._engine.begin() as conn:
            claimed = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.expires_us > _us(now),
                    sa.or_(
                        sessions.c.state == SessionState.OPEN.value,
                        sa.and_(
                            sessions.c.state == SessionState.COMPLETING.value,
                            sessions.c.claimed_us < stale,
                        ),
                    ),
                )
                .values(state=SessionState.COMPLETING.value, claim=token, claimed_us=_us(now))
            ).rowcount
        if claimed != 1:
            raise closed_error(self.get(session_id), now)
        return token

    def finish(
        self, session_id: str, *, claim: str, result_ref: str, by: str, now: datetime
    ) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(sessions.c.id == session_id, sessions.c.claim == claim)
                .values(
                    state=SessionState.COMPLETED.value,
                    result_ref=result_ref,
                    closed_us=_us(now),
                    closed_by=by,
                )
            ).rowcount
        if done != 1:
            # Only when this claim outlived its lease and another request took it over.
            raise SessionClosed(
                f"session {session_id} was taken over by another completion",
                state=SessionState.COMPLETING,
            )

    def release(self, session_id: str, *, claim: str) -> None:
        """Give a claim back after a failed completion: the session is open again."""
        with self._engine.begin() as conn:
            conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.claim == claim,
                    sessions.c.state == SessionState.COMPLETING.value,
                )
                .values(state=SessionState.OPEN.value, claim=None, claimed_us=None)
            )

    def cancel(self, session_id: str, *, by: str, now: datetime) -> SigningSession:
        """Cancel an open, unexpired session; ``SessionClosed`` otherwise."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.state == SessionState.OPEN.value,
                    sessions.c.expires_us > _us(now),
                )
                .values(state=SessionState.CANCELLED.value, closed_us=_us(now), closed_by=by)
            ).rowcount
        session = self.get(session_id)
        if done != 1:
            raise closed_error(session, now)
        return session

    def expire(self, session_id: str, *, now: datetime) -> bool:
        """Mark an open session whose time has passed as expired; True if this call did."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sessions.update()
                .where(
                    sessions.c.id == session_id,
                    sessions.c.state == SessionState.OPEN.value,
                    sessions.c.expires_us <= _us(now),
                )
                .values(state=SessionState.EXPIRED.value, closed_us=_us(now))
            ).rowcount
        return bool(done == 1)


def closed_error(session: SigningSession, now: datetime) -> SessionClosed:
    """Why ``session`` cannot be completed or cancelled, for a person."""
    state = session.state
    if state is SessionState.OPEN and session.expired(now):
        state = SessionState.EXPIRED
    why = {
        SessionState.COMPLETED: f"is already completed (result {session.result_ref})",
        SessionState.CANCELLED: "was cancelled",
        SessionState.EXPIRED: f"expired at {session.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        SessionState.COMPLETING: "is being completed by another request",
        SessionState.OPEN: "is open",
    }[state]
    return SessionClosed(
        f"signing session {session.id} {why}; ask for a new PrepareSignature if the document "
        "still needs this signature",
        state=state,
    )


def new_session_id() -> str:
    return secrets.token_hex(16)


def encode_cursor(session: SigningSession) -> str:
    text = f"{_us(session.created_at)}:{session.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, str]:
    """A page token back to its cursor; ValueError when it is not one of ours."""
    padded = token + "=" * (-len(token) % 4)
    created, _, last_id = base64.urlsafe_b64decode(padded).decode().partition(":")
    if not last_id:
        raise ValueError("not a page token")
    return int(created), last_id


def _row(session: SigningSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "state": session.state.value,
        "certificate_sha256": session.certificate_sha256,
        "certificate": session.certificate,
        "chain": b"".join(session.chain),
        "signer_name": session.signer_name,
        "requester": session.requester,
        "unit_code": session.unit_code,
        "title": session.title,
        "filename": session.filename,
        "level": session.level.value,
        "digest_algorithm": session.digest_algorithm,
        "mechanism": session.mechanism,
        "signed_attributes": session.signed_attributes,
        "data_to_sign": session.data_to_sign,
        "document_sha256": session.document_sha256,
        "source_ref": session.source_ref,
        "prepared_ref": session.prepared_ref,
        "document_digest": session.document_digest,
        "reserved_start": session.reserved_start,
        "reserved_end": session.reserved_end,
        "field_name": session.field_name,
        "created_us": _us(session.created_at),
        "expires_us": _us(session.expires_at),
        "result_ref": session.result_ref,
    }


def _session(row: Any) -> SigningSession:
    return SigningSession(
        id=row.id,
        state=SessionState(row.state),
        certificate=bytes(row.certificate),
        chain=split_der(bytes(row.chain)),
        signer_name=row.signer_name,
        requester=row.requester,
        unit_code=row.unit_code,
        title=row.title,
        filename=row.filename,
        level=Level(row.level),
        digest_algorithm=row.digest_algorithm,
        mechanism=row.mechanism,
        signed_attributes=bytes(row.signed_attributes),
        data_to_sign=bytes(row.data_to_sign),
        document_sha256=row.document_sha256,
        source_ref=row.source_ref,
        prepared_ref=row.prepared_ref,
        document_digest=bytes(row.document_digest),
        reserved_start=int(row.reserved_start),
        reserved_end=int(row.reserved_end),
        field_name=row.field_name,
        created_at=_from_us(row.created_us),
        expires_at=_from_us(row.expires_us),
        result_ref=row.result_ref,
    )
