"""VerificationService: PDFs through the verifier's worker pool; edXML packages through the
exchange reader (``kyso.operations.verifying``). A document that fails verification is a report,
not an RPC error: only a request that names nothing (no document, a missing ref) fails."""

from __future__ import annotations

from typing import Any

from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import verification_pb2, verification_pb2_grpc

__all__ = ["VerificationServicer"]


class VerificationServicer(verification_pb2_grpc.VerificationServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._verifying = operations.verifying

    async def VerifyPdf(  # noqa: N802 (the gRPC method name)
        self, request: verification_pb2.VerifyPdfRequest, context: Any
    ) -> verification_pb2.VerificationReport:
        lang = convert.report_language(request.language)
        source = convert.document_source(request.document, field="document")
        report = await self._verifying.pdf(source, online=request.online)
        return convert.pdf_report(report, lang)

    async def VerifyPackage(  # noqa: N802
        self, request: verification_pb2.VerifyPackageRequest, context: Any
    ) -> verification_pb2.VerificationReport:
        convert.report_language(request.language)
        source = convert.document_source(request.package, field="package")
        return convert.package_report(await self._verifying.package(source))
