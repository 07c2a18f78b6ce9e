import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kyso.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExtendLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXTEND_LEVEL_UNSPECIFIED: _ClassVar[ExtendLevel]
    EXTEND_LEVEL_B_LT: _ClassVar[ExtendLevel]
    EXTEND_LEVEL_B_LTA: _ClassVar[ExtendLevel]
EXTEND_LEVEL_UNSPECIFIED: ExtendLevel
EXTEND_LEVEL_B_LT: ExtendLevel
EXTEND_LEVEL_B_LTA: ExtendLevel

class GetArchiveStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndingDocument(_message.Message):
    __slots__ = ("ref", "evidence_end", "reason")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_END_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    evidence_end: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ..., evidence_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class GetArchiveStatusResponse(_message.Message):
    __slots__ = ("now", "documents", "within_30_days", "within_90_days", "within_365_days", "ended", "no_end", "failing", "renewed", "unreadable", "margin_days", "soonest")
    NOW_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    WITHIN_30_DAYS_FIELD_NUMBER: _ClassVar[int]
    WITHIN_90_DAYS_FIELD_NUMBER: _ClassVar[int]
    WITHIN_365_DAYS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    NO_END_FIELD_NUMBER: _ClassVar[int]
    FAILING_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    SOONEST_FIELD_NUMBER: _ClassVar[int]
    now: _timestamp_pb2.Timestamp
    documents: int
    within_30_days: int
    within_90_days: int
    within_365_days: int
    ended: int
    no_end: int
    failing: int
    renewed: int
    unreadable: int
    margin_days: int
    soonest: _containers.RepeatedCompositeFieldContainer[EndingDocument]
    def __init__(self, now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., documents: _Optional[int] = ..., within_30_days: _Optional[int] = ..., within_90_days: _Optional[int] = ..., within_365_days: _Optional[int] = ..., ended: _Optional[int] = ..., no_end: _Optional[int] = ..., failing: _Optional[int] = ..., renewed: _Optional[int] = ..., unreadable: _Optional[int] = ..., margin_days: _Optional[int] = ..., soonest: _Optional[_Iterable[_Union[EndingDocument, _Mapping]]] = ...) -> None: ...

class ExtendDocumentRequest(_message.Message):
    __slots__ = ("ref", "level")
    REF_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    level: ExtendLevel
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ..., level: _Optional[_Union[ExtendLevel, str]] = ...) -> None: ...

class ExtendDocumentResponse(_message.Message):
    __slots__ = ("previous", "current", "level", "created", "evidence_end")
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_END_FIELD_NUMBER: _ClassVar[int]
    previous: _common_pb2.DocumentRef
    current: _common_pb2.DocumentRef
    level: str
    created: bool
    evidence_end: _timestamp_pb2.Timestamp
    def __init__(self, previous: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ..., current: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ..., level: _Optional[str] = ..., created: _Optional[bool] = ..., evidence_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunRenewalRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunRenewalResponse(_message.Message):
    __slots__ = ("scanned", "renewed", "failed", "errors")
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    scanned: int
    renewed: int
    failed: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scanned: _Optional[int] = ..., renewed: _Optional[int] = ..., failed: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.DocumentRef
    def __init__(self, ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_common_pb2.DocumentRef]
    def __init__(self, versions: _Optional[_Iterable[_Union[_common_pb2.DocumentRef, _Mapping]]] = ...) -> None: ...
