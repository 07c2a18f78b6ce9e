"""signer: PAdES signatures on PDFs with keys held by ``hsm``.

- ``PdfSigningService``: sign at B-B, B-T, B-LT or B-LTA with a ``seal``, ``text`` or no stamp;
- ``SigningError`` and its precise subclasses (``signer.errors``).

Imports ``hsm`` only (and ``storage`` where documents are stored); never ``kyso`` or protobuf.
"""

from signer.appearance import AppearanceKind
from signer.errors import (
    CertificationForbidsSigning,
    DocumentTooLarge,
    FieldNotFound,
    KeyUnavailable,
    NotAPdf,
    PageNotFound,
    PdfCorrupt,
    PdfEncrypted,
    RectangleInvalid,
    RevocationUnavailable,
    SignatureValueInvalid,
    SignerUnavailable,
    SigningError,
    StampImageInvalid,
    TimestampUnavailable,
    UnknownKeyAlias,
)
from signer.service import (
    KeyProfile,
    Level,
    PdfSigningService,
    SignedDocument,
    SignerSettings,
    SignRequest,
)

__all__ = [
    "AppearanceKind",
    "CertificationForbidsSigning",
    "DocumentTooLarge",
    "FieldNotFound",
    "KeyProfile",
    "KeyUnavailable",
    "Level",
    "NotAPdf",
    "PageNotFound",
    "PdfCorrupt",
    "PdfEncrypted",
    "PdfSigningService",
    "RectangleInvalid",
    "RevocationUnavailable",
    "SignRequest",
    "SignatureValueInvalid",
    "SignedDocument",
    "SignerSettings",
    "SignerUnavailable",
    "SigningError",
    "StampImageInvalid",
    "TimestampUnavailable",
    "UnknownKeyAlias",
]
