"""The port every remote-signing provider implements, and its errors.

A provider signs *hashes* with a user's remote key after the user approves (on a phone, by
OTP, or — for a service credential — at once). ``submit`` asks for one approval of a batch of
hashes and returns a transaction; ``status`` reads it again. A transaction is APPROVED only
with exactly one signature per hash submitted, in order: a count mismatch fails the whole batch
(``BatchMismatch``), nothing of it is used.

Secrets (client secrets, access tokens, SAD, OTP, PINs) are held in memory only, never put in
an error message, a log record or a transaction's ``reference``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from asn1crypto import x509

from signer.errors import SigningError

__all__ = [
    "Approval",
    "BatchMismatch",
    "ProviderRefused",
    "ProviderUnavailable",
    "RemoteCredential",
    "RemoteError",
    "RemoteProvider",
    "Transaction",
]


class RemoteError(SigningError):
    """A remote-signing provider failed or refused."""


class ProviderUnavailable(RemoteError):
    """The provider could not be reached or answered garbage; retry later."""


class ProviderRefused(RemoteError):
    """The provider refused the request (bad credentials, unknown user, invalid request)."""


class BatchMismatch(RemoteError):
    """The provider answered a number of signatures other than the number of hashes."""


class Approval(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RemoteCredential:
    """A user's remote key: its certificate and issuers, how many hashes one approval covers
    (``multisign``) and the signature algorithm it offers for SHA-256."""

    id: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    multisign: int = 1
    scal: int = 2


@dataclass(frozen=True, slots=True)
class Transaction:
    """A batch submitted for approval. ``reference``: the provider's transaction id (not a
    secret; stored so that a restarted service can ask again)."""

    reference: str
    approval: Approval
    signatures: tuple[bytes, ...] = field(default=(), repr=False)
    reason: str = ""


class RemoteProvider(Protocol):
    """What a remote-signing driver offers (``signer.remote.csc``, ``signer.remote.smartca``)."""

    name: str
    answers_at_submit: bool
    """True for a provider that signs in ``submit`` (CSC): ``status`` has nothing to fetch, so a
    request left waiting is only ever expired, once its time is up."""

    def credential(self, user: str) -> RemoteCredential:
        """The user's signing credential (raises ``ProviderRefused`` when there is none)."""
        ...

    def submit(
        self, user: str, credential: RemoteCredential, hashes: Sequence[bytes], description: str
    ) -> Transaction:
        """Ask the user to approve signing ``hashes`` (SHA-256) in one approval."""
        ...

    def status(self, user: str, reference: str) -> Transaction:
        """The transaction's state now (APPROVED carries the signatures)."""
        ...


def check_batch(hashes: Sequence[bytes], signatures: Sequence[bytes]) -> tuple[bytes, ...]:
    """``signatures`` if there is exactly one per hash, else ``BatchMismatch``."""
    if len(signatures) != len(hashes):
        raise BatchMismatch(
            f"the provider returned {len(signatures)} signatures for {len(hashes)} hashes; "
            "the whole batch is refused"
        )
    return tuple(signatures)
