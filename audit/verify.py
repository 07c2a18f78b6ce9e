"""Offline verification of a ledger, in its database or in an export, down to the first fault.

Both verifiers recompute everything from the entry bytes and trust only the head-signing
certificates they are given. They check, in this order, and stop at the first inconsistency:

1. every signed tree head: signed by a trusted certificate, and the signature verifies;
2. every entry, in index order: present (no gap), a canonical entry recording its own index,
   matching its stored leaf hash (database) — then every Merkle node it completes matches the
   stored node (database) — then every head of exactly that size has the recomputed root;
3. at the end: no head covers more entries than exist (truncation); the recorded size
   (database: ``audit_tree``; export: the manifest) equals the number of entries; the database
   holds no node beyond those the entries complete.

A head's root is what anchors entries: an entry changed *with* every stored hash recomputed is
caught by the first head covering it, and the report names the range of entries between the
last head that matched and that head.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from audit import merkle
from audit.entry import decode_entry, parse_time
from audit.errors import HeadSignatureInvalid, HeadSignerUntrusted, InvalidEntry
from audit.export import EXPORT_FORMAT
from audit.heads import (
    SignatureAlgorithm,
    SignedTreeHead,
    TrustedCertificates,
    from_microseconds,
    verify_head,
)
from audit.ledger import _database, node_id
from audit.schema import certificates, entries, heads, nodes, tree

__all__ = [
    "Inconsistency",
    "Problem",
    "VerificationReport",
    "verify_database",
    "verify_export",
]

_CHUNK = 2000


class Problem(enum.StrEnum):
    """What kind of inconsistency was found."""

    EXPORT_MALFORMED = "export-malformed"
    HEAD_SIGNER_UNTRUSTED = "head-signer-untrusted"
    HEAD_SIGNATURE_INVALID = "head-signature-invalid"
    ENTRY_MISSING = "entry-missing"
    ENTRY_MALFORMED = "entry-malformed"
    ENTRY_MISPLACED = "entry-misplaced"
    LEAF_HASH_MISMATCH = "leaf-hash-mismatch"
    NODE_MISMATCH = "node-mismatch"
    HEAD_ROOT_MISMATCH = "head-root-mismatch"
    LOG_TRUNCATED = "log-truncated"
    SIZE_MISMATCH = "size-mismatch"
    NODE_EXTRA = "node-extra"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inconsistency:
    """The first thing found wrong.

    ``first_entry``..``end_entry`` (half-open) are the entries concerned when the fault is tied
    to entries (one entry: ``end_entry == first_entry + 1``); ``head_tree_size`` is the size of
    the tree head concerned, if any. ``message`` says it for a person.
    """

    problem: Problem
    message: str
    first_entry: int | None = None
    end_entry: int | None = None
    head_tree_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationReport:
    """The outcome: how much was checked, the recomputed root, and the first inconsistency."""

    entries_checked: int
    heads_checked: int
    root_hash: bytes
    first_inconsistency: Inconsistency | None

    @property
    def ok(self) -> bool:
        """True when nothing is inconsistent."""
        return self.first_inconsistency is None


class _Found(Exception):
    """Internal: carries the first inconsistency out of the walk."""

    def __init__(self, inconsistency: Inconsistency) -> None:
        super().__init__(inconsistency.message)
        self.inconsistency = inconsistency


def _entry_fault(problem: Problem, index: int, message: str, end: int | None = None) -> _Found:
    return _Found(
        Inconsistency(
            problem=problem,
            message=message,
            first_entry=index,
            end_entry=index + 1 if end is None else end,
        )
    )


def _check_heads(head_list: Sequence[SignedTreeHead], trusted: TrustedCertificates) -> None:
    for head in head_list:
        try:
            verify_head(head, trusted=trusted)
        except HeadSignerUntrusted as exc:
            raise _Found(
                Inconsistency(
                    problem=Problem.HEAD_SIGNER_UNTRUSTED,
                    message=str(exc),
                    head_tree_size=head.tree_size,
                )
            ) from exc
        except HeadSignatureInvalid as exc:
            raise _Found(
                Inconsistency(
                    problem=Problem.HEAD_SIGNATURE_INVALID,
                    message=str(exc),
                    head_tree_size=head.tree_size,
                )
            ) from exc


class _Walk:
    """Rebuilds the tree entry by entry and checks it against stored hashes and heads."""

    def __init__(self, head_list: Sequence[SignedTreeHead]) -> None:
        self.size = 0
        self._frontier: dict[int, bytes] = {}
        self._heads = sorted(head_list, key=lambda head: head.tree_size)
        self._next_head = 0
        self._anchored = 0  # the size of the last head that matched
        self._check_heads_at_size()

    def root(self) -> bytes:
        if not self._frontier:
            return merkle.EMPTY_ROOT
        return merkle.fold_perfect([self._frontier[k] for k in sorted(self._frontier)[::-1]])

    def add(
        self,
        data: bytes,
        *,
        stored_leaf: bytes | None = None,
        stored_nodes: Mapping[int, bytes] | None = None,
    ) -> None:
        index = self.size
        leaf = merkle.leaf_hash(data)
        if stored_leaf is not None and stored_leaf != leaf:
            raise _entry_fault(
                Problem.LEAF_HASH_MISMATCH,
                index,
                f"entry {index} does not match its stored leaf hash: the entry was edited",
            )
        try:
            recorded = decode_entry(data).index
        except InvalidEntry as exc:
            raise _entry_fault(
                Problem.ENTRY_MALFORMED, index, f"entry {index} is not a valid entry: {exc}"
            ) from exc
        if recorded != index:
            cause = (
                "an entry before it is missing, or entries were reordered"
                if recorded > index
                else "an entry was inserted before it, or entries were reordered or duplicated"
            )
            raise _entry_fault(
                Problem.ENTRY_MISPLACED,
                index,
                f"the entry at position {index} records index {recorded}: {cause}",
            )
        current, level = leaf, 0
        while index >> level & 1:
            current = merkle.node_hash(self._frontier.pop(level), current)
            level += 1
            if stored_nodes is not None:
                stored = stored_nodes.get(node_id(level, index >> level))
                if stored != current:
                    first = (index >> level) << level
                    state = "is missing" if stored is None else "disagrees with them"
                    raise _entry_fault(
                        Problem.NODE_MISMATCH,
                        first,
                        f"the stored Merkle node over entries {first}..{index} {state}:"
                        " one of those entries or the node was altered",
                        end=index + 1,
                    )
        self._frontier[level] = current
        self.size += 1
        self._check_heads_at_size()

    def _check_heads_at_size(self) -> None:
        while self._next_head < len(self._heads):
            head = self._heads[self._next_head]
            if head.tree_size != self.size:
                return
            if head.root_hash != self.root():
                raise _Found(
                    Inconsistency(
                        problem=Problem.HEAD_ROOT_MISMATCH,
                        message=(
                            f"the signed tree head of size {head.tree_size} does not match"
                            f" entries 0..{head.tree_size - 1}; the last head that matched"
                            f" covers {self._anchored} entries, so an entry among"
                            f" {self._anchored}..{head.tree_size - 1} was changed, inserted,"
                            " deleted or moved after it was signed"
                        ),
                        first_entry=self._anchored,
                        end_entry=head.tree_size,
                        head_tree_size=head.tree_size,
                    )
                )
            self._anchored = self.size
            self._next_head += 1

    def finish(self) -> None:
        if self._next_head < len(self._heads):
            head = self._heads[-1]
            raise _Found(
                Inconsistency(
                    problem=Problem.LOG_TRUNCATED,
                    message=(
                        f"the log was truncated: a signed tree head covers {head.tree_size}"
                        f" entries but only {self.size} exist; entries {self.size}.."
                        f"{head.tree_size - 1} are gone"
                    ),
                    first_entry=self.size,
                    end_entry=head.tree_size,
                    head_tree_size=head.tree_size,
                )
            )


def _report(walk: _Walk | None, head_count: int, found: _Found | None) -> VerificationReport:
    return VerificationReport(
        entries_checked=walk.size if walk else 0,
        heads_checked=head_count,
        root_hash=walk.root() if walk else merkle.EMPTY_ROOT,
        first_inconsistency=found.inconsistency if found else None,
    )


# -- database ------------------------------------------------------------------------------


def _database_heads(conn: sa.Connection) -> list[SignedTreeHead]:
    query = (
        sa.select(
            heads.c.tree_size,
            heads.c.root_hash,
            heads.c.signed_at_us,
            heads.c.algorithm,
            heads.c.signature,
            certificates.c.der,
        )
        .join(certificates, certificates.c.sha256 == heads.c.certificate_sha256)
        .order_by(heads.c.tree_size, heads.c.signed_at_us, heads.c.id)
    )
    return [
        SignedTreeHead(
            tree_size=int(row.tree_size),
            root_hash=bytes(row.root_hash),
            time=from_microseconds(int(row.signed_at_us)),
            # An unknown algorithm name is reported by verify_head, not raised here.
            algorithm=row.algorithm,
            signature=bytes(row.signature),
            certificate=bytes(row.der),
        )
        for row in conn.execute(query)
    ]


def _completed_node_ids(start: int, end: int) -> list[int]:
    ids = []
    for index in range(start, end):
        level = 0
        while index >> level & 1:
            level += 1
            ids.append(node_id(level, index >> level))
    return ids


def _walk_database(conn: sa.Connection, walk: _Walk, recorded_size: int) -> None:
    position = 0
    while True:
        rows = conn.execute(
            sa.select(entries.c.idx, entries.c.leaf_hash, entries.c.entry)
            .where(entries.c.idx >= position)
            .order_by(entries.c.idx)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        end = int(rows[-1].idx) + 1
        wanted = _completed_node_ids(position, end)
        stored_nodes = {
            int(key): bytes(value)
            for key, value in conn.execute(
                sa.select(nodes.c.id, nodes.c.hash).where(nodes.c.id.in_(wanted))
            )
        }
        for row in rows:
            index = int(row.idx)
            if index != position:
                raise _entry_fault(
                    Problem.ENTRY_MISSING,
                    position,
                    f"entry {position} is missing (the next stored entry is {index}):"
                    " it was deleted",
                    end=index,
                )
            if index >= recorded_size:
                raise _entry_fault(
                    Problem.SIZE_MISMATCH,
                    index,
                    f"entry {index} lies beyond the ledger's recorded size {recorded_size}:"
                    " it was inserted outside the ledger",
                )
            walk.add(bytes(row.entry), stored_leaf=bytes(row.leaf_hash), stored_nodes=stored_nodes)
            position += 1


def verify_database(engine: sa.Engine, *, trusted_certs: Iterable[bytes]) -> VerificationReport:
    """Recompute the ledger stored in ``engine`` and report its first inconsistency.

    ``trusted_certs`` are the DER certificates whose heads are trusted. Reads the database
    only; a ledger being appended to concurrently is checked up to the size read at the start.
    """
    trusted = TrustedCertificates(trusted_certs)
    walk: _Walk | None = None
    head_list: list[SignedTreeHead] = []
    try:
        with _database("verify the ledger"), engine.connect() as conn:
            recorded_size = int(conn.execute(sa.select(tree.c.size)).scalar_one())
            head_list = _database_heads(conn)
            _check_heads(head_list, trusted)
            walk = _Walk(head_list)
            _walk_database(conn, walk, recorded_size)
            walk.finish()
            if walk.size != recorded_size:
                raise _entry_fault(
                    Problem.SIZE_MISMATCH,
                    walk.size,
                    f"the ledger records {recorded_size} entries but only {walk.size} exist:"
                    f" entries {walk.size}..{recorded_size - 1} were deleted",
                    end=recorded_size,
                )
            expected = walk.size - walk.size.bit_count()
            stored = int(conn.execute(sa.select(sa.func.count()).select_from(nodes)).scalar_one())
            if stored != expected:
                raise _Found(
                    Inconsistency(
                        problem=Problem.NODE_EXTRA,
                        message=(
                            f"the database holds {stored} Merkle nodes where {walk.size} entries"
                            f" make {expected}: nodes were inserted outside the ledger"
                        ),
                    )
                )
    except _Found as found:
        return _report(walk, len(head_list), found)
    return _report(walk, len(head_list), None)


# -- export --------------------------------------------------------------------------------


def _export_fault(message: str) -> _Found:
    return _Found(Inconsistency(problem=Problem.EXPORT_MALFORMED, message=message))


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _export_fault(f"{path.name} cannot be read as JSON ({type(exc).__name__})") from exc


def _export_heads(directory: Path) -> list[SignedTreeHead]:
    path = directory / "heads.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise _export_fault(f"{path.name} cannot be read ({type(exc).__name__})") from exc
    result = []
    for number, line in enumerate(lines, 1):
        try:
            raw = json.loads(line)
            fingerprint = raw["certificate_sha256"]
            if not isinstance(fingerprint, str) or len(fingerprint) != 64:
                raise ValueError("a certificate is named by its SHA-256 in hex")
            der = (directory / "certificates" / f"{fingerprint.lower()}.der").read_bytes()
            result.append(
                SignedTreeHead(
                    tree_size=int(raw["tree_size"]),
                    root_hash=bytes.fromhex(raw["root_hash"]),
                    time=parse_time(raw["time"]),
                    algorithm=SignatureAlgorithm(raw["algorithm"]),
                    signature=base64.b64decode(raw["signature"], validate=True),
                    certificate=der,
                )
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise _export_fault(
                f"line {number} of {path.name} is not a valid tree head ({type(exc).__name__})"
            ) from exc
    return result


def _export_lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as stream:
            for line in stream:
                if not line.endswith(b"\n"):
                    raise _export_fault(f"{path.name} ends in the middle of a line")
                yield line[:-1]
    except OSError as exc:
        raise _export_fault(f"{path.name} cannot be read ({type(exc).__name__})") from exc


def verify_export(directory: Path, *, trusted_certs: Iterable[bytes]) -> VerificationReport:
    """Recompute the ledger exported to ``directory`` and report its first inconsistency."""
    directory = Path(directory)
    trusted = TrustedCertificates(trusted_certs)
    walk: _Walk | None = None
    head_list: list[SignedTreeHead] = []
    try:
        manifest = _read_json(directory / "manifest.json")
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            raise _export_fault(f"manifest.json does not describe a {EXPORT_FORMAT} export")
        head_list = _export_heads(directory)
        _check_heads(head_list, trusted)
        walk = _Walk(head_list)
        for data in _export_lines(directory / "entries.jsonl"):
            walk.add(data)
        walk.finish()
        if walk.size != manifest.get("entries"):
            raise _entry_fault(
                Problem.SIZE_MISMATCH,
                walk.size,
                f"the manifest lists {manifest.get('entries')} entries but entries.jsonl has"
                f" {walk.size}: lines were added or removed after the export",
            )
    except _Found as found:
        return _report(walk, len(head_list), found)
    return _report(walk, len(head_list), None)
