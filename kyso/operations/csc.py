"""The CSC facade's operations: standard remote-signing clients use kyso's HSM keys.

The HTTP layer (``kyso.csc.http``) converts the Cloud Signature Consortium API v2 (also the
v1.0.4 spellings) to calls of :class:`CscFacade` and back; everything that decides lives here.

Invariants:
- A caller is a configured ``[clients]`` entry. It gets an access token by OAuth2 client
  credentials (``client_id`` its name, ``client_secret`` its API token); tokens are random, held
  only as SHA-256 digests, and expire after ``csc.token_seconds``.
- A credential is a configured key (its alias is the ``credentialID``); a caller sees and uses
  only the keys whose ``clients`` name it (the rule of ``Sealing.authorised_key``), never the
  ledger's key. Another caller's credential is answered as unknown, and the refusal is ledgered.
- A SAD is bound to the caller, the credential, the hash algorithm and the exact multiset of
  hashes (so their count): every credential is SCAL 2. It is single use (consumed by the first
  ``signHash`` that presents it, whatever the outcome), expires after ``csc.sad_seconds``, and
  is held only as its SHA-256 digest. Nothing is signed unless every hash matches.
- Keys never leave the token: hashes are signed by the key ring's worker processes.
- Every signature made is one ``signature.sealed`` ledger event (details ``via=csc``, the hash)
  appended before the signatures are answered; a signature whose event cannot be written is not
  answered.
- An official (a configured client, by its name and API token) may grant another client access
  to the official's credentials: OAuth2 authorization code. The code is random, held only as a
  digest, single use, lives ``_CODE_SECONDS``, and is bound to the client, the ``redirect_uri``
  (loopback or listed in ``csc.redirect_uris``) and, when given, a PKCE S256 challenge; the
  access token it buys acts as the official (who sees only the official's credentials).
- SAD, access tokens, codes and client secrets never reach a log or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asn1crypto import x509

import audit
import hsm
from kyso.app import Application
from kyso.authz import Authenticator, Identity
from kyso.config import KeyConfig
from kyso.errors import (
    AuthenticationError,
    FailedPrecondition,
    NotFound,
    Overloaded,
    RequestInvalid,
)

__all__ = [
    "HASH_OIDS",
    "AuthorizationRequest",
    "Credential",
    "CscFacade",
    "IssuedGrant",
    "SignatureAlgorithm",
    "resolve_algorithm",
]

HASH_OIDS: dict[str, hsm.DigestAlgorithm] = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_HASH_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_RSA = "1.2.840.113549.1.1.1"
_EC = "1.2.840.10045.2.1"
# signAlgo values by key type: the combined OIDs name their hash; the bare key OIDs need
# hashAlgorithmOID. PSS is not offered (the key ring signs PKCS#1 v1.5 and ECDSA here).
_SIGN_ALGORITHMS: dict[str, dict[str, hsm.DigestAlgorithm | None]] = {
    "rsa": {
        "1.2.840.113549.1.1.11": "sha256",
        "1.2.840.113549.1.1.12": "sha384",
        "1.2.840.113549.1.1.13": "sha512",
        _RSA: None,
    },
    "ec": {
        "1.2.840.10045.4.3.2": "sha256",
        "1.2.840.10045.4.3.3": "sha384",
        "1.2.840.10045.4.3.4": "sha512",
        _EC: None,
    },
}
# How many live tokens and SADs one facade holds at most: a flood is refused, never stored.
_MAX_LIVE = 10_000
_CODE_SECONDS = 60.0
"""Lifetime of an OAuth2 authorization code."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A key as a CSC credential."""

    id: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: hsm.KeyInfo
    algorithms: tuple[str, ...]
    """The ``signAlgo`` OIDs accepted for this key."""
    description: str
    multisign: int
    """The most hashes one authorisation covers."""


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    """An access token or a SAD as handed out once (the facade keeps only its digest)."""

    value: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    digest: hsm.DigestAlgorithm


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The checked parameters of ``/oauth2/authorize`` (what the official is asked about)."""

    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str


@dataclass(frozen=True, slots=True)
class _Code:
    identity: Identity
    client_id: str
    redirect_uri: str
    code_challenge: str
    expires: float


@dataclass(frozen=True, slots=True)
class _Token:
    identity: Identity
    expires: float


@dataclass(frozen=True, slots=True)
class _Sad:
    client: str
    credential: str
    digest: hsm.DigestAlgorithm | None
    hashes: Counter[bytes]
    expires: float


def resolve_algorithm(key_type: str, sign_algo: str, hash_algo: str | None) -> SignatureAlgorithm:
    """The digest algorithm a ``signHash`` names, checked against the key's type."""
    offered = _SIGN_ALGORITHMS.get(key_type, {})
    if sign_algo not in offered:
        raise RequestInvalid(
            f"signAlgo {sign_algo} is not offered for this credential; use one of "
            + ", ".join(offered),
            field="signAlgo",
        )
    implied = offered[sign_algo]
    named = None
    if hash_algo:
        named = HASH_OIDS.get(hash_algo)
        if named is None:
            raise RequestInvalid(
                f"hashAlgorithmOID {hash_algo} is not supported; use SHA-256, SHA-384 or SHA-512",
                field="hashAlgorithmOID",
            )
    if implied and named and implied != named:
        raise RequestInvalid(
            f"hashAlgorithmOID names {named} but signAlgo {sign_algo} names {implied}",
            field="hashAlgorithmOID",
        )
    digest = implied or named
    if digest is None:
        raise RequestInvalid(
            f"signAlgo {sign_algo} needs hashAlgorithmOID", field="hashAlgorithmOID"
        )
    return SignatureAlgorithm(digest=digest)


class CscFacade:
    """Tokens, credentials, SADs and signatures of the CSC facade (see the module docstring)."""

    def __init__(self, app: Application, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._clock = clock
        self._settings = app.config.csc
        self._authenticator = Authenticator(app.config.clients)
        self._tokens: dict[bytes, _Token] = {}
        self._sads: dict[bytes, _Sad] = {}
        self._codes: dict[bytes, _Code] = {}

    # -- authentication -----------------------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str) -> IssuedGrant:
        """An access token for a configured client (OAuth2 client credentials grant)."""
        return self._grant_token(self._client(client_id, client_secret))

    def _grant_token(self, identity: Identity) -> IssuedGrant:
        now = self._clock()
        self._prune(now)
        if len(self._tokens) >= _MAX_LIVE:
            raise Overloaded("too many live access tokens; retry later", retry_after=5.0)
        value = secrets.token_urlsafe(32)
        lifetime = self._settings.token_seconds
        self._tokens[_digest(value)] = _Token(identity=identity, expires=now + lifetime)
        return IssuedGrant(value=value, expires_in=int(lifetime))

    def _client(self, client_id: str, client_secret: str) -> Identity:
        try:
            identity = self._authenticator.from_token(client_secret)
        except AuthenticationError:
            raise AuthenticationError("client_id or client_secret is not valid") from None
        if not hmac.compare_digest(identity.name.encode(), client_id.encode()):
            raise AuthenticationError("client_id or client_secret is not valid")
        return identity

    def authorization_request(
        self,
        *,
        response_type: str,
        client_id: str,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        code_challenge_method: str,
    ) -> AuthorizationRequest:
        """The parameters of an authorization request, checked (RequestInvalid names the field:
        such a request is answered on the page, never by redirecting to an unchecked URI)."""
        if client_id not in self._app.config.clients:
            raise RequestInvalid(f"client_id {client_id[:100]!r} is not known", field="client_id")
        if not self._redirect_allowed(redirect_uri):
            raise RequestInvalid(
                "redirect_uri must be a loopback address or one of csc.redirect_uris",
                field="redirect_uri",
            )
        if response_type != "code":
            raise RequestInvalid("only response_type=code", field="response_type")
        if code_challenge and code_challenge_method != "S256":
            raise RequestInvalid("code_challenge_method must be S256", field="code_challenge")
        if len(state) > 500 or len(code_challenge) > 128:
            raise RequestInvalid("state or code_challenge is too long", field="state")
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=code_challenge,
        )

    def _redirect_allowed(self, uri: str) -> bool:
        if uri in self._settings.redirect_uris:
            return True
        parsed = urllib.parse.urlsplit(uri)
        return (
            parsed.scheme == "http"
            and parsed.hostname in ("127.0.0.1", "::1", "localhost")
            and not parsed.fragment
            and not parsed.username
        )

    def issue_code(self, request: AuthorizationRequest, official: str, official_secret: str) -> str:
        """The official (a configured client, by name and API token) grants ``request``'s client
        access to the official's credentials: a single-use code for its ``redirect_uri``."""
        identity = self._client(official, official_secret)
        now = self._clock()
        self._prune(now)
        if len(self._codes) >= _MAX_LIVE:
            raise Overloaded("too many pending authorization codes; retry later", retry_after=5.0)
        value = secrets.token_urlsafe(32)
        self._codes[_digest(value)] = _Code(
            identity=identity,
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            expires=now + _CODE_SECONDS,
        )
        return value

    def exchange_code(
        self,
        client_id: str,
        client_secret: str,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> IssuedGrant:
        """An access token acting as the official who issued ``code`` (OAuth2 authorization
        code grant). ``AuthenticationError``: the client; ``FailedPrecondition``: the code."""
        self._client(client_id, client_secret)
        grant = self._codes.pop(_digest(code), None)  # single use, whatever follows
        if (
            grant is None
            or grant.expires <= self._clock()
            or not hmac.compare_digest(grant.client_id.encode(), client_id.encode())
            or grant.redirect_uri != redirect_uri
        ):
            raise FailedPrecondition(
                "the authorization code is not valid: it was used, has expired, or was issued "
                "to another client or redirect_uri"
            )
        if grant.code_challenge:
            computed = (
                base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if not hmac.compare_digest(computed, grant.code_challenge):
                raise FailedPrecondition("code_verifier does not match the code_challenge")
        return self._grant_token(grant.identity)

    @property
    def mutual_tls(self) -> bool:
        """Whether callers may authenticate by a TLS client certificate (``csc.client_ca``)."""
        return self._settings.client_ca is not None

    def caller_by_certificate(self, certificate_der: bytes) -> Identity:
        """The client whose ``certificate_sha256`` is this TLS client certificate's (the TLS
        layer has checked it against ``csc.client_ca``)."""
        if self._settings.client_ca is None:
            raise AuthenticationError("this facade does not take client certificates")
        return self._authenticator.from_certificate(certificate_der)

    def caller(self, access_token: str) -> Identity:
        """The identity an access token was issued to (AuthenticationError when unknown or old)."""
        token = self._tokens.get(_digest(access_token))
        if token is None or token.expires <= self._clock():
            raise AuthenticationError("the access token is not valid or has expired")
        return token.identity

    # -- credentials --------------------------------------------------------------------------

    def credential_ids(self, actor: Identity) -> list[str]:
        """The credentials ``actor`` may use: keys whose ``clients`` name it."""
        keyring = self._app.keyring
        if keyring is None:
            return []
        served = set(keyring.aliases())
        return [
            alias
            for alias, key in self._app.config.keys.items()
            if alias in served and self._usable(actor, alias, key)
        ]

    async def credential(self, actor: Identity, credential_id: str) -> Credential:
        """The credential ``credential_id`` if ``actor`` may use it (else NotFound, ledgered)."""
        key = self._app.config.keys.get(credential_id)
        keyring = self._app.keyring
        if (
            key is None
            or keyring is None
            or credential_id not in keyring.aliases()
            or not self._usable(actor, credential_id, key)
        ):
            if key is not None:
                await self._app.record_denied(
                    actor, "csc", f"credential {credential_id!r} is not the caller's"
                )
            raise NotFound(f"no credential {credential_id!r} for this client")
        info = keyring.key_info(credential_id)
        subject = keyring.certificate(credential_id).subject
        return Credential(
            id=credential_id,
            certificate=keyring.certificate(credential_id),
            chain=keyring.chain(credential_id),
            key=info,
            algorithms=tuple(_SIGN_ALGORITHMS[info.key_type]),
            description=key.organisation or subject.human_friendly,
            multisign=self._settings.max_batch,
        )

    def _usable(self, actor: Identity, alias: str, key: KeyConfig) -> bool:
        return alias != self._app.config.ledger.key and actor.name in key.clients

    # -- authorisation and signing ------------------------------------------------------------

    async def authorize(
        self,
        actor: Identity,
        credential_id: str,
        *,
        count: int,
        hashes: Sequence[bytes],
        hash_algo: str | None,
    ) -> IssuedGrant:
        """A SAD for exactly ``hashes`` (their count must be ``count``) with this credential."""
        await self.credential(actor, credential_id)
        if not hashes:
            raise RequestInvalid(
                "this credential is SCAL 2: authorise the hashes to sign (hashes)", field="hashes"
            )
        if count != len(hashes):
            raise RequestInvalid(
                f"numSignatures is {count} but {len(hashes)} hashes were given",
                field="numSignatures",
            )
        if count > self._settings.max_batch:
            raise RequestInvalid(
                f"at most {self._settings.max_batch} signatures per authorisation (multisign)",
                field="numSignatures",
            )
        digest = None
        if hash_algo:
            digest = HASH_OIDS.get(hash_algo)
            if digest is None:
                raise RequestInvalid(
                    f"hashAlgorithmOID {hash_algo} is not supported", field="hashAlgorithmOID"
                )
            _check_sizes(hashes, digest)
        now = self._clock()
        self._prune(now)
        if len(self._sads) >= _MAX_LIVE:
            raise Overloaded("too many live authorisations; retry later", retry_after=5.0)
        value = secrets.token_urlsafe(32)
        lifetime = self._settings.sad_seconds
        self._sads[_digest(value)] = _Sad(
            client=actor.name,
            credential=credential_id,
            digest=digest,
            hashes=Counter(hashes),
            expires=now + lifetime,
        )
        return IssuedGrant(value=value, expires_in=int(lifetime))

    async def sign_hashes(
        self,
        actor: Identity,
        credential_id: str,
        *,
        sad: str,
        hashes: Sequence[bytes],
        sign_algo: str,
        hash_algo: str | None,
    ) -> list[bytes]:
        """Sign ``hashes`` with the credential's key, if ``sad`` authorises exactly them."""
        credential = await self.credential(actor, credential_id)
        # Consumed before anything else is checked: a SAD is tried once, whatever happens.
        grant = self._sads.pop(_digest(sad), None)
        if (
            grant is None
            or grant.expires <= self._clock()
            or grant.client != actor.name
            or grant.credential != credential_id
        ):
            raise RequestInvalid(
                "the SAD is not valid: it was used, has expired or is for another credential",
                field="SAD",
            )
        algorithm = resolve_algorithm(credential.key.key_type, sign_algo, hash_algo)
        if grant.digest is not None and grant.digest != algorithm.digest:
            raise RequestInvalid("the SAD was given for another hash algorithm", field="SAD")
        _check_sizes(hashes, algorithm.digest)
        if Counter(hashes) != grant.hashes:
            raise RequestInvalid(
                "the hashes are not those the SAD authorises (their values or their count)",
                field="hashes",
            )
        keyring = self._app.keyring
        if keyring is None:
            raise FailedPrecondition("this server has no signing keys configured")
        signatures = await asyncio.gather(
            *(
                keyring.async_sign_digest(credential_id, value, digest_algorithm=algorithm.digest)
                for value in hashes
            )
        )
        unit = self._app.config.keys[credential_id].unit
        await asyncio.gather(
            *(
                self._app.events.record(
                    self._app.events.event(
                        audit.EventType.SIGNATURE_SEALED,
                        actor=actor,
                        unit=unit,
                        key=credential_id,
                        details={
                            "via": "csc",
                            "hash": value.hex(),
                            "hash_algorithm": algorithm.digest,
                        },
                    )
                )
                for value in hashes
            )
        )
        return list(signatures)

    def _prune(self, now: float) -> None:
        for store in (self._tokens, self._sads, self._codes):
            for digest in [d for d, entry in store.items() if entry.expires <= now]:
                del store[digest]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _check_sizes(hashes: Sequence[bytes], digest: str) -> None:
    size = _HASH_SIZES[digest]
    for index, value in enumerate(hashes):
        if len(value) != size:
            raise RequestInvalid(
                f"hash {index} has {len(value)} bytes; {digest} hashes have {size}",
                field="hashes",
            )
