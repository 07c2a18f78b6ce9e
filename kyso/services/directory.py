"""DirectoryService: units by code, children page by page, search by name, and routes.

Thin: ``exchange.directory.Directory`` does the work (in threads: it reads the database).
A page token is the code of the last unit of the previous page (children are ordered by code),
so pages stay consistent while units are added.
"""

from __future__ import annotations

import asyncio
from typing import Any

from exchange.codes import validate_unit_code
from exchange.directory import Directory, RouteKind, Unit
from kyso.app import Application
from kyso.errors import NotFound, RequestInvalid
from kyso.v1 import directory_pb2, directory_pb2_grpc

__all__ = ["DirectoryServicer"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_SEARCH = 200
_KINDS: dict[RouteKind, Any] = {
    RouteKind.LOCAL: directory_pb2.LOCAL,
    RouteKind.UP: directory_pb2.UP,
    RouteKind.DOWN: directory_pb2.DOWN,
    RouteKind.PEER: directory_pb2.PEER,
}


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, app: Application) -> None:
        self._directory = app.directory
        self._hub_id = app.config.exchange.hub_id

    def _units(self) -> Directory:
        if self._directory is None:
            # NOT_FOUND: no unit can be found here (the request is fine; the server has none)
            raise NotFound("this server keeps no unit directory: set [exchange] hub_id and hubs")
        return self._directory

    def _proto(self, unit: Unit) -> directory_pb2.Unit:
        return directory_pb2.Unit(
            code=unit.code,
            name=unit.name,
            parent_code=unit.parent_code or "",
            level=unit.level,
            kind=unit.kind,
            hub=self._units().serving_hub(unit.code) or "",
        )

    async def GetUnit(  # noqa: N802 (the gRPC method name)
        self, request: directory_pb2.GetUnitRequest, context: Any
    ) -> directory_pb2.Unit:
        directory = self._units()
        return await asyncio.to_thread(lambda: self._proto(directory.get(request.code)))

    async def ListChildren(  # noqa: N802
        self, request: directory_pb2.ListChildrenRequest, context: Any
    ) -> directory_pb2.ListChildrenResponse:
        directory = self._units()
        if request.page_size < 0:
            raise RequestInvalid("page_size cannot be negative", field="page_size")
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        after = request.page_token
        if after:
            validate_unit_code(after, field="page_token")

        def page() -> directory_pb2.ListChildrenResponse:
            children = [u for u in directory.children(request.code) if u.code > after]
            chosen = children[:size]
            more = len(children) > size
            return directory_pb2.ListChildrenResponse(
                units=[self._proto(u) for u in chosen],
                next_page_token=chosen[-1].code if more else "",
            )

        return await asyncio.to_thread(page)

    async def Search(  # noqa: N802
        self, request: directory_pb2.SearchRequest, context: Any
    ) -> directory_pb2.SearchResponse:
        directory = self._units()
        if not request.query.strip():
            raise RequestInvalid("give some words of the unit's name", field="query")
        if request.limit < 0:
            raise RequestInvalid("limit cannot be negative", field="limit")
        limit = min(request.limit or 50, MAX_SEARCH)
        return await asyncio.to_thread(
            lambda: directory_pb2.SearchResponse(
                units=[self._proto(u) for u in directory.search(request.query, limit=limit)]
            )
        )

    async def Route(  # noqa: N802
        self, request: directory_pb2.RouteRequest, context: Any
    ) -> directory_pb2.RouteResponse:
        directory = self._units()
        decision = await asyncio.to_thread(
            directory.route, from_hub=self._hub_id, to_unit=request.to_unit
        )
        address = directory.topology.hub(decision.next_hub).address if decision.next_hub else ""
        return directory_pb2.RouteResponse(
            kind=_KINDS[decision.kind], next_hub=decision.next_hub or "", next_hub_address=address
        )
