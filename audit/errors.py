"""The audit package's exceptions: one root, ``AuditError``, and precise subclasses.

Messages say what is wrong and what to do; they never carry document bytes or secrets.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "EventNotFound",
    "HeadNotFound",
    "HeadSignatureInvalid",
    "HeadSignerUntrusted",
    "HeadSigningFailed",
    "InvalidEntry",
    "InvalidEvent",
    "InvalidQuery",
    "InvalidTreeSize",
    "LedgerClosed",
    "LedgerCorrupt",
    "LedgerUnavailable",
    "ProofInvalid",
]


class AuditError(Exception):
    """Root of the audit package's errors."""


class InvalidEvent(AuditError, ValueError):
    """An event handed to the ledger is malformed (a field has the wrong type or form)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidEntry(AuditError):
    """Stored or exported entry bytes are not a canonical encoding of a ledger entry."""


class EventNotFound(AuditError, LookupError):
    """No entry has the requested index (the ledger is smaller)."""


class HeadNotFound(AuditError, LookupError):
    """No signed tree head matches the request (none signed yet, or none of that size)."""


class InvalidTreeSize(AuditError, ValueError):
    """A tree size, index or range is out of bounds for the request or the ledger."""


class InvalidQuery(AuditError, ValueError):
    """A search of the ledger names no document, or names one in a form it cannot have."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ProofInvalid(AuditError):
    """An inclusion or consistency proof does not verify."""


class HeadSignatureInvalid(AuditError):
    """A signed tree head's signature does not verify with its certificate."""


class HeadSignerUntrusted(HeadSignatureInvalid):
    """A tree head is signed by a certificate that is not among the trusted ones."""


class HeadSigningFailed(AuditError):
    """The head signer (HSM key) failed, or produced a signature that does not verify."""


class LedgerCorrupt(AuditError):
    """The stored ledger contradicts itself (a missing node, a gap, a hash that disagrees)."""


class LedgerUnavailable(AuditError):
    """The ledger's database failed or is not set up."""


class LedgerClosed(AuditError):
    """An event was submitted to a group-commit appender that is closed."""
