"""The append-only, tamper-evident ledger of signing and exchange events, with proofs.

RFC 6962 Merkle hashing (``audit.merkle``) over canonical entries (``audit.entry``), stored
through SQLAlchemy Core (``audit.ledger``, ``audit.schema``), appended with group commit
(``audit.appender``), anchored by signed tree heads (``audit.heads``), exported and verified
offline (``audit.export``, ``audit.verify``). Imports nothing of the project but its own modules.
"""

from audit.appender import GroupCommitAppender, schedule_heads
from audit.entry import Entry, Event, EventType, decode_entry, encode_entry
from audit.errors import (
    AuditError,
    EventNotFound,
    HeadNotFound,
    HeadSignatureInvalid,
    HeadSignerUntrusted,
    HeadSigningFailed,
    InvalidEntry,
    InvalidEvent,
    InvalidQuery,
    InvalidTreeSize,
    LedgerClosed,
    LedgerCorrupt,
    LedgerUnavailable,
    ProofInvalid,
)
from audit.export import ExportExists, ExportSummary, export
from audit.heads import HeadSigner, SignatureAlgorithm, SignedTreeHead, verify_head
from audit.ledger import ConsistencyProof, InclusionProof, Ledger
from audit.schema import MIGRATIONS
from audit.verify import Inconsistency, Problem, VerificationReport, verify_database, verify_export

__all__ = [
    "MIGRATIONS",
    "AuditError",
    "ConsistencyProof",
    "Entry",
    "Event",
    "EventNotFound",
    "EventType",
    "ExportExists",
    "ExportSummary",
    "GroupCommitAppender",
    "HeadNotFound",
    "HeadSignatureInvalid",
    "HeadSigner",
    "HeadSignerUntrusted",
    "HeadSigningFailed",
    "InclusionProof",
    "Inconsistency",
    "InvalidEntry",
    "InvalidEvent",
    "InvalidQuery",
    "InvalidTreeSize",
    "Ledger",
    "LedgerClosed",
    "LedgerCorrupt",
    "LedgerUnavailable",
    "Problem",
    "ProofInvalid",
    "SignatureAlgorithm",
    "SignedTreeHead",
    "VerificationReport",
    "decode_entry",
    "encode_entry",
    "export",
    "schedule_heads",
    "verify_database",
    "verify_export",
    "verify_head",
]
