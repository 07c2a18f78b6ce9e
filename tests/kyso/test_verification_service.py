"""VerificationService over real gRPC: kyso-signed PDFs pass, broken ones are reports (not RPC
errors), both languages; edXML packages signed by the HSM key pass, tampered ones fail."""

from __future__ import annotations

import json

import grpc
import pytest

from exchange.adapters import HsmSigningKey
from exchange.edxml.packages import build_package
from kyso.v1 import common_pb2, signing_pb2, signing_pb2_grpc, verification_pb2
from kyso.v1 import verification_pb2_grpc as vgrpc
from tests.exchange.conftest import simple_package
from tests.signer.pdfgen import make_pdf


def _auth(config):
    path = config.clients["dev"].token_file
    return [("authorization", f"Bearer {path.read_text().strip()}")]


async def _signed(channel, config, level=signing_pb2.SIGNATURE_LEVEL_B_LT) -> bytes:
    stub = signing_pb2_grpc.SigningServiceStub(channel)
    reply = await stub.SignPdf(
        signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(content=make_pdf()), key_alias="seal", level=level
        ),
        metadata=_auth(config),
    )
    return reply.content


@pytest.mark.parametrize(("language", "word"), [("vi", "Chữ ký"), ("en", "Signature")])
async def test_signed_pdf_passes(dev_channel, dev_config, language, word):
    pdf = await _signed(dev_channel, dev_config)
    stub = vgrpc.VerificationServiceStub(dev_channel)
    report = await stub.VerifyPdf(
        verification_pb2.VerifyPdfRequest(
            document=common_pb2.DocumentInput(content=pdf), language=language
        ),
        metadata=_auth(dev_config),
    )
    assert report.indication == verification_pb2.INDICATION_TOTAL_PASSED, report.report_text
    (signature,) = report.signatures
    assert signature.intact
    assert signature.trusted
    assert signature.level_reached == "B-LT"
    assert "Trung tâm Phục vụ hành chính công" in signature.signer_subject
    assert json.loads(report.report_json)["schema"] == "kyso.verification/1"
    assert word in report.report_text


async def test_tampered_pdf_is_a_failed_report(dev_channel, dev_config):
    pdf = bytearray(await _signed(dev_channel, dev_config, signing_pb2.SIGNATURE_LEVEL_B_B))
    index = pdf.index(b"Quy")  # a byte of the signed page content
    pdf[index] ^= 0x01
    stub = vgrpc.VerificationServiceStub(dev_channel)
    report = await stub.VerifyPdf(
        verification_pb2.VerifyPdfRequest(document=common_pb2.DocumentInput(content=bytes(pdf))),
        metadata=_auth(dev_config),
    )
    assert report.indication == verification_pb2.INDICATION_TOTAL_FAILED


async def test_garbage_is_a_report_not_an_error(dev_channel, dev_config):
    stub = vgrpc.VerificationServiceStub(dev_channel)
    report = await stub.VerifyPdf(
        verification_pb2.VerifyPdfRequest(document=common_pb2.DocumentInput(content=b"garbage")),
        metadata=_auth(dev_config),
    )
    assert report.indication in {
        verification_pb2.INDICATION_TOTAL_FAILED,
        verification_pb2.INDICATION_INDETERMINATE,
    }
    assert report.findings


async def test_bad_language_and_missing_document(dev_channel, dev_config):
    stub = vgrpc.VerificationServiceStub(dev_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyPdf(
            verification_pb2.VerifyPdfRequest(
                document=common_pb2.DocumentInput(content=b"x"), language="fr"
            ),
            metadata=_auth(dev_config),
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyPdf(verification_pb2.VerifyPdfRequest(), metadata=_auth(dev_config))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "inline (content) or by ref" in err.value.details()


async def test_package_signed_on_the_hsm_passes_and_tampered_fails(
    dev_server, dev_channel, dev_config
):
    key = HsmSigningKey(ring=dev_server.app.keyring, alias="seal")
    package = build_package(simple_package(document_id="verify-1"), key=key)
    stub = vgrpc.VerificationServiceStub(dev_channel)
    report = await stub.VerifyPackage(
        verification_pb2.VerifyPackageRequest(package=common_pb2.DocumentInput(content=package)),
        metadata=_auth(dev_config),
    )
    assert report.indication == verification_pb2.INDICATION_TOTAL_PASSED, report.report_text
    assert json.loads(report.report_json)["document_id"] == "verify-1"

    tampered = package.replace(b"verify-1", b"verify-2")
    report = await stub.VerifyPackage(
        verification_pb2.VerifyPackageRequest(package=common_pb2.DocumentInput(content=tampered)),
        metadata=_auth(dev_config),
    )
    assert report.indication == verification_pb2.INDICATION_TOTAL_FAILED
    assert report.sub_indication == "SIG_CRYPTO_FAILURE"
