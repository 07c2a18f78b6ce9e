"""The server foundation over real gRPC on loopback: health, reflection, authentication,
authorisation, error mapping, and every method of the contract covered by all three."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kyso.authz import ALLOWED_ROLES
from kyso.errors import mapped_code
from kyso.v1 import (
    archive_pb2,  # noqa: F401 (registers the service's descriptor)
    audit_pb2,
    audit_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    notifications_pb2,  # noqa: F401 (registers NotificationService)
)

from .conftest import token

KYSO_SERVICES = {
    "kyso.v1.SigningService",
    "kyso.v1.VerificationService",
    "kyso.v1.DocumentService",
    "kyso.v1.ExchangeService",
    "kyso.v1.DirectoryService",
    "kyso.v1.AuditService",
    "kyso.v1.ArchiveService",
    "kyso.v1.NotificationService",
}


def _all_methods() -> set[str]:
    pool = descriptor_pool.Default()
    methods = set()
    for service in KYSO_SERVICES:
        for method in pool.FindServiceByName(service).methods:
            methods.add(f"/{service}/{method.name}")
    return methods


def test_every_method_has_an_authorisation_row():
    assert _all_methods() == set(ALLOWED_ROLES)


def test_unimplemented_and_unexpected_errors_are_mapped():
    assert mapped_code(NotImplementedError()) is grpc.StatusCode.UNIMPLEMENTED
    assert mapped_code(ZeroDivisionError()) is None


async def test_health_serving_without_credentials(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reply = await stub.Check(health_pb2.HealthCheckRequest(service="kyso.v1.DirectoryService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_seven_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in reply.list_services_response.service}
    assert names >= KYSO_SERVICES


async def test_no_credentials_is_unauthenticated(channel):
    stub = directory_pb2_grpc.DirectoryServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetUnit(directory_pb2.GetUnitRequest(code="000.00.00.H49"))
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in err.value.details()


async def test_wrong_token_is_unauthenticated(channel):
    stub = directory_pb2_grpc.DirectoryServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetUnit(
            directory_pb2.GetUnitRequest(code="x"), metadata=[("authorization", "Bearer nope")]
        )
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == "the API token is not valid for this server"


async def test_role_not_allowed_is_permission_denied(channel, config):
    stub = audit_pb2_grpc.AuditServiceStub(channel)
    auth = [("authorization", f"Bearer {token(config, 'workflow')}")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTreeHead(audit_pb2.GetTreeHeadRequest(), metadata=auth)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "client 'workflow' may not call /kyso.v1.AuditService/GetTreeHead" in err.value.details()


async def test_every_method_refuses_anonymous_callers(channel):
    """Walk the descriptors: each method of each service demands a credential."""
    for method in sorted(_all_methods()):
        call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"")
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED, method


async def test_every_method_checks_roles(channel, config):
    """A hub may call only Forward and the directory; everything else is PERMISSION_DENIED."""
    auth = [("authorization", f"Bearer {token(config, 'hub')}")]
    for method in sorted(_all_methods()):
        if "hub" in ALLOWED_ROLES[method]:
            continue
        call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"", metadata=auth)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED, method


async def test_refusals_are_in_the_ledger(channel, config, server):
    stub = audit_pb2_grpc.AuditServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetTreeHead(
            audit_pb2.GetTreeHeadRequest(),
            metadata=[("authorization", f"Bearer {token(config, 'workflow')}")],
        )
    assert server.app.refusals is not None
    await server.app.refusals.flush(everything=True)  # a minute's refusals make one event
    event = await stub.GetEvent(
        audit_pb2.GetEventRequest(index=0),
        metadata=[("authorization", f"Bearer {token(config, 'auditor')}")],
    )
    assert event.event_type == "authz.denied"
    assert event.actor == "workflow"
    assert event.details["rpc"] == "/kyso.v1.AuditService/GetTreeHead"
