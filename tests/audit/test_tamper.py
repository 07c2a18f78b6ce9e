"""Tampering with the database or an export is detected, and the first fault is named."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import (
    Entry,
    ExportExists,
    Ledger,
    Problem,
    encode_entry,
    export,
    merkle,
    verify_database,
    verify_export,
)
from audit.entry import format_time, parse_time
from audit.heads import certificate_sha256, from_microseconds, sign_tree_head
from audit.ledger import node_id
from audit.schema import certificates, entries, heads, nodes, tree
from tests.audit.conftest import SoftwareHeadSigner, make_event

SIZE = 20
HEAD_SIZES = (8, 16, 20)


@pytest.fixture
def signed_ledger(ledger: Ledger, head_signer: SoftwareHeadSigner) -> Ledger:
    """20 entries with heads at 8, 16 and 20."""
    start = 0
    for size in HEAD_SIZES:
        ledger.append_batch([make_event(n) for n in range(start, size)])
        ledger.sign_head(head_signer)
        start = size
    return ledger


def _forged(index: int) -> bytes:
    return encode_entry(Entry(index=index, event=make_event(1000 + index)))


def _rows(engine: sa.Engine) -> list[tuple[int, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(entries.c.idx, entries.c.entry).order_by(entries.c.idx))
        return [(int(i), bytes(e)) for i, e in rows]


def _rewrite_entries(engine: sa.Engine, new: list[tuple[int, bytes]]) -> None:
    """Replace every entry row (an operator with full database access)."""
    with engine.begin() as conn:
        conn.execute(entries.delete())
        conn.execute(
            entries.insert(),
            [{"idx": i, "entry": e, "leaf_hash": merkle.leaf_hash(e)} for i, e in new],
        )


def _recompute_nodes(engine: sa.Engine) -> None:
    """Recompute every stored Merkle node from the entries as they now are."""
    leaves = [e for _, e in _rows(engine)]
    rows = []
    for level in range(1, len(leaves).bit_length()):
        for position in range(len(leaves) >> level):
            span = leaves[position << level : (position + 1) << level]
            rows.append({"id": node_id(level, position), "hash": merkle.root_hash(span)})
    with engine.begin() as conn:
        conn.execute(nodes.delete())
        conn.execute(nodes.insert(), rows)
        conn.execute(tree.update().values(size=len(leaves)))


def _resign_heads(engine: sa.Engine, signer: SoftwareHeadSigner) -> None:
    leaves = [e for _, e in _rows(engine)]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(certificates).values(
                sha256=certificate_sha256(signer.certificate), der=signer.certificate
            )
        )
        for head_id, size, signed_at in conn.execute(
            sa.select(heads.c.id, heads.c.tree_size, heads.c.signed_at_us)
        ).all():
            head = sign_tree_head(
                signer,
                tree_size=size,
                root_hash=merkle.root_hash(leaves[:size]),
                time=from_microseconds(signed_at),
            )
            conn.execute(
                heads.update()
                .where(heads.c.id == head_id)
                .values(
                    root_hash=head.root_hash,
                    signature=head.signature,
                    certificate_sha256=head.certificate_sha256,
                )
            )


def _edit_entry_only(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(entries.update().where(entries.c.idx == 5).values(entry=_forged(5)))


def _edit_entry_and_leaf(engine: sa.Engine) -> None:
    forged = _forged(5)
    with engine.begin() as conn:
        conn.execute(
            entries.update()
            .where(entries.c.idx == 5)
            .values(entry=forged, leaf_hash=merkle.leaf_hash(forged))
        )


def _edit_entry_and_every_hash(engine: sa.Engine) -> None:
    rows = _rows(engine)
    rows[5] = (5, _forged(5))
    _rewrite_entries(engine, rows)
    _recompute_nodes(engine)


def _delete_entry(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(entries.delete().where(entries.c.idx == 5))


def _delete_and_renumber(engine: sa.Engine) -> None:
    rows = _rows(engine)
    _rewrite_entries(engine, [(i, e) for i, (_, e) in enumerate(rows[:5] + rows[6:])])


def _swap_entries(engine: sa.Engine) -> None:
    rows = dict(_rows(engine))
    rows[3], rows[4] = rows[4], rows[3]
    _rewrite_entries(engine, sorted(rows.items()))


def _insert_entry(engine: sa.Engine) -> None:
    rows = [e for _, e in _rows(engine)]
    rows.insert(5, _forged(5))
    _rewrite_entries(engine, list(enumerate(rows)))


def _insert_at_end(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        forged = _forged(SIZE)
        conn.execute(
            entries.insert().values(idx=SIZE, entry=forged, leaf_hash=merkle.leaf_hash(forged))
        )


def _truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(entries.delete().where(entries.c.idx >= 17))
    _recompute_nodes(engine)


def _replace_head_root(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(heads.update().where(heads.c.tree_size == 16).values(root_hash=bytes(32)))


def _resign_after_edit(other: SoftwareHeadSigner) -> Callable[[sa.Engine], None]:
    def tamper(engine: sa.Engine) -> None:
        _edit_entry_and_every_hash(engine)
        _resign_heads(engine, other)

    return tamper


DATABASE_TAMPERS = {
    "entry edited": (_edit_entry_only, Problem.LEAF_HASH_MISMATCH, (5, 6)),
    "entry and its leaf hash edited": (_edit_entry_and_leaf, Problem.NODE_MISMATCH, (4, 6)),
    "entry edited, all hashes recomputed": (
        _edit_entry_and_every_hash,
        Problem.HEAD_ROOT_MISMATCH,
        (0, 8),
    ),
    "entry deleted": (_delete_entry, Problem.ENTRY_MISSING, (5, 6)),
    "entry deleted, later ones renumbered": (
        _delete_and_renumber,
        Problem.ENTRY_MISPLACED,
        (5, 6),
    ),
    "entries reordered": (_swap_entries, Problem.ENTRY_MISPLACED, (3, 4)),
    "entry inserted": (_insert_entry, Problem.NODE_MISMATCH, (4, 6)),
    "entry inserted at the end": (_insert_at_end, Problem.SIZE_MISMATCH, (SIZE, SIZE + 1)),
    "log truncated": (_truncate, Problem.LOG_TRUNCATED, (17, 20)),
    "head replaced": (_replace_head_root, Problem.HEAD_SIGNATURE_INVALID, None),
}


def test_untouched_database_verifies(signed_ledger: Ledger, head_signer) -> None:
    report = verify_database(signed_ledger.engine, trusted_certs=[head_signer.certificate])
    assert report.ok, report.first_inconsistency
    assert (report.entries_checked, report.heads_checked) == (SIZE, 3)
    assert report.root_hash == signed_ledger.root_hash()


@pytest.mark.parametrize("name", DATABASE_TAMPERS)
def test_database_tampering_is_named(signed_ledger: Ledger, head_signer, name: str) -> None:
    tamper, problem, span = DATABASE_TAMPERS[name]
    tamper(signed_ledger.engine)
    report = verify_database(signed_ledger.engine, trusted_certs=[head_signer.certificate])
    fault = report.first_inconsistency
    assert fault is not None, name
    assert fault.problem is problem, fault.message
    if span is not None:
        assert (fault.first_entry, fault.end_entry) == span, fault.message
    else:
        assert fault.head_tree_size == 16
    assert fault.message


def test_database_resigned_with_another_key(
    signed_ledger: Ledger, head_signer, other_signer
) -> None:
    _resign_after_edit(other_signer)(signed_ledger.engine)
    # Self-consistent now: only the trust anchor tells it apart.
    assert verify_database(signed_ledger.engine, trusted_certs=[other_signer.certificate]).ok
    report = verify_database(signed_ledger.engine, trusted_certs=[head_signer.certificate])
    assert report.first_inconsistency is not None
    assert report.first_inconsistency.problem is Problem.HEAD_SIGNER_UNTRUSTED
    assert report.first_inconsistency.head_tree_size == 8


# -- exports --------------------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _set_manifest_entries(directory: Path, count: int) -> None:
    manifest = json.loads((directory / "manifest.json").read_bytes())
    manifest["entries"] = count
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _export_edit_canonically(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    lines[5] = _forged(5) + b"\n"
    (directory / "entries.jsonl").write_bytes(b"".join(lines))


def _export_edit_bytes(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    lines[5] = lines[5].replace(b'"v":1', b'"v": 1')
    (directory / "entries.jsonl").write_bytes(b"".join(lines))


def _export_delete(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    del lines[5]
    (directory / "entries.jsonl").write_bytes(b"".join(lines))
    _set_manifest_entries(directory, SIZE - 1)


def _export_swap(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    lines[3], lines[4] = lines[4], lines[3]
    (directory / "entries.jsonl").write_bytes(b"".join(lines))


def _export_insert(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    lines.insert(5, _forged(5) + b"\n")
    (directory / "entries.jsonl").write_bytes(b"".join(lines))
    _set_manifest_entries(directory, SIZE + 1)


def _export_truncate(directory: Path) -> None:
    lines = _lines(directory / "entries.jsonl")
    (directory / "entries.jsonl").write_bytes(b"".join(lines[:17]))
    _set_manifest_entries(directory, 17)


def _export_replace_head(directory: Path) -> None:
    lines = _lines(directory / "heads.jsonl")
    head = json.loads(lines[1])
    head["root_hash"] = "00" * 32
    lines[1] = json.dumps(head).encode() + b"\n"
    (directory / "heads.jsonl").write_bytes(b"".join(lines))


EXPORT_TAMPERS = {
    "entry edited": (_export_edit_canonically, Problem.HEAD_ROOT_MISMATCH, (0, 8)),
    "entry bytes altered": (_export_edit_bytes, Problem.ENTRY_MALFORMED, (5, 6)),
    "entry deleted": (_export_delete, Problem.ENTRY_MISPLACED, (5, 6)),
    "entries reordered": (_export_swap, Problem.ENTRY_MISPLACED, (3, 4)),
    "entry inserted": (_export_insert, Problem.ENTRY_MISPLACED, (6, 7)),
    "log truncated": (_export_truncate, Problem.LOG_TRUNCATED, (17, 20)),
    "head replaced": (_export_replace_head, Problem.HEAD_SIGNATURE_INVALID, None),
}


def test_untouched_export_verifies(signed_ledger: Ledger, head_signer, tmp_path: Path) -> None:
    summary = export(signed_ledger.engine, tmp_path / "export")
    assert (summary.entries, summary.heads) == (SIZE, 3)
    lines = _lines(tmp_path / "export" / "entries.jsonl")
    assert [line[:-1] for line in lines] == [encode_entry(e) for e in signed_ledger.entries()]
    report = verify_export(tmp_path / "export", trusted_certs=[head_signer.certificate])
    assert report.ok, report.first_inconsistency
    assert (report.entries_checked, report.heads_checked) == (SIZE, 3)
    assert report.root_hash == signed_ledger.root_hash()


@pytest.mark.parametrize("name", EXPORT_TAMPERS)
def test_export_tampering_is_named(
    signed_ledger: Ledger, head_signer, tmp_path: Path, name: str
) -> None:
    directory = tmp_path / "export"
    export(signed_ledger.engine, directory)
    tamper, problem, span = EXPORT_TAMPERS[name]
    tamper(directory)
    report = verify_export(directory, trusted_certs=[head_signer.certificate])
    fault = report.first_inconsistency
    assert fault is not None, name
    assert fault.problem is problem, fault.message
    if span is not None:
        assert (fault.first_entry, fault.end_entry) == span, fault.message
    else:
        assert fault.head_tree_size == 16


def test_export_head_resigned_with_another_key(
    signed_ledger: Ledger, head_signer, other_signer, tmp_path: Path
) -> None:
    directory = tmp_path / "export"
    export(signed_ledger.engine, directory)
    _export_edit_canonically(directory)
    leaves = [line[:-1] for line in _lines(directory / "entries.jsonl")]
    lines = _lines(directory / "heads.jsonl")
    forged = []
    for line in lines:
        old = json.loads(line)
        head = sign_tree_head(
            other_signer,
            tree_size=old["tree_size"],
            root_hash=merkle.root_hash(leaves[: old["tree_size"]]),
            time=parse_time(old["time"]),
        )
        forged.append(
            json.dumps(
                {
                    "algorithm": head.algorithm.value,
                    "certificate_sha256": head.certificate_sha256.hex(),
                    "root_hash": head.root_hash.hex(),
                    "signature": base64.b64encode(head.signature).decode(),
                    "time": format_time(head.time),
                    "tree_size": head.tree_size,
                }
            ).encode()
            + b"\n"
        )
    (directory / "heads.jsonl").write_bytes(b"".join(forged))
    fingerprint = certificate_sha256(other_signer.certificate).hex()
    (directory / "certificates" / f"{fingerprint}.der").write_bytes(other_signer.certificate)
    assert verify_export(directory, trusted_certs=[other_signer.certificate]).ok
    report = verify_export(directory, trusted_certs=[head_signer.certificate])
    assert report.first_inconsistency is not None
    assert report.first_inconsistency.problem is Problem.HEAD_SIGNER_UNTRUSTED


def test_export_refuses_a_non_empty_directory(signed_ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(ExportExists):
        export(signed_ledger.engine, tmp_path)
    assert (tmp_path / "x").read_text() == "keep me"


def test_incomplete_export_is_reported(signed_ledger: Ledger, head_signer, tmp_path) -> None:
    export(signed_ledger.engine, tmp_path / "e")
    (tmp_path / "e" / "manifest.json").unlink()
    report = verify_export(tmp_path / "e", trusted_certs=[head_signer.certificate])
    assert report.first_inconsistency is not None
    assert report.first_inconsistency.problem is Problem.EXPORT_MALFORMED
