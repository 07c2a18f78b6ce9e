"""VerificationService: PDFs through signer.verify's worker pool; edXML packages through the
exchange reader. A document that fails verification is a report, not an RPC error: only a
request that names nothing (no document, a missing ref) fails."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import exchange
from exchange.edxml.dsig import TrustPolicy
from exchange.edxml.packages import open_package
from kyso.app import Application
from kyso.errors import FailedPrecondition, RequestInvalid
from kyso.services.convert import timestamp
from kyso.services.inputs import read_document
from kyso.v1 import verification_pb2, verification_pb2_grpc
from signer import verify
from signer.verify.text import describe_finding, describe_problem

__all__ = ["VerificationServicer"]

_INDICATIONS = {
    verify.Indication.TOTAL_PASSED: verification_pb2.TOTAL_PASSED,
    verify.Indication.INDETERMINATE: verification_pb2.INDETERMINATE,
    verify.Indication.TOTAL_FAILED: verification_pb2.TOTAL_FAILED,
}


def _language(value: str) -> verify.Language:
    if value in ("", "vi"):
        return "vi"
    if value == "en":
        return "en"
    raise RequestInvalid(f"language {value!r} is not 'vi' or 'en'", field="language")


class VerificationServicer(verification_pb2_grpc.VerificationServiceServicer):
    def __init__(self, app: Application) -> None:
        self._app = app

    async def VerifyPdf(  # noqa: N802 (the gRPC method name)
        self, request: verification_pb2.VerifyPdfRequest, context: Any
    ) -> verification_pb2.VerificationReport:
        lang = _language(request.language)
        verifier = self._app.verifier
        if verifier is None:
            raise FailedPrecondition("this server does not verify PDFs")
        data, _ = await read_document(self._app, request.document, field="document")
        policy = self._app.verification_policy(online=request.online)
        report = await verifier.verify_async(data, policy)
        return _pdf_report(report, lang)

    async def VerifyPackage(  # noqa: N802
        self, request: verification_pb2.VerifyPackageRequest, context: Any
    ) -> verification_pb2.VerificationReport:
        _language(request.language)
        data, _ = await read_document(self._app, request.package, field="package")
        return _package_report(data, self._app.package_trust())


def _pdf_report(
    report: verify.VerificationReport, lang: verify.Language
) -> verification_pb2.VerificationReport:
    signatures = []
    for sig in report.signatures:
        signer = sig.signer
        algorithm = sig.algorithm
        signatures.append(
            verification_pb2.SignatureReport(
                field_name=sig.field_name,
                indication=_INDICATIONS[sig.indication],
                sub_indication=sig.sub_indication.value if sig.sub_indication else "",
                signer_subject=signer.subject if signer else "",
                signer_serial=signer.serial if signer else "",
                issuer_subject=signer.issuer if signer else "",
                claimed_signing_time=timestamp(sig.claimed_signing_time),
                timestamp_time=timestamp(sig.timestamp.time if sig.timestamp else None),
                intact=sig.intact and sig.signature_valid,
                trusted=sig.trusted,
                revocation_status=sig.revocation.status.value,
                modification_level=(sig.modification_level.value if sig.modification_level else ""),
                level_reached=sig.level_reached.value,
                algorithm=f"{algorithm.signature}/{algorithm.digest}" if algorithm else "",
                problems=[describe_problem(p, lang) for p in sig.problems],
                covers_whole_document=sig.covers_whole_document,
            )
        )
    return verification_pb2.VerificationReport(
        indication=_INDICATIONS[report.indication],
        sub_indication=report.sub_indication.value if report.sub_indication else "",
        signatures=signatures,
        findings=[describe_finding(f, lang) for f in report.findings],
        document_sha256=report.document_sha256,
        report_json=verify.report_to_json(report),
        report_text=verify.render_text(report, lang=lang),
    )


def _package_report(data: bytes, policy: TrustPolicy) -> verification_pb2.VerificationReport:
    """XML-DSig verdict on an edXML package, in the same report shape as PDFs."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        opened = open_package(data, policy=policy)
    except (exchange.UntrustedSigner, exchange.UnsignedPackageRefused) as exc:
        return _package_verdict(
            digest, verification_pb2.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND", str(exc)
        )
    except exchange.WeakSignatureRefused as exc:
        return _package_verdict(
            digest, verification_pb2.TOTAL_FAILED, "CRYPTO_CONSTRAINTS_FAILURE", str(exc)
        )
    except exchange.SignatureInvalid as exc:
        return _package_verdict(
            digest, verification_pb2.TOTAL_FAILED, "SIG_CRYPTO_FAILURE", str(exc)
        )
    except exchange.PackageInvalid as exc:
        return _package_verdict(digest, verification_pb2.TOTAL_FAILED, "FORMAT_FAILURE", str(exc))
    signature = opened.signature
    signer = signature.signer
    header = opened.package.header
    signer_name = signer.subject.rfc4514_string() if signer else ""
    summary = {
        "schema": "kyso.package-verification/1",
        "indication": "TOTAL-PASSED",
        "document_sha256": digest,
        "document_id": header.document_id,
        "from": header.from_.organ_id,
        "to": [r.organ_id for r in header.to],
        "subject": header.subject,
        "algorithm": signature.algorithm,
        "signer": signer_name,
    }
    return verification_pb2.VerificationReport(
        indication=verification_pb2.TOTAL_PASSED,
        signatures=[
            verification_pb2.SignatureReport(
                field_name="edXML Signature",
                indication=verification_pb2.TOTAL_PASSED,
                signer_subject=signer_name,
                signer_serial=format(signer.serial_number, "X") if signer else "",
                issuer_subject=signer.issuer.rfc4514_string() if signer else "",
                intact=True,
                trusted=True,
                algorithm=signature.algorithm or "",
                covers_whole_document=True,
            )
        ],
        document_sha256=digest,
        report_json=json.dumps(summary, ensure_ascii=False),
        report_text=(
            f"TOTAL-PASSED: {header.document_id} — {header.subject}\n"
            f"signed by {signer_name} ({signature.algorithm})"
        ),
    )


def _package_verdict(
    digest: str, indication: Any, sub_indication: str, reason: str
) -> verification_pb2.VerificationReport:
    name = verification_pb2.Indication.Name(indication).replace("_", "-")
    return verification_pb2.VerificationReport(
        indication=indication,
        sub_indication=sub_indication,
        findings=[reason],
        document_sha256=digest,
        report_json=json.dumps(
            {
                "schema": "kyso.package-verification/1",
                "indication": name,
                "sub_indication": sub_indication,
                "document_sha256": digest,
                "reason": reason,
            },
            ensure_ascii=False,
        ),
        report_text=f"{name} ({sub_indication}): {reason}",
    )
