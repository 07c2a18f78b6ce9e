"""SignPdf through the service on the development token: stored, catalogued, ledgered; and bad
input that stores nothing."""

from __future__ import annotations

import asyncio
import io

import grpc
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.signer.pdfgen import make_pdf


def _auth(config):
    path = config.clients["dev"].token_file
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _objects(config):
    root = config.storage.path / "objects"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json")]


async def test_sign_pdf_inline_stores_catalogues_and_ledgers(dev_channel, dev_config):
    stub = signing_pb2_grpc.SigningServiceStub(dev_channel)
    pdf = make_pdf()
    reply = await stub.SignPdf(
        signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(content=pdf, filename="ket-qua.pdf"),
            key_alias="seal",
            appearance=signing_pb2.APPEARANCE_SEAL,
            placement=signing_pb2.Placement(
                rect=signing_pb2.PageRect(page=1, x1=300, y1=80, x2=560, y2=200)
            ),
            level=signing_pb2.SIGNATURE_LEVEL_B_B,
            reason="Kết quả giải quyết thủ tục hành chính",
        ),
        metadata=_auth(dev_config),
    )
    assert reply.content.startswith(b"%PDF")
    assert reply.level == signing_pb2.SIGNATURE_LEVEL_B_B
    reader = PdfFileReader(io.BytesIO(reply.content))
    assert len(reader.embedded_signatures) == 1

    docs = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    info = await docs.Stat(
        documents_pb2.StatRequest(ref=reply.document.ref), metadata=_auth(dev_config)
    )
    assert info.signatures[0].key_alias == "seal"
    assert info.signatures[0].level == "B-B"
    assert info.unit_code == "000.00.21.H49"
    assert "Trung tâm Phục vụ hành chính công" in info.signatures[0].signer

    ledger = audit_pb2_grpc.AuditServiceStub(dev_channel)
    event = await ledger.GetEvent(
        audit_pb2.GetEventRequest(index=reply.ledger_index), metadata=_auth(dev_config)
    )
    assert event.event_type == "signature.sealed"
    assert event.document_sha256 == reply.document.sha256
    assert event.key == "seal"


async def test_sign_stored_document_by_ref(dev_channel, dev_config):
    docs = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    pdf = make_pdf()

    def upload():
        yield documents_pb2.UploadRequest(
            metadata=documents_pb2.UploadMetadata(filename="a.pdf", content_type="application/pdf")
        )
        yield documents_pb2.UploadRequest(chunk=pdf)

    stored = await docs.Upload(upload(), metadata=_auth(dev_config))
    stub = signing_pb2_grpc.SigningServiceStub(dev_channel)
    reply = await stub.SignPdf(
        signing_pb2.SignPdfRequest(
            document=common_pb2.DocumentInput(ref=stored.ref), key_alias="seal-ec"
        ),
        metadata=_auth(dev_config),
    )
    assert reply.content == b""  # by ref in, by ref out
    assert reply.document.ref.ref != stored.ref.ref


async def test_concurrent_seals_each_get_their_row_and_their_event(dev_channel, dev_config):
    """Seals committing at the same time share flushes and transactions (group commit), yet
    each signed document has its own catalogue row and its own ledger event."""
    stub = signing_pb2_grpc.SigningServiceStub(dev_channel)
    docs = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    ledger = audit_pb2_grpc.AuditServiceStub(dev_channel)
    pdf = make_pdf()
    replies = await asyncio.gather(
        *(
            stub.SignPdf(
                signing_pb2.SignPdfRequest(
                    document=common_pb2.DocumentInput(content=pdf, filename=f"{i}.pdf"),
                    key_alias="seal-ec",
                    reason=f"lần {i}",
                ),
                metadata=_auth(dev_config),
            )
            for i in range(8)
        )
    )
    assert len({r.ledger_index for r in replies}) == 8
    assert len({r.document.ref.ref for r in replies}) == 8
    for i, reply in enumerate(replies):
        info = await docs.Stat(
            documents_pb2.StatRequest(ref=reply.document.ref), metadata=_auth(dev_config)
        )
        assert info.filename == f"{i}.pdf"
        assert [s.key_alias for s in info.signatures] == ["seal-ec"]
        event = await ledger.GetEvent(
            audit_pb2.GetEventRequest(index=reply.ledger_index), metadata=_auth(dev_config)
        )
        assert event.event_type == "signature.sealed"
        assert event.document_sha256 == reply.document.sha256


@pytest.mark.parametrize(
    ("request_fields", "code", "needle"),
    [
        ({"key_alias": "nope"}, grpc.StatusCode.NOT_FOUND, "no signing key 'nope'"),
        ({"key_alias": "ledger"}, grpc.StatusCode.PERMISSION_DENIED, "never documents"),
        ({"key_alias": ""}, grpc.StatusCode.INVALID_ARGUMENT, "key_alias"),
        (
            {"key_alias": "seal", "content": b"not a pdf at all"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "",
        ),
        (
            {"key_alias": "seal", "content": b"%PDF-1.7\n1 0 obj\n<<"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "",
        ),
        (
            {"key_alias": "seal", "content": b"x" * (4 * 1024 * 1024 + 1)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "limited to",
        ),
    ],
)
async def test_bad_sign_requests_store_nothing(
    dev_channel, dev_config, request_fields, code, needle
):
    stub = signing_pb2_grpc.SigningServiceStub(dev_channel)
    content = request_fields.pop("content", make_pdf())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(content=content), **request_fields
            ),
            metadata=_auth(dev_config),
        )
    assert err.value.code() is code, err.value.details()
    assert needle in err.value.details()
    assert _objects(dev_config) == []


async def test_page_that_does_not_exist(dev_channel, dev_config):
    stub = signing_pb2_grpc.SigningServiceStub(dev_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SignPdf(
            signing_pb2.SignPdfRequest(
                document=common_pb2.DocumentInput(content=make_pdf()),
                key_alias="seal",
                appearance=signing_pb2.APPEARANCE_SEAL,
                placement=signing_pb2.Placement(
                    rect=signing_pb2.PageRect(page=9, x1=10, y1=10, x2=200, y2=80)
                ),
            ),
            metadata=_auth(dev_config),
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "9" in err.value.details()
    assert _objects(dev_config) == []


async def test_a_client_not_allowed_the_key_is_refused(dev_env, tmp_path):
    """Clients are listed per key: another workflow system may not seal with `seal`."""
    from kyso.app import Application
    from kyso.config import load_config
    from kyso.dev.setup import render_config
    from kyso.server import Server

    (tmp_path / "other.token").write_text("token-of-another-workflow-system")
    path = tmp_path / "kyso.toml"
    path.write_text(
        render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
        + '\n[clients.other]\nroles = ["workflow"]\nunit = "000.00.02.H49"\n'
        + f'token_file = "{tmp_path / "other.token"}"\n'
    )
    config = load_config(path)
    server = Server(config, Application.open(config))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = signing_pb2_grpc.SigningServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SignPdf(
                    signing_pb2.SignPdfRequest(
                        document=common_pb2.DocumentInput(content=make_pdf()), key_alias="seal"
                    ),
                    metadata=[("authorization", "Bearer token-of-another-workflow-system")],
                )
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert err.value.details() == "client 'other' may not sign with key 'seal'"
        assert _objects(config) == []
    finally:
        await server.stop()
