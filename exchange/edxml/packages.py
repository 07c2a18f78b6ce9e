"""Building (write + sign) and opening (parse + verify + read signed content) edXML documents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from exchange.edxml.dsig import SignatureReport, SigningKey, TrustPolicy, sign_tree, verify_signed
from exchange.edxml.model import Package, StatusPacket
from exchange.edxml.reader import read_package, read_status
from exchange.edxml.safexml import Limits
from exchange.edxml.writer import package_tree, status_tree, write_package, write_status

__all__ = [
    "DEFAULT_LIMITS",
    "OpenedPackage",
    "OpenedStatus",
    "build_package",
    "build_status",
    "open_package",
    "open_status",
]

DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedPackage:
    """A verified package: read from the signed content only, with its signature report."""

    package: Package
    signature: SignatureReport
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedStatus:
    """A verified status packet, read from the signed content only."""

    status: StatusPacket
    signature: SignatureReport
    sha256: str


def build_package(package: Package, *, key: SigningKey | None) -> bytes:
    """The package's bytes in kyso's form, signed with ``key`` (unsigned when ``key`` is None)."""
    if key is None:
        return write_package(package)
    return sign_tree(package_tree(package), key=key)


def build_status(status: StatusPacket, *, key: SigningKey | None) -> bytes:
    """The status packet's bytes, signed with ``key`` (unsigned when ``key`` is None)."""
    if key is None:
        return write_status(status)
    return sign_tree(status_tree(status), key=key)


def open_package(
    data: bytes, *, policy: TrustPolicy, limits: Limits = DEFAULT_LIMITS
) -> OpenedPackage:
    """Parse, verify and read a package; everything returned comes from what was signed."""
    signed, report = verify_signed(data, policy=policy, limits=limits)
    return OpenedPackage(
        package=read_package(signed, limits=limits),
        signature=report,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def open_status(
    data: bytes, *, policy: TrustPolicy, limits: Limits = DEFAULT_LIMITS
) -> OpenedStatus:
    """Parse, verify and read a status packet from what was signed."""
    signed, report = verify_signed(data, policy=policy, limits=limits)
    return OpenedStatus(
        status=read_status(signed), signature=report, sha256=hashlib.sha256(data).hexdigest()
    )
