"""The storage package's errors: one root, one subclass per thing a caller can act on.

Messages say what is wrong and what to do; they never contain credentials or document bytes.
The application maps these classes to gRPC status codes (``StorageUnavailable`` → UNAVAILABLE,
``StorageFull`` → RESOURCE_EXHAUSTED, ``ObjectNotFound`` → NOT_FOUND, ``InvalidRef``,
``InvalidMetadata`` and ``DeclaredHashMismatch`` → INVALID_ARGUMENT,
``IntegrityError`` → DATA_LOSS, ``StagedObjectMissing`` → FAILED_PRECONDITION).
"""

from __future__ import annotations

__all__ = [
    "CredentialsRejected",
    "DeclaredHashMismatch",
    "IntegrityError",
    "InvalidMetadata",
    "InvalidRef",
    "ObjectNotFound",
    "StagedObjectMissing",
    "StorageConfigError",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "UnsupportedOperation",
]


class StorageError(Exception):
    """Root of every error raised by the storage package."""


class InvalidRef(StorageError):
    """A reference (or a declared digest) is not of the form ``sha256/<64 lowercase hex>``."""


class InvalidMetadata(StorageError):
    """User metadata breaks the rules (key syntax, reserved prefix, total size)."""


class ObjectNotFound(StorageError):
    """No object is stored under the reference."""


class IntegrityError(StorageError):
    """Stored bytes do not hash to their reference: the copy is corrupt and no data is returned."""


class DeclaredHashMismatch(StorageError):
    """The client declared a SHA-256 that the uploaded bytes do not have; nothing was stored."""


class StagedObjectMissing(StorageError):
    """A direct upload's staging object is not there: the client has not sent its bytes (yet)."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or answered with a transient failure; retry later."""


class StorageFull(StorageError):
    """The backend is out of space or over quota; nothing partial was left behind."""


class StorageConfigError(StorageError):
    """The storage configuration is wrong (paths, bucket, endpoint, TLS, credentials source)."""


class CredentialsRejected(StorageConfigError):
    """The S3 endpoint refused the access key or the request signature."""


class UnsupportedOperation(StorageError):
    """The adapter cannot do this (for example a presigned URL from the filesystem adapter)."""
