"""The contract as an integrator in another language meets it (issue 17, "What the integrator
hit"): each test drives a real server on loopback through the generated stubs, as a Node, Java
or .NET client would through its own, and asserts codes, fields and BadRequest field paths."""

from __future__ import annotations

import grpc
import pytest

from kyso.v1 import (
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)
from tests.signer.pdfgen import make_pdf
from tests.support.statuses import bad_request_field

COMMUNE = "000.21.30.H49"
DEPARTMENT = "000.00.02.H49"


def _auth(config):
    path = config.clients["dev"].token_file
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _send(document_id: str, *, subject: str = "Về việc báo cáo") -> exchange_pb2.SendRequest:
    request = exchange_pb2.SendRequest(
        from_unit=COMMUNE, to_units=[DEPARTMENT], document_id=document_id
    )
    request.fields.subject = subject
    request.fields.code_number = "12"
    request.fields.code_notation = "UBND-VP"
    request.fields.attachments.add(
        name="bao-cao.txt", content=b"noi dung", content_type="text/plain"
    )
    return request


# -- Send is idempotent by (sender, document_id, what the client gave) ---------------------------


async def test_the_same_send_again_answers_the_first_result(dev_channel, dev_config) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    first = await stub.Send(_send("idem-1"), metadata=_auth(dev_config))
    # a workflow that lost the reply sends the very same request again
    again = await stub.Send(_send("idem-1"), metadata=_auth(dev_config))
    assert again.document_id == first.document_id == "idem-1"
    assert again.package.ref.ref == first.package.ref.ref
    assert [r.unit_code for r in again.recipients] == [DEPARTMENT]
    # one document, delivered once
    receive = stub.Receive(
        exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, max_deliveries=10),
        metadata=_auth(dev_config),
    )
    ids = [d.document_id async for d in receive]
    assert ids.count("idem-1") == 1


async def test_other_content_under_the_same_document_id_already_exists(
    dev_channel, dev_config
) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    await stub.Send(_send("idem-2"), metadata=_auth(dev_config))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(_send("idem-2", subject="Khác"), metadata=_auth(dev_config))
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "different content" in caught.value.details()
    assert bad_request_field(caught.value) == "document_id"


# -- Track -----------------------------------------------------------------------------------------


async def test_track_answers_the_subject(dev_channel, dev_config) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    await stub.Send(_send("track-1", subject="Về việc tổng hợp"), metadata=_auth(dev_config))
    tracked = await stub.Track(
        exchange_pb2.TrackRequest(document_id="track-1", from_unit=COMMUNE),
        metadata=_auth(dev_config),
    )
    assert tracked.subject == "Về việc tổng hợp"
    assert [r.unit_code for r in tracked.recipients] == [DEPARTMENT]


async def test_update_status_with_an_unknown_code_is_invalid_argument(
    dev_channel, dev_config
) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    await stub.Send(_send("status-1"), metadata=_auth(dev_config))
    for code in ("99", "01"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.UpdateStatus(
                exchange_pb2.UpdateStatusRequest(
                    document_id="status-1",
                    from_unit=COMMUNE,
                    unit_code=DEPARTMENT,
                    status_code=code,
                ),
                metadata=_auth(dev_config),
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, code
        assert bad_request_field(caught.value) == "status_code"


# -- BadRequest field paths as the .proto writes them; no server paths in messages ---------------


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_bad_requests_name_the_request_field_paths(dev_channel, dev_config) -> None:
    exchange = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    signing = signing_pb2_grpc.SigningServiceStub(dev_channel)
    documents = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    auth = _auth(dev_config)

    bad_sender = _send("fields-1")
    bad_sender.from_unit = "xx"
    error = await _refused(exchange.Send(bad_sender, metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "from_unit"

    error = await _refused(
        _first(exchange.Receive(exchange_pb2.ReceiveRequest(unit_code="xx"), metadata=auth))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "unit_code"

    outside = signing_pb2.SignPdfRequest(
        document=common_pb2.DocumentInput(content=make_pdf()),
        key_alias="seal",
        appearance=signing_pb2.APPEARANCE_SEAL,
        placement=signing_pb2.Placement(
            rect=signing_pb2.PageRect(page=1, x1=5000, y1=80, x2=5200, y2=200)
        ),
    )
    error = await _refused(signing.SignPdf(outside, metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "placement.rect"

    by_bad_ref = signing_pb2.SignPdfRequest(
        document=common_pb2.DocumentInput(ref=common_pb2.DocumentRef(ref="sha256/nope")),
        key_alias="seal",
    )
    error = await _refused(signing.SignPdf(by_bad_ref, metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "document.ref"

    error = await _refused(
        _first(
            documents.Download(
                documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref="nope")),
                metadata=auth,
            )
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "ref.ref"

    declared = documents_pb2.UploadRequest(
        metadata=documents_pb2.UploadMetadata(filename="a.txt", sha256="0" * 64)
    )
    chunk = documents_pb2.UploadRequest(chunk=b"not what was declared")
    error = await _refused(documents.Upload(iter([declared, chunk]), metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "metadata.sha256"

    # an unknown document: NOT_FOUND naming it, nothing of where the server keeps its files
    error = await _refused(
        _first(
            documents.Download(
                documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref="sha256/" + "0" * 64)),
                metadata=auth,
            )
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "0" * 64 in error.details()
    assert str(dev_config.storage.path) not in error.details()
    assert "/" not in error.details().replace("sha256/", "")


async def _first(stream):
    async for item in stream:
        return item
    return None
