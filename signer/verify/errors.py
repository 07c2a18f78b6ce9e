"""Errors of ``signer.verify``: configuration and service faults, never verdicts on documents.

A document that is damaged, forged or hostile is not an error: :func:`signer.verify.verify_pdf`
reports it (TOTAL-FAILED or INDETERMINATE with the reason). These exceptions are for what the
operator or the caller must fix: an unreadable trust anchor, a malformed fingerprint, a verifier
used after ``close()``. All derive from :class:`signer.errors.SigningError`, the package's root.
"""

from __future__ import annotations

from signer.errors import SigningError

__all__ = ["TrustAnchorInvalid", "VerificationError", "VerifierClosed"]


class VerificationError(SigningError):
    """Root of the verifier's errors (a :class:`SigningError`)."""


class TrustAnchorInvalid(VerificationError):
    """A configured trust anchor (PEM file or SHA-256 fingerprint) cannot be used."""

    field = "trust"


class VerifierClosed(VerificationError):
    """The :class:`~signer.verify.pool.Verifier` was closed; create a new one."""
