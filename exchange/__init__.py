"""exchange: edXML documents routed between units across the levels of government.

- ``exchange.directory``: units (code, name, parent, level, kind, hub), CSV import/export,
  search with or without diacritics, and ``route`` (where a message goes next from a hub);
- ``exchange.hubs``: the configured hub topology;
- ``exchange.edxml``: packages and status packets — hardened parsing, one written form,
  enveloped XML-DSig signing and verification;
- ``exchange.routing``: the hub's routing and delivery state machine (``Router``);
- ``exchange.schema``: tables and migrations;
- ``exchange.adapters``: the signing-key port over ``hsm.KeyRing`` and the package store over
  ``storage.ObjectStore`` — the only modules that import other packages of the project.
"""

from exchange.errors import (
    AttachmentTooLarge,
    DeliveryNotFound,
    DirectoryImportError,
    DuplicateDocument,
    ExchangeError,
    HubConfigError,
    InvalidStatusTransition,
    InvalidUnitCode,
    NoRoute,
    PackageInvalid,
    PackageTooLarge,
    SignatureInvalid,
    SigningFailed,
    UnitNotFound,
    UnsignedPackageRefused,
    UntrustedSigner,
    WeakSignatureRefused,
)

__all__ = [
    "AttachmentTooLarge",
    "DeliveryNotFound",
    "DirectoryImportError",
    "DuplicateDocument",
    "ExchangeError",
    "HubConfigError",
    "InvalidStatusTransition",
    "InvalidUnitCode",
    "NoRoute",
    "PackageInvalid",
    "PackageTooLarge",
    "SignatureInvalid",
    "SigningFailed",
    "UnitNotFound",
    "UnsignedPackageRefused",
    "UntrustedSigner",
    "WeakSignatureRefused",
]
