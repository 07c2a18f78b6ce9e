"""Two-phase signing handlers (PrepareSignature, CompleteSignature, ListPendingSignatures,
CancelSignature): not built in this release, so each answers UNIMPLEMENTED."""

from __future__ import annotations

from kyso.app import Application
from kyso.v1 import signing_pb2

__all__ = ["TwoPhaseHandlers"]


class TwoPhaseHandlers:
    def __init__(self, app: Application) -> None:
        self._app = app

    async def prepare(
        self, request: signing_pb2.PrepareSignatureRequest
    ) -> signing_pb2.PrepareSignatureResponse:
        raise NotImplementedError

    async def complete(
        self, request: signing_pb2.CompleteSignatureRequest
    ) -> signing_pb2.CompleteSignatureResponse:
        raise NotImplementedError

    async def list_pending(
        self, request: signing_pb2.ListPendingSignaturesRequest
    ) -> signing_pb2.ListPendingSignaturesResponse:
        raise NotImplementedError

    async def cancel(
        self, request: signing_pb2.CancelSignatureRequest
    ) -> signing_pb2.CancelSignatureResponse:
        raise NotImplementedError
