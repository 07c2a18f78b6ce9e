"""The contract as an integrator in another language meets it (issue 17, "What the integrator
hit"): each test drives a real server on loopback through the generated stubs, as a Node, Java
or .NET client would through its own, and asserts codes, fields and BadRequest field paths."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import grpc
import pytest
from asn1crypto import pem
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso.app import Application
from kyso.config import ServerConfig
from kyso.operations.documents import INLINE_LIMIT
from kyso.server import Server, keepalive_options
from kyso.v1 import (
    common_pb2,
    documents_pb2,
    documents_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
    verification_pb2,
)
from kyso.web.client import KysoClient
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
    # a numbered document sent without an id: kyso's id for it is the same for the retry
    numbered = await stub.Send(_send(""), metadata=_auth(dev_config))
    assert numbered.document_id.endswith(",12/UBND-VP")
    retried = await stub.Send(_send(""), metadata=_auth(dev_config))
    assert retried.document_id == numbered.document_id
    assert retried.package.ref.ref == numbered.package.ref.ref
    # the same request twice at once (a client retrying before its first call answered)
    both = await asyncio.gather(
        stub.Send(_send("idem-3"), metadata=_auth(dev_config)),
        stub.Send(_send("idem-3"), metadata=_auth(dev_config)),
    )
    assert both[0].package.ref.ref == both[1].package.ref.ref


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

    bad_recipient = _send("fields-2")
    bad_recipient.to_units.append("yy")
    error = await _refused(exchange.Send(bad_recipient, metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "to_units[1]"

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


# -- server-side default placement, one type for levels ------------------------------------------


def _seal(**fields) -> signing_pb2.SignPdfRequest:
    return signing_pb2.SignPdfRequest(
        document=common_pb2.DocumentInput(content=make_pdf(), filename="ket-qua.pdf"),
        key_alias="seal",
        appearance=signing_pb2.APPEARANCE_SEAL,
        **fields,
    )


def _widget_rect(pdf: bytes) -> tuple[float, ...]:
    reader = PdfFileReader(io.BytesIO(pdf))
    [signature] = reader.embedded_signatures
    field = signature.sig_field
    widget = field if "/Rect" in field else field["/Kids"][0].get_object()
    return tuple(round(float(v), 1) for v in widget["/Rect"])


async def test_a_seal_without_placement_goes_where_the_server_puts_it(
    dev_channel, dev_config, dev_env
) -> None:
    signing = signing_pb2_grpc.SigningServiceStub(dev_channel)
    documents = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    auth = _auth(dev_config)
    # no placement at all: the bottom right of page 1 (A4)
    reply = await signing.SignPdf(_seal(), metadata=auth)
    assert _widget_rect(reply.content) == (330.0, 60.0, 565.0, 170.0)
    # the level applied is explicit: UNSPECIFIED asked, the key's default (B-B) answered
    assert reply.level == signing_pb2.SIGNATURE_LEVEL_B_B
    info = await documents.Stat(documents_pb2.StatRequest(ref=reply.document.ref), metadata=auth)
    # the catalogue's level is the same enum as SignPdfResponse's
    assert info.signatures[0].signature_level == signing_pb2.SIGNATURE_LEVEL_B_B
    assert info.signatures[0].level == "B-B"
    # a page alone (no corners): the same place on that page
    two_pages = _seal(placement=signing_pb2.Placement(rect=signing_pb2.PageRect(page=2)))
    two_pages.document.content = make_pdf(pages=2)
    reply = await signing.SignPdf(two_pages, metadata=auth)
    assert _widget_rect(reply.content) == (330.0, 60.0, 565.0, 170.0)

    # two-phase: the same default, and the level the signature will have
    official = dev_env.keys["official"].certificate_path.read_bytes()
    if pem.detect(official):
        _, _, official = pem.unarmor(official)
    prepared = await signing.PrepareSignature(
        signing_pb2.PrepareSignatureRequest(
            document=common_pb2.DocumentInput(content=make_pdf(), filename="ket-qua.pdf"),
            certificate=official,
            appearance=signing_pb2.APPEARANCE_SEAL,
        ),
        metadata=auth,
    )
    assert prepared.session_id
    assert prepared.level == signing_pb2.SIGNATURE_LEVEL_B_B


# -- Delivery.verification for programs -----------------------------------------------------------


async def test_a_delivery_carries_its_verification_as_fields(dev_channel, dev_config) -> None:
    stub = exchange_pb2_grpc.ExchangeServiceStub(dev_channel)
    request = _send("verified-1")
    request.fields.attachments.add(
        name="ket-qua.pdf", content=make_pdf(), content_type="application/pdf"
    )
    await stub.Send(request, metadata=_auth(dev_config))
    receive = stub.Receive(
        exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, max_deliveries=10),
        metadata=_auth(dev_config),
    )
    [delivery] = [d async for d in receive if d.document_id == "verified-1"]
    result = delivery.verification_result
    assert result.package.name == "package"
    assert result.package.indication == verification_pb2.INDICATION_TOTAL_PASSED
    assert result.package.signer
    assert result.package.signer in delivery.verification
    [pdf] = result.attachments
    assert pdf.name == "ket-qua.pdf"
    assert pdf.signatures == 0
    assert pdf.indication != verification_pb2.INDICATION_TOTAL_PASSED
    assert pdf.sub_indication
    name = verification_pb2.Indication.Name(pdf.indication).removeprefix("INDICATION_")
    assert f"ket-qua.pdf: {name}".replace("_", "-") in delivery.verification


# -- long streams: keepalive policy and heartbeats -----------------------------------------------


def test_the_default_keepalive_policy_accepts_clients_pinging_every_10_seconds() -> None:
    options = dict(keepalive_options(ServerConfig()))
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] <= 10_000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= 10_000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.max_pings_without_data"] == 0
    assert options["grpc.keepalive_time_ms"] > 0  # the server pings idle connections too


async def test_a_followed_stream_lives_with_a_pinging_client_and_carries_heartbeats(
    dev_config,
) -> None:
    # the 10 s client / 5 s server policy, scaled down: the client pings every 0.5 s
    config = dataclasses.replace(
        dev_config,
        server=dataclasses.replace(
            dev_config.server,
            min_client_ping_seconds=0.25,
            min_heartbeat_seconds=0.5,
            keepalive_seconds=1.0,
        ),
    )
    app = Application.open(config)
    server = Server(config, app)
    await server.start()
    client_keepalive = [
        ("grpc.keepalive_time_ms", 500),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    target = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(target, options=client_keepalive) as channel:
            stub = exchange_pb2_grpc.ExchangeServiceStub(channel)
            # an idle followed stream: nothing but the client's pings for a while (about eight
            # of them; gRPC's default policy closes the connection after the third)
            idle = stub.Receive(
                exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, follow=True),
                metadata=_auth(config),
            )
            await asyncio.sleep(4)
            async with grpc.aio.insecure_channel(target) as other:
                sender = exchange_pb2_grpc.ExchangeServiceStub(other)
                await sender.Send(_send("after-pings"), metadata=_auth(config))
            delivery = await idle.read()
            assert delivery.document_id == "after-pings"
            idle.cancel()

            # with heartbeats asked for, the idle stream carries them
            beating = stub.Receive(
                exchange_pb2.ReceiveRequest(unit_code=DEPARTMENT, follow=True, heartbeat_seconds=1),
                metadata=_auth(config),
            )
            beats = 0
            async for delivery in beating:
                if delivery.document_id == "after-pings":
                    continue  # leased above, not acknowledged: it may come again later
                assert delivery.heartbeat
                assert not delivery.delivery_id
                beats += 1
                if beats == 3:
                    break
            beating.cancel()
    finally:
        await server.stop()
    assert beats == 3


# -- one size rule; replies a default client can receive; retries that do not sign twice -------


def _stored(config) -> set:
    root = config.storage.path / "objects"
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json")}


async def test_sizes_inline_limit_refused_before_work_and_replies_fit_4_mib(
    dev_server, dev_channel, dev_config
) -> None:
    # dev_channel is a Python channel with gRPC's default 4 MiB receive limit, as grpc-js has
    signing = signing_pb2_grpc.SigningServiceStub(dev_channel)
    auth = _auth(dev_config)
    before = _stored(dev_config)
    over = _seal()
    over.document.content = b"%PDF-1.7\n" + b"x" * INLINE_LIMIT
    error = await _refused(signing.SignPdf(over, metadata=auth))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(error) == "document.content"
    assert str(INLINE_LIMIT) in error.details()
    assert _stored(dev_config) == before  # refused before any work

    # a document just under the limit: its signed copy is over it, so the reply carries the ref
    near = _seal()
    near.document.content = make_pdf(size=INLINE_LIMIT - 4096)
    assert len(near.document.content) <= INLINE_LIMIT
    reply = await signing.SignPdf(near, metadata=auth)
    assert reply.content == b""
    assert reply.document.size > INLINE_LIMIT
    assert reply.ByteSize() < 4 * 1024 * 1024
    # the auditors' console, a client of the API, fetches such a signed PDF by its ref
    console = KysoClient(
        server=f"127.0.0.1:{dev_server.port}", token=auth[0][1].removeprefix("Bearer ")
    )
    console.open()
    try:
        sealed = await console.seal_pdf(
            near.document.content, key_alias="seal", filename="bao-cao.pdf"
        )
    finally:
        await console.close()
    assert sealed.startswith(b"%PDF")
    assert len(sealed) > INLINE_LIMIT
    # a small one comes back inline
    small = await signing.SignPdf(_seal(), metadata=auth)
    assert small.content.startswith(b"%PDF")
    assert len(small.content) == small.document.size


async def test_a_retried_sign_pdf_with_its_request_id_signs_once(dev_channel, dev_config) -> None:
    signing = signing_pb2_grpc.SigningServiceStub(dev_channel)
    documents = documents_pb2_grpc.DocumentServiceStub(dev_channel)
    auth = _auth(dev_config)
    request = _seal(request_id="hs-2026-0001", reason="Kết quả")
    before = _stored(dev_config)
    first = await signing.SignPdf(request, metadata=auth)
    # the reply was lost; the workflow sends the same request again
    again = await signing.SignPdf(request, metadata=auth)
    assert again.document.ref.ref == first.document.ref.ref
    assert again.ledger_index == first.ledger_index
    assert again.level == first.level
    assert again.content == first.content
    assert len(_stored(dev_config) - before) == 1  # one signed document
    info = await documents.Stat(documents_pb2.StatRequest(ref=first.document.ref), metadata=auth)
    assert len(info.signatures) == 1
    # without the key, every call signs
    other = await signing.SignPdf(_seal(reason="Kết quả"), metadata=auth)
    assert other.document.ref.ref != first.document.ref.ref
    # the same key for another request
    changed = _seal(request_id="hs-2026-0001", reason="Khác")
    error = await _refused(signing.SignPdf(changed, metadata=auth))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert bad_request_field(error) == "request_id"


# -- reflection v1 and v1alpha, with the .proto comments -----------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_serves_both_versions_with_the_comments(channel, version) -> None:
    # grpcio-reflection ships only v1alpha's classes; v1 is the same messages on the wire, so a
    # v1 client is v1alpha's messages sent to v1's method
    info = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    asks = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="kyso.v1.SigningService"),
    ]
    listed, files = [reply async for reply in info(iter(asks))]
    assert "kyso.v1.SigningService" in {s.name for s in listed.list_services_response.service}
    assert f"grpc.reflection.{version}.ServerReflection" in {
        s.name for s in listed.list_services_response.service
    }
    protos = {
        p.name: p
        for p in map(
            descriptor_pb2.FileDescriptorProto.FromString,
            files.file_descriptor_response.file_descriptor_proto,
        )
    }
    assert {"kyso/v1/signing.proto", "kyso/v1/common.proto"} <= set(protos)
    comments = [
        location.leading_comments
        for location in protos["kyso/v1/signing.proto"].source_code_info.location
    ]
    sign_pdf = next(c for c in comments if "Sign a PDF with a configured organisation key" in c)
    assert "Roles: workflow, clerk." in sign_pdf


async def test_a_message_over_the_transport_limit_says_both_sizes(channel, config) -> None:
    # over [server] max_message_bytes gRPC itself refuses the message, before kyso sees it:
    # RESOURCE_EXHAUSTED (documented in docs/api.md, "Sizes"), naming the sizes
    limit = config.server.max_message_bytes
    signing = signing_pb2_grpc.SigningServiceStub(channel)
    request = _seal()
    request.document.content = b"%PDF-1.7\n" + b"x" * limit
    error = await _refused(signing.SignPdf(request))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(limit) in error.details()
