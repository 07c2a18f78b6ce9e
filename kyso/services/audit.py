"""AuditService: events, signed tree heads and proofs from the ledger
(``kyso.operations.ledger_reading``, which decides who may have a fresh head signed)."""

from __future__ import annotations

from typing import Any

from kyso.interceptors import current_identity
from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import audit_pb2, audit_pb2_grpc

__all__ = ["AuditServicer"]


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._ledger = operations.ledger_reading

    async def GetEvent(  # noqa: N802 (the gRPC method name)
        self, request: audit_pb2.GetEventRequest, context: Any
    ) -> audit_pb2.LedgerEvent:
        return convert.ledger_event(await self._ledger.event(request.index))

    async def GetTreeHead(  # noqa: N802
        self, request: audit_pb2.GetTreeHeadRequest, context: Any
    ) -> audit_pb2.SignedTreeHead:
        head = await self._ledger.tree_head(
            current_identity(),
            fresh=request.fresh,
            tree_size=convert.requested_tree_size(request.tree_size),
        )
        return convert.tree_head(head)

    async def GetInclusionProof(  # noqa: N802
        self, request: audit_pb2.GetInclusionProofRequest, context: Any
    ) -> audit_pb2.InclusionProof:
        proof = await self._ledger.inclusion_proof(index=request.index, tree_size=request.tree_size)
        return convert.inclusion_proof(proof)

    async def GetConsistencyProof(  # noqa: N802
        self, request: audit_pb2.GetConsistencyProofRequest, context: Any
    ) -> audit_pb2.ConsistencyProof:
        proof = await self._ledger.consistency_proof(
            old_size=request.first_size, new_size=request.second_size
        )
        return convert.consistency_proof(proof)

    async def GetDocumentHistory(  # noqa: N802
        self, request: audit_pb2.GetDocumentHistoryRequest, context: Any
    ) -> audit_pb2.DocumentHistory:
        history = await self._ledger.history(
            sha256=request.document_sha256,
            document_id=request.document_id,
            page_size=request.page_size,
        )
        return convert.document_history(history)
