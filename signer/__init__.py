"""signer: PAdES signatures on PDFs with keys held by ``hsm``.

- ``PdfSigningService``: sign at B-B, B-T, B-LT or B-LTA with a ``seal``, ``text`` or no stamp;
- ``SigningError`` and its precise subclasses (``signer.errors``).

Imports ``hsm`` only (and ``storage`` where documents are stored); never ``kyso`` or protobuf.

The signing names (the service, its settings, appearances) are imported on first use: a process
that only verifies (``signer.verify``, its worker processes, ``kyso verify``) does not pay for
the signing stack (appearances, fonts, images) it never calls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from signer.errors import (
    CertificationForbidsSigning,
    DocumentTooLarge,
    FieldNotFound,
    KeyUnavailable,
    NotAPdf,
    NotRenewable,
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

if TYPE_CHECKING:
    from signer.appearance import AppearanceKind
    from signer.service import (
        KeyProfile,
        Level,
        PdfSigningService,
        SignedDocument,
        SignerSettings,
        SignRequest,
    )

_LAZY = {
    "AppearanceKind": "signer.appearance",
    "KeyProfile": "signer.service",
    "Level": "signer.service",
    "PdfSigningService": "signer.service",
    "SignedDocument": "signer.service",
    "SignerSettings": "signer.service",
    "SignRequest": "signer.service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'signer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AppearanceKind",
    "CertificationForbidsSigning",
    "DocumentTooLarge",
    "FieldNotFound",
    "KeyProfile",
    "KeyUnavailable",
    "Level",
    "NotAPdf",
    "NotRenewable",
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
