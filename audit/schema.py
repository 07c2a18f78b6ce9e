"""The ledger's tables and their versioned migrations (the persistence contract of kyso.db).

Tables (all prefixed ``audit_``):

- ``audit_entries``: one row per entry — ``idx`` (dense 0..n-1, primary key), ``leaf_hash``
  (RFC 6962 leaf hash of ``entry``), ``entry`` (the canonical bytes, see ``audit.entry``).
- ``audit_nodes``: the hash of every *complete* perfect subtree above the leaves, written once
  when its last leaf is appended. The subtree of level L ≥ 1 at position p (leaves
  [p·2^L, (p+1)·2^L)) is stored under ``id`` = (2p+1)·2^L − 1, its in-order number in the
  perfect binary tree: one integer key per node, so SQLite keeps it in the rowid b-tree.
- ``audit_tree``: exactly one row (``id`` = 1) holding ``size``, the number of entries. Every
  append updates this row first, which serialises writers across threads and processes
  (a row lock on PostgreSQL, the database write lock on SQLite); see ``audit.ledger``.
- ``audit_certificates``: head-signing certificates (DER) by SHA-256.
- ``audit_heads``: signed tree heads (size, root, time in microseconds since the epoch UTC,
  algorithm, signature, signing certificate).
- ``audit_outbox`` (version 2): the transactional outbox. A change of state writes its events
  here in its own transaction (``audit.outbox.stage``): ``prefix`` and ``suffix`` are the
  event's canonical encoding around its future index. The drainer appends pending rows
  (``idx`` null) to the ledger in ``id`` order and, in the same transaction, sets ``idx`` to
  the entry's index and clears the encoding, so a row is appended exactly once and the map
  from outbox id to ledger index stays readable by every process.
- ``audit_index`` (version 3): the entries about each document, by ``kind`` (``sha256``: a
  content address; ``document_id``: an edXML DocumentId) and ``value``, one row per key and
  entry (see ``audit.index``). Written in the transaction that appends the entry (direct
  appends and outbox drains alike); migration 3 backfilled the entries already there.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from audit.index import keys_of

__all__ = [
    "MIGRATIONS",
    "certificates",
    "entries",
    "heads",
    "index",
    "metadata",
    "nodes",
    "outbox",
    "tree",
]

metadata = sa.MetaData()

# SQLite only makes a rowid alias of a column declared exactly INTEGER PRIMARY KEY.
_Index = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("idx", _Index, primary_key=True, autoincrement=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("entry", sa.LargeBinary, nullable=False),
)

nodes = sa.Table(
    "audit_nodes",
    metadata,
    sa.Column("id", _Index, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

tree = sa.Table(
    "audit_tree",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="audit_tree_single_row"),
    sa.CheckConstraint("size >= 0", name="audit_tree_size_non_negative"),
)

certificates = sa.Table(
    "audit_certificates",
    metadata,
    sa.Column("sha256", sa.LargeBinary(32), primary_key=True),
    sa.Column("der", sa.LargeBinary, nullable=False),
)

heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signed_at_us", sa.BigInteger, nullable=False),
    sa.Column("algorithm", sa.String(32), nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column(
        "certificate_sha256",
        sa.LargeBinary(32),
        sa.ForeignKey("audit_certificates.sha256"),
        nullable=False,
    ),
    sa.Index("audit_heads_by_size", "tree_size", "signed_at_us"),
)


outbox = sa.Table(
    "audit_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("prefix", sa.LargeBinary, nullable=True),
    sa.Column("suffix", sa.LargeBinary, nullable=True),
    sa.Column("idx", sa.BigInteger, nullable=True),
    sa.CheckConstraint(
        "(idx IS NULL) = (prefix IS NOT NULL AND suffix IS NOT NULL)",
        name="audit_outbox_pending_or_appended",
    ),
    sa.Index("audit_outbox_pending", "idx", "id"),
)

index = sa.Table(
    "audit_index",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
)

_V1_TABLES = (entries, nodes, tree, certificates, heads)


def _create_v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=_V1_TABLES)
    conn.execute(tree.insert().values(id=1, size=0))


def _create_v2(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[outbox])


def _create_v3(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[index])
    # Backfill in pages by index: a large ledger never sits in memory at once.
    position = 0
    while True:
        rows = conn.execute(
            sa.select(entries.c.idx, entries.c.entry)
            .where(entries.c.idx >= position)
            .order_by(entries.c.idx)
            .limit(1000)
        ).all()
        if not rows:
            return
        keyed = [
            {"kind": kind, "value": value, "idx": int(row.idx)}
            for row in rows
            for kind, value in sorted(keys_of(bytes(row.entry)))
        ]
        if keyed:
            conn.execute(index.insert(), keyed)
        position = int(rows[-1].idx) + 1


MIGRATIONS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "audit ledger: entries, Merkle nodes, tree state, certificates, signed heads", _create_v1),
    (2, "audit outbox: events staged with their change, appended by one drainer", _create_v2),
    (3, "audit index: entries by document SHA-256 and edXML DocumentId, backfilled", _create_v3),
)
