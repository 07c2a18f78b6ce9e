"""ExchangeService: send, receive, acknowledge, set and track statuses, and hub-to-hub Forward.

Each method converts and calls one operation of ``kyso.operations.exchange``, which owns who may
act for which unit, the order of a package's arrival and its ledger events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kyso.interceptors import current_identity
from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import exchange_pb2, exchange_pb2_grpc

__all__ = ["ExchangeServicer"]


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._exchange = operations.exchange

    async def Send(  # noqa: N802 (the gRPC method name)
        self, request: exchange_pb2.SendRequest, context: Any
    ) -> exchange_pb2.SendResponse:
        sent = await self._exchange.send(current_identity(), convert.send_order(request))
        return convert.sent_response(sent)

    async def Receive(  # noqa: N802
        self, request: exchange_pb2.ReceiveRequest, context: Any
    ) -> AsyncIterator[exchange_pb2.Delivery]:
        deliveries = self._exchange.receive(
            current_identity(),
            request.unit_code,
            max_deliveries=request.max_deliveries,
            lease_seconds=request.lease_seconds,
            follow=request.follow,
            heartbeat_seconds=request.heartbeat_seconds,
        )
        async for delivery in deliveries:
            yield convert.delivery(request.unit_code, delivery)

    async def Ack(  # noqa: N802
        self, request: exchange_pb2.AckRequest, context: Any
    ) -> exchange_pb2.AckResponse:
        count = await self._exchange.ack(
            current_identity(), request.unit_code, request.delivery_ids
        )
        return exchange_pb2.AckResponse(acknowledged=count)

    async def UpdateStatus(  # noqa: N802
        self, request: exchange_pb2.UpdateStatusRequest, context: Any
    ) -> exchange_pb2.UpdateStatusResponse:
        await self._exchange.set_status(
            current_identity(),
            request.unit_code,
            document_id=request.document_id,
            code=request.status_code,
            sender=request.from_unit,
            description=request.description,
            staff=request.staff,
        )
        return exchange_pb2.UpdateStatusResponse()

    async def Track(  # noqa: N802
        self, request: exchange_pb2.TrackRequest, context: Any
    ) -> exchange_pb2.TrackResponse:
        entries = await self._exchange.track(
            current_identity(), document_id=request.document_id, sender=request.from_unit
        )
        return exchange_pb2.TrackResponse(
            document_id=request.document_id,
            subject=entries[0].subject if entries else "",
            recipients=[convert.recipient_state(e) for e in entries],
        )

    async def Forward(  # noqa: N802
        self, request: exchange_pb2.ForwardRequest, context: Any
    ) -> exchange_pb2.ForwardResponse:
        receipt = await self._exchange.forward(current_identity(), convert.forward_order(request))
        return convert.forward_response(receipt)

    async def ListQuarantined(  # noqa: N802
        self, request: exchange_pb2.ListQuarantinedRequest, context: Any
    ) -> exchange_pb2.ListQuarantinedResponse:
        items = await self._exchange.quarantined()
        return exchange_pb2.ListQuarantinedResponse(
            items=[convert.quarantined_item(i) for i in items]
        )

    async def ReleaseQuarantined(  # noqa: N802
        self, request: exchange_pb2.ReleaseQuarantinedRequest, context: Any
    ) -> exchange_pb2.ReleaseQuarantinedResponse:
        released = await self._exchange.release(
            current_identity(), convert.quarantine_kind(request.kind), request.id
        )
        return exchange_pb2.ReleaseQuarantinedResponse(released=convert.quarantined_item(released))
