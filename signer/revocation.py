"""OCSP responses and CRLs for B-LT signatures, cached until their ``nextUpdate``.

For each certificate that is not self-signed: its OCSP responder (from the AIA extension) if it
names one, else its CRL distribution point. An answer is reused by every signature until its
``nextUpdate``; an answer without ``nextUpdate`` is not cached. A certificate whose status cannot
be obtained fails the signature with ``RevocationUnavailable``. Every fetch is counted in the
process's ``signer.fetches.FetchTally`` as it ends (by kind, URL and outcome); a cached answer is
not a fetch.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import crl, ocsp, x509

from signer.errors import RevocationUnavailable
from signer.fetches import FetchTally, RevocationKind

__all__ = ["RevocationCache", "RevocationData"]


@dataclass(frozen=True)
class RevocationData:
    ocsps: tuple[ocsp.OCSPResponse, ...]
    crls: tuple[crl.CertificateList, ...]


class RevocationCache:
    """Thread-safe cache of revocation answers; ``collect`` fetches what is missing or stale."""

    def __init__(self, *, timeout: float, tally: FetchTally | None = None) -> None:
        """``tally``: where each fetch is counted (a tally of its own when not given)."""
        self._timeout = timeout
        self.tally = tally if tally is not None else FetchTally()
        self._lock = threading.Lock()
        self._ocsp: dict[tuple[bytes, int], tuple[datetime, ocsp.OCSPResponse]] = {}
        self._crl: dict[str, tuple[datetime, crl.CertificateList]] = {}

    async def collect(
        self, certificates: Sequence[x509.Certificate], *, now: datetime | None = None
    ) -> RevocationData:
        """Revocation answers covering every non-root certificate of ``certificates``.

        Issuers are looked up among ``certificates`` themselves (give each chain whole).
        """
        moment = now or datetime.now(UTC)
        by_subject = {cert.subject.dump(): cert for cert in certificates}
        ocsps: list[ocsp.OCSPResponse] = []
        crls: dict[str, crl.CertificateList] = {}
        for cert in certificates:
            if cert.self_signed != "no" or _ocsp_no_check(cert):
                continue
            issuer = by_subject.get(cert.issuer.dump())
            if issuer is None:
                raise RevocationUnavailable(
                    f"the issuer of '{cert.subject.human_friendly}' is not in the configured "
                    "chain; add it so that revocation can be checked"
                )
            if cert.ocsp_urls:
                ocsps.append(await self._ocsp_for(cert, issuer, moment))
            elif cert.crl_distribution_points:
                url = cert.crl_distribution_points[0].url
                crls[url] = await self._crl_for(url, cert, moment)
            else:
                raise RevocationUnavailable(
                    f"'{cert.subject.human_friendly}' names neither an OCSP responder nor a "
                    "CRL; its revocation status cannot be embedded"
                )
        return RevocationData(ocsps=tuple(ocsps), crls=tuple(crls.values()))

    async def _ocsp_for(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> ocsp.OCSPResponse:
        key = (cert.issuer.sha256, cert.serial_number)
        with self._lock:
            cached = self._ocsp.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        request = ocsp.OCSPRequest(
            {
                "tbs_request": {
                    "request_list": [
                        {
                            "req_cert": {
                                "hash_algorithm": {"algorithm": "sha1"},
                                "issuer_name_hash": issuer.subject.sha1,
                                "issuer_key_hash": issuer.public_key.sha1,
                                "serial_number": cert.serial_number,
                            }
                        }
                    ]
                }
            }
        )
        url = cert.ocsp_urls[0]
        body = await self._post(url, request.dump(), "application/ocsp-request", cert)
        status = None
        try:
            response = ocsp.OCSPResponse.load(body)
            status = response["response_status"].native
            if status != "successful":
                raise ValueError(status)
            single = response.basic_ocsp_response["tbs_response_data"]["responses"][0]
            next_update = single["next_update"].native
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            # A status other than successful is the responder's refusal; anything else that
            # cannot be read is a failure, as a network error is.
            refused = status is not None and status != "successful"
            self.tally.revocation("ocsp", url, "refused" if refused else "failed")
            raise RevocationUnavailable(
                f"the OCSP responder {url} gave no usable answer for "
                f"'{cert.subject.human_friendly}' ({exc})"
            ) from exc
        self.tally.revocation("ocsp", url, "ok")
        if next_update is not None:
            with self._lock:
                self._ocsp[key] = (next_update, response)
        return response

    async def _crl_for(
        self, url: str, cert: x509.Certificate, now: datetime
    ) -> crl.CertificateList:
        with self._lock:
            cached = self._crl.get(url)
        if cached is not None and now < cached[0]:
            return cached[1]
        body = await self._get(url, cert)
        try:
            crl_obj = crl.CertificateList.load(body)
            next_update = crl_obj["tbs_cert_list"]["next_update"].native
        except (ValueError, KeyError, TypeError) as exc:
            self.tally.revocation("crl", url, "failed")
            raise RevocationUnavailable(f"the CRL at {url} cannot be read ({exc})") from exc
        self.tally.revocation("crl", url, "ok")
        if next_update is not None:
            with self._lock:
                self._crl[url] = (next_update, crl_obj)
        return crl_obj

    async def _post(
        self, url: str, data: bytes, content_type: str, cert: x509.Certificate
    ) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - URLs come from CA certificates
            url, data=data, headers={"Content-Type": content_type}
        )
        return await self._counted("ocsp", request, cert)

    async def _get(self, url: str, cert: x509.Certificate) -> bytes:
        request = urllib.request.Request(url)  # noqa: S310 - URLs come from CA certificates
        return await self._counted("crl", request, cert)

    async def _counted(
        self, kind: RevocationKind, request: urllib.request.Request, cert: x509.Certificate
    ) -> bytes:
        """The body fetched for ``request``; a failure is counted here, a success by the
        caller once the body has been read as what it should be."""
        try:
            return await asyncio.to_thread(self._fetch, request, cert)
        except RevocationUnavailable:
            self.tally.revocation(kind, request.full_url, "failed")
            raise

    def _fetch(self, request: urllib.request.Request, cert: x509.Certificate) -> bytes:
        if not request.full_url.startswith(("http://", "https://")):
            raise RevocationUnavailable(f"revocation URL {request.full_url} is not HTTP(S)")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError) as exc:
            raise RevocationUnavailable(
                f"revocation data for '{cert.subject.human_friendly}' could not be fetched from "
                f"{request.full_url} ({exc}); nothing was signed"
            ) from exc


def _ocsp_no_check(cert: x509.Certificate) -> bool:
    return any(
        ext["extn_id"].native == "ocsp_no_check" for ext in cert["tbs_certificate"]["extensions"]
    )
