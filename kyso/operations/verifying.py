"""Verify a PDF (in the verifier pool) or an edXML package (its XML signature) for a caller.

A package's verdict uses the indications of PDF reports so that one report shape serves both:
TOTAL-PASSED when the signature verifies and chains to a configured anchor; INDETERMINATE when
no chain to an anchor is found (or the package is unsigned and signatures are required);
TOTAL-FAILED when the value does not verify, the algorithm is refused, or the XML is malformed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import exchange
from exchange.edxml import OpenedPackage, open_package
from kyso.app import Application
from kyso.errors import FailedPrecondition
from kyso.operations.documents import Documents, DocumentSource
from signer import verify

__all__ = ["PackageVerdict", "Verifying"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageVerdict:
    """An edXML package's verdict: ``opened`` when it verified, else the reason it did not."""

    sha256: str
    indication: verify.Indication
    sub_indication: str = ""
    reason: str = ""
    opened: OpenedPackage | None = None


class Verifying:
    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents

    async def pdf(self, source: DocumentSource, *, online: bool) -> verify.VerificationReport:
        verifier = self._app.verifier
        if verifier is None:
            raise FailedPrecondition("this server does not verify PDFs")
        data, _ = await self._documents.read(source)
        return await self._app.executors.pdf.run(
            verifier.verify, data, self._app.verification_policy(online=online)
        )

    async def package(self, source: DocumentSource) -> PackageVerdict:
        data, _ = await self._documents.read(source)
        return await self._app.executors.xml.run(self._package_verdict, data)

    def _package_verdict(self, data: bytes) -> PackageVerdict:
        digest = hashlib.sha256(data).hexdigest()
        try:
            opened = open_package(data, policy=self._app.package_trust())
        except exchange.ExchangeError as exc:
            for kinds, indication, sub_indication in _REFUSALS:
                if isinstance(exc, kinds):
                    return PackageVerdict(
                        sha256=digest,
                        indication=indication,
                        sub_indication=sub_indication,
                        reason=str(exc),
                    )
            raise
        return PackageVerdict(
            sha256=digest, indication=verify.Indication.TOTAL_PASSED, opened=opened
        )


# Why a package did not verify, most specific first: (errors, indication, sub-indication).
_REFUSALS: tuple[tuple[tuple[type[Exception], ...], verify.Indication, str], ...] = (
    (
        (exchange.UntrustedSigner, exchange.UnsignedPackageRefused),
        verify.Indication.INDETERMINATE,
        "NO_CERTIFICATE_CHAIN_FOUND",
    ),
    (
        (exchange.WeakSignatureRefused,),
        verify.Indication.TOTAL_FAILED,
        "CRYPTO_CONSTRAINTS_FAILURE",
    ),
    ((exchange.SignatureInvalid,), verify.Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE"),
    ((exchange.PackageInvalid,), verify.Indication.TOTAL_FAILED, "FORMAT_FAILURE"),
)
