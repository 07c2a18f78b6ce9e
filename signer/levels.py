"""PAdES levels and the steps above B-B that both signing flows share.

``Level`` names the PAdES baseline level of a signature. ``LevelSteps`` holds what a signer
needs, per process, for the levels above B-B: the TSA client (B-T and up), the revocation cache
and the trust anchors (B-LT and B-LTA), and the size of a time-stamp token (to reserve room for
the CMS without a trial signature). The server-side engine (``signer.engine``) and the two-phase
signer (``signer.twophase``) each build one from the same ``SignerSettings`` fields.

Invariants:
- ``timestamper_for`` returns ``None`` exactly for B-B, and otherwise a time-stamper or
  ``TimestampUnavailable``: a level is never silently lowered.
- ``reserved_hex`` is an upper bound of the hex-encoded CMS (signature value, certificates,
  framing and, when time-stamped, the token plus slack); it asks the TSA at most once per
  ``LevelSteps`` for the token's size.
- ``validation_material`` gathers revocation data for the signer's whole chain, the TSA's
  certificates and the trust anchors, and builds a hard-fail, offline validation context over
  exactly that data (nothing is fetched during validation).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Protocol

from asn1crypto import x509
from pyhanko_certvalidator import ValidationContext

from signer.errors import TimestampUnavailable
from signer.fetches import FetchTally
from signer.revocation import RevocationCache, RevocationData
from signer.timestamps import FailoverTimeStamper

__all__ = ["Level", "LevelSettings", "LevelSteps"]

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


class LevelSettings(Protocol):
    """The settings ``LevelSteps`` reads (``signer.engine.SignerSettings`` has them)."""

    @property
    def tsa_urls(self) -> Sequence[str]: ...
    @property
    def tsa_timeout(self) -> float: ...
    @property
    def revocation_timeout(self) -> float: ...
    @property
    def trust_roots(self) -> Sequence[x509.Certificate]: ...


class LevelSteps:
    """The TSA, revocation and trust material of one signer, for the levels above B-B.

    No ``tsa_urls``: no time-stamper, so only B-B can be signed. The token size is measured
    once (the first reservation that needs it) and kept; a race between threads at most
    measures it twice, with the same result.
    """

    def __init__(self, *, settings: LevelSettings, tally: FetchTally | None = None) -> None:
        """``tally``: where the TSA requests and revocation fetches are counted (one of their
        own when not given)."""
        self.tally = tally if tally is not None else FetchTally()
        self.timestamper = (
            FailoverTimeStamper(settings.tsa_urls, timeout=settings.tsa_timeout, tally=self.tally)
            if settings.tsa_urls
            else None
        )
        self.revocation = RevocationCache(timeout=settings.revocation_timeout, tally=self.tally)
        self.trust_roots = tuple(settings.trust_roots)
        self._token_size: int | None = None

    def timestamper_for(self, level: Level, *, remedy: str) -> FailoverTimeStamper | None:
        """The time-stamper ``level`` needs (``None`` for B-B), or ``TimestampUnavailable``.

        ``remedy`` ends the error's message: what the caller's user can do instead.
        """
        if level is Level.B_B:
            return None
        if self.timestamper is None:
            raise TimestampUnavailable(
                f"level {level.value} needs a time-stamp, but no time-stamping authority is "
                f"configured; configure one or {remedy}"
            )
        return self.timestamper

    async def reserved_hex(
        self,
        *,
        signature_room: int,
        certificates: Iterable[x509.Certificate],
        timestamper: FailoverTimeStamper | None,
    ) -> int:
        """Hex characters to reserve for the CMS, from known sizes (no trial signature).

        ``signature_room``: bytes for the signature value; ``certificates``: all embedded ones.
        """
        size = _CMS_OVERHEAD + signature_room + sum(len(cert.dump()) for cert in certificates)
        if timestamper is not None:
            size += await self._token_size_of(timestamper) + _TOKEN_SLACK
        return 2 * size

    async def validation_material(
        self,
        *,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        timestamper: FailoverTimeStamper,
    ) -> tuple[ValidationContext, RevocationData]:
        """The offline validation context for ``certificate`` (intermediates ``chain``) and the
        TSA, and the revocation data it was built from (what B-LT embeds in the DSS)."""
        roots = list(self.trust_roots)
        token = await timestamper.async_dummy_response("sha256")
        tsa_certs = [c.chosen for c in token["content"]["certificates"]]
        data = await self.revocation.collect([certificate, *chain, *tsa_certs, *roots])
        context = ValidationContext(
            trust_roots=roots,
            other_certs=[*chain, *tsa_certs],
            ocsps=list(data.ocsps),
            crls=list(data.crls),
            allow_fetching=False,
            revocation_mode="hard-fail",
        )
        return context, data

    async def _token_size_of(self, timestamper: FailoverTimeStamper) -> int:
        if self._token_size is None:
            token = await timestamper.async_dummy_response("sha256")
            self._token_size = len(token.dump())
        return self._token_size
