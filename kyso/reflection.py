"""Server reflection, v1 and v1alpha, serving the contract's descriptors with their comments.

Tools that discover an API by reflection (grpcurl, Postman, grpcui, Kreya, grpc_cli) ask
``grpc.reflection.v1.ServerReflection`` (newer) or ``grpc.reflection.v1alpha`` (older); both
are served by one servicer: the two protocols are the same messages under two package names,
so v1alpha's generated classes read and write v1's wire format.

The files of ``kyso.v1`` are answered from ``kyso/v1/descriptors.binpb`` (written by
``scripts/gen_protos.py`` with ``--include_source_info``), so the comments of the .proto files
— roles, errors, units, limits — reach the tools. Files outside it (health, reflection) come
from the process's descriptor pool, without comments. Reflection is unauthenticated (it
describes the service, not its data; ``kyso.authz.PUBLIC_SERVICES``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

__all__ = ["SERVICE_NAMES", "enable_reflection"]

SERVICE_NAMES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


def _commented_files() -> dict[str, bytes]:
    """The serialized FileDescriptorProto of each file of the contract (and its imports), with
    source info."""
    data = (resources.files("kyso.v1") / "descriptors.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    return {f.name: f.SerializeToString() for f in files.file}


class _Reflection:
    def __init__(self, service_names: Iterable[str]) -> None:
        self._services = tuple(sorted(service_names))
        self._pool = descriptor_pool.Default()
        self._commented = _commented_files()

    async def info(
        self,
        requests: AsyncIterator[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async for request in requests:
            yield self._answer(request)

    def _answer(
        self, request: reflection_pb2.ServerReflectionRequest
    ) -> reflection_pb2.ServerReflectionResponse:
        which = request.WhichOneof("message_request")
        try:
            if which == "list_services":
                return reflection_pb2.ServerReflectionResponse(
                    original_request=request,
                    list_services_response=reflection_pb2.ListServiceResponse(
                        service=[reflection_pb2.ServiceResponse(name=n) for n in self._services]
                    ),
                )
            if which == "file_by_filename":
                return self._files(request, self._pool.FindFileByName(request.file_by_filename))
            if which == "file_containing_symbol":
                symbol = request.file_containing_symbol
                return self._files(request, self._pool.FindFileContainingSymbol(symbol))
            if which == "file_containing_extension":
                asked = request.file_containing_extension
                message = self._pool.FindMessageTypeByName(asked.containing_type)
                extension = self._pool.FindExtensionByNumber(message, asked.extension_number)
                return self._files(
                    request, self._pool.FindFileContainingSymbol(extension.full_name)
                )
            if which == "all_extension_numbers_of_type":
                message = self._pool.FindMessageTypeByName(request.all_extension_numbers_of_type)
                numbers = sorted(e.number for e in self._pool.FindAllExtensions(message))
                return reflection_pb2.ServerReflectionResponse(
                    original_request=request,
                    all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                        base_type_name=message.full_name, extension_number=numbers
                    ),
                )
        except KeyError:
            return _error(request, grpc.StatusCode.NOT_FOUND, "no such file or symbol")
        return _error(request, grpc.StatusCode.INVALID_ARGUMENT, "unknown reflection request")

    def _files(
        self, request: reflection_pb2.ServerReflectionRequest, file: Any
    ) -> reflection_pb2.ServerReflectionResponse:
        """``file`` and every file it imports, transitively, each once."""
        seen: dict[str, bytes] = {}
        pending = [file]
        while pending:
            current = pending.pop()
            if current.name in seen:
                continue
            serialized = self._commented.get(current.name)
            if serialized is None:
                proto = descriptor_pb2.FileDescriptorProto()
                current.CopyToProto(proto)
                serialized = proto.SerializeToString()
            seen[current.name] = serialized
            pending.extend(current.dependencies)
        return reflection_pb2.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=list(seen.values())
            ),
        )


def _error(
    request: reflection_pb2.ServerReflectionRequest, code: grpc.StatusCode, message: str
) -> reflection_pb2.ServerReflectionResponse:
    return reflection_pb2.ServerReflectionResponse(
        original_request=request,
        error_response=reflection_pb2.ErrorResponse(
            error_code=code.value[0], error_message=message
        ),
    )


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha on ``server`` for ``service_names`` (and itself)."""
    servicer = _Reflection([*service_names, *SERVICE_NAMES])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.info,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in SERVICE_NAMES
        ]
    )
