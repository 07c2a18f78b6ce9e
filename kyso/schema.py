"""The application's own tables: the documents catalogue (prefix ``catalogue_``).

- ``catalogue_documents``: one row per stored document, keyed by its content address. A row is
  written only after its object is durably stored (object first, then row), so a crash can
  leave an object without a row (found and catalogued by the start-up check) but never a row
  without its object.
- ``catalogue_signatures``: the signatures kyso made on a document (who, which key, level, when).
- ``catalogue_verifications``: the verification of a received package and its attached PDFs,
  made once on arrival and kept with the deliveries of that package (by its SHA-256).
- ``catalogue_sign_requests``: SignPdf's idempotency keys, per client: the request's
  fingerprint and the signed document it made, written in the transaction that catalogues that
  document (so a retry finds either nothing done or all of it); the ledger index follows.
"""

from __future__ import annotations

import sqlalchemy as sa

from kyso.db import Component, MigrationStep

__all__ = ["COMPONENT", "documents", "metadata", "sign_requests", "signatures", "verifications"]

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
)

COMPONENT = Component(name="catalogue", steps=_STEPS)
