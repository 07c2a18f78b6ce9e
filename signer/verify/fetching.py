"""Online fetching that a document cannot point at the verifier's own network.

A PDF names the URLs it wants fetched: the issuer (AIA), OCSP and CRL addresses inside the
certificates it carries. A server that fetches whatever a caller's document names can be made to
call its own private network. With :class:`FetchRules`, a fetch goes ahead only when

- its URL is on the operator's allow-list, or appears in a certificate that chains to a
  configured trust anchor (the anchors included): an untrusted certificate's URLs are not
  fetched; and
- every address its host resolves to is a public one (not loopback, private, link-local,
  shared, multicast or reserved), unless the host, its network or a URL prefix on it is listed.

The address is checked where the connection is made (the resolver), so a name that resolves to
a private address at the last moment is refused too. Refusals are ``FetchRefused``, a network
error to the validator: the revocation data is missing, and the report says what was refused.

The same HTTP session counts every OCSP request and CRL download it makes into a
``signer.fetches.FetchTally`` (its trace hooks see each request start, fail, or deliver its whole
body): ``ok``; ``failed`` (a network or HTTP error, a timeout, a body cut off, a response that
cannot be read); ``refused`` (an OCSP status other than successful); ``blocked`` (refused by the
rules above, before any connection). A request abandoned by the validator (cancelled because
another responder answered first) is not counted; nor are issuer-certificate downloads (AIA),
which are not revocation requests. Requests are told apart by the ``Accept`` header pyHanko sends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from asn1crypto import crl, ocsp, pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession
from pyhanko_certvalidator.fetchers.common_utils import gather_aia_issuer_urls

from signer.fetches import FetchTally, Outcome, RevocationKind

__all__ = ["FetchRefused", "FetchRules", "fetcher_backend", "urls_of_trusted"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchRefused(aiohttp.ClientConnectionError):
    """A fetch the rules do not allow (raised before any connection is made)."""


@dataclass(frozen=True, slots=True)
class FetchRules:
    """What a verifier may fetch. ``allow``: URL prefixes (``http://ocsp.ca.vn/``), host names
    (``ca.gov.vn``), addresses or networks (``10.1.0.0/16``) the operator lists.

    Raises ``ValueError`` for an entry that is none of those.
    """

    allow: tuple[str, ...] = ()
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[_Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = [_parse_entry(entry) for entry in self.allow]
        prefixes = tuple(e for e in entries if isinstance(e, str) and "://" in e)
        hosts = {e for e in entries if isinstance(e, str) and "://" not in e}
        hosts.update((urlsplit(p).hostname or "").lower() for p in prefixes)
        object.__setattr__(self, "_prefixes", prefixes)
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_networks", tuple(e for e in entries if not isinstance(e, str)))

    def url_allowed(self, url: str, trusted: frozenset[str]) -> bool:
        """The URL is in a trusted certificate, or listed (by prefix or host)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        listed = url.startswith(self._prefixes) or self._listed_host(parts.hostname)
        return url in trusted or listed

    def address_allowed(self, host: str, address: str) -> bool:
        """``host`` may be reached at ``address``: a public address, or a listed host/network."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_global and not ip.is_multicast:
            return True
        return self._listed_host(host) or any(ip in network for network in self._networks)

    def _listed_host(self, host: str) -> bool:
        host = host.lower().strip("[]")
        if host in self._hosts:
            return True
        if not _is_address(host):
            return False
        ip = ipaddress.ip_address(host)
        return any(ip in network for network in self._networks)


def _parse_entry(entry: str) -> str | _Network:
    text = entry.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{entry!r}: a URL prefix must be http:// or https:// with a host")
        return text
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    if not text or any(c in text for c in "/ @?#"):
        raise ValueError(f"{entry!r} is not a URL prefix, a host name, an address or a network")
    return text.lower()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def urls_of_trusted(
    anchors: Iterable[x509.Certificate], certificates: Iterable[x509.Certificate]
) -> frozenset[str]:
    """The AIA, OCSP and CRL URLs of the anchors and of every certificate among
    ``certificates`` that chains to one of them (issuer name and signature checked)."""
    trusted = list(anchors)
    pending = [c for c in certificates if c not in trusted]
    grew = True
    while grew:
        grew = False
        for cert in list(pending):
            if any(_issued_by(cert, issuer) for issuer in trusted):
                trusted.append(cert)
                pending.remove(cert)
                grew = True
    urls: set[str] = set()
    for cert in trusted:
        urls.update(cert.ocsp_urls)
        urls.update(gather_aia_issuer_urls(cert))
        for point in [*cert.crl_distribution_points, *cert.delta_crl_distribution_points]:
            if point.url:
                urls.add(point.url)
    return frozenset(urls)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        child = cx509.load_der_x509_certificate(cert.dump())
        child.verify_directly_issued_by(cx509.load_der_x509_certificate(issuer.dump()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class _GuardedResolver(AbstractResolver):
    """The system resolver, keeping only the addresses the rules allow for the host."""

    def __init__(self, rules: FetchRules) -> None:
        self._rules = rules
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._rules.address_allowed(host, r["host"])]
        if not allowed:
            raise FetchRefused(
                f"{host} resolves only to non-public addresses; list it in "
                "[trust] fetch_allow to fetch from it"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _Request(SimpleNamespace):
    """One request's trace context: what it fetches (None: not a revocation request) and
    whether it has been counted."""

    kind: RevocationKind | None
    url: str
    counted: bool


class _GuardedSession(LazySession):
    """pyHanko's lazily created HTTP session, with the rules in its resolver and request hook,
    and every revocation request counted in ``tally`` (see the module docstring)."""

    def __init__(self, rules: FetchRules, trusted: frozenset[str], tally: FetchTally) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._rules = rules
        self._trusted = trusted
        self._tally = tally
        self._started: list[_Request] = []

    def get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            hooks = aiohttp.TraceConfig(trace_config_ctx_factory=_Request)
            hooks.on_request_start.append(self._check_request)
            hooks.on_request_exception.append(self._failed)
            hooks.on_response_chunk_received.append(self._received)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=_GuardedResolver(self._rules)),
                trace_configs=[hooks],
            )
        session: aiohttp.ClientSession = self._session
        return session

    async def close(self) -> None:
        # A request that got its headers but never its whole body (cut off, timed out while
        # reading) has no hook of its own: it is counted here, when the document is done.
        for request in self._started:
            self._count(request, "failed")
        self._started.clear()
        await super().close()  # type: ignore[no-untyped-call]

    def _count(self, request: _Request, outcome: Outcome) -> None:
        if request.kind is not None and not request.counted:
            request.counted = True
            self._tally.revocation(request.kind, request.url, outcome)

    async def _check_request(
        self,
        session: aiohttp.ClientSession,
        context: Any,  # a _Request (trace_config_ctx_factory)
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        url = str(params.url)
        context.kind = _kind(params.headers.get("Accept", ""))
        context.url = url
        context.counted = False
        if not self._rules.url_allowed(url, self._trusted):
            self._count(context, "blocked")
            raise FetchRefused(
                f"not fetched: {url} is neither in a certificate that chains to a trust anchor "
                "nor in [trust] fetch_allow"
            )
        host = params.url.host or ""
        # An address written in the URL is not resolved, so it is checked here.
        if _is_address(host.strip("[]")) and not self._rules.address_allowed(
            host, host.strip("[]")
        ):
            self._count(context, "blocked")
            raise FetchRefused(f"not fetched: {url} is a non-public address")
        self._started.append(context)

    async def _failed(
        self,
        session: aiohttp.ClientSession,
        context: Any,  # a _Request (trace_config_ctx_factory)
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        error = params.exception
        if isinstance(error, asyncio.CancelledError):
            context.counted = True  # abandoned by the validator, not failed by the responder
        elif isinstance(error, FetchRefused) or isinstance(error.__cause__, FetchRefused):
            self._count(context, "blocked")  # by the resolver: only non-public addresses
        else:
            self._count(context, "failed")

    async def _received(
        self,
        session: aiohttp.ClientSession,
        context: Any,  # a _Request (trace_config_ctx_factory)
        params: aiohttp.TraceResponseChunkReceivedParams,
    ) -> None:
        # aiohttp sends this once per ``read()``, with the whole body: pyHanko reads it so.
        if context.kind is not None:
            self._count(context, _outcome(context.kind, params.chunk))


def _kind(accept: str) -> RevocationKind | None:
    """What pyHanko asks for, by the ``Accept`` header its fetchers send."""
    if "application/ocsp-response" in accept:
        return "ocsp"
    if "application/pkix-crl" in accept:
        return "crl"
    return None


def _outcome(kind: RevocationKind, body: bytes) -> Outcome:
    """How a delivered answer counts: readable, an OCSP refusal, or unreadable."""
    try:
        if kind == "ocsp":
            response = ocsp.OCSPResponse.load(body)
            if response["response_status"].native != "successful":
                return "refused"
            readable = bool(response.basic_ocsp_response["tbs_response_data"]["responses"])
        else:
            if pem.detect(body):
                body = pem.unarmor(body)[2]
            tbs = crl.CertificateList.load(body)["tbs_cert_list"]
            readable = tbs["this_update"].native is not None
    except (ValueError, KeyError, TypeError):
        return "failed"
    return "ok" if readable else "failed"


def fetcher_backend(
    rules: FetchRules | None,
    *,
    trusted: frozenset[str],
    timeout: float,
    tally: FetchTally | None = None,
) -> AIOHttpFetcherBackend:
    """pyHanko's fetcher backend, guarded by ``rules`` (unguarded when None: a verifier run by
    a person on their own machine, where the document's URLs are theirs to follow, and nothing
    is counted). ``tally``: where its revocation requests are counted (one of its own when not
    given)."""
    if rules is None:
        return AIOHttpFetcherBackend(per_request_timeout=timeout)
    session = _GuardedSession(rules, trusted, tally if tally is not None else FetchTally())
    return AIOHttpFetcherBackend(session=session, per_request_timeout=timeout)  # type: ignore[arg-type]
