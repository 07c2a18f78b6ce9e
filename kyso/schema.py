"""The application's own tables: the documents catalogue (prefix ``catalogue_``).

- ``catalogue_documents``: one row per stored document, keyed by its content address. A row is
  written only after its object is durably stored (object first, then row), so a crash can
  leave an object without a row (found and catalogued by the start-up check) but never a row
  without its object.
- ``catalogue_signatures``: the signatures kyso made on a document (who, which key, level, when).
- ``catalogue_evidence``: per stored PDF, the facts of its long-term evidence (its last
  time-stamp's TSA certificate expiry and revocation, the algorithms of that time-stamp, the
  signers' expiry without one) and its renewal state (attempts, last error, next try). Facts,
  not the end date: the end is computed when asked, under the algorithm rules then configured.
- ``catalogue_versions``: old → new links of renewed documents; one successor per version
  (the primary key), written with the new version's row and its ledger event.
- ``catalogue_verifications``: the verification of a received package and its attached PDFs,
  made once on arrival and kept with the deliveries of that package (by its SHA-256).
- ``catalogue_sign_requests``: SignPdf's idempotency keys, per client: the request's
  fingerprint and the signed document it made, written in the transaction that catalogues that
  document (so a retry finds either nothing done or all of it); the ledger index follows.
- ``catalogue_direct_uploads``: the direct uploads begun (DocumentService.BeginDirectUpload):
  who began it, what it declared, until when it may be completed, its state (``open``,
  ``completed`` with the ref it stored, ``refused`` or ``expired``). The row turns
  ``completed`` in the transaction that catalogues the document and writes its ledger event,
  so a repeated Complete answers the same document and never records it twice.
"""

from __future__ import annotations

import sqlalchemy as sa

from kyso.db import Component, MigrationStep

__all__ = [
    "COMPONENT",
    "direct_uploads",
    "documents",
    "evidence",
    "metadata",
    "sign_requests",
    "signatures",
    "verifications",
    "versions",
]

metadata = sa.MetaData()

documents = sa.Table(
    "catalogue_documents",
    metadata,
    sa.Column("ref", sa.String(71), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("filename", sa.String(500), nullable=False, server_default=""),
    sa.Column("uploader", sa.String(200), nullable=False, server_default=""),
    sa.Column("unit_code", sa.String(32), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

signatures = sa.Table(
    "catalogue_signatures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "ref", sa.String(71), sa.ForeignKey("catalogue_documents.ref"), nullable=False, index=True
    ),
    sa.Column("signer", sa.String(500), nullable=False),
    sa.Column("key_alias", sa.String(200), nullable=False, server_default=""),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
)

verifications = sa.Table(
    "catalogue_verifications",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
)

sign_requests = sa.Table(
    "catalogue_sign_requests",
    metadata,
    sa.Column("client", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("ref", sa.String(71), sa.ForeignKey("catalogue_documents.ref"), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("ledger_index", sa.BigInteger),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

evidence = sa.Table(
    "catalogue_evidence",
    metadata,
    sa.Column("ref", sa.String(71), primary_key=True),
    sa.Column("signatures", sa.Integer, nullable=False),
    sa.Column("level", sa.String(16), nullable=False, server_default=""),
    sa.Column("last_timestamp", sa.DateTime(timezone=True)),
    sa.Column("tsa_subject", sa.String(500), nullable=False, server_default=""),
    sa.Column("tsa_not_after", sa.DateTime(timezone=True)),
    sa.Column("tsa_revoked_at", sa.DateTime(timezone=True)),
    sa.Column("signer_not_after", sa.DateTime(timezone=True)),
    sa.Column("digest", sa.String(32), nullable=False, server_default=""),
    sa.Column("key_algorithm", sa.String(16), nullable=False, server_default=""),
    sa.Column("key_bits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
)

versions = sa.Table(
    "catalogue_versions",
    metadata,
    sa.Column("old_ref", sa.String(71), primary_key=True),
    sa.Column("new_ref", sa.String(71), nullable=False, index=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

direct_uploads = sa.Table(
    "catalogue_direct_uploads",
    metadata,
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("unit_code", sa.String(32), nullable=False, server_default=""),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("filename", sa.String(500), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

_STEPS: tuple[MigrationStep, ...] = (
    (
        1,
        "documents catalogue and signatures",
        lambda conn: metadata.create_all(conn, tables=[documents, signatures]),
    ),
    (
        2,
        "verifications of received packages",
        lambda conn: metadata.create_all(conn, tables=[verifications]),
    ),
    (
        3,
        "SignPdf idempotency keys",
        lambda conn: metadata.create_all(conn, tables=[sign_requests]),
    ),
    (
        4,
        "long-term evidence and versions of renewed documents",
        lambda conn: metadata.create_all(conn, tables=[evidence, versions]),
    ),
    (
        5,
        "direct uploads (presigned PUT, checked on completion)",
        lambda conn: metadata.create_all(conn, tables=[direct_uploads]),
    ),
)

COMPONENT = Component(name="catalogue", steps=_STEPS)
