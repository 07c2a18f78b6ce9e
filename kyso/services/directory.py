"""DirectoryService: units by code, children page by page, search by name, and routes
(``kyso.operations.directory``, which owns the page-token rule and the limits)."""

from __future__ import annotations

from typing import Any

from kyso.operations.wiring import Operations
from kyso.services import convert
from kyso.v1 import directory_pb2, directory_pb2_grpc

__all__ = ["DirectoryServicer"]


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, operations: Operations) -> None:
        self._directory = operations.directory

    async def GetUnit(  # noqa: N802 (the gRPC method name)
        self, request: directory_pb2.GetUnitRequest, context: Any
    ) -> directory_pb2.Unit:
        return convert.directory_unit(await self._directory.unit(request.code))

    async def ListChildren(  # noqa: N802
        self, request: directory_pb2.ListChildrenRequest, context: Any
    ) -> directory_pb2.ListChildrenResponse:
        page = await self._directory.children(
            request.code, page_size=request.page_size, page_token=request.page_token
        )
        return convert.children_page(page)

    async def Search(  # noqa: N802
        self, request: directory_pb2.SearchRequest, context: Any
    ) -> directory_pb2.SearchResponse:
        found = await self._directory.search(request.query, limit=request.limit)
        return convert.search_response(found)

    async def Route(  # noqa: N802
        self, request: directory_pb2.RouteRequest, context: Any
    ) -> directory_pb2.RouteResponse:
        return convert.route_response(await self._directory.route(request.to_unit))
