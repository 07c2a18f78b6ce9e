"""The append-only ledger over a ``sqlalchemy.Engine`` (SQLite or PostgreSQL).

Invariants:

- Indexes are dense, 0..n-1, with no gaps, whatever the number of threads and processes
  appending. Every append transaction starts by updating the single ``audit_tree`` row
  (``size = size + k ... RETURNING size``): on PostgreSQL that takes the row lock, on SQLite
  the database write lock, so writers are serialised by the database itself and each one gets
  the next ``k`` indexes. Entries, the new Merkle nodes and the new size commit together or not
  at all. The primary key on ``idx`` is a backstop: a writer that bypassed the lock would fail
  rather than fork the tree.
- Each perfect subtree's hash is written once, in the transaction that appends its last leaf,
  and never changes. So the root of any size n is the fold of the ≤ log2(n)+1 stored perfect
  subtrees of n's binary decomposition, and a proof is O(log n) stored hashes read with two
  queries (see ``audit.merkle``).
- Nothing here updates or deletes an entry, a node or a head.
- Tree heads may be signed by any process. ``sign_head_if_grown`` signs one only when the
  ledger grew past the largest signed size, and on PostgreSQL only in the process that holds
  the advisory lock ``HEADS_LOCK`` for that transaction: replicas on one database sign about
  one head per interval between them, not one each. Every head names a prefix of the one tree,
  so heads signed by different processes are consistent with each other.
- Outbox rows (``audit.outbox``) are appended under the same tree lock, in ``id`` order, and
  marked with their index in the transaction that appends them: exactly once across processes.

Database errors are raised as ``LedgerUnavailable``; stored data that contradicts itself as
``LedgerCorrupt``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from audit import merkle
from audit.entry import Entry, Event, PreparedEvent, decode_entry, prepare_event
from audit.errors import (
    EventNotFound,
    HeadNotFound,
    InvalidEntry,
    InvalidQuery,
    InvalidTreeSize,
    LedgerCorrupt,
    LedgerUnavailable,
)
from audit.heads import (
    HeadSigner,
    SignatureAlgorithm,
    SignedTreeHead,
    from_microseconds,
    sign_tree_head,
    to_microseconds,
)
from audit.index import DOCUMENT_ID, MAX_KEY_CHARS, SHA256, keys_of
from audit.schema import certificates, entries, heads, nodes, outbox, tree
from audit.schema import index as document_index

__all__ = ["HEADS_LOCK", "ConsistencyProof", "InclusionProof", "Ledger", "node_id"]

log = logging.getLogger(__name__)

Perfect = tuple[int, int]

HEADS_LOCK = 0x6B79_736F_0003
"""The PostgreSQL advisory lock key of the process signing a tree head now ("kyso" 3)."""


def node_id(level: int, position: int) -> int:
    """The ``audit_nodes.id`` of the perfect subtree (``level`` ≥ 1, ``position``)."""
    return ((2 * position + 1) << level) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionProof:
    """The audit path of the entry at ``index`` in the tree of ``tree_size`` (RFC 6962 PATH)."""

    index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def verify(self, *, root_hash: bytes) -> None:
        """Raise ``ProofInvalid`` unless the path leads from the leaf to ``root_hash``."""
        merkle.verify_inclusion(
            leaf=self.leaf_hash,
            index=self.index,
            tree_size=self.tree_size,
            proof=self.path,
            root=root_hash,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyProof:
    """The proof that the tree of ``old_size`` is a prefix of the one of ``new_size``."""

    old_size: int
    new_size: int
    path: tuple[bytes, ...]

    def verify(self, *, old_root: bytes, new_root: bytes) -> None:
        """Raise ``ProofInvalid`` unless the path links ``old_root`` to ``new_root``."""
        merkle.verify_consistency(
            old_size=self.old_size,
            new_size=self.new_size,
            old_root=old_root,
            new_root=new_root,
            proof=self.path,
        )


@contextmanager
def _database(action: str) -> Iterator[None]:
    """Wrap database failures as ``LedgerUnavailable`` saying what was being done."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerUnavailable(
            f"the audit ledger could not {action}: the database failed"
            f" ({type(exc).__name__}); check the database and that `kyso db upgrade` has run"
        ) from exc


def _read_size(conn: sa.Connection) -> int:
    size = conn.execute(sa.select(tree.c.size).where(tree.c.id == 1)).scalar_one_or_none()
    if size is None:
        raise LedgerUnavailable(
            "the audit ledger is not initialised (no audit_tree row); run `kyso db upgrade`"
        )
    return int(size)


def _fetch_perfect(conn: sa.Connection, wanted: Iterable[Perfect]) -> dict[Perfect, bytes]:
    """The stored hashes of perfect subtrees: leaves from entries, the rest from nodes."""
    wanted = set(wanted)
    leaf_positions = sorted(position for level, position in wanted if level == 0)
    inner = {node_id(level, position): (level, position) for level, position in wanted if level}
    found: dict[Perfect, bytes] = {}
    if leaf_positions:
        rows = conn.execute(
            sa.select(entries.c.idx, entries.c.leaf_hash).where(entries.c.idx.in_(leaf_positions))
        )
        found.update(((0, int(idx)), bytes(value)) for idx, value in rows)
    if inner:
        rows = conn.execute(sa.select(nodes.c.id, nodes.c.hash).where(nodes.c.id.in_(inner)))
        found.update((inner[int(key)], bytes(value)) for key, value in rows)
    missing = wanted - found.keys()
    if missing:
        level, position = min(missing)
        raise LedgerCorrupt(
            f"the ledger lacks the stored hash of the subtree at level {level} over entries"
            f" from {position << level}; run `kyso audit verify` to find the first inconsistency"
        )
    return found


def _range_hashes(conn: sa.Connection, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    parts = [merkle.range_decomposition(start, end) for start, end in ranges]
    stored = _fetch_perfect(conn, (key for part in parts for key in part))
    return [merkle.fold_perfect([stored[key] for key in part]) for part in parts]


def _root_at(conn: sa.Connection, tree_size: int) -> bytes:
    if tree_size == 0:
        return merkle.EMPTY_ROOT
    return _range_hashes(conn, [(0, tree_size)])[0]


class Ledger:
    """The ledger: append events, read entries, roots, proofs, and signed tree heads.

    Thread-safe; several processes may use the same database at once. The schema must have
    been created by ``audit.schema.MIGRATIONS`` (``kyso db upgrade``).
    """

    def __init__(
        self, engine: sa.Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._write_lock = threading.Lock()
        # The right edge of the tree as of the last append by this object: the hash of the
        # perfect subtree at each level where size has a 1 bit. Reloaded when another writer
        # (another process) has appended since.
        self._frontier_size = -1
        self._frontier: dict[int, bytes] = {}

    @property
    def engine(self) -> sa.Engine:
        """The database the ledger lives in."""
        return self._engine

    # -- appending ---------------------------------------------------------------------------

    def append(self, event: Event) -> int:
        """Append one event durably (its own transaction); return its index."""
        return self.append_prepared([prepare_event(event)]).start

    def append_batch(self, events: Sequence[Event]) -> range:
        """Append ``events`` in order, in one transaction; return their indexes.

        Every event is validated before the database is touched: one bad event appends none.
        """
        return self.append_prepared([prepare_event(event) for event in events])

    def append_prepared(self, prepared: Sequence[PreparedEvent]) -> range:
        """Append already prepared events in one transaction; return their indexes."""
        if not prepared:
            return range(0)
        with self._write_lock, _database("append events"):
            try:
                with self._engine.begin() as conn:
                    # First statement: takes the writers' lock (see the module docstring).
                    start = self._reserve(conn, len(prepared))
                    self._write(conn, start, prepared)
            except BaseException:
                self._frontier_size = -1
                raise
        return range(start, start + len(prepared))

    def drain_outbox(self, *, limit: int = 1000) -> dict[int, int]:
        """Append up to ``limit`` pending outbox rows in ``id`` order, in one transaction.

        Rows become visible when their change commits; on PostgreSQL ids are drawn before
        commit, so two changes committing at once may be ledgered in either order, while the
        changes of one transaction, and of transactions that follow each other, keep theirs.

        Returns ``{outbox id: ledger index}`` for the rows this call appended (empty when none
        was pending). Rows that another process is appending are left to it: the tree lock is
        taken before the pending rows are read, so no row is appended twice.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with _database("read the outbox"), self._engine.connect() as conn:
            # A look without the lock first: an idle drainer must not take the write lock.
            pending = conn.execute(
                sa.select(outbox.c.id).where(outbox.c.idx.is_(None)).limit(1)
            ).first()
        if pending is None:
            return {}
        with self._write_lock, _database("append staged events"):
            try:
                with self._engine.begin() as conn:
                    self._reserve(conn, 0)
                    rows = conn.execute(
                        sa.select(outbox.c.id, outbox.c.prefix, outbox.c.suffix)
                        .where(outbox.c.idx.is_(None))
                        .order_by(outbox.c.id)
                        .limit(limit)
                    ).all()
                    if not rows:
                        return {}
                    prepared = [_staged(row.prefix, row.suffix) for row in rows]
                    start = self._reserve(conn, len(rows))
                    self._write(conn, start, prepared)
                    indexes = {int(row.id): start + n for n, row in enumerate(rows)}
                    conn.execute(
                        sa.update(outbox)
                        .where(outbox.c.id == sa.bindparam("outbox_id"))
                        .values(idx=sa.bindparam("index"), prefix=None, suffix=None),
                        [{"outbox_id": k, "index": v} for k, v in indexes.items()],
                    )
            except BaseException:
                self._frontier_size = -1
                raise
        return indexes

    def outbox_indexes(self, outbox_ids: Iterable[int]) -> dict[int, int | None]:
        """The ledger index of each staged event (None while it is still pending)."""
        wanted = list(outbox_ids)
        with _database("read the outbox"), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.idx).where(outbox.c.id.in_(wanted))
            ).all()
        found = {int(row.id): None if row.idx is None else int(row.idx) for row in rows}
        return {outbox_id: found.get(outbox_id) for outbox_id in wanted}

    def pending_outbox(self) -> int:
        """How many staged events wait to be appended."""
        with _database("read the outbox"), self._engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.idx.is_(None))
            ).scalar_one()
        return int(count)

    def _reserve(self, conn: sa.Connection, count: int) -> int:
        """Take the writers' lock and ``count`` indexes; return the first of them."""
        new_size = conn.execute(
            sa.update(tree)
            .where(tree.c.id == 1)
            .values(size=tree.c.size + count)
            .returning(tree.c.size)
        ).scalar_one_or_none()
        if new_size is None:
            raise LedgerUnavailable(
                "the audit ledger is not initialised (no audit_tree row); run `kyso db upgrade`"
            )
        return int(new_size) - count

    def _write(self, conn: sa.Connection, start: int, prepared: Sequence[PreparedEvent]) -> None:
        """Insert entries and completed nodes for ``prepared`` at ``start`` (lock held)."""
        frontier = self._frontier_at(conn, start)
        entry_rows, node_rows, index_rows = _grow(frontier, start, prepared)
        conn.execute(entries.insert(), entry_rows)
        if node_rows:
            conn.execute(nodes.insert(), node_rows)
        if index_rows:
            conn.execute(document_index.insert(), index_rows)
        # Trusted only once the transaction commits; the callers reset it on any failure.
        self._frontier, self._frontier_size = frontier, start + len(prepared)

    def _frontier_at(self, conn: sa.Connection, size: int) -> dict[int, bytes]:
        if size == self._frontier_size:
            return dict(self._frontier)
        decomposition = merkle.range_decomposition(0, size) if size else []
        stored = _fetch_perfect(conn, decomposition)
        return {level: stored[(level, position)] for level, position in decomposition}

    # -- reading -----------------------------------------------------------------------------

    def size(self) -> int:
        """The number of entries committed."""
        with _database("read its size"), self._engine.connect() as conn:
            return _read_size(conn)

    def get_entry(self, index: int) -> Entry:
        """The entry at ``index``; checks it against its stored leaf hash and index."""
        with _database("read an entry"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(entries.c.leaf_hash, entries.c.entry).where(entries.c.idx == index)
            ).one_or_none()
        if row is None:
            raise EventNotFound(
                f"the ledger has no entry {index}; indexes run from 0 to the size minus one"
            )
        return _checked_entry(index, bytes(row.entry), bytes(row.leaf_hash))

    def entries(self, *, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        """The entries with ``start`` ≤ index < ``stop`` (default: all), in order, checked."""
        position = start
        while stop is None or position < stop:
            limit = 1000 if stop is None else min(1000, stop - position)
            with _database("read entries"), self._engine.connect() as conn:
                rows = conn.execute(
                    sa.select(entries.c.idx, entries.c.leaf_hash, entries.c.entry)
                    .where(entries.c.idx >= position)
                    .order_by(entries.c.idx)
                    .limit(limit)
                ).all()
            if not rows:
                return
            for row in rows:
                if row.idx != position:
                    raise LedgerCorrupt(
                        f"the ledger has no entry {position} but has later ones; run"
                        " `kyso audit verify` to find the first inconsistency"
                    )
                yield _checked_entry(position, bytes(row.entry), bytes(row.leaf_hash))
                position += 1

    def find(
        self, *, sha256: str | None = None, document_id: str | None = None, limit: int = 1000
    ) -> tuple[list[Entry], bool]:
        """The entries about a document, in ledger order, and whether more than ``limit`` are.

        A document is named by its content address (``sha256``, 64 hex digits: entries whose
        document or refs name it) or by edXML DocumentId; given both, entries about either.
        Every entry is checked against its stored leaf hash and index like ``get_entry``.
        """
        keys = []
        if sha256:
            digest = sha256.lower()
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise InvalidQuery(
                    "a document SHA-256 is 64 hexadecimal digits", field="document_sha256"
                )
            keys.append((SHA256, digest))
        if document_id:
            if len(document_id) > MAX_KEY_CHARS:
                raise InvalidQuery(
                    f"a DocumentId has at most {MAX_KEY_CHARS} characters", field="document_id"
                )
            keys.append((DOCUMENT_ID, document_id))
        if not keys:
            raise InvalidQuery(
                "name a document by its SHA-256 or its DocumentId", field="document_sha256"
            )
        if limit < 1:
            raise InvalidQuery("ask for at least one event", field="page_size")
        wanted = sa.or_(
            *(sa.and_(document_index.c.kind == k, document_index.c.value == v) for k, v in keys)
        )
        query = (
            sa.select(entries.c.idx, entries.c.leaf_hash, entries.c.entry)
            .where(entries.c.idx.in_(sa.select(document_index.c.idx).where(wanted)))
            .order_by(entries.c.idx)
            .limit(limit + 1)
        )
        with _database("find a document's entries"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        found = [
            _checked_entry(int(row.idx), bytes(row.entry), bytes(row.leaf_hash))
            for row in rows[:limit]
        ]
        return found, len(rows) > limit

    def root_hash(self, *, tree_size: int | None = None) -> bytes:
        """The Merkle root of the first ``tree_size`` entries (default: all)."""
        with _database("compute a root"), self._engine.connect() as conn:
            size = _read_size(conn)
            tree_size = size if tree_size is None else tree_size
            _check_size(tree_size, size)
            return _root_at(conn, tree_size)

    def inclusion_proof(self, *, index: int, tree_size: int) -> InclusionProof:
        """The proof that entry ``index`` is in the tree of ``tree_size``; O(log n) reads."""
        with _database("build an inclusion proof"), self._engine.connect() as conn:
            _check_size(tree_size, _read_size(conn))
            ranges = merkle.inclusion_ranges(index, tree_size)
            hashes = _range_hashes(conn, [(index, index + 1), *ranges])
        return InclusionProof(
            index=index, tree_size=tree_size, leaf_hash=hashes[0], path=tuple(hashes[1:])
        )

    def consistency_proof(self, *, old_size: int, new_size: int) -> ConsistencyProof:
        """The proof that the tree of ``old_size`` is a prefix of ``new_size``; O(log n) reads."""
        with _database("build a consistency proof"), self._engine.connect() as conn:
            _check_size(new_size, _read_size(conn))
            ranges = merkle.consistency_ranges(old_size, new_size)
            hashes = _range_hashes(conn, ranges) if ranges else []
        return ConsistencyProof(old_size=old_size, new_size=new_size, path=tuple(hashes))

    # -- tree heads --------------------------------------------------------------------------

    def sign_head(self, signer: HeadSigner) -> SignedTreeHead:
        """Sign the current (size, root, time) with ``signer``, keep the head, and return it."""
        with _database("read the tree to sign"), self._engine.connect() as conn:
            size = _read_size(conn)
            root = _root_at(conn, size)
        # Sign outside any transaction: an HSM may be slow, and appends must not wait for it.
        head = sign_tree_head(signer, tree_size=size, root_hash=root, time=self._clock())
        with _database("store a signed tree head"), self._engine.begin() as conn:
            _store_head(conn, head)
        log.info("signed tree head", extra={"tree_size": size, "root_hash": root.hex()})
        return head

    def sign_head_if_grown(self, signer: HeadSigner) -> SignedTreeHead | None:
        """Sign and keep a head of the current tree unless the largest head already covers it
        or another process is signing one right now; return the head, or None when not signed.

        The check, the signature and the insert are one transaction under ``HEADS_LOCK``
        (PostgreSQL; taken without waiting). Signing inside it holds a connection for the
        signature's time, but no lock that appends wait for: they take the tree row, which
        this only reads. On SQLite the transaction takes the database's write lock first, so
        appends from other processes wait for the signature (milliseconds).
        """
        with _database("sign a tree head"), self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                taken = conn.execute(
                    sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": HEADS_LOCK}
                ).scalar_one()
                if not taken:
                    return None
            else:  # SQLite: its one write lock, taken now (appends wait for the signature)
                conn.execute(sa.update(tree).where(tree.c.id == 1).values(size=tree.c.size))
            size = _read_size(conn)
            signed = conn.execute(sa.select(sa.func.max(heads.c.tree_size))).scalar_one()
            if signed is not None and int(signed) >= size:
                return None
            root = _root_at(conn, size)
            head = sign_tree_head(signer, tree_size=size, root_hash=root, time=self._clock())
            _store_head(conn, head)
        log.info("signed tree head", extra={"tree_size": size, "root_hash": root.hex()})
        return head

    def latest_head(self) -> SignedTreeHead:
        """The head of the largest tree (the most recent of that size)."""
        query = _head_query().order_by(
            heads.c.tree_size.desc(), heads.c.signed_at_us.desc(), heads.c.id.desc()
        )
        with _database("read the latest tree head"), self._engine.connect() as conn:
            row = conn.execute(query.limit(1)).one_or_none()
        if row is None:
            raise HeadNotFound("no tree head has been signed yet; sign one first")
        return _head_from_row(row)

    def head(self, *, tree_size: int) -> SignedTreeHead:
        """The most recent head signed for exactly ``tree_size`` entries."""
        query = (
            _head_query()
            .where(heads.c.tree_size == tree_size)
            .order_by(heads.c.signed_at_us.desc(), heads.c.id.desc())
        )
        with _database("read a tree head"), self._engine.connect() as conn:
            row = conn.execute(query.limit(1)).one_or_none()
        if row is None:
            raise HeadNotFound(f"no tree head was signed for size {tree_size}")
        return _head_from_row(row)

    def heads(self) -> list[SignedTreeHead]:
        """Every stored head, by tree size then time."""
        query = _head_query().order_by(heads.c.tree_size, heads.c.signed_at_us, heads.c.id)
        with _database("read the tree heads"), self._engine.connect() as conn:
            return [_head_from_row(row) for row in conn.execute(query)]


_Rows = list[dict[str, object]]


def _grow(
    frontier: dict[int, bytes], start: int, prepared: Sequence[PreparedEvent]
) -> tuple[_Rows, _Rows, _Rows]:
    """Entry, node and document-index rows for appending ``prepared`` at ``start``; updates
    ``frontier`` in place.

    Appending leaf ``index`` completes the perfect subtrees at every level where ``index``
    has a trailing 1 bit: each is the hash of the waiting left sibling and the new right one.
    """
    entry_rows: _Rows = []
    node_rows: _Rows = []
    index_rows: _Rows = []
    for index, event in enumerate(prepared, start):
        data = event.at(index)
        current = merkle.leaf_hash(data)
        entry_rows.append({"idx": index, "leaf_hash": current, "entry": data})
        index_rows.extend(
            {"kind": kind, "value": value, "idx": index} for kind, value in sorted(keys_of(data))
        )
        level = 0
        while index >> level & 1:
            current = merkle.node_hash(frontier.pop(level), current)
            level += 1
            node_rows.append({"id": node_id(level, index >> level), "hash": current})
        frontier[level] = current
    return entry_rows, node_rows, index_rows


def _staged(prefix: bytes | None, suffix: bytes | None) -> PreparedEvent:
    if prefix is None or suffix is None:
        raise LedgerCorrupt("a pending audit outbox row has no encoded event")
    return PreparedEvent(prefix=bytes(prefix), suffix=bytes(suffix))


def _checked_entry(index: int, data: bytes, stored_leaf: bytes) -> Entry:
    if merkle.leaf_hash(data) != stored_leaf:
        raise LedgerCorrupt(
            f"entry {index} does not match its stored leaf hash: it was altered;"
            " run `kyso audit verify` for the full report"
        )
    try:
        entry = decode_entry(data)
    except InvalidEntry as exc:
        raise LedgerCorrupt(f"entry {index} is not a valid entry: {exc}") from exc
    if entry.index != index:
        raise LedgerCorrupt(
            f"the entry stored at index {index} records index {entry.index}: entries were"
            " moved; run `kyso audit verify` for the full report"
        )
    return entry


def _check_size(tree_size: int, size: int) -> None:
    if not 0 <= tree_size <= size:
        raise InvalidTreeSize(
            f"tree size {tree_size} is out of range: the ledger has {size} entries"
        )


def _insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise LedgerUnavailable(
        f"the audit ledger supports SQLite and PostgreSQL, not {conn.dialect.name}"
    )


def _store_head(conn: sa.Connection, head: SignedTreeHead) -> None:
    conn.execute(
        _insert_ignoring_duplicates(conn, certificates),
        {"sha256": head.certificate_sha256, "der": head.certificate},
    )
    conn.execute(
        heads.insert().values(
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            signed_at_us=to_microseconds(head.time),
            algorithm=head.algorithm.value,
            signature=head.signature,
            certificate_sha256=head.certificate_sha256,
        )
    )


def _head_query() -> sa.Select[tuple[object, ...]]:
    return sa.select(
        heads.c.tree_size,
        heads.c.root_hash,
        heads.c.signed_at_us,
        heads.c.algorithm,
        heads.c.signature,
        certificates.c.der,
    ).join(certificates, certificates.c.sha256 == heads.c.certificate_sha256)


def _head_from_row(row: sa.Row[tuple[object, ...]]) -> SignedTreeHead:
    try:
        algorithm = SignatureAlgorithm(row.algorithm)
    except ValueError as exc:
        raise LedgerCorrupt(
            f"a stored tree head names an unknown signature algorithm {row.algorithm!r}"
        ) from exc
    return SignedTreeHead(
        tree_size=int(row.tree_size),
        root_hash=bytes(row.root_hash),
        time=from_microseconds(int(row.signed_at_us)),
        algorithm=algorithm,
        signature=bytes(row.signature),
        certificate=bytes(row.der),
    )
