"""One guarded HTTP POST: to an address the rules allow, checked where the socket connected.

A webhook target is given by a URL an API client chose, so a careless or hostile one could make
the server call its own private network (SSRF). The rules (``signer.verify.FetchRules``, the
same as for online certificate fetching):
- HTTPS, or HTTP only to a loopback address when the operator allows it (development);
- the host's every resolved address is checked, the socket connects to a checked address, and
  the address the socket actually connected to is checked again (DNS rebinding): loopback,
  private, link-local and other non-global addresses are refused unless allow-listed;
- redirects are not followed (a 3xx is an answer like any other, not a delivery);
- one timeout bounds connecting, sending and reading; at most 64 KiB of the answer is read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from signer.verify import FetchRules

__all__ = ["Answer", "TargetRefused", "check_url", "post"]

_MAX_ANSWER = 64 * 1024


class TargetRefused(Exception):
    """The target may not be called (scheme, address); says which rule refused it."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: float | None
    body: bytes
    peer: str


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address == "localhost"


def check_url(url: str, *, http_loopback: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an allowed URL shape; raises ``TargetRefused``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused(f"{url!r} is not an https:// URL with a host")
    if parts.username or parts.password:
        raise TargetRefused("the URL must not carry a user name or password")
    if parts.scheme == "http" and not (http_loopback and _loopback(parts.hostname)):
        raise TargetRefused(
            "webhook targets must use https:// (http:// only to a loopback address, in"
            " development, with [notify] webhook_http_loopback = true)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused(f"{url!r} has an invalid port") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    rules: FetchRules,
    http_loopback: bool,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """POST ``body`` to ``url`` under the rules. Raises ``TargetRefused`` (not allowed) or
    ``OSError`` (could not connect, timed out, TLS failed)."""
    scheme, host, port, path = check_url(url, http_loopback=http_loopback)
    deadline = time.monotonic() + timeout
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allowed = [info for info in infos if rules.address_allowed(host, str(info[4][0]))]
    if not allowed:
        shown = ", ".join(sorted({str(info[4][0]) for info in infos}))
        raise TargetRefused(
            f"{host} resolves to {shown}: loopback, private and link-local addresses are"
            " refused unless listed in [notify] webhook_allow"
        )
    sock: socket.socket | None = None
    last: OSError | None = None
    for family, kind, proto, _, address in allowed:
        candidate = socket.socket(family, kind, proto)
        candidate.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            candidate.connect(address)
        except OSError as exc:
            candidate.close()
            last = exc
            continue
        sock = candidate
        break
    if sock is None:
        raise last or OSError(f"cannot connect to {host}:{port}")
    try:
        peer = str(sock.getpeername()[0])
        if not rules.address_allowed(host, peer):
            raise TargetRefused(f"{host} connected to {peer}, which is not allowed")
        if scheme == "http" and not _loopback(peer):
            raise TargetRefused(f"http:// is allowed to loopback only, not to {peer}")
        if scheme == "https":
            tls = context or ssl.create_default_context()
            sock = tls.wrap_socket(sock, server_hostname=host)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        conn.request("POST", path, body=body, headers={**headers, "user-agent": "kyso-webhooks"})
        response = conn.getresponse()
        data = response.read(_MAX_ANSWER)
        retry = response.getheader("retry-after")
        return Answer(
            status=response.status,
            retry_after=float(retry) if retry and retry.strip().isdigit() else None,
            body=data,
            peer=peer,
        )
    finally:
        sock.close()
