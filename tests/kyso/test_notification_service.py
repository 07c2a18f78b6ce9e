"""NotificationService in a real server: who may subscribe for which unit, refused targets and
numbers named by field, and the live stream showing a caller its own unit's events only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa

import audit
from kyso.notify.schema import events
from kyso.operations.ledger import Staging
from kyso.server import Server
from kyso.v1 import notifications_pb2 as pb
from kyso.v1 import notifications_pb2_grpc
from tests.kyso.conftest import token
from tests.support.statuses import bad_request_field

UNIT = "000.00.21.H49"  # the workflow client's unit in tests/kyso/conftest.py


def _auth(server: Server, client: str = "workflow") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(server.config, client)}")]


def _stage(server: Server, unit: str, document_id: str) -> str:
    """Stage a status change as an operation does; return its notification's event id."""
    event = audit.Event(
        time=datetime.now(UTC),
        actor="workflow",
        unit=unit,
        type=audit.EventType.STATUS_CHANGED,
        details={"document_id": document_id, "sender": "000.00.99.H49", "status": "03"},
    )
    with server.app.engine.begin() as conn:
        Staging().write(conn, [event])
        return str(conn.execute(sa.select(events.c.event_id).order_by(events.c.id.desc())).scalar())


async def test_subscriptions_are_refused_with_the_field_to_fix(server, channel) -> None:
    stub = notifications_pb2_grpc.NotificationServiceStub(channel)
    auth = _auth(server)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateEndpoint(
            pb.CreateEndpointRequest(unit_code="000.00.22.H49", url="https://example.org/h"),
            metadata=auth,
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    for url in ("http://127.0.0.1:9/hook", "https://192.168.1.10/hook", "ftp://example.org/"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateEndpoint(
                pb.CreateEndpointRequest(unit_code=UNIT, url=url), metadata=auth
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, url
        assert bad_request_field(refused.value) == "url"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateEndpoint(
            pb.CreateEndpointRequest(
                unit_code=UNIT, url="https://example.org/h", event_types=["status.changed", "x"]
            ),
            metadata=auth,
        )
    assert bad_request_field(refused.value) == "event_types[1]"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SetCitizenConsent(
            pb.SetCitizenConsentRequest(document_id="HS-1", unit_code=UNIT, phone="12345"),
            metadata=auth,
        )
    assert bad_request_field(refused.value) == "phone"
    created = await stub.CreateEndpoint(
        pb.CreateEndpointRequest(unit_code=UNIT, url="https://example.org/hooks/kyso"),
        metadata=auth,
    )
    assert created.secret.startswith("whsec_")
    assert created.endpoint.state == pb.ENDPOINT_STATE_ACTIVE
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ReplayEvents(
            pb.ReplayEventsRequest(endpoint_id=created.endpoint.id), metadata=auth
        )
    assert bad_request_field(refused.value) == "since"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.DeleteEndpoint(pb.DeleteEndpointRequest(endpoint_id="ep_nope"), metadata=auth)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    listed = await stub.ListEndpoints(pb.ListEndpointsRequest(), metadata=auth)
    assert [e.id for e in listed.endpoints] == [created.endpoint.id]


async def test_the_live_stream_shows_the_callers_unit_only(server, channel) -> None:
    stub = notifications_pb2_grpc.NotificationServiceStub(channel)
    auth = _auth(server)
    before = _stage(server, UNIT, "BEFORE")
    _stage(server, "000.00.22.H49", "OTHER-UNIT")
    mine = _stage(server, UNIT, "MINE")
    listed = stub.WatchEvents(
        pb.WatchEventsRequest(after_event_id=before, wait_seconds=0), metadata=auth
    )
    assert [(e.event_id, e.data["document_id"]) async for e in listed] == [(mine, "MINE")]
    # open: an event committed while the stream waits arrives on it
    call = stub.WatchEvents(
        pb.WatchEventsRequest(event_types=["status.changed"], after_event_id=mine, wait_seconds=30),
        metadata=auth,
    )
    reading = asyncio.ensure_future(call.read())
    await asyncio.sleep(1.5)  # the server is waiting in the stream by now (or it gets it at once)
    later = _stage(server, UNIT, "LATER")
    event = await reading
    call.cancel()
    assert event.event_id == later
    assert event.event_type == "status.changed"
    assert event.unit_code == UNIT
    assert dict(event.data) == {
        "document_id": "LATER",
        "sender": "000.00.99.H49",
        "status": "03",
        "unit": UNIT,
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.WatchEvents(
            pb.WatchEventsRequest(after_event_id="evt_unknown"), metadata=auth
        ).read()
    assert bad_request_field(refused.value) == "after_event_id"
