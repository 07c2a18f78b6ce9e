"""JSON over HTTP(S) for the drivers: the standard library's client, with a timeout, a size
limit on answers, and errors that never carry request bodies (they hold secrets)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from signer.remote.base import ProviderRefused, ProviderUnavailable

__all__ = ["MAX_ANSWER_BYTES", "post_form", "post_json"]

MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The largest answer read from a provider (a certificate chain and 100 signatures fit)."""


def post_json(
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    data = json.dumps(body).encode()
    return _post(url, data, "application/json", headers or {}, timeout, context)


def post_form(
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    from urllib.parse import urlencode

    data = urlencode(form).encode()
    return _post(url, data, "application/x-www-form-urlencoded", headers or {}, timeout, context)


def _post(
    url: str,
    data: bytes,
    content_type: str,
    headers: Mapping[str, str],
    timeout: float,
    context: ssl.SSLContext | None,
) -> dict[str, Any]:
    if not url.startswith(("https://", "http://")):
        raise ProviderRefused(f"{url}: only http and https endpoints are used")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=data,
        method="POST",
        headers={"Content-Type": content_type, "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            raw = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc)
        if exc.code in (429,) or exc.code >= 500:
            raise ProviderUnavailable(f"{url}: HTTP {exc.code} {detail}") from None
        raise ProviderRefused(f"{url}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderUnavailable(f"{url}: cannot reach the provider ({exc})") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise ProviderUnavailable(f"{url}: the answer is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProviderUnavailable(f"{url}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ProviderUnavailable(f"{url}: the answer is not a JSON object")
    return answer


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The provider's own error code and description (never our request), shortened."""
    try:
        body = json.loads(exc.read(16 * 1024))
    except (ValueError, OSError, RecursionError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get(k, ""))[:300] for k in ("error", "error_description", "message")]
    return ": ".join(p for p in parts if p)
