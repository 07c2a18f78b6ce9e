"""AuditService: events, signed tree heads and proofs from the ledger (read-only)."""

from __future__ import annotations

import asyncio
from typing import Any

import audit
from kyso.app import Application
from kyso.errors import FailedPrecondition, PermissionDenied
from kyso.interceptors import current_identity
from kyso.services.convert import timestamp
from kyso.v1 import audit_pb2, audit_pb2_grpc

__all__ = ["AuditServicer"]


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, app: Application) -> None:
        self._app = app

    async def GetEvent(  # noqa: N802 (the gRPC method name)
        self, request: audit_pb2.GetEventRequest, context: Any
    ) -> audit_pb2.LedgerEvent:
        entry = await asyncio.to_thread(self._app.ledger.get_entry, request.index)
        event = entry.event
        data = audit.encode_entry(entry)
        return audit_pb2.LedgerEvent(
            index=entry.index,
            entry=data,
            leaf_hash=audit.merkle.leaf_hash(data),
            time=timestamp(event.time),
            actor=event.actor,
            unit_code=event.unit,
            event_type=str(event.type),
            document_sha256=event.document_sha256 or "",
            refs=list(event.refs),
            key=event.key or "",
            details=dict(event.details),
        )

    async def GetTreeHead(  # noqa: N802
        self, request: audit_pb2.GetTreeHeadRequest, context: Any
    ) -> audit_pb2.SignedTreeHead:
        ledger = self._app.ledger
        if request.fresh:
            if "operator" not in current_identity().roles:
                raise PermissionDenied("only an operator may ask for a freshly signed tree head")
            signer = self._app.head_signer
            if signer is None:
                raise FailedPrecondition("no ledger key is configured ([ledger] key)")
            head = await asyncio.to_thread(ledger.sign_head, signer)
        elif request.tree_size:
            head = await asyncio.to_thread(ledger.head, tree_size=request.tree_size)
        else:
            head = await asyncio.to_thread(ledger.latest_head)
        return audit_pb2.SignedTreeHead(
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            time=timestamp(head.time),
            signed_data=head.signed_data,
            signature=head.signature,
            signature_algorithm=str(head.algorithm.value),
            certificate=head.certificate,
        )

    async def GetInclusionProof(  # noqa: N802
        self, request: audit_pb2.GetInclusionProofRequest, context: Any
    ) -> audit_pb2.InclusionProof:
        proof = await asyncio.to_thread(
            self._app.ledger.inclusion_proof, index=request.index, tree_size=request.tree_size
        )
        return audit_pb2.InclusionProof(
            index=proof.index,
            tree_size=proof.tree_size,
            audit_path=list(proof.path),
            leaf_hash=proof.leaf_hash,
        )

    async def GetConsistencyProof(  # noqa: N802
        self, request: audit_pb2.GetConsistencyProofRequest, context: Any
    ) -> audit_pb2.ConsistencyProof:
        proof = await asyncio.to_thread(
            self._app.ledger.consistency_proof,
            old_size=request.first_size,
            new_size=request.second_size,
        )
        return audit_pb2.ConsistencyProof(
            first_size=proof.old_size, second_size=proof.new_size, proof=list(proof.path)
        )
