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

class Indication(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDICATION_UNSPECIFIED: _ClassVar[Indication]
    INDICATION_TOTAL_PASSED: _ClassVar[Indication]
    INDICATION_INDETERMINATE: _ClassVar[Indication]
    INDICATION_TOTAL_FAILED: _ClassVar[Indication]
INDICATION_UNSPECIFIED: Indication
INDICATION_TOTAL_PASSED: Indication
INDICATION_INDETERMINATE: Indication
INDICATION_TOTAL_FAILED: Indication

class VerifyPdfRequest(_message.Message):
    __slots__ = ("document", "language", "online")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.DocumentInput
    language: str
    online: bool
    def __init__(self, document: _Optional[_Union[_common_pb2.DocumentInput, _Mapping]] = ..., language: _Optional[str] = ..., online: _Optional[bool] = ...) -> None: ...

class VerifyPackageRequest(_message.Message):
    __slots__ = ("package", "language")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    package: _common_pb2.DocumentInput
    language: str
    def __init__(self, package: _Optional[_Union[_common_pb2.DocumentInput, _Mapping]] = ..., language: _Optional[str] = ...) -> None: ...

class SignatureReport(_message.Message):
    __slots__ = ("field_name", "indication", "sub_indication", "signer_subject", "signer_serial", "issuer_subject", "claimed_signing_time", "timestamp_time", "intact", "trusted", "revocation_status", "modification_level", "level_reached", "algorithm", "problems", "covers_whole_document")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    INDICATION_FIELD_NUMBER: _ClassVar[int]
    SUB_INDICATION_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SERIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_SIGNING_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TIME_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    MODIFICATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_REACHED_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    COVERS_WHOLE_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    indication: Indication
    sub_indication: str
    signer_subject: str
    signer_serial: str
    issuer_subject: str
    claimed_signing_time: _timestamp_pb2.Timestamp
    timestamp_time: _timestamp_pb2.Timestamp
    intact: bool
    trusted: bool
    revocation_status: str
    modification_level: str
    level_reached: str
    algorithm: str
    problems: _containers.RepeatedScalarFieldContainer[str]
    covers_whole_document: bool
    def __init__(self, field_name: _Optional[str] = ..., indication: _Optional[_Union[Indication, str]] = ..., sub_indication: _Optional[str] = ..., signer_subject: _Optional[str] = ..., signer_serial: _Optional[str] = ..., issuer_subject: _Optional[str] = ..., claimed_signing_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timestamp_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., intact: _Optional[bool] = ..., trusted: _Optional[bool] = ..., revocation_status: _Optional[str] = ..., modification_level: _Optional[str] = ..., level_reached: _Optional[str] = ..., algorithm: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., covers_whole_document: _Optional[bool] = ...) -> None: ...

class VerificationReport(_message.Message):
    __slots__ = ("indication", "sub_indication", "signatures", "findings", "document_sha256", "report_json", "report_text")
    INDICATION_FIELD_NUMBER: _ClassVar[int]
    SUB_INDICATION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_TEXT_FIELD_NUMBER: _ClassVar[int]
    indication: Indication
    sub_indication: str
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureReport]
    findings: _containers.RepeatedScalarFieldContainer[str]
    document_sha256: str
    report_json: str
    report_text: str
    def __init__(self, indication: _Optional[_Union[Indication, str]] = ..., sub_indication: _Optional[str] = ..., signatures: _Optional[_Iterable[_Union[SignatureReport, _Mapping]]] = ..., findings: _Optional[_Iterable[str]] = ..., document_sha256: _Optional[str] = ..., report_json: _Optional[str] = ..., report_text: _Optional[str] = ...) -> None: ...
