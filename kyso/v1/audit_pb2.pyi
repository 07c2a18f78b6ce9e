import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetEventRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class LedgerEvent(_message.Message):
    __slots__ = ("index", "entry", "leaf_hash", "time", "actor", "unit_code", "event_type", "document_sha256", "refs", "key", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    index: int
    entry: bytes
    leaf_hash: bytes
    time: _timestamp_pb2.Timestamp
    actor: str
    unit_code: str
    event_type: str
    document_sha256: str
    refs: _containers.RepeatedScalarFieldContainer[str]
    key: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, index: _Optional[int] = ..., entry: _Optional[bytes] = ..., leaf_hash: _Optional[bytes] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., unit_code: _Optional[str] = ..., event_type: _Optional[str] = ..., document_sha256: _Optional[str] = ..., refs: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetTreeHeadRequest(_message.Message):
    __slots__ = ("tree_size", "fresh")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    fresh: bool
    def __init__(self, tree_size: _Optional[int] = ..., fresh: _Optional[bool] = ...) -> None: ...

class SignedTreeHead(_message.Message):
    __slots__ = ("tree_size", "root_hash", "time", "signed_data", "signature", "signature_algorithm", "certificate")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNED_DATA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: bytes
    time: _timestamp_pb2.Timestamp
    signed_data: bytes
    signature: bytes
    signature_algorithm: str
    certificate: bytes
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signed_data: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., signature_algorithm: _Optional[str] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("index", "tree_size")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("index", "tree_size", "audit_path", "leaf_hash")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_PATH_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    audit_path: _containers.RepeatedScalarFieldContainer[bytes]
    leaf_hash: bytes
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ..., audit_path: _Optional[_Iterable[bytes]] = ..., leaf_hash: _Optional[bytes] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_size", "second_size")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("first_size", "second_size", "proof")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetDocumentHistoryRequest(_message.Message):
    __slots__ = ("document_sha256", "document_id", "page_size")
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    document_sha256: str
    document_id: str
    page_size: int
    def __init__(self, document_sha256: _Optional[str] = ..., document_id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ProvenEvent(_message.Message):
    __slots__ = ("event", "inclusion_proof")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    event: LedgerEvent
    inclusion_proof: InclusionProof
    def __init__(self, event: _Optional[_Union[LedgerEvent, _Mapping]] = ..., inclusion_proof: _Optional[_Union[InclusionProof, _Mapping]] = ...) -> None: ...

class DocumentHistory(_message.Message):
    __slots__ = ("tree_head", "events", "truncated")
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    tree_head: SignedTreeHead
    events: _containers.RepeatedCompositeFieldContainer[ProvenEvent]
    truncated: bool
    def __init__(self, tree_head: _Optional[_Union[SignedTreeHead, _Mapping]] = ..., events: _Optional[_Iterable[_Union[ProvenEvent, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
