"""The signer's errors: one root, ``SigningError``, and a precise subclass per failure.

Messages are for a person: what is wrong and what to do. They never contain document bytes,
PINs or secrets. ``field`` names the request field at fault when there is one (the application
maps it to a ``BadRequest`` field violation).
"""

from __future__ import annotations

__all__ = [
    "CertificationForbidsSigning",
    "DocumentTooLarge",
    "FieldNotFound",
    "KeyUnavailable",
    "NotAPdf",
    "NotRenewable",
    "PageNotFound",
    "PdfCorrupt",
    "PdfEncrypted",
    "RectangleInvalid",
    "RevocationUnavailable",
    "SignatureValueInvalid",
    "SignerUnavailable",
    "SigningError",
    "StampImageInvalid",
    "TimestampUnavailable",
    "UnknownKeyAlias",
]


class SigningError(Exception):
    """Root of the signer's errors."""

    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class NotAPdf(SigningError):
    """The document does not start like a PDF."""

    field = "document"


class PdfCorrupt(SigningError):
    """The PDF is truncated or damaged beyond what the parser accepts."""

    field = "document"


class PdfEncrypted(SigningError):
    """The PDF is encrypted; kyso signs only unencrypted documents."""

    field = "document"


class CertificationForbidsSigning(SigningError):
    """The document carries a certification signature that allows no further signatures."""

    field = "document"


class DocumentTooLarge(SigningError):
    """The document exceeds the configured size limit."""

    field = "document"


class PageNotFound(SigningError):
    """The requested page does not exist in the document."""

    field = "page"


class RectangleInvalid(SigningError):
    """The signature rectangle is empty, inverted, or outside the page."""

    field = "rect"


class FieldNotFound(SigningError):
    """The named signature field does not exist, or is not an empty signature field."""

    field = "field_name"


class UnknownKeyAlias(SigningError):
    """No signing key is configured under the requested alias."""

    field = "key_alias"


class KeyUnavailable(SigningError):
    """The key's token could not sign (token down, PIN problem); see the cause."""


class StampImageInvalid(SigningError):
    """A configured stamp image cannot be read as a PNG."""


class TimestampUnavailable(SigningError):
    """No configured time-stamping authority answered; nothing was signed."""


class RevocationUnavailable(SigningError):
    """Revocation data (OCSP/CRL) for a certificate could not be obtained; nothing was signed."""


class NotRenewable(SigningError):
    """The document's evidence cannot be renewed or raised as asked (no PAdES signature, a
    level below B-LT, too large)."""

    field = "ref"


class SignatureValueInvalid(SigningError):
    """A signature value returned for completion does not verify against the certificate."""

    field = "signature_value"


class SignerUnavailable(SigningError):
    """No signing worker could take or finish the request (a worker died or is restarting).

    Nothing was signed; the request may be sent again.
    """
