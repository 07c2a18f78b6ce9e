"""NotificationService: webhook endpoints, citizens' consents and messages, the live stream.

Each method converts and calls one operation of ``kyso.operations.notifications``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from kyso.errors import RequestInvalid
from kyso.interceptors import current_identity
from kyso.notify.citizens import MessageRecord
from kyso.notify.webhooks import DeliveryRecord, Endpoint
from kyso.operations.notifications import Notifications
from kyso.operations.wiring import Operations
from kyso.services.convert import timestamp
from kyso.v1 import notifications_pb2 as pb
from kyso.v1 import notifications_pb2_grpc

__all__ = ["NotificationServicer"]

_OUTCOMES = {
    "pending": pb.DELIVERY_OUTCOME_PENDING,
    "delivered": pb.DELIVERY_OUTCOME_DELIVERED,
    "failed": pb.DELIVERY_OUTCOME_FAILED,
}
_MESSAGE_STATES = {
    "pending": pb.MESSAGE_STATE_PENDING,
    "sent": pb.MESSAGE_STATE_SENT,
    "failed": pb.MESSAGE_STATE_FAILED,
}


def _endpoint(item: Endpoint) -> pb.Endpoint:
    now = datetime.now(UTC)
    if item.disabled_at is not None:
        state = pb.ENDPOINT_STATE_DISABLED
    elif item.paused_until is not None and item.paused_until > now:
        state = pb.ENDPOINT_STATE_PAUSED
    else:
        state = pb.ENDPOINT_STATE_ACTIVE
    return pb.Endpoint(
        id=item.id,
        owner=item.owner,
        unit_code=item.unit,
        url=item.url,
        event_types=list(item.types),
        personal_data=item.personal_data,
        description=item.description,
        state=state,
        disabled_reason=item.disabled_reason,
        created_at=timestamp(item.created_at),
        paused_until=timestamp(item.paused_until),
        pending=item.pending,
        failed=item.failed,
    )


def _delivery(item: DeliveryRecord) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        event_id=item.event_id,
        event_type=item.type,
        key=item.key,
        outcome=_OUTCOMES.get(item.state, pb.DELIVERY_OUTCOME_UNSPECIFIED),
        attempts=item.attempts,
        next_attempt_at=timestamp(item.next_at if item.state == "pending" else None),
        last_status=item.last_status,
        last_error=item.last_error,
        delivered_at=timestamp(item.delivered_at),
    )


def _message(item: MessageRecord) -> pb.CitizenMessage:
    return pb.CitizenMessage(
        id=item.id,
        document_id=item.document_id,
        phone=item.phone,
        status_code=item.status,
        state=_MESSAGE_STATES.get(item.state, pb.MESSAGE_STATE_UNSPECIFIED),
        channel=item.channel,
        tracking_id=item.tracking_id,
        provider_id=item.provider_id,
        attempts=item.attempts,
        last_error=item.last_error,
        created_at=timestamp(item.created_at),
        sent_at=timestamp(item.sent_at),
    )


def _when(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._notifications: Notifications = operations.notifications

    async def CreateEndpoint(  # noqa: N802 (the gRPC method name)
        self, request: pb.CreateEndpointRequest, context: Any
    ) -> pb.CreateEndpointResponse:
        endpoint, secret = await self._notifications.create(
            current_identity(),
            unit=request.unit_code,
            url=request.url,
            types=list(request.event_types),
            personal_data=request.personal_data,
            description=request.description,
        )
        return pb.CreateEndpointResponse(endpoint=_endpoint(endpoint), secret=secret)

    async def ListEndpoints(  # noqa: N802
        self, request: pb.ListEndpointsRequest, context: Any
    ) -> pb.ListEndpointsResponse:
        found = await self._notifications.endpoints(current_identity())
        return pb.ListEndpointsResponse(endpoints=[_endpoint(e) for e in found])

    async def DeleteEndpoint(  # noqa: N802
        self, request: pb.DeleteEndpointRequest, context: Any
    ) -> pb.DeleteEndpointResponse:
        await self._notifications.delete(current_identity(), request.endpoint_id)
        return pb.DeleteEndpointResponse()

    async def RotateEndpointSecret(  # noqa: N802
        self, request: pb.RotateEndpointSecretRequest, context: Any
    ) -> pb.RotateEndpointSecretResponse:
        secret, until = await self._notifications.rotate(current_identity(), request.endpoint_id)
        return pb.RotateEndpointSecretResponse(secret=secret, previous_valid_until=timestamp(until))

    async def SendTestEvent(  # noqa: N802
        self, request: pb.SendTestEventRequest, context: Any
    ) -> pb.SendTestEventResponse:
        event_id = await self._notifications.send_test(current_identity(), request.endpoint_id)
        return pb.SendTestEventResponse(event_id=event_id)

    async def ReplayEvents(  # noqa: N802
        self, request: pb.ReplayEventsRequest, context: Any
    ) -> pb.ReplayEventsResponse:
        if not request.HasField("since"):
            raise RequestInvalid("give the start of the range to replay", field="since")
        queued = await self._notifications.replay(
            current_identity(),
            request.endpoint_id,
            since=_when(request.since),
            until=_when(request.until) if request.HasField("until") else None,
        )
        return pb.ReplayEventsResponse(queued=queued)

    async def ListDeliveries(  # noqa: N802
        self, request: pb.ListDeliveriesRequest, context: Any
    ) -> pb.ListDeliveriesResponse:
        state = {v: k for k, v in _OUTCOMES.items()}.get(request.outcome, "")
        found = await self._notifications.deliveries(
            current_identity(), request.endpoint_id, state=state, limit=request.limit
        )
        return pb.ListDeliveriesResponse(deliveries=[_delivery(d) for d in found])

    async def SetCitizenConsent(  # noqa: N802
        self, request: pb.SetCitizenConsentRequest, context: Any
    ) -> pb.SetCitizenConsentResponse:
        record = await self._notifications.set_consent(
            current_identity(),
            document_id=request.document_id,
            unit=request.unit_code,
            phone=request.phone,
            withdraw=request.withdraw,
        )
        if record is None:
            return pb.SetCitizenConsentResponse(withdrawn=True)
        return pb.SetCitizenConsentResponse(phone=record.phone)

    async def ListCitizenMessages(  # noqa: N802
        self, request: pb.ListCitizenMessagesRequest, context: Any
    ) -> pb.ListCitizenMessagesResponse:
        state = {v: k for k, v in _MESSAGE_STATES.items()}.get(request.state, "")
        found = await self._notifications.messages(
            current_identity(), document_id=request.document_id, state=state, limit=request.limit
        )
        return pb.ListCitizenMessagesResponse(messages=[_message(m) for m in found])

    async def WatchEvents(  # noqa: N802
        self, request: pb.WatchEventsRequest, context: Any
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        stream = self._notifications.watch(
            current_identity(),
            types=list(request.event_types),
            after=request.after_event_id,
            wait_seconds=request.wait_seconds,
        )
        async for event in stream:
            yield pb.WatchEventsResponse(
                event_id=event.event_id,
                event_type=event.type,
                unit_code=event.unit,
                occurred_at=timestamp(event.occurred_at),
                data=event.data,
            )
