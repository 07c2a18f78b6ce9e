"""The verification report: typed, frozen, JSON-serialisable (schema ``kyso.verification/1``).

The field names follow ``kyso.v1.VerificationReport`` / ``SignatureReport`` where both have the
field, so the gRPC layer maps one to one; what the message lacks (chain, byte range, findings'
structure) is in the JSON (``report_json``), documented in docs/report-schema.md.

Invariants:
- ``VerificationReport.indication`` is never better than any signature's indication, nor than
  what the document findings allow (see :mod:`signer.verify.engine` for the rule);
- codes (``Problem.code``, ``Finding.code``) and enum values are stable API: renamed only with a
  new schema version; human text is produced from them by :mod:`signer.verify.text`;
- ``detail`` strings come from the validator (English, technical) and never hold document bytes.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "SCHEMA",
    "AlgorithmInfo",
    "CertificateInfo",
    "Coverage",
    "Finding",
    "Indication",
    "ModificationLevel",
    "PadesLevel",
    "Problem",
    "RevocationEvidence",
    "RevocationInfo",
    "RevocationLocation",
    "RevocationSource",
    "RevocationStatus",
    "Severity",
    "SignatureKind",
    "SignatureReport",
    "SubIndication",
    "TimestampInfo",
    "VerificationReport",
    "report_to_dict",
    "report_to_json",
]

SCHEMA = "kyso.verification/1"


class Indication(enum.Enum):
    """EN 319 102-1 main indication; ``rank`` orders them from best to worst."""

    TOTAL_PASSED = "TOTAL-PASSED"
    INDETERMINATE = "INDETERMINATE"
    TOTAL_FAILED = "TOTAL-FAILED"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Indication.TOTAL_PASSED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_FAILED: 2}


class SubIndication(enum.Enum):
    """EN 319 102-1 sub-indications, plus four kyso codes for PDF-specific verdicts."""

    # TOTAL-FAILED (EN 319 102-1)
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    NOT_YET_VALID = "NOT_YET_VALID"
    # INDETERMINATE (EN 319 102-1)
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    EXPIRED = "EXPIRED"
    POLICY_PROCESSING_ERROR = "POLICY_PROCESSING_ERROR"
    SIGNATURE_POLICY_NOT_AVAILABLE = "SIGNATURE_POLICY_NOT_AVAILABLE"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    REVOCATION_OUT_OF_BOUNDS_NO_POE = "REVOCATION_OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    CRYPTO_CONSTRAINTS_FAILURE_NO_POE = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
    NO_POE = "NO_POE"
    TRY_LATER = "TRY_LATER"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    GENERIC = "GENERIC"
    # kyso extensions (documented in docs/report-schema.md)
    FORBIDDEN_MODIFICATION = "FORBIDDEN_MODIFICATION"
    """TOTAL-FAILED: the document was changed after the signature beyond what is allowed."""
    UNSIGNED_CHANGES = "UNSIGNED_CHANGES"
    """INDETERMINATE (document): allowed-but-unsigned form filling/annotations after the last
    signature; what is shown is not what anyone signed."""
    NO_SIGNATURE_FOUND = "NO_SIGNATURE_FOUND"
    """INDETERMINATE (document): the PDF carries no signature."""
    RESOURCE_LIMIT = "RESOURCE_LIMIT"
    """INDETERMINATE: the document exceeds a processing limit (size, objects, decoding, time,
    memory); it was not judged."""


class SignatureKind(enum.Enum):
    SIGNATURE = "signature"
    DOCUMENT_TIMESTAMP = "document-timestamp"


class Coverage(enum.Enum):
    """How much of the file the signature's byte range covers (pyHanko's coverage levels)."""

    ENTIRE_FILE = "entire-file"
    ENTIRE_REVISION = "entire-revision"
    CONTIGUOUS_BLOCK = "contiguous-block"
    UNCLEAR = "unclear"


class ModificationLevel(enum.Enum):
    """What changed after the signature (pyHanko's difference analysis)."""

    NONE = "none"
    LTA_UPDATES = "lta-updates"
    FORM_FILLING = "form-filling"
    ANNOTATIONS = "annotations"
    OTHER = "other"


class PadesLevel(enum.Enum):
    NONE = "none"
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


class RevocationStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    """Revocation data was needed but is missing or unusable."""
    NOT_CHECKED = "not-checked"
    """The check did not get that far (no chain to an anchor, broken signature, …)."""
    NO_DATA = "no-data"
    """The chain validated, but the certificate names no revocation source (no CRL
    distribution point, no OCSP responder) and the document carries no revocation data about
    it: that it was not revoked is not established (nor required by the policy)."""


class RevocationSource(enum.Enum):
    EMBEDDED = "embedded"
    ONLINE = "online"
    NONE = "none"


class RevocationLocation(enum.Enum):
    """Where in the document a CRL or OCSP response was found."""

    DSS = "dss"
    """The document security store's /OCSPs and /CRLs."""
    VRI = "vri"
    """A /VRI entry of the DSS (per-signature validation data)."""
    SIGNED_ATTRIBUTE = "signed-attribute"
    """The CMS signed attribute adbe-revocationInfoArchival (Acrobat, iText)."""
    CMS = "cms"
    """The CMS SignedData's crls field (RevocationInfoChoices)."""
    TIMESTAMP = "timestamp"
    """The signature time-stamp token's own SignedData (its crls or signed attribute)."""


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One reason a signature is not TOTAL-PASSED (stable ``code``; ``detail`` in English)."""

    code: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class Finding:
    """A document-level observation: unsigned updates, trailing bytes, limits, unreadable input.

    ``revision`` is 0-based (pyHanko's numbering); ``offset``/``length`` locate bytes in the file.
    """

    code: str
    severity: Severity
    detail: str = ""
    revision: int | None = None
    offset: int | None = None
    length: int | None = None
    modification_level: ModificationLevel | None = None


@dataclass(frozen=True, kw_only=True)
class CertificateInfo:
    subject: str
    serial: str
    """Serial number, upper-case hex."""
    issuer: str
    sha256: str
    not_before: datetime
    not_after: datetime
    key_algorithm: str
    key_bits: int


@dataclass(frozen=True, kw_only=True)
class AlgorithmInfo:
    digest: str
    signature: str
    key_algorithm: str
    key_bits: int
    acceptable: bool
    notes: tuple[Problem, ...] = ()
    """Decisions of the algorithm rules (signer.verify.algorithms), accepted or not: a dated
    algorithm accepted thanks to a trusted time-stamp, or refused for want of one; an ECDSA value
    with an unusual label. Refusals are also among the signature's problems."""


@dataclass(frozen=True, kw_only=True)
class RevocationEvidence:
    """One CRL or OCSP response the document carries: what, where, by whom, when, and whether
    it is about the signer's certificate (a CRL of its issuer, an OCSP answer for it)."""

    kind: str
    """``crl`` or ``ocsp``."""
    location: RevocationLocation
    issuer: str
    """The CRL's issuer or the OCSP responder."""
    produced_at: datetime | None
    """The CRL's thisUpdate or the OCSP response's producedAt."""
    about_signer: bool


@dataclass(frozen=True, kw_only=True)
class RevocationInfo:
    status: RevocationStatus
    source: RevocationSource
    revoked_at: datetime | None = None
    reason: str | None = None
    found: tuple[RevocationEvidence, ...] = ()
    """Every CRL and OCSP response the document carries for this signature (any certificate
    of the chain), with where it was found."""


@dataclass(frozen=True, kw_only=True)
class TimestampInfo:
    time: datetime
    tsa_subject: str
    intact: bool
    valid: bool
    trusted: bool


@dataclass(frozen=True, kw_only=True)
class SignatureReport:
    """The verdict on one signature or document time-stamp, with everything it rests on."""

    kind: SignatureKind
    field_name: str
    indication: Indication
    sub_indication: SubIndication | None
    signer: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()
    """Signer first, trust anchor last (empty when no chain to an anchor was found)."""
    trust_anchor: str | None = None
    claimed_signing_time: datetime | None = None
    timestamp: TimestampInfo | None = None
    intact: bool = False
    signature_valid: bool = False
    trusted: bool = False
    revocation: RevocationInfo = RevocationInfo(
        status=RevocationStatus.NOT_CHECKED, source=RevocationSource.NONE
    )
    byte_range: tuple[int, ...] = ()
    coverage: Coverage = Coverage.UNCLEAR
    covers_whole_document: bool = False
    signed_revision: int | None = None
    modification_level: ModificationLevel | None = None
    docmdp: str | None = None
    level_reached: PadesLevel = PadesLevel.NONE
    sub_filter: str | None = None
    """The signature dictionary's /SubFilter as written (``adbe.pkcs7.detached``,
    ``ETSI.CAdES.detached``, ``ETSI.RFC3161`` …), without the slash."""
    signature_format: str | None = None
    """What the signature is, in a stable code: ``cms`` (adbe.pkcs7.detached/sha1: not a
    PAdES baseline signature), ``cades`` (ETSI.CAdES.detached with signing-certificate-v2: PAdES
    baseline), ``cades-without-signing-certificate`` (the CAdES sub-filter but no
    signing-certificate(-v2) attribute: a CMS signature in a CAdES container, not B-B),
    ``timestamp`` (a document time-stamp)."""
    algorithm: AlgorithmInfo | None = None
    key_usage: tuple[str, ...] = ()
    key_usage_ok: bool | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def timestamp_time(self) -> datetime | None:
        return None if self.timestamp is None else self.timestamp.time


@dataclass(frozen=True, kw_only=True)
class VerificationReport:
    """The verdict on a document: an indication, its signatures, and document findings.

    ``readable`` is False when the input is not a PDF or cannot be parsed at all (the CLI's
    exit code 3).
    """

    indication: Indication
    sub_indication: SubIndication | None
    document_sha256: str
    document_size: int
    readable: bool
    revisions: int
    signatures: tuple[SignatureReport, ...]
    findings: tuple[Finding, ...]
    verified_at: datetime
    online: bool
    trust_profiles: tuple[str, ...]
    schema: str = SCHEMA


def report_to_dict(report: VerificationReport) -> dict[str, Any]:
    """The report as JSON-ready data in schema ``kyso.verification/1`` (docs/report-schema.md)."""
    result = _plain(report)
    assert isinstance(result, dict)
    # The schema id leads, for readers that sniff the first key.
    return {"schema": result.pop("schema"), **result}


def report_to_json(report: VerificationReport, *, indent: int | None = 2) -> str:
    return json.dumps(report_to_dict(report), ensure_ascii=False, indent=indent)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        data = {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
        if isinstance(value, SignatureReport):
            data["timestamp_time"] = _plain(value.timestamp_time)
        return data
    return value
