"""What the ledger's document index is keyed by: the documents an entry is about.

An entry is about a document when it names it by content address — its ``document_sha256``,
or a ref of the form ``sha256/<64 hex digits>`` (the source of a signature, a package's
attachments) — or by edXML DocumentId (``details["document_id"]``). ``keys_of`` reads those
keys from an entry's canonical bytes; the ledger writes one ``audit_index`` row per key in
the transaction that appends the entry, and migration 3 backfilled the entries before it.

Invariants: the keys of an entry depend only on its canonical bytes, so the index can be
rebuilt from the entries at any time and compared (``kyso audit verify`` trusts entries, not
the index); a key's value is at most ``MAX_KEY_CHARS`` characters (a DocumentId is bounded at
255 by the exchange before anything is stored; a longer one is not indexed rather than
failing the append).
"""

from __future__ import annotations

import json
import re

__all__ = ["DOCUMENT_ID", "MAX_KEY_CHARS", "SHA256", "keys_of"]

SHA256 = "sha256"
DOCUMENT_ID = "document_id"
MAX_KEY_CHARS = 255

_REF = re.compile(r"sha256/([0-9a-f]{64})")


def keys_of(data: bytes) -> set[tuple[str, str]]:
    """The ``(kind, value)`` index keys of the entry encoded as ``data`` (canonical bytes)."""
    try:
        raw = json.loads(data)
    except ValueError:
        # An entry that is not JSON is corruption for `kyso audit verify` to name; it is
        # about no document, and must not stop an append or the backfill.
        return set()
    if not isinstance(raw, dict):
        return set()
    keys: set[tuple[str, str]] = set()
    digest = raw.get("document_sha256")
    if isinstance(digest, str):
        keys.add((SHA256, digest))
    for ref in raw.get("refs") or ():
        match = _REF.fullmatch(ref) if isinstance(ref, str) else None
        if match:
            keys.add((SHA256, match.group(1)))
    details = raw.get("details")
    document_id = details.get(DOCUMENT_ID) if isinstance(details, dict) else None
    if isinstance(document_id, str) and 0 < len(document_id) <= MAX_KEY_CHARS:
        keys.add((DOCUMENT_ID, document_id))
    return keys
