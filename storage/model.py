"""Value types of the storage port: references, stored-object descriptions, retention.

Invariants: an ``ObjectRef`` always holds 64 lowercase hex digits (its text form is
``sha256/<hex>``); a ``StoredObject``'s ``sha256`` equals its ref's digest; user metadata keys
are lowercase tokens outside the reserved ``kyso-`` prefix, values are text, and the whole
metadata stays under ``MAX_METADATA_BYTES`` (S3's limit for user metadata).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from storage.errors import InvalidMetadata, InvalidRef

__all__ = [
    "MAX_METADATA_BYTES",
    "ObjectRef",
    "Retention",
    "RetentionMode",
    "RetentionState",
    "StoredObject",
    "check_metadata",
    "parse_sha256",
]

MAX_METADATA_BYTES = 2048
_HEX64 = re.compile(r"[0-9a-f]{64}")
_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_RESERVED_PREFIX = "kyso-"


def parse_sha256(value: str, *, what: str = "sha256") -> str:
    """Return ``value`` if it is 64 lowercase hex digits, else raise InvalidRef naming ``what``."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidRef(f"{what} must be 64 lowercase hexadecimal digits (a SHA-256 digest)")
    return value


@dataclass(frozen=True, order=True)
class ObjectRef:
    """The content address of a stored object: ``sha256/<64 lowercase hex>``."""

    sha256: str

    def __post_init__(self) -> None:
        parse_sha256(self.sha256, what="the digest of an object reference")

    @classmethod
    def parse(cls, text: str | ObjectRef) -> ObjectRef:
        """Parse ``sha256/<hex>``; raise InvalidRef for anything else."""
        if isinstance(text, ObjectRef):
            return text
        if not isinstance(text, str) or not text.startswith("sha256/"):
            raise InvalidRef("an object reference must look like sha256/<64 lowercase hex digits>")
        return cls(text.removeprefix("sha256/"))

    def __str__(self) -> str:
        return f"sha256/{self.sha256}"


class RetentionMode(enum.Enum):
    """S3 object-lock modes. COMPLIANCE cannot be shortened or removed by anyone."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True)
class Retention:
    """A request to retain an object for ``days`` days from now."""

    mode: RetentionMode
    days: int

    def __post_init__(self) -> None:
        if not isinstance(self.days, int) or not 1 <= self.days <= 36_500:
            raise ValueError("retention days must be a whole number between 1 and 36500")


@dataclass(frozen=True)
class RetentionState:
    """The retention an object carries: its mode and the instant until which it is locked."""

    mode: RetentionMode
    retain_until: datetime


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about one object. The first writer's metadata is kept."""

    ref: ObjectRef
    size: int
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    created: datetime | None = None
    retention: RetentionState | None = None

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of the content (the ref's digest)."""
        return self.ref.sha256


def check_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    """Validate user metadata and return a read-only copy; raise InvalidMetadata."""
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise InvalidMetadata(
                f"metadata key {key!r} is not allowed: use 1-64 characters a-z, 0-9, '-' "
                "or '_', starting with a letter or digit"
            )
        if key.startswith(_RESERVED_PREFIX):
            raise InvalidMetadata(f"metadata key {key!r} uses the reserved prefix 'kyso-'")
        if not isinstance(value, str):
            raise InvalidMetadata(f"metadata value of {key!r} must be text")
        total += len(key) + len(value.encode("utf-8"))
    if total > MAX_METADATA_BYTES:
        raise InvalidMetadata(
            f"metadata is {total} bytes; at most {MAX_METADATA_BYTES} bytes are stored "
            "with an object (keep large descriptions in the catalogue)"
        )
    return MappingProxyType(dict(metadata))
