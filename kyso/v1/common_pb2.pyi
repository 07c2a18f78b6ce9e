from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_WORKFLOW: _ClassVar[Role]
    ROLE_OFFICIAL: _ClassVar[Role]
    ROLE_CLERK: _ClassVar[Role]
    ROLE_AUDITOR: _ClassVar[Role]
    ROLE_HUB: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_WORKFLOW: Role
ROLE_OFFICIAL: Role
ROLE_CLERK: Role
ROLE_AUDITOR: Role
ROLE_HUB: Role
ROLE_OPERATOR: Role

class DocumentRef(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DocumentInput(_message.Message):
    __slots__ = ("content", "ref", "filename")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    ref: DocumentRef
    filename: str
    def __init__(self, content: _Optional[bytes] = ..., ref: _Optional[_Union[DocumentRef, _Mapping]] = ..., filename: _Optional[str] = ...) -> None: ...

class StoredDocument(_message.Message):
    __slots__ = ("ref", "sha256", "size")
    REF_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ref: DocumentRef
    sha256: str
    size: int
    def __init__(self, ref: _Optional[_Union[DocumentRef, _Mapping]] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...
