"""A driver for Cloud Signature Consortium API servers, v1.0.4 and v2.

Authentication is OAuth2: ``client_credentials`` for a service's own credentials, or an
``authorization_code`` the official granted (``authorization_url`` → the provider's login and
consent → ``exchange_code``). Signing is ``credentials/authorize`` with the SAD bound to the
hashes (v2 ``hashes`` + ``hashAlgorithmOID``, v1.0.4 ``hash``; SCAL 1 credentials get them too,
which the specification allows), then ``signatures/signHash``. A batch larger than the
credential's ``multisign`` goes in as few approvals as it allows; every approval must answer
exactly one signature per hash, or the whole batch fails.

A CSC server answers synchronously: ``submit`` returns APPROVED with the signatures, or raises.
Access tokens and SADs live in this object's memory only; they never reach an error or a log.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asn1crypto import x509

from signer.remote.base import (
    Approval,
    ProviderRefused,
    ProviderUnavailable,
    RemoteCredential,
    Transaction,
    check_batch,
)
from signer.remote.http import post_form, post_json

__all__ = ["CscProvider", "CscSettings", "pkce_pair"]

_SHA256 = "2.16.840.1.101.3.4.2.1"
_SIGN_ALGORITHMS = {"rsa": "1.2.840.113549.1.1.11", "ec": "1.2.840.10045.4.3.2"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CscSettings:
    """Where the server is and how to authenticate (secrets are read through callables)."""

    name: str
    base_url: str
    """What precedes ``/csc/<version>/`` (and ``/oauth2/token`` unless ``token_url`` is set)."""
    api_version: Literal["v1", "v2"] = "v2"
    client_id: str = ""
    client_secret: Callable[[], str] = field(default=lambda: "", repr=False)
    token_url: str = ""
    grant: Literal["client_credentials", "authorization_code"] = "client_credentials"
    pin: Callable[[], str] | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``code_verifier`` and its S256 ``code_challenge`` (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class CscProvider:
    """``RemoteProvider`` over a CSC server (see the module docstring)."""

    answers_at_submit = True

    def __init__(self, settings: CscSettings) -> None:
        self.name = settings.name
        self._s = settings
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self._context = (
            ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else None
        )

    # -- OAuth2 -------------------------------------------------------------------------------

    @property
    def _token_url(self) -> str:
        return self._s.token_url or f"{self._s.base_url.rstrip('/')}/oauth2/token"

    @property
    def needs_grant(self) -> bool:
        """Whether an official must grant access (authorization code) before signing."""
        with self._lock:
            live = self._token is not None and self._token[1] > time.monotonic() + 5
        return self._s.grant == "authorization_code" and not live

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str = "", scope: str = "service"
    ) -> str:
        """Where to send the official to grant access (OAuth2 authorization code; with
        ``code_challenge``, PKCE S256 — see :func:`pkce_pair`)."""
        params = {
            "response_type": "code",
            "client_id": self._s.client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
        }
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        query = urllib.parse.urlencode(params)
        return f"{self._s.base_url.rstrip('/')}/oauth2/authorize?{query}"

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str = "") -> None:
        """Trade the official's authorization code for an access token (kept in memory)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._s.client_id,
            "client_secret": self._s.client_secret(),
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        answer = post_form(self._token_url, form, timeout=self._s.timeout, context=self._context)
        with self._lock:
            self._store_token(answer)

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > time.monotonic() + 5:
                return self._token[0]
            if self._s.grant != "client_credentials":
                raise ProviderRefused(
                    f"{self.name}: no access token; the official must grant access first "
                    "(OAuth2 authorization code)"
                )
            self._store_token(
                post_form(
                    self._token_url,
                    {
                        "grant_type": "client_credentials",
                        "client_id": self._s.client_id,
                        "client_secret": self._s.client_secret(),
                    },
                    timeout=self._s.timeout,
                    context=self._context,
                )
            )
            assert self._token is not None
            return self._token[0]

    def _store_token(self, answer: dict[str, Any]) -> None:
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderUnavailable(f"{self.name}: the token endpoint gave no access_token")
        lifetime = answer.get("expires_in", 300)
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else 300.0
        self._token = (token, time.monotonic() + lifetime)

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._s.base_url.rstrip('/')}/csc/{self._s.api_version}/{method}"
        return post_json(
            url,
            body,
            headers={"Authorization": f"Bearer {self._access_token()}"},
            timeout=self._s.timeout,
            context=self._context,
        )

    # -- credentials --------------------------------------------------------------------------

    def credential(self, user: str) -> RemoteCredential:
        """The credential named ``user`` among the caller's, else the user's first one."""
        listed = self._call("credentials/list", {"userID": user} if user else {})
        ids = listed.get("credentialIDs")
        if not isinstance(ids, list) or not ids:
            raise ProviderRefused(f"{self.name}: no credential for user {user!r}")
        chosen = user if user in ids else str(ids[0])
        info = self._call(
            "credentials/info", {"credentialID": chosen, "certificates": "chain", "certInfo": False}
        )
        try:
            certificates = [
                x509.Certificate.load(base64.b64decode(c)) for c in info["cert"]["certificates"]
            ]
            multisign = int(info.get("multisign", 1))
            scal = int(info.get("SCAL", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(
                f"{self.name}: credentials/info for {chosen!r} is not usable ({exc})"
            ) from None
        if not certificates:
            raise ProviderUnavailable(f"{self.name}: credential {chosen!r} has no certificate")
        return RemoteCredential(
            id=chosen,
            certificate=certificates[0],
            chain=tuple(certificates[1:]),
            multisign=max(1, multisign),
            scal=scal,
        )

    # -- signing ------------------------------------------------------------------------------

    def submit(
        self, user: str, credential: RemoteCredential, hashes: Sequence[bytes], description: str
    ) -> Transaction:
        signatures: list[bytes] = []
        size = credential.multisign
        for start in range(0, len(hashes), size):
            signatures += self._approve_and_sign(
                credential, hashes[start : start + size], description
            )
        return Transaction(
            reference=f"csc-{secrets.token_hex(8)}",
            approval=Approval.APPROVED,
            signatures=check_batch(hashes, signatures),
        )

    def status(self, user: str, reference: str) -> Transaction:
        # CSC answers at submit; a transaction not completed then (the service stopped in
        # between) has nothing to fetch: its SAD was single use.
        return Transaction(
            reference=reference, approval=Approval.EXPIRED, reason="no answer was kept"
        )

    def _approve_and_sign(
        self, credential: RemoteCredential, hashes: Sequence[bytes], description: str
    ) -> tuple[bytes, ...]:
        encoded = [base64.b64encode(h).decode() for h in hashes]
        v2 = self._s.api_version == "v2"
        authorize: dict[str, Any] = {
            "credentialID": credential.id,
            "numSignatures": len(hashes),
            ("hashes" if v2 else "hash"): encoded,
            "description": description[:500],
        }
        if v2:
            authorize["hashAlgorithmOID"] = _SHA256
        if self._s.pin is not None:
            authorize["PIN"] = self._s.pin()
        sad = self._call("credentials/authorize", authorize).get("SAD")
        if not isinstance(sad, str) or not sad:
            raise ProviderUnavailable(f"{self.name}: credentials/authorize gave no SAD")
        algorithm = _SIGN_ALGORITHMS.get(credential.certificate.public_key.algorithm)
        if algorithm is None:
            raise ProviderRefused(f"{self.name}: the credential's key type is not supported")
        sign: dict[str, Any] = {
            "credentialID": credential.id,
            "SAD": sad,
            ("hashes" if v2 else "hash"): encoded,
            ("hashAlgorithmOID" if v2 else "hashAlgo"): _SHA256,
            "signAlgo": algorithm,
        }
        answer = self._call("signatures/signHash", sign)
        values = answer.get("signatures")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ProviderUnavailable(f"{self.name}: signatures/signHash gave no signatures")
        try:
            decoded = [base64.b64decode(v, validate=True) for v in values]
        except ValueError:
            raise ProviderUnavailable(f"{self.name}: a signature is not base64") from None
        return check_batch(hashes, decoded)
