"""Export of the ledger to a directory an auditor can verify offline.

Layout (format ``kyso-audit-export-v1``):

- ``entries.jsonl``: entry ``i`` on line ``i`` (0-based), its canonical bytes as stored
  (canonical entries are single-line JSON), each line ending in ``\\n``;
- ``heads.jsonl``: one signed tree head per line, by size then time: canonical JSON with
  ``tree_size``, ``root_hash`` (hex), ``time`` (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``algorithm``,
  ``signature`` (base64), ``certificate_sha256`` (hex);
- ``certificates/<sha256 hex>.der``: each head-signing certificate;
- ``manifest.json``: ``format``, ``entries`` (count) and ``heads`` (count), written last: an
  export without it is incomplete.

The export copies what the database holds, bytes as stored, without judging it: verification
(``audit.verify.verify_export``) is what finds faults, so a tampered database exports tampered.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from audit.entry import format_time
from audit.errors import AuditError
from audit.heads import from_microseconds
from audit.ledger import _database
from audit.schema import certificates, entries, heads, tree

__all__ = ["EXPORT_FORMAT", "ExportExists", "ExportSummary", "export"]

EXPORT_FORMAT = "kyso-audit-export-v1"
_CHUNK = 5000


class ExportExists(AuditError):
    """The export directory already holds files; exports never overwrite."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    """What was written: the directory, the number of entries and of heads."""

    directory: Path
    entries: int
    heads: int


def _canonical(value: dict[str, object]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sync(stream: BinaryIO) -> None:
    stream.flush()
    os.fsync(stream.fileno())


def export(engine: sa.Engine, directory: Path) -> ExportSummary:
    """Write the ledger in ``engine`` to ``directory`` (created; must not hold files).

    Exports the entries committed when it starts, and every head of at most that size, so the
    export is consistent even while the ledger keeps growing.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ExportExists(f"{directory} is not empty; export into a new or empty directory")
    (directory / "certificates").mkdir(parents=True, exist_ok=True)
    with _database("export the ledger"), engine.connect() as conn:
        size = int(conn.execute(sa.select(tree.c.size)).scalar_one())
        with (directory / "entries.jsonl").open("wb") as stream:
            position = 0
            while position < size:
                rows = conn.execute(
                    sa.select(entries.c.entry)
                    .where(entries.c.idx >= position, entries.c.idx < size)
                    .order_by(entries.c.idx)
                    .limit(_CHUNK)
                ).all()
                if not rows:
                    break
                stream.writelines(bytes(row.entry) + b"\n" for row in rows)
                position += len(rows)
            _sync(stream)
        head_rows = conn.execute(
            sa.select(
                heads.c.tree_size,
                heads.c.root_hash,
                heads.c.signed_at_us,
                heads.c.algorithm,
                heads.c.signature,
                heads.c.certificate_sha256,
            )
            .where(heads.c.tree_size <= size)
            .order_by(heads.c.tree_size, heads.c.signed_at_us, heads.c.id)
        ).all()
        with (directory / "heads.jsonl").open("wb") as stream:
            for row in head_rows:
                line = _canonical(
                    {
                        "algorithm": row.algorithm,
                        "certificate_sha256": bytes(row.certificate_sha256).hex(),
                        "root_hash": bytes(row.root_hash).hex(),
                        "signature": base64.b64encode(bytes(row.signature)).decode("ascii"),
                        "time": format_time(from_microseconds(int(row.signed_at_us))),
                        "tree_size": int(row.tree_size),
                    }
                )
                stream.write(line + b"\n")
            _sync(stream)
        for fingerprint, der in conn.execute(sa.select(certificates.c.sha256, certificates.c.der)):
            with (directory / "certificates" / f"{bytes(fingerprint).hex()}.der").open("wb") as f:
                f.write(bytes(der))
                _sync(f)
    with (directory / "manifest.json").open("wb") as stream:
        manifest = {"entries": position, "format": EXPORT_FORMAT, "heads": len(head_rows)}
        stream.write(_canonical(manifest) + b"\n")
        _sync(stream)
    return ExportSummary(directory=directory, entries=position, heads=len(head_rows))
