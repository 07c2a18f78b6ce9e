"""The signing engine: PAdES B-B, B-T, B-LT and B-LTA with stamps, in the calling process.

``SigningEngine`` is built once per process from a key ring, the per-key profiles and the
settings. Per key it keeps, for the life of the process: the pyHanko signer (with its precomputed
signed attribute), the prepared stamps (font subset, decoded images) and the size to reserve for
the CMS (no trial signature). ``warm_up`` prepares everything and freezes the garbage collector's
view of it (``gc.freeze``), so later collections do not walk these long-lived objects.

The engine runs pyHanko's CPU-bound work on the caller's thread and event loop: the server uses
it inside signing worker processes (``signer.pool``), one engine per process.
The field and placement helpers (``signer.fields``), the level steps (TSA, revocation, CMS
reservation: ``signer.levels``) and the translation of pyHanko's failures (``signer.failures``)
are shared with the two-phase signer (``signer.twophase``).

Invariant: ``sign`` returns a complete signed document or raises a ``SigningError``; it never
returns or stores a partial result (time-stamp or revocation failures abort before anything is
returned).
"""

from __future__ import annotations

import gc
import hashlib
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from hsm import KeyRing
from signer.appearance import AppearanceKind, PreparedStamp, StampIdentity
from signer.cms import KeyRingSigner
from signer.document import Rect
from signer.errors import RevocationUnavailable, UnknownKeyAlias
from signer.failures import pdf_failures
from signer.fetches import FetchTally
from signer.fields import (
    has_signatures,
    new_field_spec,
    open_target,
    place_stamp,
    stamp_identity,
)
from signer.levels import Level, LevelSteps
from signer.timestamps import FailoverTimeStamper

__all__ = [
    "KeyProfile",
    "Level",
    "SignRequest",
    "SignedDocument",
    "SignerSettings",
    "SigningEngine",
    "unknown_alias",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class KeyProfile:
    """What the signer needs to know about a key besides the key ring: its unit and images."""

    alias: str
    organisation: str
    signer_image: Path | None = None
    seal_image: Path | None = None


@dataclass(frozen=True, kw_only=True)
class SignerSettings:
    """Process-wide signing settings (validated once, at start)."""

    max_document_size: int = 50 * 1024 * 1024
    tsa_urls: tuple[str, ...] = ()
    tsa_timeout: float = 10.0
    revocation_timeout: float = 10.0
    trust_roots: tuple[x509.Certificate, ...] = ()
    """Anchors for the pre-signing validation that B-LT and B-LTA need."""


@dataclass(frozen=True, kw_only=True)
class SignRequest:
    """One signature. ``page`` is 1-based; ``rect`` is ``(x1, y1, x2, y2)`` in points.

    ``certify``: a certification (DocMDP, no further changes) signature if the document has no
    signature yet; on a signed document, the new field locks the document (PDF 2.0 /Lock /P 1).
    """

    pdf: bytes = field(repr=False)
    alias: str
    level: Level = Level.B_B
    appearance: AppearanceKind = AppearanceKind.NONE
    reason: str | None = None
    location: str | None = None
    contact: str | None = None
    field_name: str | None = None
    page: int | None = None
    rect: Rect | None = None
    certify: bool = False


@dataclass(frozen=True, kw_only=True)
class SignedDocument:
    pdf: bytes = field(repr=False)
    sha256: str
    field_name: str
    signing_time: datetime
    level: Level


@dataclass
class _KeyState:
    signer: KeyRingSigner
    identity: StampIdentity
    profile: KeyProfile
    chain: tuple[x509.Certificate, ...]
    stamps: dict[AppearanceKind, PreparedStamp] = field(default_factory=dict)


class SigningEngine:
    """Signs PDFs with the keys of ``keyring`` described by ``keys`` (alias → profile)."""

    def __init__(
        self,
        *,
        keyring: KeyRing,
        keys: Mapping[str, KeyProfile],
        settings: SignerSettings,
        tally: FetchTally | None = None,
    ) -> None:
        """``tally``: where the TSA requests and revocation fetches are counted."""
        self._keyring = keyring
        self._settings = settings
        self._keys: dict[str, _KeyState] = {}
        for alias, profile in keys.items():
            certificate = keyring.certificate(alias)
            chain = keyring.chain(alias)
            self._keys[alias] = _KeyState(
                signer=KeyRingSigner(
                    keyring=keyring, alias=alias, certificate=certificate, chain=chain
                ),
                identity=stamp_identity(certificate, organisation=profile.organisation),
                profile=profile,
                chain=(certificate, *chain),
            )
        self._steps = LevelSteps(settings=settings, tally=tally)

    def warm_up(self) -> None:
        """Prepare every key's stamps now (not on the first request) and freeze them for gc."""
        for state in self._keys.values():
            for kind in (AppearanceKind.SEAL, AppearanceKind.TEXT):
                self._stamp(state, kind)
        gc.collect()
        gc.freeze()

    async def sign(self, request: SignRequest, *, input_digest: Any = None) -> SignedDocument:
        """Sign ``request.pdf``; see the module docstring for the guarantees.

        ``input_digest``: a ``hashlib.sha256`` object that has hashed exactly ``request.pdf``
        (a worker that verified the stored document has one). The signed PDF is an incremental
        update, the input followed by the new revision, so its SHA-256 continues from a copy of
        it instead of hashing the whole document again.
        """
        state = self._keys.get(request.alias)
        if state is None:
            raise unknown_alias(request.alias, self._keys)
        timestamper = self._steps.timestamper_for(request.level, remedy="sign at B-B")
        target = open_target(request, max_size=self._settings.max_document_size)
        writer, placement, signing_time = target.writer, target.placement, target.signing_time
        style = None
        if request.appearance is not AppearanceKind.NONE:
            placement, style = place_stamp(
                self._stamp(state, request.appearance),
                kind=request.appearance,
                placement=placement,
                writer=writer,
                signing_time=signing_time,
            )

        validation_context = None
        if request.level in (Level.B_LT, Level.B_LTA):
            validation_context = await self._validation_context(state, timestamper)
        certify = request.certify and not has_signatures(writer)
        meta = PdfSignatureMetadata(
            field_name=placement.field_name,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            reason=request.reason,
            location=request.location,
            contact_info=request.contact,
            certify=certify,
            docmdp_permissions=MDPPerm.NO_CHANGES,
            embed_validation_info=validation_context is not None,
            validation_context=validation_context,
            use_pades_lta=request.level is Level.B_LTA,
        )
        field_spec = new_field_spec(
            placement,
            doc_mdp_update_value=MDPPerm.NO_CHANGES if request.certify and not certify else None,
        )
        pdf_signer = PdfSigner(
            meta,
            signer=state.signer,
            timestamper=timestamper,
            stamp_style=style,
            new_field_spec=field_spec,
        )
        try:
            with pdf_failures(doing="signed"):
                output = await self._run(pdf_signer, writer, state, signing_time, timestamper)
        except (PathBuildingError, PathValidationError) as exc:
            raise RevocationUnavailable(
                f"the certificate of key {request.alias!r} or of the TSA does not validate "
                f"for B-LT ({exc}); check the trust anchors and revocation data"
            ) from exc
        return SignedDocument(
            pdf=output,
            sha256=_output_sha256(output, request.pdf, input_digest),
            field_name=placement.field_name,
            signing_time=signing_time,
            level=request.level,
        )

    # -- internals ----------------------------------------------------------------------------

    async def _run(
        self,
        pdf_signer: PdfSigner,
        writer: Any,
        state: _KeyState,
        signing_time: datetime,
        timestamper: FailoverTimeStamper | None,
    ) -> bytes:
        session = pdf_signer.init_signing_session(writer)
        # The time shown on the stamp, the /M entry and the signed attributes are one instant.
        session.system_time = signing_time
        validation_info = await session.perform_presign_validation(writer)
        reserve = await self._steps.reserved_hex(
            # Twice the signature value's bound: the reservation shapes the output, so it stays
            # as the engine has always made it.
            signature_room=2 * state.signer.signature_size,
            certificates=state.chain,
            timestamper=timestamper,
        )
        tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=reserve)
        buffer = io.BytesIO()
        prepared, output = tbs.digest_tbs_document(output=buffer)
        post = await tbs.perform_signature(
            document_digest=prepared.document_digest,
            pdf_cms_signed_attrs=PdfCMSSignedAttributes(
                signing_time=signing_time,
                adobe_revinfo_attr=None,
                cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec,
            ),
        )
        await post.post_signature_processing(output)
        return buffer.getvalue()

    async def _validation_context(
        self, state: _KeyState, timestamper: FailoverTimeStamper | None
    ) -> ValidationContext:
        assert timestamper is not None
        if not self._steps.trust_roots:
            raise RevocationUnavailable(
                "B-LT and B-LTA need trust anchors to validate the chain before signing; "
                "configure them"
            )
        context, _data = await self._steps.validation_material(
            certificate=state.chain[0], chain=state.chain[1:], timestamper=timestamper
        )
        return context

    def _stamp(self, state: _KeyState, kind: AppearanceKind) -> PreparedStamp:
        stamp = state.stamps.get(kind)
        if stamp is None:
            stamp = PreparedStamp.prepare(
                kind=kind,
                identity=state.identity,
                signer_image=state.profile.signer_image,
                seal_image=state.profile.seal_image,
            )
            state.stamps[kind] = stamp
        return stamp


def _output_sha256(output: bytes, pdf: bytes, input_digest: Any) -> str:
    """SHA-256 of ``output``, continued from ``input_digest`` (of ``pdf``) when ``output``
    starts with ``pdf``."""
    if input_digest is None or not output.startswith(pdf):
        return hashlib.sha256(output).hexdigest()
    digest = input_digest.copy()
    digest.update(memoryview(output)[len(pdf) :])
    return str(digest.hexdigest())


def unknown_alias(alias: str, configured: Iterable[str]) -> UnknownKeyAlias:
    """The error for a request naming a key that is not configured."""
    return UnknownKeyAlias(
        f"no signing key is configured under alias {alias!r}; "
        f"configured: {', '.join(sorted(configured)) or 'none'}"
    )
