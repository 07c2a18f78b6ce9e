import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from kyso.v1 import common_pb2 as _common_pb2
from kyso.v1 import verification_pb2 as _verification_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_QUEUED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FORWARDED: _ClassVar[DeliveryState]
    DELIVERY_STATE_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_ACKNOWLEDGED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FAILED: _ClassVar[DeliveryState]

class QuarantineKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUARANTINE_KIND_UNSPECIFIED: _ClassVar[QuarantineKind]
    QUARANTINE_KIND_DELIVERY: _ClassVar[QuarantineKind]
    QUARANTINE_KIND_HOP: _ClassVar[QuarantineKind]
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_QUEUED: DeliveryState
DELIVERY_STATE_FORWARDED: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_ACKNOWLEDGED: DeliveryState
DELIVERY_STATE_FAILED: DeliveryState
QUARANTINE_KIND_UNSPECIFIED: QuarantineKind
QUARANTINE_KIND_DELIVERY: QuarantineKind
QUARANTINE_KIND_HOP: QuarantineKind

class DocumentFields(_message.Message):
    __slots__ = ("subject", "code_number", "code_notation", "document_type", "document_type_name", "content", "signer_full_name", "signer_position", "priority", "attachments")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CODE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CODE_NOTATION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNER_POSITION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    code_number: str
    code_notation: str
    document_type: int
    document_type_name: str
    content: str
    signer_full_name: str
    signer_position: str
    priority: int
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    def __init__(self, subject: _Optional[str] = ..., code_number: _Optional[str] = ..., code_notation: _Optional[str] = ..., document_type: _Optional[int] = ..., document_type_name: _Optional[str] = ..., content: _Optional[str] = ..., signer_full_name: _Optional[str] = ..., signer_position: _Optional[str] = ..., priority: _Optional[int] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("name", "content_type", "content", "ref")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    name: str
    content_type: str
    content: bytes
    ref: _common_pb2.DocumentRef
    def __init__(self, name: _Optional[str] = ..., content_type: _Optional[str] = ..., content: _Optional[bytes] = ..., ref: _Optional[_Union[_common_pb2.DocumentRef, _Mapping]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("from_unit", "to_units", "package", "fields", "document_id")
    FROM_UNIT_FIELD_NUMBER: _ClassVar[int]
    TO_UNITS_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    from_unit: str
    to_units: _containers.RepeatedScalarFieldContainer[str]
    package: bytes
    fields: DocumentFields
    document_id: str
    def __init__(self, from_unit: _Optional[str] = ..., to_units: _Optional[_Iterable[str]] = ..., package: _Optional[bytes] = ..., fields: _Optional[_Union[DocumentFields, _Mapping]] = ..., document_id: _Optional[str] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("document_id", "package", "recipients")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    package: _common_pb2.StoredDocument
    recipients: _containers.RepeatedCompositeFieldContainer[RecipientState]
    def __init__(self, document_id: _Optional[str] = ..., package: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ..., recipients: _Optional[_Iterable[_Union[RecipientState, _Mapping]]] = ...) -> None: ...

class RecipientState(_message.Message):
    __slots__ = ("unit_code", "state", "status_code", "status_description", "updated_at", "detail", "trace", "history", "business_type")
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_TYPE_FIELD_NUMBER: _ClassVar[int]
    unit_code: str
    state: DeliveryState
    status_code: str
    status_description: str
    updated_at: _timestamp_pb2.Timestamp
    detail: str
    trace: _containers.RepeatedScalarFieldContainer[str]
    history: _containers.RepeatedCompositeFieldContainer[StatusChange]
    business_type: int
    def __init__(self, unit_code: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., status_code: _Optional[str] = ..., status_description: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., detail: _Optional[str] = ..., trace: _Optional[_Iterable[str]] = ..., history: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ..., business_type: _Optional[int] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("code", "at", "description", "staff")
    CODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STAFF_FIELD_NUMBER: _ClassVar[int]
    code: str
    at: _timestamp_pb2.Timestamp
    description: str
    staff: str
    def __init__(self, code: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., staff: _Optional[str] = ...) -> None: ...

class ReceiveRequest(_message.Message):
    __slots__ = ("unit_code", "max_deliveries", "lease_seconds", "follow", "heartbeat_seconds", "peek")
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEEK_FIELD_NUMBER: _ClassVar[int]
    unit_code: str
    max_deliveries: int
    lease_seconds: int
    follow: bool
    heartbeat_seconds: int
    peek: bool
    def __init__(self, unit_code: _Optional[str] = ..., max_deliveries: _Optional[int] = ..., lease_seconds: _Optional[int] = ..., follow: _Optional[bool] = ..., heartbeat_seconds: _Optional[int] = ..., peek: _Optional[bool] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "document_id", "from_unit", "to_unit", "subject", "package", "package_content", "delivered_at", "verification", "trace", "verification_result", "heartbeat", "lease_until")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIT_FIELD_NUMBER: _ClassVar[int]
    TO_UNIT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_RESULT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    document_id: str
    from_unit: str
    to_unit: str
    subject: str
    package: _common_pb2.StoredDocument
    package_content: bytes
    delivered_at: _timestamp_pb2.Timestamp
    verification: str
    trace: _containers.RepeatedScalarFieldContainer[str]
    verification_result: DeliveryVerification
    heartbeat: bool
    lease_until: _timestamp_pb2.Timestamp
    def __init__(self, delivery_id: _Optional[str] = ..., document_id: _Optional[str] = ..., from_unit: _Optional[str] = ..., to_unit: _Optional[str] = ..., subject: _Optional[str] = ..., package: _Optional[_Union[_common_pb2.StoredDocument, _Mapping]] = ..., package_content: _Optional[bytes] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verification: _Optional[str] = ..., trace: _Optional[_Iterable[str]] = ..., verification_result: _Optional[_Union[DeliveryVerification, _Mapping]] = ..., heartbeat: _Optional[bool] = ..., lease_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeliveryVerification(_message.Message):
    __slots__ = ("package", "attachments")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    package: VerifiedItem
    attachments: _containers.RepeatedCompositeFieldContainer[VerifiedItem]
    def __init__(self, package: _Optional[_Union[VerifiedItem, _Mapping]] = ..., attachments: _Optional[_Iterable[_Union[VerifiedItem, _Mapping]]] = ...) -> None: ...

class VerifiedItem(_message.Message):
    __slots__ = ("name", "indication", "sub_indication", "signer", "signatures")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDICATION_FIELD_NUMBER: _ClassVar[int]
    SUB_INDICATION_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    indication: _verification_pb2.Indication
    sub_indication: str
    signer: str
    signatures: int
    def __init__(self, name: _Optional[str] = ..., indication: _Optional[_Union[_verification_pb2.Indication, str]] = ..., sub_indication: _Optional[str] = ..., signer: _Optional[str] = ..., signatures: _Optional[int] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("unit_code", "delivery_ids")
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_IDS_FIELD_NUMBER: _ClassVar[int]
    unit_code: str
    delivery_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unit_code: _Optional[str] = ..., delivery_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: int
    def __init__(self, acknowledged: _Optional[int] = ...) -> None: ...

class UpdateStatusRequest(_message.Message):
    __slots__ = ("document_id", "from_unit", "unit_code", "status_code", "description", "staff")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STAFF_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    from_unit: str
    unit_code: str
    status_code: str
    description: str
    staff: str
    def __init__(self, document_id: _Optional[str] = ..., from_unit: _Optional[str] = ..., unit_code: _Optional[str] = ..., status_code: _Optional[str] = ..., description: _Optional[str] = ..., staff: _Optional[str] = ...) -> None: ...

class UpdateStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrackRequest(_message.Message):
    __slots__ = ("document_id", "from_unit")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    from_unit: str
    def __init__(self, document_id: _Optional[str] = ..., from_unit: _Optional[str] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("document_id", "subject", "recipients")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    subject: str
    recipients: _containers.RepeatedCompositeFieldContainer[RecipientState]
    def __init__(self, document_id: _Optional[str] = ..., subject: _Optional[str] = ..., recipients: _Optional[_Iterable[_Union[RecipientState, _Mapping]]] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("from_hub", "package", "status_packet", "to_units", "hop_id", "trace")
    FROM_HUB_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_PACKET_FIELD_NUMBER: _ClassVar[int]
    TO_UNITS_FIELD_NUMBER: _ClassVar[int]
    HOP_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    from_hub: str
    package: bytes
    status_packet: bytes
    to_units: _containers.RepeatedScalarFieldContainer[str]
    hop_id: str
    trace: _containers.RepeatedCompositeFieldContainer[TraceHop]
    def __init__(self, from_hub: _Optional[str] = ..., package: _Optional[bytes] = ..., status_packet: _Optional[bytes] = ..., to_units: _Optional[_Iterable[str]] = ..., hop_id: _Optional[str] = ..., trace: _Optional[_Iterable[_Union[TraceHop, _Mapping]]] = ...) -> None: ...

class TraceHop(_message.Message):
    __slots__ = ("organ_id", "timestamp")
    ORGAN_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    organ_id: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, organ_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("receipt", "receipt_signature", "receipt_certificate")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    receipt: bytes
    receipt_signature: bytes
    receipt_certificate: bytes
    def __init__(self, receipt: _Optional[bytes] = ..., receipt_signature: _Optional[bytes] = ..., receipt_certificate: _Optional[bytes] = ...) -> None: ...

class ListQuarantinedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QuarantinedItem(_message.Message):
    __slots__ = ("kind", "id", "document_id", "from_unit", "to_units", "next_hub", "failures", "reason", "quarantined_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIT_FIELD_NUMBER: _ClassVar[int]
    TO_UNITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HUB_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: QuarantineKind
    id: str
    document_id: str
    from_unit: str
    to_units: _containers.RepeatedScalarFieldContainer[str]
    next_hub: str
    failures: int
    reason: str
    quarantined_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[QuarantineKind, str]] = ..., id: _Optional[str] = ..., document_id: _Optional[str] = ..., from_unit: _Optional[str] = ..., to_units: _Optional[_Iterable[str]] = ..., next_hub: _Optional[str] = ..., failures: _Optional[int] = ..., reason: _Optional[str] = ..., quarantined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListQuarantinedResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[QuarantinedItem]
    def __init__(self, items: _Optional[_Iterable[_Union[QuarantinedItem, _Mapping]]] = ...) -> None: ...

class ReleaseQuarantinedRequest(_message.Message):
    __slots__ = ("kind", "id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    kind: QuarantineKind
    id: str
    def __init__(self, kind: _Optional[_Union[QuarantineKind, str]] = ..., id: _Optional[str] = ...) -> None: ...

class ReleaseQuarantinedResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: QuarantinedItem
    def __init__(self, released: _Optional[_Union[QuarantinedItem, _Mapping]] = ...) -> None: ...
