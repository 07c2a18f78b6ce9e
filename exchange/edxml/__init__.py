"""edXML (QCVN 102:2016/BTTTT): typed packages and status packets, hardened parsing, signing.

Read liberally (every variant in docs/edxml.md), write one documented form (``writer``), sign
with enveloped XML-DSig (``dsig``) and read only what the signature covers (``open_package``).
"""

from exchange.edxml.dsig import (
    CryptographyKey,
    SignatureAlgorithm,
    SignatureReport,
    SigningKey,
    TrustPolicy,
)
from exchange.edxml.model import (
    VIETNAM_TIME,
    Attachment,
    Business,
    BusinessType,
    DocumentCode,
    DocumentType,
    ManifestReference,
    MessageHeader,
    Organization,
    OtherInfo,
    Package,
    PromulgationInfo,
    ReceiverChange,
    Replacement,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusPacket,
    TraceHeader,
)
from exchange.edxml.packages import (
    DEFAULT_LIMITS,
    OpenedPackage,
    OpenedStatus,
    build_package,
    build_status,
    open_package,
    open_status,
)
from exchange.edxml.reader import MAX_DOCUMENT_ID_CHARS
from exchange.edxml.safexml import Limits

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DOCUMENT_ID_CHARS",
    "VIETNAM_TIME",
    "Attachment",
    "Business",
    "BusinessType",
    "CryptographyKey",
    "DocumentCode",
    "DocumentType",
    "Limits",
    "ManifestReference",
    "MessageHeader",
    "OpenedPackage",
    "OpenedStatus",
    "Organization",
    "OtherInfo",
    "Package",
    "PromulgationInfo",
    "ReceiverChange",
    "Replacement",
    "ResponseFor",
    "SignatureAlgorithm",
    "SignatureReport",
    "SignerInfo",
    "SigningKey",
    "StaffInfo",
    "StatusCode",
    "StatusPacket",
    "TraceHeader",
    "TrustPolicy",
    "build_package",
    "build_status",
    "open_package",
    "open_status",
]
