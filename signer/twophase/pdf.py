"""The PDF and CMS work of two-phase signing: prepare a document, complete it later.

- ``TwoPhaseSigner.prepare``: reserve the signature field (pyHanko's interrupted signing), build
  the CMS signed attributes over the document's byte-range digest and return what the token must
  sign: the digest of the DER-encoded signed attributes (``data_to_sign``).
- ``TwoPhaseSigner.complete``: check the prepared document against the digest recorded at
  prepare, verify the signature value against the certificate (``SignatureValueInvalid`` before
  anything is embedded), embed the CMS with the level's time-stamp, then the DSS (B-LT) and the
  document time-stamp (B-LTA).

Invariant: completion uses only what prepare recorded (document, signed attributes,
certificate); the caller contributes the signature value and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import cms, x509
from pyhanko.sign.fields import SigSeedSubFilter
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
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signer.appearance import AppearanceKind, KysoStampStyle, PreparedStamp, StampIdentity
from signer.document import Placement, Rect
from signer.engine import SignerSettings
from signer.errors import RevocationUnavailable, SigningError
from signer.failures import pdf_failures
from signer.fetches import FetchTally
from signer.fields import new_field_spec, open_target, place_stamp, stamp_identity
from signer.levels import Level, LevelSteps
from signer.timestamps import FailoverTimeStamper
from signer.twophase.certificates import (
    CertificateChecker,
    signature_scheme,
    signature_size,
    verify_signature_value,
)
from signer.twophase.sessions import SigningSession

__all__ = [
    "CompletedDocument",
    "PrepareRequest",
    "PreparedDocumentAltered",
    "PreparedSignature",
    "TwoPhaseSigner",
]

# What a missing TSA's error tells the caller to do instead.
_WITHOUT_TSA = "request level B-B"


class PreparedDocumentAltered(SigningError):
    """The stored prepared document no longer matches the digest recorded at prepare."""


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


class TwoPhaseSigner:
    """Prepares and completes PDF signatures for certificates whose keys are elsewhere.

    Per process: the revocation cache, the TSA client, and the prepared stamps per
    (certificate, appearance) — an official signs many documents with one certificate.
    Thread-safe: callers may run its coroutines on event loops in several threads (the shared
    parts are locked or read-only once built).
    """

    def __init__(
        self,
        *,
        settings: SignerSettings,
        known_intermediates: Sequence[x509.Certificate] = (),
        tally: FetchTally | None = None,
    ) -> None:
        """``tally``: where the TSA requests and revocation fetches (the certificate checks'
        included) are counted."""
        self._settings = settings
        self._steps = LevelSteps(settings=settings, tally=tally)
        self._checker = CertificateChecker(
            trust_roots=settings.trust_roots,
            known_intermediates=known_intermediates,
            revocation=self._steps.revocation,
        )
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

        See ``CertificateChecker.check``: ``CertificateRejected`` (the reason), or
        ``RevocationUnavailable`` when the status cannot be learnt.
        """
        return await self._checker.check(certificate, chain=chain, now=now)

    async def prepare(self, request: PrepareRequest) -> PreparedSignature:
        """Reserve the field, digest the document, build the signed attributes."""
        certificate = request.certificate
        digest_algorithm, mechanism = signature_scheme(certificate)
        timestamper = self._steps.timestamper_for(request.level, remedy=_WITHOUT_TSA)
        target = open_target(request, max_size=self._settings.max_document_size)
        writer, placement, signing_time = target.writer, target.placement, target.signing_time
        identity = stamp_identity(
            certificate,
            organisation=str(certificate.subject.native.get("organization_name", "")),
        )
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
        size = signature_size(certificate)
        external = _external_signer(certificate, request.chain, bytes(size))
        pdf_signer = PdfSigner(
            meta, signer=external, stamp_style=style, new_field_spec=new_field_spec(placement)
        )
        reserve = await self._steps.reserved_hex(
            signature_room=size,
            certificates=(certificate, *request.chain),
            timestamper=timestamper,
        )
        with pdf_failures(doing="prepared for signing"):
            session = pdf_signer.init_signing_session(writer)
            # The time on the stamp and the /M entry are one instant.
            session.system_time = signing_time
            tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=reserve)
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
        timestamper = self._steps.timestamper_for(session.level, remedy=_WITHOUT_TSA)
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
        context, data = await self._steps.validation_material(
            certificate=certificate, chain=chain, timestamper=timestamper
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
        return place_stamp(
            stamp, kind=kind, placement=placement, writer=writer, signing_time=signing_time
        )


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
