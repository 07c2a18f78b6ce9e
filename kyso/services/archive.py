"""ArchiveService: the evidence status of stored signed PDFs, their renewal and extension
(``kyso.operations.archive``)."""

from __future__ import annotations

from typing import Any

import signer
from kyso.errors import RequestInvalid
from kyso.interceptors import current_identity
from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import archive_pb2, archive_pb2_grpc, common_pb2

__all__ = ["ArchiveServicer"]

_LEVELS = {
    archive_pb2.EXTEND_LEVEL_B_LT: signer.Level.B_LT,
    archive_pb2.EXTEND_LEVEL_B_LTA: signer.Level.B_LTA,
}


class ArchiveServicer(archive_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._archive = operations.archive
        self._documents = operations.documents

    async def GetArchiveStatus(  # noqa: N802 (the gRPC method name)
        self, request: archive_pb2.GetArchiveStatusRequest, context: Any
    ) -> archive_pb2.GetArchiveStatusResponse:
        status = await self._archive.status()
        return archive_pb2.GetArchiveStatusResponse(
            now=convert.timestamp(status.now),
            documents=status.documents,
            within_30_days=status.within[30],
            within_90_days=status.within[90],
            within_365_days=status.within[365],
            ended=status.ended,
            no_end=status.no_end,
            failing=status.failing,
            renewed=status.renewed,
            unreadable=status.unread,
            margin_days=status.margin_days,
            soonest=[
                archive_pb2.EndingDocument(
                    ref=common_pb2.DocumentRef(ref=ref),
                    evidence_end=convert.timestamp(end),
                    reason=reason,
                )
                for ref, end, reason in status.soonest
            ],
        )

    async def ExtendDocument(  # noqa: N802
        self, request: archive_pb2.ExtendDocumentRequest, context: Any
    ) -> archive_pb2.ExtendDocumentResponse:
        level = _LEVELS.get(request.level)
        if level is None:
            raise RequestInvalid(
                "give the level: EXTEND_LEVEL_B_LT or EXTEND_LEVEL_B_LTA", field="level"
            )
        if not request.ref.ref:
            raise RequestInvalid("name the stored document to extend", field="ref.ref")
        done = await self._archive.extend(current_identity(), request.ref.ref, level)
        return archive_pb2.ExtendDocumentResponse(
            previous=common_pb2.DocumentRef(ref=done.old_ref),
            current=common_pb2.DocumentRef(ref=done.new_ref),
            level=done.level,
            created=done.created,
            evidence_end=convert.timestamp(done.evidence_end),
        )

    async def RunRenewal(  # noqa: N802
        self, request: archive_pb2.RunRenewalRequest, context: Any
    ) -> archive_pb2.RunRenewalResponse:
        result = await self._archive.run_once()
        return archive_pb2.RunRenewalResponse(
            scanned=result.scanned,
            renewed=result.renewed,
            failed=result.failed,
            errors=list(result.errors),
        )

    async def ListVersions(  # noqa: N802
        self, request: archive_pb2.ListVersionsRequest, context: Any
    ) -> archive_pb2.ListVersionsResponse:
        if not request.ref.ref:
            raise RequestInvalid("name a stored document", field="ref.ref")
        chain = await self._archive.versions(current_identity(), request.ref.ref)
        return archive_pb2.ListVersionsResponse(
            versions=[common_pb2.DocumentRef(ref=ref) for ref in chain]
        )
