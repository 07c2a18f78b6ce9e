"""RFC 3161 time-stamps from a configured list of TSAs, with failover and a timeout.

The TSAs are tried in order; a TSA that fails (network, HTTP, a refused or malformed reply)
makes the next one be tried. When none answers, ``TimestampUnavailable`` is raised and the
signature is abandoned: nothing half-signed leaves the signer. Every request is counted in the
process's ``signer.fetches.FetchTally`` as it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import tsp
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

from signer.errors import TimestampUnavailable
from signer.fetches import FetchTally

__all__ = ["FailoverTimeStamper"]

_log = logging.getLogger(__name__)


class FailoverTimeStamper(TimeStamper):
    """A pyHanko ``TimeStamper`` over several HTTP TSAs (first that answers wins)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float,
        keep_connections: bool = False,
        tally: FetchTally | None = None,
    ) -> None:
        """``keep_connections``: one HTTP session per TSA for the life of this object (its
        requests must all run on one event loop, as in a renewal worker); otherwise a session
        (and its TLS context) per request. ``tally``: where each request is counted (a tally
        of its own when not given)."""
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
        self.tally = tally if tally is not None else FetchTally()

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        failures: list[str] = []
        for client in self._clients:
            try:
                response = await client.async_request_tsa_response(req)
            except (TimestampRequestError, OSError) as exc:
                _log.warning("time-stamping authority %s failed: %s", client.url, exc)
                failures.append(f"{client.url}: {exc}")
                self.tally.tsa(client.url, "failed")
                continue
            if response["status"]["status"].native not in ("granted", "granted_with_mods"):
                failures.append(f"{client.url}: refused ({response['status']['status'].native})")
                self.tally.tsa(client.url, "refused")
                continue
            self.tally.tsa(client.url, "ok", not_after=_signer_not_after(response))
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
