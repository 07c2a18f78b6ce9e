import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kyso.v1 import common_pb2 as _common_pb2
from kyso.v1 import signing_pb2 as _signing_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadMetadata(_message.Message):
    __slots__ = ("filename", "content_type", "sha256", "size")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    sha256: str
    size: int
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ...) -> None: ...

class DownloadChunk(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ...) -> None: ...

class SignatureSummary(_message.Message):
    __slots__ = ("signer", "key_alias", "level", "signed_at", "signature_level")
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    KEY_ALIAS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    signer: str
    key_alias: str
    level: str
    signed_at: _timestamp_pb2.Timestamp
    signature_level: _signing_pb2.SignatureLevel
    def __init__(self, signer: _Optional[str] = ..., key_alias: _Optional[str] = ..., level: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature_level: _Optional[_Union[_signing_pb2.SignatureLevel, str]] = ...) -> None: ...

class DocumentInfo(_message.Message):
    __slots__ = ("document", "content_type", "filename", "uploader", "unit_code", "created_at", "signatures")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    UPLOADER_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.StoredDocument
    content_type: str
    filename: str
    uploader: str
    unit_code: str
    created_at: _timestamp_pb2.Timestamp
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureSummary]
    def __init__(self, document: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ..., content_type: _Optional[str] = ..., filename: _Optional[str] = ..., uploader: _Optional[str] = ..., unit_code: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signatures: _Optional[_Iterable[_Union[SignatureSummary, _Mapping]]] = ...) -> None: ...

class BeginDirectUploadRequest(_message.Message):
    __slots__ = ("filename", "content_type", "sha256", "size")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    sha256: str
    size: int
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class BeginDirectUploadResponse(_message.Message):
    __slots__ = ("upload_id", "url", "headers", "expires_at")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    url: str
    headers: _containers.ScalarMap[str, str]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, upload_id: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteDirectUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class CompleteDirectUploadResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.StoredDocument
    def __init__(self, document: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ...) -> None: ...

class GetDownloadUrlRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ...) -> None: ...

class GetDownloadUrlResponse(_message.Message):
    __slots__ = ("url", "sha256", "size", "expires_at")
    URL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    url: str
    sha256: str
    size: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, url: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
