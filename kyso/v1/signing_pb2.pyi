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

class SignatureLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_LEVEL_UNSPECIFIED: _ClassVar[SignatureLevel]
    SIGNATURE_LEVEL_B_B: _ClassVar[SignatureLevel]
    SIGNATURE_LEVEL_B_T: _ClassVar[SignatureLevel]
    SIGNATURE_LEVEL_B_LT: _ClassVar[SignatureLevel]
    SIGNATURE_LEVEL_B_LTA: _ClassVar[SignatureLevel]

class Appearance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPEARANCE_UNSPECIFIED: _ClassVar[Appearance]
    APPEARANCE_NONE: _ClassVar[Appearance]
    APPEARANCE_SEAL: _ClassVar[Appearance]
    APPEARANCE_TEXT: _ClassVar[Appearance]

class SignInput(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGN_INPUT_UNSPECIFIED: _ClassVar[SignInput]
    SIGN_INPUT_DIGEST: _ClassVar[SignInput]
SIGNATURE_LEVEL_UNSPECIFIED: SignatureLevel
SIGNATURE_LEVEL_B_B: SignatureLevel
SIGNATURE_LEVEL_B_T: SignatureLevel
SIGNATURE_LEVEL_B_LT: SignatureLevel
SIGNATURE_LEVEL_B_LTA: SignatureLevel
APPEARANCE_UNSPECIFIED: Appearance
APPEARANCE_NONE: Appearance
APPEARANCE_SEAL: Appearance
APPEARANCE_TEXT: Appearance
SIGN_INPUT_UNSPECIFIED: SignInput
SIGN_INPUT_DIGEST: SignInput

class Placement(_message.Message):
    __slots__ = ("field_name", "rect")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    RECT_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    rect: PageRect
    def __init__(self, field_name: _Optional[str] = ..., rect: _Optional[_Union[PageRect, _Mapping]] = ...) -> None: ...

class PageRect(_message.Message):
    __slots__ = ("page", "x1", "y1", "x2", "y2")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    page: int
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, page: _Optional[int] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class SignPdfRequest(_message.Message):
    __slots__ = ("document", "key_alias", "level", "appearance", "placement", "reason", "location", "contact", "certify", "request_id")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_ALIAS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CERTIFY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.DocumentInput
    key_alias: str
    level: SignatureLevel
    appearance: Appearance
    placement: Placement
    reason: str
    location: str
    contact: str
    certify: bool
    request_id: str
    def __init__(self, document: _Optional[_Union[_common_pb2.DocumentInput, _Mapping]] = ..., key_alias: _Optional[str] = ..., level: _Optional[_Union[SignatureLevel, str]] = ..., appearance: _Optional[_Union[Appearance, str]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., reason: _Optional[str] = ..., location: _Optional[str] = ..., contact: _Optional[str] = ..., certify: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignPdfResponse(_message.Message):
    __slots__ = ("document", "content", "level", "ledger_index")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEDGER_INDEX_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.StoredDocument
    content: bytes
    level: SignatureLevel
    ledger_index: int
    def __init__(self, document: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ..., content: _Optional[bytes] = ..., level: _Optional[_Union[SignatureLevel, str]] = ..., ledger_index: _Optional[int] = ...) -> None: ...

class PrepareSignatureRequest(_message.Message):
    __slots__ = ("document", "certificate", "chain", "appearance", "placement", "level", "reason", "location", "title")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    APPEARANCE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.DocumentInput
    certificate: bytes
    chain: _containers.RepeatedScalarFieldContainer[bytes]
    appearance: Appearance
    placement: Placement
    level: SignatureLevel
    reason: str
    location: str
    title: str
    def __init__(self, document: _Optional[_Union[_common_pb2.DocumentInput, _Mapping]] = ..., certificate: _Optional[bytes] = ..., chain: _Optional[_Iterable[bytes]] = ..., appearance: _Optional[_Union[Appearance, str]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., level: _Optional[_Union[SignatureLevel, str]] = ..., reason: _Optional[str] = ..., location: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class PrepareSignatureResponse(_message.Message):
    __slots__ = ("session_id", "sign_input", "data_to_sign", "digest_algorithm", "signature_mechanism", "expires_at", "document_sha256", "level")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGN_INPUT_FIELD_NUMBER: _ClassVar[int]
    DATA_TO_SIGN_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MECHANISM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sign_input: SignInput
    data_to_sign: bytes
    digest_algorithm: str
    signature_mechanism: str
    expires_at: _timestamp_pb2.Timestamp
    document_sha256: str
    level: SignatureLevel
    def __init__(self, session_id: _Optional[str] = ..., sign_input: _Optional[_Union[SignInput, str]] = ..., data_to_sign: _Optional[bytes] = ..., digest_algorithm: _Optional[str] = ..., signature_mechanism: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., document_sha256: _Optional[str] = ..., level: _Optional[_Union[SignatureLevel, str]] = ...) -> None: ...

class CompleteSignatureRequest(_message.Message):
    __slots__ = ("session_id", "signature_value")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_VALUE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    signature_value: bytes
    def __init__(self, session_id: _Optional[str] = ..., signature_value: _Optional[bytes] = ...) -> None: ...

class CompleteSignatureResponse(_message.Message):
    __slots__ = ("document", "level", "ledger_index")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEDGER_INDEX_FIELD_NUMBER: _ClassVar[int]
    document: _common_pb2.StoredDocument
    level: SignatureLevel
    ledger_index: int
    def __init__(self, document: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ..., level: _Optional[_Union[SignatureLevel, str]] = ..., ledger_index: _Optional[int] = ...) -> None: ...

class ListPendingSignaturesRequest(_message.Message):
    __slots__ = ("certificate_sha256", "page_size", "page_token")
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    certificate_sha256: str
    page_size: int
    page_token: str
    def __init__(self, certificate_sha256: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class PendingSignature(_message.Message):
    __slots__ = ("session_id", "title", "unit_code", "requester", "created_at", "expires_at", "document_sha256", "data_to_sign", "digest_algorithm", "signature_mechanism", "prepared_ref", "signed_attributes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_TO_SIGN_FIELD_NUMBER: _ClassVar[int]
    DIGEST_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MECHANISM_FIELD_NUMBER: _ClassVar[int]
    PREPARED_REF_FIELD_NUMBER: _ClassVar[int]
    SIGNED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    title: str
    unit_code: str
    requester: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    document_sha256: str
    data_to_sign: bytes
    digest_algorithm: str
    signature_mechanism: str
    prepared_ref: str
    signed_attributes: bytes
    def __init__(self, session_id: _Optional[str] = ..., title: _Optional[str] = ..., unit_code: _Optional[str] = ..., requester: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., document_sha256: _Optional[str] = ..., data_to_sign: _Optional[bytes] = ..., digest_algorithm: _Optional[str] = ..., signature_mechanism: _Optional[str] = ..., prepared_ref: _Optional[str] = ..., signed_attributes: _Optional[bytes] = ...) -> None: ...

class ListPendingSignaturesResponse(_message.Message):
    __slots__ = ("pending", "next_page_token")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pending: _containers.RepeatedCompositeFieldContainer[PendingSignature]
    next_page_token: str
    def __init__(self, pending: _Optional[_Iterable[_Union[PendingSignature, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelSignatureRequest(_message.Message):
    __slots__ = ("session_id", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelSignatureResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
