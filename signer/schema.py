"""The two-phase signing sessions table and its versioned migrations (prefix ``signing_``).

``signing_sessions``: one row per PrepareSignature. Times are microseconds since the epoch, UTC
(integers compare the same way on SQLite and PostgreSQL, with no time-zone conversions).

State machine of ``state`` (only these transitions, each a conditional UPDATE)::

    open ──claim──▶ completing ──finish──▶ completed
      │  ◀─release──┘   (a failed completion; or a claim older than the lease)
      ├──cancel──▶ cancelled
      ├──expire──▶ expired      (when ``expires_at`` has passed)
      └──sent to a remote provider──▶ waiting_approval ──claim──▶ completing ──▶ completed
                                        ├──▶ rejected   (the official refused)
                                        └──▶ expired    (no answer in time)

``options`` (migration 3): the prepare request's appearance, reason, location, page and
rectangle as JSON, so that a session can be prepared again when the official signs it.

``signing_remote_requests`` (migration 2): one row per batch sent to a remote-signing provider
(``signer.remote``), its sessions in order (``session_ids``, comma-separated), the provider's
transaction id (not a secret), and its state ``waiting`` → ``completed`` / ``rejected`` /
``expired`` / ``failed``. No SAD, token, OTP or signature value is stored.

The prepared document's bytes live in object storage (``prepared_ref``), never in this table.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

__all__ = ["MIGRATIONS", "metadata", "remote_requests", "sessions"]

metadata = sa.MetaData()

sessions = sa.Table(
    "signing_sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("certificate_sha256", sa.String(64), nullable=False),
    sa.Column("certificate", sa.LargeBinary, nullable=False),
    # The validated path's intermediate certificates (DER, nearest issuer first), as one
    # sequence of concatenated DER structures.
    sa.Column("chain", sa.LargeBinary, nullable=False),
    sa.Column("signer_name", sa.String(500), nullable=False),
    sa.Column("requester", sa.String(200), nullable=False),
    sa.Column("unit_code", sa.String(32), nullable=False, server_default=""),
    sa.Column("title", sa.String(500), nullable=False, server_default=""),
    sa.Column("filename", sa.String(500), nullable=False, server_default=""),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("digest_algorithm", sa.String(16), nullable=False),
    sa.Column("mechanism", sa.String(16), nullable=False),
    sa.Column("signed_attributes", sa.LargeBinary, nullable=False),
    sa.Column("data_to_sign", sa.LargeBinary, nullable=False),
    sa.Column("document_sha256", sa.String(64), nullable=False),
    sa.Column("source_ref", sa.String(71), nullable=False, server_default=""),
    sa.Column("prepared_ref", sa.String(71), nullable=False),
    sa.Column("document_digest", sa.LargeBinary, nullable=False),
    sa.Column("reserved_start", sa.BigInteger, nullable=False),
    sa.Column("reserved_end", sa.BigInteger, nullable=False),
    sa.Column("field_name", sa.String(200), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("claimed_us", sa.BigInteger, nullable=True),
    sa.Column("closed_us", sa.BigInteger, nullable=True),
    sa.Column("closed_by", sa.String(200), nullable=True),
    sa.Column("result_ref", sa.String(71), nullable=True),
    # Migration 3: what was asked at prepare (appearance, reason, location, page, rect), as
    # JSON, so that ClaimSignature can prepare the same signature again at the time of signing.
    sa.Column("options", sa.Text, nullable=False, server_default=""),
    sa.Index("signing_sessions_pending", "certificate_sha256", "state", "created_us"),
)


remote_requests = sa.Table(
    "signing_remote_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("credential_id", sa.String(200), nullable=False),
    sa.Column("reference", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("session_ids", sa.Text, nullable=False),
    sa.Column("requester", sa.String(200), nullable=False),
    sa.Column("unit_code", sa.String(32), nullable=False, server_default=""),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("closed_us", sa.BigInteger, nullable=True),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
    sa.Index("signing_remote_waiting", "state", "created_us"),
)


def _create(conn: sa.Connection) -> None:
    # Only the version-1 table: later tables are their own migrations.
    sessions.create(conn)


def _create_remote(conn: sa.Connection) -> None:
    remote_requests.create(conn)


def _add_options(conn: sa.Connection) -> None:
    # Migration 1 creates the table as it is now (with ``options``); older databases lack it.
    if "options" not in {c["name"] for c in sa.inspect(conn).get_columns("signing_sessions")}:
        conn.execute(
            sa.text("ALTER TABLE signing_sessions ADD COLUMN options TEXT NOT NULL DEFAULT ''")
        )


MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "two-phase signing sessions", _create),
    (2, "remote signing requests (sessions waiting for a provider's approval)", _create_remote),
    (
        3,
        "signing sessions keep their prepare options (re-prepared at the time of signing)",
        _add_options,
    ),
)
