"""Thin gRPC servicers: protobuf in, one operation (``kyso.operations``), protobuf out, with the
converters of ``kyso.services.convert``. Errors are mapped by the interceptor, never here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc

from kyso.app import Application
from kyso.operations.wiring import Operations
from kyso.services.archive import ArchiveServicer
from kyso.services.audit import AuditServicer
from kyso.services.directory import DirectoryServicer
from kyso.services.documents import DocumentServicer
from kyso.services.exchange import ExchangeServicer
from kyso.services.notifications import NotificationServicer
from kyso.services.signing import SigningServicer
from kyso.services.verification import VerificationServicer
from kyso.v1 import (
    archive_pb2_grpc,
    audit_pb2_grpc,
    directory_pb2_grpc,
    documents_pb2_grpc,
    exchange_pb2_grpc,
    notifications_pb2_grpc,
    signing_pb2_grpc,
    verification_pb2_grpc,
)

__all__ = ["HandlerCollector", "register_all"]


class HandlerCollector:
    """Takes the servicers' method handlers as a gRPC server would (the generated
    ``add_*Servicer_to_server`` functions call these two methods), keyed by full method name."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """The generic form of the same handlers: nothing to take."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


def register_all(
    server: grpc.aio.Server,
    app: Application,
    operations: Operations | None = None,
    *,
    also: Any = None,
) -> list[str]:
    """Add every kyso.v1 servicer to ``server`` (and the same servicer objects to ``also``, an
    object with the server's two registration methods: a :class:`HandlerCollector` for the
    HTTP/JSON listener); return the full service names.

    A service whose domain is not built yet is registered with its generated base class, whose
    methods answer UNIMPLEMENTED (the contract stays complete and discoverable by reflection).
    """
    operations = operations or Operations.build(app)
    registrations: list[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]] = [
        (
            signing_pb2_grpc.add_SigningServiceServicer_to_server,
            SigningServicer(operations),
            "kyso.v1.SigningService",
        ),
        (
            verification_pb2_grpc.add_VerificationServiceServicer_to_server,
            VerificationServicer(operations),
            "kyso.v1.VerificationService",
        ),
        (
            documents_pb2_grpc.add_DocumentServiceServicer_to_server,
            DocumentServicer(operations),
            "kyso.v1.DocumentService",
        ),
        (
            exchange_pb2_grpc.add_ExchangeServiceServicer_to_server,
            ExchangeServicer(operations),
            "kyso.v1.ExchangeService",
        ),
        (
            directory_pb2_grpc.add_DirectoryServiceServicer_to_server,
            DirectoryServicer(operations),
            "kyso.v1.DirectoryService",
        ),
        (
            audit_pb2_grpc.add_AuditServiceServicer_to_server,
            AuditServicer(operations),
            "kyso.v1.AuditService",
        ),
        (
            notifications_pb2_grpc.add_NotificationServiceServicer_to_server,
            NotificationServicer(operations),
            "kyso.v1.NotificationService",
        ),
        (
            archive_pb2_grpc.add_ArchiveServiceServicer_to_server,
            ArchiveServicer(operations),
            "kyso.v1.ArchiveService",
        ),
    ]
    for add, servicer, _name in registrations:
        add(servicer, server)
        if also is not None:
            add(servicer, also)
    return [name for _, _, name in registrations]
