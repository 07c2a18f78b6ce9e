"""The signing engine: PAdES B-B, B-T, B-LT and B-LTA with stamps, in the calling process.

``SigningEngine`` is built once per process from a key ring, the per-key profiles and the
settings. Per key it keeps, for the life of the process: the pyHanko signer (with its precomputed
signed attribute), the prepared stamps (font subset, decoded images) and the size to reserve for
the CMS (no trial signature). ``warm_up`` prepares everything and freezes the garbage collector's
view of it (``gc.freeze``), so later collections do not walk these long-lived objects.

The engine runs pyHanko's CPU-bound work on the caller's thread and event loop: the server uses
it inside signing worker processes (``signer.pool``), one engine per process.

Invariant: ``sign`` returns a complete signed document or raises a ``SigningError``; it never
returns or stores a partial result (time-stamp or revocation failures abort before anything is
returned).
"""

from __future__ import annotations

import enum
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
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from hsm import KeyRing
from signer.appearance import (
    VIETNAM_TIME,
    AppearanceKind,
    KysoStampStyle,
    PreparedStamp,
    StampIdentity,
)
from signer.cms import KeyRingSigner
from signer.document import Placement, Rect, open_for_signing, resolve_placement
from signer.errors import (
    CertificationForbidsSigning,
    PdfCorrupt,
    RectangleInvalid,
    RevocationUnavailable,
    SigningError,
    TimestampUnavailable,
    UnknownKeyAlias,
)
from signer.revocation import RevocationCache
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

# Room for signed attributes, SignerInfo framing and the digest algorithm identifiers.
_CMS_OVERHEAD = 1500
# A time-stamp token is a whole CMS with the TSA's certificates; reserve its measured size plus
# slack (TSAs may vary the token's size slightly between answers).
_TOKEN_SLACK = 1024


class Level(enum.Enum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


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
        self, *, keyring: KeyRing, keys: Mapping[str, KeyProfile], settings: SignerSettings
    ) -> None:
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
                identity=_identity(certificate, profile),
                profile=profile,
                chain=(certificate, *chain),
            )
        self._timestamper = (
            FailoverTimeStamper(settings.tsa_urls, timeout=settings.tsa_timeout)
            if settings.tsa_urls
            else None
        )
        self._token_size: int | None = None
        self._revocation = RevocationCache(timeout=settings.revocation_timeout)

    def warm_up(self) -> None:
        """Prepare every key's stamps now (not on the first request) and freeze them for gc."""
        for state in self._keys.values():
            for kind in (AppearanceKind.SEAL, AppearanceKind.TEXT):
                self._stamp(state, kind)
        gc.collect()
        gc.freeze()

    async def sign(self, request: SignRequest) -> SignedDocument:
        """Sign ``request.pdf``; see the module docstring for the guarantees."""
        state = self._keys.get(request.alias)
        if state is None:
            raise unknown_alias(request.alias, self._keys)
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
        style = None
        if request.appearance is not AppearanceKind.NONE:
            placement, style = self._appearance(request, state, placement, writer, signing_time)

        validation_context = None
        if request.level in (Level.B_LT, Level.B_LTA):
            validation_context = await self._validation_context(state, timestamper)
        certify = request.certify and not _has_signatures(writer)
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
        field_spec = None
        if not placement.existing:
            field_spec = SigFieldSpec(
                sig_field_name=placement.field_name,
                on_page=placement.page - 1,
                box=placement.rect,  # type: ignore[arg-type]
                doc_mdp_update_value=(
                    MDPPerm.NO_CHANGES if request.certify and not certify else None
                ),
            )
        pdf_signer = PdfSigner(
            meta,
            signer=state.signer,
            timestamper=timestamper,
            stamp_style=style,
            new_field_spec=field_spec,
        )
        try:
            output = await self._run(pdf_signer, writer, state, signing_time, timestamper)
        except SigningError:
            raise
        except PyHankoSigningError as exc:
            if "forbids" in str(exc):
                raise CertificationForbidsSigning(
                    "the document's certification forbids further signatures"
                ) from exc
            raise PdfCorrupt(f"the PDF cannot be signed: {exc}") from exc
        except (PathBuildingError, PathValidationError) as exc:
            raise RevocationUnavailable(
                f"the certificate of key {request.alias!r} or of the TSA does not validate "
                f"for B-LT ({exc}); check the trust anchors and revocation data"
            ) from exc
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            raise PdfCorrupt(f"the PDF cannot be signed ({type(exc).__name__}: {exc})") from exc
        return SignedDocument(
            pdf=output,
            sha256=hashlib.sha256(output).hexdigest(),
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
        reserve = await self._bytes_reserved(state, timestamper, validation_info)
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

    async def _bytes_reserved(
        self, state: _KeyState, timestamper: FailoverTimeStamper | None, validation_info: Any
    ) -> int:
        """Hex characters to reserve for the CMS, from known sizes (no trial signature)."""
        size = _CMS_OVERHEAD + 2 * state.signer.signature_size
        size += sum(len(cert.dump()) for cert in state.chain)
        if timestamper is not None:
            if self._token_size is None:
                token = await timestamper.async_dummy_response("sha256")
                self._token_size = len(token.dump())
            size += self._token_size + _TOKEN_SLACK
        return 2 * size

    def _timestamper_for(self, level: Level) -> FailoverTimeStamper | None:
        if level is Level.B_B:
            return None
        if self._timestamper is None:
            raise TimestampUnavailable(
                f"level {level.value} needs a time-stamp, but no time-stamping authority is "
                "configured; configure one or sign at B-B"
            )
        return self._timestamper

    async def _validation_context(
        self, state: _KeyState, timestamper: FailoverTimeStamper | None
    ) -> ValidationContext:
        assert timestamper is not None
        if not self._settings.trust_roots:
            raise RevocationUnavailable(
                "B-LT and B-LTA need trust anchors to validate the chain before signing; "
                "configure them"
            )
        token = await timestamper.async_dummy_response("sha256")
        tsa_certs = [c.chosen for c in token["content"]["certificates"]]
        roots = self._settings.trust_roots
        everything = [*state.chain, *tsa_certs, *roots]
        data = await self._revocation.collect(everything)
        return ValidationContext(
            trust_roots=list(roots),
            other_certs=[*state.chain[1:], *tsa_certs],
            ocsps=list(data.ocsps),
            crls=list(data.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )

    def _appearance(
        self,
        request: SignRequest,
        state: _KeyState,
        placement: Placement,
        writer: Any,
        signing_time: datetime,
    ) -> tuple[Placement, KysoStampStyle]:
        stamp = self._stamp(state, request.appearance)
        rect = placement.rect
        if placement.existing:
            rect = _field_rect(writer, placement.field_name)
        elif rect is None and request.appearance is AppearanceKind.TEXT:
            rect = stamp.text_form_rect(_page_box(writer, placement.page))  # type: ignore[assignment]
            placement = Placement(
                field_name=placement.field_name, existing=False, page=placement.page, rect=rect
            )
        if rect is None:
            raise RectangleInvalid(
                f"the {request.appearance.value} appearance needs a rectangle or an existing "
                "visible field; give page and rect, or use appearance none"
            )
        x1, y1, x2, y2 = rect
        placed = stamp.layout(x2 - x1, y2 - y1, signing_time)
        return placement, KysoStampStyle(stamp=stamp, placed=placed)

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


def unknown_alias(alias: str, configured: Iterable[str]) -> UnknownKeyAlias:
    """The error for a request naming a key that is not configured."""
    return UnknownKeyAlias(
        f"no signing key is configured under alias {alias!r}; "
        f"configured: {', '.join(sorted(configured)) or 'none'}"
    )


def _identity(certificate: x509.Certificate, profile: KeyProfile) -> StampIdentity:
    subject = certificate.subject.native
    name = subject.get("common_name") or certificate.subject.human_friendly
    alt_names = certificate.subject_alt_name_value
    emails = [str(v) for v in alt_names.native if "@" in str(v)] if alt_names is not None else []
    return StampIdentity(
        signer_name=str(name),
        organisation=profile.organisation,
        email=emails[0] if emails else None,
    )


def _has_signatures(writer: Any) -> bool:
    from pyhanko.sign.fields import enumerate_sig_fields

    return any(True for _ in enumerate_sig_fields(writer.prev, filled_status=True))


def _default_field_name(writer: Any) -> str:
    from pyhanko.sign.fields import enumerate_sig_fields

    taken = {name for name, _v, _f in enumerate_sig_fields(writer.prev)}
    number = 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"


def _field_rect(writer: Any, name: str) -> Rect | None:
    from pyhanko.sign.fields import enumerate_sig_fields

    for field_name, _value, field_ref in enumerate_sig_fields(writer.prev, with_name=name):
        if field_name == name:
            field_dict = field_ref.get_object()
            # A field and its one widget are often merged; otherwise the widget is its kid.
            annot = field_dict if "/Rect" in field_dict else field_dict["/Kids"][0].get_object()
            x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                return None
            return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return None


def _page_box(writer: Any, page: int) -> tuple[float, float, float, float]:
    from signer.document import _media_box

    return _media_box(writer.prev, page - 1)
