"""Two-phase signing: the service prepares a PDF, the official's token signs a digest elsewhere,
the service completes the PDF. The official's private key never comes near this code.

- ``certificates``: ``TwoPhaseSigner.check_certificate`` (through ``CertificateChecker``) refuses
  a certificate that may not sign now, with ``CertificateRejected`` saying which rule failed;
  ``signature_scheme`` and ``verify_signature_value``.
- ``pdf``: ``TwoPhaseSigner.prepare`` returns what the token must sign (``data_to_sign``);
  ``TwoPhaseSigner.complete`` verifies the value and embeds it with the level's time-stamp, DSS
  and document time-stamp.
- ``sessions``: ``SessionStore`` (``signer.schema``), with exactly-once completion: a session is
  claimed by a conditional UPDATE on its state, so of concurrent completions one wins.

Invariant (kept by ``pdf``): a completed document is made of what prepare recorded and the
token's signature value only. Every name other code imports stays importable from here.
"""

from signer.twophase.certificates import (
    CertificateRejected,
    RejectionReason,
    signature_scheme,
    verify_signature_value,
)
from signer.twophase.pdf import (
    CompletedDocument,
    PreparedDocumentAltered,
    PreparedSignature,
    PrepareRequest,
    TwoPhaseSigner,
)
from signer.twophase.remote import (
    RemoteRequest,
    RemoteRequestNotFound,
    RemoteState,
    RemoteStore,
)
from signer.twophase.sessions import (
    SessionClosed,
    SessionNotFound,
    SessionOptions,
    SessionState,
    SessionStore,
    SigningSession,
    closed_error,
    decode_cursor,
    encode_cursor,
    new_session_id,
    split_der,
)

__all__ = [
    "CertificateRejected",
    "CompletedDocument",
    "PrepareRequest",
    "PreparedDocumentAltered",
    "PreparedSignature",
    "RejectionReason",
    "RemoteRequest",
    "RemoteRequestNotFound",
    "RemoteState",
    "RemoteStore",
    "SessionClosed",
    "SessionNotFound",
    "SessionOptions",
    "SessionState",
    "SessionStore",
    "SigningSession",
    "TwoPhaseSigner",
    "closed_error",
    "decode_cursor",
    "encode_cursor",
    "new_session_id",
    "signature_scheme",
    "split_der",
    "verify_signature_value",
]
