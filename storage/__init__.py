"""Object storage for kyso: a content-addressed, write-once port and its adapters.

``FilesystemStore`` is the embedded default, ``S3Store`` the production path (MinIO, Ceph's
RADOS Gateway, any S3). Both satisfy ``ObjectStore``; see ``storage.port`` for the invariants.
This package imports nothing of the project.
"""

from storage.errors import (
    CredentialsRejected,
    DeclaredHashMismatch,
    IntegrityError,
    InvalidMetadata,
    InvalidRef,
    ObjectNotFound,
    StagedObjectMissing,
    StorageConfigError,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UnsupportedOperation,
)
from storage.filesystem import FilesystemStore
from storage.model import (
    MAX_METADATA_BYTES,
    ObjectRef,
    Retention,
    RetentionMode,
    RetentionState,
    StoredObject,
)
from storage.port import (
    BatchObjectStore,
    DirectTransferStore,
    ObjectStore,
    PresignedPut,
    PutItem,
    put_many,
)
from storage.reader import ObjectReader
from storage.s3 import S3Config, S3Credentials, S3Store
from storage.streams import StagedFile

__all__ = [
    "MAX_METADATA_BYTES",
    "BatchObjectStore",
    "CredentialsRejected",
    "DeclaredHashMismatch",
    "DirectTransferStore",
    "FilesystemStore",
    "IntegrityError",
    "InvalidMetadata",
    "InvalidRef",
    "ObjectNotFound",
    "ObjectReader",
    "ObjectRef",
    "ObjectStore",
    "PresignedPut",
    "PutItem",
    "Retention",
    "RetentionMode",
    "RetentionState",
    "S3Config",
    "S3Credentials",
    "S3Store",
    "StagedFile",
    "StagedObjectMissing",
    "StorageConfigError",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "StoredObject",
    "UnsupportedOperation",
    "put_many",
]
