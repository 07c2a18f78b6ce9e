"""Reading the ledger for auditors: an event as its canonical entry, tree heads, and proofs.

(``kyso.operations.ledger`` writes events; this module only reads them.)

An event is given as the entry ``audit`` checked against its stored leaf hash and index, with
its canonical bytes and their RFC 6962 leaf hash, so an auditor can check it against a proof
without trusting this server. A tree head is the latest signed one, the latest one signed for a
given size, or a fresh one: signing a fresh head stores it with the ledger's key, so only an
operator may ask for it (a decision beyond the role table, which lets auditors read heads), and
only when a ledger key is configured (``[ledger] key``).

Invariants: nothing here changes the ledger's entries; every read runs in the application's
bounded pool; a refusal of a fresh head comes before any work (PERMISSION_DENIED first, then
FAILED_PRECONDITION).
"""

from __future__ import annotations

from dataclasses import dataclass

import audit
from kyso.app import Application
from kyso.authz import Identity
from kyso.errors import FailedPrecondition, PermissionDenied, RequestInvalid

__all__ = ["DocumentHistory", "LedgerReading", "ProvenEvent", "RecordedEvent"]

# The most events one history answers with (a document's life has tens of events; a bound keeps
# a reply small whatever the ledger holds).
MAX_HISTORY_EVENTS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEvent:
    """A ledger entry with its canonical bytes (``data``) and their leaf hash."""

    entry: audit.Entry
    data: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenEvent:
    """An event with its inclusion proof in the history's head (None: appended after it)."""

    event: RecordedEvent
    proof: audit.InclusionProof | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentHistory:
    """A document's events in ledger order, proven against ``head`` (None: none signed)."""

    head: audit.SignedTreeHead | None
    events: tuple[ProvenEvent, ...]
    truncated: bool


class LedgerReading:
    """The ledger's reads (see the module docstring)."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._ledger = app.ledger
        self._run = app.executors.io.run

    async def event(self, index: int) -> RecordedEvent:
        return await self._run(self._recorded, index)

    def _recorded(self, index: int) -> RecordedEvent:
        entry = self._ledger.get_entry(index)
        data = audit.encode_entry(entry)
        return RecordedEvent(entry=entry, data=data, leaf_hash=audit.merkle.leaf_hash(data))

    async def history(self, *, sha256: str, document_id: str, page_size: int) -> DocumentHistory:
        """Every event about a document (see ``audit.Ledger.find``), each with its inclusion
        proof in the latest signed head; ``page_size`` 0 or over the maximum means the maximum.
        """
        limit = page_size if 0 < page_size <= MAX_HISTORY_EVENTS else MAX_HISTORY_EVENTS
        if page_size < 0:
            raise RequestInvalid("page_size must not be negative", field="page_size")
        return await self._run(self._history, sha256 or None, document_id or None, limit)

    def _history(self, sha256: str | None, document_id: str | None, limit: int) -> DocumentHistory:
        found, truncated = self._ledger.find(sha256=sha256, document_id=document_id, limit=limit)
        try:
            head: audit.SignedTreeHead | None = self._ledger.latest_head()
        except audit.HeadNotFound:
            head = None
        proven = []
        for entry in found:
            data = audit.encode_entry(entry)
            recorded = RecordedEvent(entry=entry, data=data, leaf_hash=audit.merkle.leaf_hash(data))
            proof = None
            if head is not None and entry.index < head.tree_size:
                proof = self._ledger.inclusion_proof(index=entry.index, tree_size=head.tree_size)
            proven.append(ProvenEvent(event=recorded, proof=proof))
        return DocumentHistory(head=head, events=tuple(proven), truncated=truncated)

    async def tree_head(
        self, actor: Identity, *, fresh: bool, tree_size: int | None
    ) -> audit.SignedTreeHead:
        """A fresh head when ``fresh``; else the one for ``tree_size`` (None: the latest)."""
        if fresh:
            if "operator" not in actor.roles:
                raise PermissionDenied("only an operator may ask for a freshly signed tree head")
            signer = self._app.head_signer
            if signer is None:
                raise FailedPrecondition("no ledger key is configured ([ledger] key)")
            return await self._run(self._ledger.sign_head, signer)
        if tree_size is not None:
            return await self._run(self._ledger.head, tree_size=tree_size)
        return await self._run(self._ledger.latest_head)

    async def inclusion_proof(self, *, index: int, tree_size: int) -> audit.InclusionProof:
        return await self._run(self._ledger.inclusion_proof, index=index, tree_size=tree_size)

    async def consistency_proof(self, *, old_size: int, new_size: int) -> audit.ConsistencyProof:
        return await self._run(self._ledger.consistency_proof, old_size=old_size, new_size=new_size)
