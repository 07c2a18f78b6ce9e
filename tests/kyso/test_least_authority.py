"""Least authority, through a running server on the development token (issue 15).

Clients act for their unit and the units below it only; the hub's key is not a pass to every
unit, and building a package with it is a key use like any other; a hub forwards only what its
route carries, with packages signed by a certificate bound to the sender or its hub, and sets
statuses only on deliveries it carried; hop receipts are bound to the next hub's pinned
certificate; refusals reach the ledger, one event per caller and minute.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

import audit
from exchange.adapters import HsmSigningKey
from exchange.edxml import (
    MessageHeader,
    Organization,
    Package,
    ResponseFor,
    StatusCode,
    StatusPacket,
    TraceHeader,
    build_package,
    build_status,
)
from kyso.app import Application
from kyso.certificates import read_certificates
from kyso.config import Config, load_config
from kyso.operations.hops import Receipt, ReceiptInvalid, sign_receipt, verify_receipt
from kyso.server import Server
from kyso.v1 import exchange_pb2, exchange_pb2_grpc, signing_pb2, signing_pb2_grpc
from tests.exchange.pki import Authority
from tests.signer.pdfgen import make_pdf

COMMUNE = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long)
DEPARTMENT = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh
PHONG = "000.05.02.H49"  # Phòng Kế hoạch - Tài chính (Sở Nội vụ), below DEPARTMENT
DEPT_OF_KEY = "000.00.21.H49"  # the development organisation, a department
NA_UNIT = "000.00.02.H41"  # Sở Nội vụ Nghệ An
G22_UNIT = "000.00.00.G22"  # the central hub's own unit
NOT_PINNED = "ab" * 32

CLIENTS = {
    # the old development client: a department's system allowed to use the seal
    "dept": ('["workflow", "clerk"]', DEPT_OF_KEY),
    # the province's system, not allowed to use the seal
    "province": ('["workflow", "clerk"]', "000.00.00.H49"),
    "G22": ('["hub"]', "000.00.00.G22"),
    "H41": ('["hub"]', "000.00.00.H41"),
    # the hub operator's hub-wide inspection: no unit of its own
    "inspector": ('["inspector"]', ""),
}


@pytest.fixture
def pins() -> bool:
    """Whether the configuration pins the other hubs' certificates (the hub tests need it)."""
    return False


@pytest.fixture
def la_config(dev_env, tmp_path: Path, pins: bool) -> Config:
    from kyso.dev.setup import render_config

    text = render_config(dev_env, address="127.0.0.1:0", data_dir=tmp_path, metrics_address="")
    text = text.replace('clients = ["dev"]', 'clients = ["dev", "dept"]')
    seal = hashlib.sha256(read_certificates([dev_env.keys["seal"].certificate_path])[0].dump())
    text = text.replace(
        'root_unit = "000.00.00.H49"\n', 'root_unit = "000.00.00.H49"\nparent = "G22"\n'
    )
    text += (
        '\n[exchange.hubs.G22]\nroot_unit = "000.00.00.G22"\n'
        + (f'certificate_sha256 = ["{seal.hexdigest()}"]\n' if pins else "")
        + '\n[exchange.hubs.H41]\nroot_unit = "000.00.00.H41"\nparent = "G22"\n'
        + (f'certificate_sha256 = ["{NOT_PINNED}"]\n' if pins else "")
    )
    for name, (roles, unit) in CLIENTS.items():
        (tmp_path / f"{name}.token").write_text(secrets.token_hex(16))
        text += (
            f'\n[clients.{name}]\nroles = {roles}\nunit = "{unit}"\n'
            f'token_file = "{tmp_path / f"{name}.token"}"\n'
        )
    path = tmp_path / "kyso.toml"
    path.write_text(text)
    return load_config(path)


@pytest.fixture
async def la_server(la_config: Config) -> AsyncIterator[Server]:
    app = Application.open(la_config)
    srv = Server(la_config, app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def stub(la_server: Server) -> AsyncIterator[exchange_pb2_grpc.ExchangeServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{la_server.port}") as channel:
        yield exchange_pb2_grpc.ExchangeServiceStub(channel)


def _auth(config: Config, client: str) -> list[tuple[str, str]]:
    path = config.clients[client].token_file
    assert path is not None
    return [("authorization", f"Bearer {path.read_text().strip()}")]


def _send(from_unit: str, to_unit: str, subject: str = "Về việc báo cáo"):
    request = exchange_pb2.SendRequest(from_unit=from_unit, to_units=[to_unit])
    request.fields.subject = subject
    return request


async def _answer(call) -> None:
    result = call()
    if hasattr(result, "__aiter__"):
        [item async for item in result]
    else:
        await result


async def _denied(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _answer(call)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    return caught.value.details() or ""


async def test_the_hubs_key_is_no_pass_to_another_units_inbox(stub, la_config) -> None:
    """Observation 2: a department's client allowed to use the seal cannot read, acknowledge or
    set statuses for a unit that is not below it."""
    sent = await stub.Send(_send(COMMUNE, PHONG), metadata=_auth(la_config, "dev"))
    dept = _auth(la_config, "dept")
    details = await _denied(
        lambda: stub.Receive(exchange_pb2.ReceiveRequest(unit_code=PHONG), metadata=dept)
    )
    assert f"may not act for unit {PHONG}" in details
    await _denied(
        lambda: stub.Ack(
            exchange_pb2.AckRequest(unit_code=PHONG, delivery_ids=["1"]), metadata=dept
        )
    )
    await _denied(
        lambda: stub.UpdateStatus(
            exchange_pb2.UpdateStatusRequest(
                document_id=sent.document_id, from_unit=COMMUNE, unit_code=PHONG, status_code="03"
            ),
            metadata=dept,
        )
    )
    await _denied(lambda: stub.Send(_send(COMMUNE, DEPARTMENT), metadata=dept))
    # the department still acts for itself, and the province for every unit below it
    await stub.Send(_send(DEPT_OF_KEY, DEPARTMENT), metadata=dept)
    got = [
        d
        async for d in stub.Receive(
            exchange_pb2.ReceiveRequest(unit_code=PHONG), metadata=_auth(la_config, "dev")
        )
    ]
    assert [d.document_id for d in got] == [sent.document_id]


async def test_hub_wide_inspection_is_read_only_and_ledgered(stub, la_config) -> None:
    """Hub-wide inspection is an explicit role: an inspector tracks any unit's document and
    lists the quarantine, cannot receive, acknowledge, set statuses or send, and every
    inspection is a ledger event."""
    sent = await stub.Send(_send(COMMUNE, PHONG), metadata=_auth(la_config, "dev"))
    inspector = _auth(la_config, "inspector")
    track = await stub.Track(
        exchange_pb2.TrackRequest(document_id=sent.document_id, from_unit=COMMUNE),
        metadata=inspector,
    )
    assert [r.unit_code for r in track.recipients] == [PHONG]
    await stub.ListQuarantined(exchange_pb2.ListQuarantinedRequest(), metadata=inspector)
    for call in (
        lambda: stub.Receive(exchange_pb2.ReceiveRequest(unit_code=PHONG), metadata=inspector),
        lambda: stub.Ack(
            exchange_pb2.AckRequest(unit_code=PHONG, delivery_ids=["1"]), metadata=inspector
        ),
        lambda: stub.UpdateStatus(
            exchange_pb2.UpdateStatusRequest(
                document_id=sent.document_id, from_unit=COMMUNE, unit_code=PHONG, status_code="03"
            ),
            metadata=inspector,
        ),
        lambda: stub.Send(_send(COMMUNE, PHONG), metadata=inspector),
        lambda: stub.ReleaseQuarantined(
            exchange_pb2.ReleaseQuarantinedRequest(id="1"), metadata=inspector
        ),
    ):
        assert "may not call" in await _denied(call)
    # the delivery is still waiting for its unit: the inspection leased nothing
    got = [
        d
        async for d in stub.Receive(
            exchange_pb2.ReceiveRequest(unit_code=PHONG), metadata=_auth(la_config, "dev")
        )
    ]
    assert [d.document_id for d in got] == [sent.document_id]
    # the sender's own Track is not an inspection
    await stub.Track(
        exchange_pb2.TrackRequest(document_id=sent.document_id, from_unit=COMMUNE),
        metadata=_auth(la_config, "dev"),
    )
    inspected = [e for e in _events(la_config) if e.type is audit.EventType.HUB_INSPECTED]
    assert [(e.actor, e.details["rpc"]) for e in inspected] == [
        ("inspector", "Track"),
        ("inspector", "ListQuarantined"),
    ]
    assert inspected[0].details["document_id"] == sent.document_id
    assert inspected[0].unit == COMMUNE


async def test_building_a_package_with_the_hubs_key_obeys_its_client_list(stub, la_config) -> None:
    """Observation 2: a client not listed on the exchange key cannot have packages built and
    signed with it, even for its own unit."""
    details = await _denied(
        lambda: stub.Send(_send(COMMUNE, DEPARTMENT), metadata=_auth(la_config, "province"))
    )
    assert "may not have packages signed with this hub's key 'seal'" in details


def _package(
    key: HsmSigningKey, *, sender: str, to: str, document_id: str, signed_by_hub: str | None = None
) -> bytes:
    now = datetime.now(UTC)
    package = Package(
        header=MessageHeader(
            from_=Organization(organ_id=sender, organ_name="Thử"),
            to=(Organization(organ_id=to),),
            document_id=document_id,
            subject="Về việc thử",
        ),
        traces=(TraceHeader(organ_id=sender, timestamp=now),),
        signed_by_hub=signed_by_hub,
    )
    return build_package(package, key=key)


def _forward(hub: str, hop: str, **body) -> exchange_pb2.ForwardRequest:
    return exchange_pb2.ForwardRequest(from_hub=hub, hop_id=f"{hub}:{hop}", **body)


@pytest.mark.parametrize("pins", [True])
async def test_a_hub_forwards_only_what_its_route_carries_signed_by_the_sender_or_its_hub(
    stub, la_config, la_server
) -> None:
    """Observation 1: H41 is not on the route H41 → G22 → H49, so it cannot hand H49 a
    package directly; G22 can, but only one signed by a certificate bound to the sender (here
    the sender's hub H41 pinned another certificate than the one that signed)."""
    assert la_server.app.keyring is not None
    seal = HsmSigningKey(ring=la_server.app.keyring, alias="seal")
    data = _package(seal, sender=NA_UNIT, to=DEPARTMENT, document_id="na-1")
    details = await _denied(
        lambda: stub.Forward(
            _forward("H41", "1", package=data, to_units=[DEPARTMENT]),
            metadata=_auth(la_config, "H41"),
        )
    )
    assert "its route is H41 → G22 → H49" in details
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forward(
            _forward("G22", "1", package=data, to_units=[DEPARTMENT]),
            metadata=_auth(la_config, "G22"),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"not a certificate bound to unit {NA_UNIT}" in (caught.value.details() or "")
    # G22's own unit, signed with the certificate pinned for G22 but not saying so: refused
    unstated = _package(seal, sender=G22_UNIT, to=DEPARTMENT, document_id="g22-0")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forward(
            _forward("G22", "0", package=unstated, to_units=[DEPARTMENT]),
            metadata=_auth(la_config, "G22"),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "must say so in the package (kyso:SignedByHub)" in (caught.value.details() or "")
    # a package of Nghệ An's unit that says G22 signed for it: G22 does not serve that unit
    claimed = _package(seal, sender=NA_UNIT, to=DEPARTMENT, document_id="na-2", signed_by_hub="G22")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forward(
            _forward("G22", "3", package=claimed, to_units=[DEPARTMENT]),
            metadata=_auth(la_config, "G22"),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"unit {NA_UNIT} is served by hub H41" in (caught.value.details() or "")
    # stated, and G22 serves its own unit: taken, with a receipt
    ours = _package(seal, sender=G22_UNIT, to=DEPARTMENT, document_id="g22-1", signed_by_hub="G22")
    reply = await stub.Forward(
        _forward("G22", "2", package=ours, to_units=[DEPARTMENT]), metadata=_auth(la_config, "G22")
    )
    assert Receipt.parse(reply.receipt).hub == "H49"


@pytest.mark.parametrize("pins", [True])
async def test_a_hub_cannot_set_statuses_on_deliveries_it_never_carried(
    stub, la_config, la_server
) -> None:
    """Observation 1: a local delivery never went through G22: its status 06 is refused, and
    the recipient's own status changes are not blocked."""
    assert la_server.app.keyring is not None
    sent = await stub.Send(_send(COMMUNE, DEPARTMENT), metadata=_auth(la_config, "dev"))
    packet = build_status(
        StatusPacket(
            response_for=ResponseFor(organ_id=COMMUNE, document_id=sent.document_id),
            from_=Organization(organ_id=DEPARTMENT),
            code=StatusCode.COMPLETED,
            timestamp=datetime.now(UTC),
            # signed by the recipient's own hub (this one) on its behalf: the signer is fine,
            # the delivery is what G22 never carried
            signed_by_hub="H49",
        ),
        key=HsmSigningKey(ring=la_server.app.keyring, alias="seal"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Forward(
            _forward("G22", "s1", status_packet=packet), metadata=_auth(la_config, "G22")
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    await stub.UpdateStatus(
        exchange_pb2.UpdateStatusRequest(
            document_id=sent.document_id, from_unit=COMMUNE, unit_code=DEPARTMENT, status_code="03"
        ),
        metadata=_auth(la_config, "dev"),
    )


@pytest.mark.parametrize("pins", [True])
async def test_a_status_packet_is_signed_by_the_recipient_or_its_hub_as_stated(
    stub, la_config, la_server
) -> None:
    """A status packet for a delivery that did go through G22 is taken only when signed by a
    certificate bound to the unit that sets the status, or by that unit's hub, stated in the
    packet (kyso:SignedByHub), not by any trusted certificate."""
    assert la_server.app.keyring is not None
    sent = await stub.Send(_send(COMMUNE, NA_UNIT), metadata=_auth(la_config, "dev"))
    seal = HsmSigningKey(ring=la_server.app.keyring, alias="seal")

    def packet(signed_by_hub: str | None) -> bytes:
        return build_status(
            StatusPacket(
                response_for=ResponseFor(organ_id=COMMUNE, document_id=sent.document_id),
                from_=Organization(organ_id=NA_UNIT),
                code=StatusCode.COMPLETED,
                timestamp=datetime.now(UTC),
                signed_by_hub=signed_by_hub,
            ),
            key=seal,
        )

    for hop, signed_by_hub, reason in (
        ("s1", None, "must say so in the package (kyso:SignedByHub)"),
        ("s2", "G22", f"unit {NA_UNIT} is served by hub H41"),
        ("s3", "H41", "not a certificate pinned for hub H41"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Forward(
                _forward("G22", hop, status_packet=packet(signed_by_hub)),
                metadata=_auth(la_config, "G22"),
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert reason in (caught.value.details() or ""), caught.value.details()
    track = await stub.Track(
        exchange_pb2.TrackRequest(document_id=sent.document_id, from_unit=COMMUNE),
        metadata=_auth(la_config, "dev"),
    )
    assert [(r.unit_code, r.status_code) for r in track.recipients] == [(NA_UNIT, "")]


def test_a_receipt_is_bound_to_the_next_hubs_pinned_certificate() -> None:
    """Observation 1: a receipt signed by a certificate that chains to an anchor but is not
    the one pinned for the next hub is refused."""
    authority = Authority.create("Hubs CA")
    g22, other = (
        authority.issue("hub G22", algorithm="ec"),
        authority.issue("hub X", algorithm="ec"),
    )
    receipt = Receipt(hop_id="H49:1", sha256="0" * 64, hub="G22", at=datetime.now(UTC))

    def pin(key) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        return hashlib.sha256(key.certificate.public_bytes(Encoding.DER)).hexdigest()

    expected = {"hop_id": "H49:1", "sha256": "0" * 64, "hub": "G22"}
    anchors = [authority.certificate]
    with pytest.raises(ReceiptInvalid, match="not pinned for it"):
        verify_receipt(
            sign_receipt(receipt, key=other), anchors=anchors, pinned=[pin(g22)], **expected
        )
    assert (
        verify_receipt(
            sign_receipt(receipt, key=g22), anchors=anchors, pinned=[pin(g22)], **expected
        )
        == receipt
    )


def _events(config: Config) -> list[audit.Event]:
    engine = sa.create_engine(config.database.url)
    try:
        return [entry.event for entry in audit.Ledger(engine).entries()]
    finally:
        engine.dispose()


def _denials(config: Config) -> list[audit.Event]:
    return [e for e in _events(config) if e.type is audit.EventType.AUTHZ_DENIED]


async def test_refusals_reach_the_ledger_summarised_per_client_and_minute(
    la_config, la_server
) -> None:
    """Observation 7: SignPdf with the ledger's key is a recorded refusal; unauthenticated
    calls are recorded; a flood of refusals adds one event per caller and minute."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{la_server.port}") as channel:
        signing = signing_pb2_grpc.SigningServiceStub(channel)
        request = signing_pb2.SignPdfRequest(key_alias="ledger")
        request.document.content = make_pdf()
        details = await _denied(lambda: signing.SignPdf(request, metadata=_auth(la_config, "dev")))
        assert "'ledger'" in details
        exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)
        # 90 calls: within the client's burst (100 by default), each is refused for its role
        for _ in range(90):
            with pytest.raises(grpc.aio.AioRpcError):
                await exchange.Receive(
                    exchange_pb2.ReceiveRequest(unit_code=PHONG), metadata=_auth(la_config, "dept")
                ).read()
        for _ in range(30):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await exchange.Track(exchange_pb2.TrackRequest(document_id="x"))
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert la_server.app.refusals is not None
    await la_server.app.refusals.flush(everything=True)
    denials = _denials(la_config)
    by_actor: dict[str, list[audit.Event]] = {}
    for event in denials:
        by_actor.setdefault(event.actor, []).append(event)
    assert set(by_actor) == {"dev", "dept", "unauthenticated ipv4:127.0.0.1"}, denials
    # a minute may turn during the flood: then two events, never one per call
    for actor, count in (("dev", 1), ("dept", 90), ("unauthenticated ipv4:127.0.0.1", 30)):
        events = by_actor[actor]
        assert len(events) <= 2
        assert sum(int(e.details["count"]) for e in events) == count
    assert by_actor["dev"][0].details["rpc"] == "/kyso.v1.SigningService/SignPdf"
