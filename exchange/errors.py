"""The exchange package's errors: one root, precise subclasses.

Messages are written for a person: they name the element, unit or document at fault and, where it
helps, what to do. They never carry document bytes or secrets. ``field`` (when set) names the
request field or the XML path at fault, so the application can report it as a field violation.
"""

from __future__ import annotations

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


class ExchangeError(Exception):
    """Root of the exchange package's errors.

    ``field`` names the request field or XML path at fault, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidUnitCode(ExchangeError):
    """A unit code does not have the V1V2V3.Z1Z2.Y1Y2.MX1X2 form."""


class UnitNotFound(ExchangeError):
    """No unit with this code is in the directory."""


class DirectoryImportError(ExchangeError):
    """A directory CSV file cannot be imported (the message names the line)."""


class HubConfigError(ExchangeError):
    """The hub topology is inconsistent (unknown parent or peer, cycle, duplicate root)."""


class NoRoute(ExchangeError):
    """No hub serves the unit, or no hop leads towards the hub that does."""


class PackageInvalid(ExchangeError):
    """An edXML package or status packet is malformed or breaks a rule; ``field`` is its path."""


class PackageTooLarge(PackageInvalid):
    """A package is over the configured size limit."""


class AttachmentTooLarge(PackageInvalid):
    """An attachment (or what a ZIP-wrapped attachment unpacks to) is over its limit."""


class SignatureInvalid(ExchangeError):
    """The package's XML signature does not verify: the package was changed or is broken."""


class UntrustedSigner(ExchangeError):
    """The signature verifies but its certificate is not the sender's or has no trusted chain."""


class UnsignedPackageRefused(ExchangeError):
    """The package carries no signature and the policy requires one."""


class WeakSignatureRefused(ExchangeError):
    """The package is signed with a weak algorithm (SHA-1) and the policy refuses it."""


class SigningFailed(ExchangeError):
    """The signing key could not sign the package."""


class DuplicateDocument(ExchangeError):
    """The sender reused a DocumentId for a package with different content."""


class DeliveryNotFound(ExchangeError):
    """No delivery of this document to this unit exists at this hub."""


class InvalidStatusTransition(ExchangeError):
    """The status code cannot follow the delivery's current status."""
