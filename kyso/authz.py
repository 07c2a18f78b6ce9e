"""Who may call what: the one table of roles per RPC, and identities.

Invariants:
- Every method of every kyso.v1 service has a row in :data:`ALLOWED_ROLES` (a test walks the
  service descriptors to prove it). A method without a row is refused, never allowed.
- Health and reflection are the only unauthenticated services: they describe the service,
  not its data.
- The auditor role reads (verification, ledger, document metadata) and cannot sign or send.
- The inspector role is hub-wide inspection for operators: it tracks any document and lists
  the quarantine, changes nothing, and every inspection is a ledger event (``hub.inspected``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kyso.config import ClientConfig, normalise_fingerprint
from kyso.errors import AuthenticationError, ConfigError, PermissionDenied

__all__ = [
    "ALLOWED_ROLES",
    "PUBLIC_SERVICES",
    "Authenticator",
    "Identity",
    "authorize",
]

PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

_ALL = frozenset({"workflow", "official", "clerk", "auditor", "hub", "operator", "inspector"})
_READERS = frozenset({"workflow", "clerk", "official", "auditor", "hub"})
_SUBSCRIBERS = frozenset({"workflow", "clerk", "operator"})

ALLOWED_ROLES: Mapping[str, frozenset[str]] = {
    "/kyso.v1.SigningService/SignPdf": frozenset({"workflow", "clerk"}),
    "/kyso.v1.SigningService/PrepareSignature": frozenset({"workflow", "clerk"}),
    "/kyso.v1.SigningService/CompleteSignature": frozenset({"official", "workflow"}),
    "/kyso.v1.SigningService/CompleteSignatures": frozenset({"official", "workflow"}),
    "/kyso.v1.SigningService/ListPendingSignatures": frozenset({"official", "workflow"}),
    "/kyso.v1.SigningService/CancelSignature": frozenset({"workflow", "clerk", "official"}),
    "/kyso.v1.SigningService/ClaimSignature": frozenset({"official", "workflow"}),
    "/kyso.v1.SigningService/GetSignature": frozenset({"workflow", "clerk", "official"}),
    "/kyso.v1.VerificationService/VerifyPdf": frozenset({"auditor", "workflow", "clerk", "hub"}),
    "/kyso.v1.VerificationService/VerifyPackage": frozenset(
        {"auditor", "workflow", "clerk", "hub"}
    ),
    "/kyso.v1.DocumentService/Upload": frozenset({"workflow", "clerk", "hub"}),
    "/kyso.v1.DocumentService/Download": _READERS,
    "/kyso.v1.DocumentService/Stat": _READERS,
    "/kyso.v1.DocumentService/BeginDirectUpload": frozenset({"workflow", "clerk", "hub"}),
    "/kyso.v1.DocumentService/CompleteDirectUpload": frozenset({"workflow", "clerk", "hub"}),
    "/kyso.v1.DocumentService/GetDownloadUrl": _READERS,
    "/kyso.v1.ExchangeService/Send": frozenset({"workflow", "clerk"}),
    "/kyso.v1.ExchangeService/Receive": frozenset({"workflow", "clerk"}),
    "/kyso.v1.ExchangeService/Ack": frozenset({"workflow", "clerk"}),
    "/kyso.v1.ExchangeService/UpdateStatus": frozenset({"workflow", "clerk"}),
    "/kyso.v1.ExchangeService/Track": frozenset({"workflow", "clerk", "auditor", "inspector"}),
    "/kyso.v1.ExchangeService/Forward": frozenset({"hub"}),
    "/kyso.v1.ExchangeService/ListQuarantined": frozenset({"operator", "inspector"}),
    "/kyso.v1.ExchangeService/ReleaseQuarantined": frozenset({"operator"}),
    "/kyso.v1.DirectoryService/GetUnit": _ALL,
    "/kyso.v1.DirectoryService/ListChildren": _ALL,
    "/kyso.v1.DirectoryService/Search": _ALL,
    "/kyso.v1.DirectoryService/Route": _ALL,
    "/kyso.v1.AuditService/GetEvent": frozenset({"auditor", "operator"}),
    "/kyso.v1.AuditService/GetTreeHead": frozenset({"auditor", "operator"}),
    "/kyso.v1.AuditService/GetInclusionProof": frozenset({"auditor", "operator"}),
    "/kyso.v1.AuditService/GetConsistencyProof": frozenset({"auditor", "operator"}),
    "/kyso.v1.AuditService/GetDocumentHistory": frozenset({"auditor", "operator"}),
    "/kyso.v1.NotificationService/CreateEndpoint": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/ListEndpoints": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/DeleteEndpoint": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/RotateEndpointSecret": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/SendTestEvent": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/ReplayEvents": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/ListDeliveries": _SUBSCRIBERS,
    "/kyso.v1.NotificationService/SetCitizenConsent": frozenset({"workflow", "clerk"}),
    "/kyso.v1.NotificationService/ListCitizenMessages": frozenset({"operator"}),
    "/kyso.v1.NotificationService/WatchEvents": frozenset({"official", "workflow", "clerk"}),
    "/kyso.v1.ArchiveService/GetArchiveStatus": frozenset({"auditor", "operator"}),
    "/kyso.v1.ArchiveService/ExtendDocument": frozenset({"workflow", "clerk"}),
    "/kyso.v1.ArchiveService/RunRenewal": frozenset({"operator"}),
    "/kyso.v1.ArchiveService/ListVersions": _READERS,
}


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: its configured name, unit and roles, and how this call came.

    ``certificate_sha256``: the SHA-256 of the TLS client certificate the call presented ("" when
    none); ``loopback``: the call came from a loopback address. Hub links check both (a hub
    must present its pinned certificate; see ``kyso.operations.exchange``).
    """

    name: str
    unit: str
    roles: frozenset[str]
    certificate_sha256: str = ""
    loopback: bool = False


def authorize(identity: Identity, method: str) -> None:
    """Raise PermissionDenied unless one of the identity's roles may call ``method``."""
    allowed = ALLOWED_ROLES.get(method)
    if allowed is None:
        raise PermissionDenied(f"{method} is not an RPC this server authorises")
    if not identity.roles & allowed:
        needed = ", ".join(sorted(allowed))
        raise PermissionDenied(
            f"client {identity.name!r} may not call {method}; it needs: {needed}"
        )


class Authenticator:
    """Maps a bearer token or a client certificate to the configured client.

    Only SHA-256 digests of tokens are held in memory; comparison is constant-time.
    """

    def __init__(self, clients: Mapping[str, ClientConfig]) -> None:
        self._by_token: dict[bytes, Identity] = {}
        self._by_certificate: dict[str, Identity] = {}
        for name, client in clients.items():
            identity = Identity(name=name, unit=client.unit, roles=frozenset(client.roles))
            if client.token_file is not None:
                self._by_token[_token_digest_from_file(client.token_file, name)] = identity
            if client.token_sha256:
                self._by_token[bytes.fromhex(client.token_sha256)] = identity
            if client.certificate_sha256:
                self._by_certificate[normalise_fingerprint(client.certificate_sha256)] = identity

    def identify(self, *, certificate_der: bytes | None, token: str | None) -> Identity:
        """The caller from what it presented: a pinned client certificate identifies it; a
        certificate that no client pins is only transport (issued by ``tls.client_ca``), so
        the API token decides. A pinned certificate with the token of another client is
        refused: one call, one identity."""
        by_certificate = None
        if certificate_der is not None:
            fingerprint = hashlib.sha256(certificate_der).hexdigest()
            by_certificate = self._by_certificate.get(fingerprint)
        if token is not None:
            by_token = self.from_token(token)
            if by_certificate is not None and by_certificate != by_token:
                raise AuthenticationError(
                    f"the client certificate is client {by_certificate.name!r} but the API token"
                    f" is client {by_token.name!r}; send one client's credentials"
                )
            return by_token
        if certificate_der is not None:
            return self.from_certificate(certificate_der)
        raise AuthenticationError(
            "no credentials: send 'authorization: Bearer <API token>' or use a client certificate"
        )

    def from_token(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode()).digest()
        match = None
        for known, identity in self._by_token.items():
            if hmac.compare_digest(known, digest):
                match = identity
        if match is None:
            raise AuthenticationError("the API token is not valid for this server")
        return match

    def from_certificate(self, certificate_der: bytes) -> Identity:
        fingerprint = hashlib.sha256(certificate_der).hexdigest()
        identity = self._by_certificate.get(fingerprint)
        if identity is None:
            raise AuthenticationError(
                f"the client certificate (SHA-256 {fingerprint}) is not a configured client"
            )
        return identity


def _token_digest_from_file(path: Path, name: str) -> bytes:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"clients.{name}.token_file: cannot read {path} ({exc.strerror})"
        ) from None
    if not token:
        raise ConfigError(f"clients.{name}.token_file: {path} is empty")
    return hashlib.sha256(token.encode()).digest()
