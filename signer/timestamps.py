"""RFC 3161 time-stamps from a configured list of TSAs, with failover and a timeout.

The TSAs are tried in order; a TSA that fails (network, HTTP, a refused or malformed reply)
makes the next one be tried. When none answers, ``TimestampUnavailable`` is raised and the
signature is abandoned: nothing half-signed leaves the signer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import tsp
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

from signer.errors import TimestampUnavailable

__all__ = ["FailoverTimeStamper", "TsaTally"]

_log = logging.getLogger(__name__)


@dataclass
class TsaTally:
    """What the TSAs did for an operator's metrics: requests by ``(url, outcome)`` (outcome
    ``ok``, ``failed`` or ``refused``) and the not-after of the certificate each TSA signed its
    last token with. Picklable, so a signing worker sends it back with each answer."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    certificate_not_after: dict[str, datetime] = field(default_factory=dict)

    def add(self, other: TsaTally) -> None:
        self.requests.update(other.requests)
        self.certificate_not_after.update(other.certificate_not_after)

    def __bool__(self) -> bool:
        return bool(self.requests or self.certificate_not_after)


class FailoverTimeStamper(TimeStamper):
    """A pyHanko ``TimeStamper`` over several HTTP TSAs (first that answers wins)."""

    def __init__(
        self, urls: Sequence[str], *, timeout: float, keep_connections: bool = False
    ) -> None:
        """``keep_connections``: one HTTP session per TSA for the life of this object (its
        requests must all run on one event loop, as in a renewal worker); otherwise a session
        (and its TLS context) per request."""
        if not urls:
            raise ValueError("at least one time-stamping authority URL is needed")
        super().__init__()  # type: ignore[no-untyped-call]
        self.urls = tuple(urls)
        self._clients = [
            HTTPTimeStamper(
                url,
                timeout=timeout,
                session=LazySession() if keep_connections else None,  # type: ignore[no-untyped-call]
            )
            for url in self.urls
        ]
        self._tally = TsaTally()

    def take_tally(self) -> TsaTally:
        """What happened since the last call (and start afresh)."""
        tally, self._tally = self._tally, TsaTally()
        return tally

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        failures: list[str] = []
        for client in self._clients:
            try:
                response = await client.async_request_tsa_response(req)
            except (TimestampRequestError, OSError) as exc:
                _log.warning("time-stamping authority %s failed: %s", client.url, exc)
                failures.append(f"{client.url}: {exc}")
                self._tally.requests[client.url, "failed"] += 1
                continue
            if response["status"]["status"].native not in ("granted", "granted_with_mods"):
                failures.append(f"{client.url}: refused ({response['status']['status'].native})")
                self._tally.requests[client.url, "refused"] += 1
                continue
            self._tally.requests[client.url, "ok"] += 1
            not_after = _signer_not_after(response)
            if not_after is not None:
                self._tally.certificate_not_after[client.url] = not_after
            return response
        raise TimestampUnavailable(
            "no time-stamping authority answered (" + "; ".join(failures) + "); nothing was "
            "signed. Try again later, or sign at level B-B if a time-stamp is not required."
        )


def _signer_not_after(response: tsp.TimeStampResp) -> datetime | None:
    """The not-after of the certificate that signed the response's token (matched by issuer
    and serial number among the token's certificates), or None when the token does not carry
    it."""
    try:
        signed_data = response["time_stamp_token"]["content"]
        sid = signed_data["signer_infos"][0]["sid"].chosen
        for choice in signed_data["certificates"]:
            certificate = choice.chosen
            if (
                certificate.issuer == sid["issuer"]
                and certificate.serial_number == sid["serial_number"].native
            ):
                not_after: datetime = certificate.not_valid_after
                return not_after
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None
    return None
