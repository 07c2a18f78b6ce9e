"""Reading the unit directory: a unit by code, its children page by page, search, and routes.

Every unit is given with the hub that serves it (``exchange.directory``'s rule: its own hub,
else the hub rooted at it, else its parent's). Children come ordered by code, and a page token
is the code of the last unit of the previous page: the next page is the children whose code
sorts after it, so pages stay consistent while units are added (no unit is given twice, none
of those present throughout is skipped). A route is the next step from this hub
(``[exchange] hub_id``), with the next hub's configured address.

Invariants: a server without a directory (no ``[exchange] hub_id``) answers NOT_FOUND to every
read before looking at the request; a negative page size or limit is refused naming its field,
zero means the default, and larger ones are cut to ``MAX_PAGE`` and ``MAX_SEARCH``; the database
is read in the application's bounded pool. The directory is filled by ``kyso directory import``
or, when empty at start, from ``[exchange] directory`` by the composition root (``kyso.app``).
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.codes import validate_unit_code
from exchange.directory import Directory, RouteKind, Unit
from kyso.app import Application
from kyso.errors import NotFound, RequestInvalid

__all__ = [
    "DEFAULT_PAGE",
    "DEFAULT_SEARCH",
    "MAX_PAGE",
    "MAX_SEARCH",
    "ChildrenPage",
    "DirectoryReading",
    "NextHop",
    "ServedUnit",
]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
DEFAULT_SEARCH = 50
MAX_SEARCH = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedUnit:
    """A unit of the directory and the hub that serves it (None: no hub does)."""

    unit: Unit
    hub: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildrenPage:
    """A page of a unit's children; ``next_page_token`` is "" on the last page."""

    units: tuple[ServedUnit, ...]
    next_page_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NextHop:
    """Where a message to a unit goes from this hub: ``next_hub`` is None when it stays here;
    ``address`` is that hub's configured address ("" when none)."""

    kind: RouteKind
    next_hub: str | None
    address: str


class DirectoryReading:
    """The directory's reads (see the module docstring)."""

    def __init__(self, app: Application) -> None:
        self._directory = app.directory
        self._hub_id = app.config.exchange.hub_id
        self._run = app.executors.io.run

    def _units(self) -> Directory:
        if self._directory is None:
            # NOT_FOUND: no unit can be found here (the request is fine; the server has none)
            raise NotFound("this server keeps no unit directory: set [exchange] hub_id and hubs")
        return self._directory

    async def unit(self, code: str) -> ServedUnit:
        directory = self._units()
        return await self._run(lambda: _served(directory, directory.get(code)))

    async def children(self, code: str, *, page_size: int, page_token: str) -> ChildrenPage:
        """The children of ``code`` after the unit ``page_token`` names ("" from the first)."""
        directory = self._units()
        if page_size < 0:
            raise RequestInvalid("page_size cannot be negative", field="page_size")
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        if page_token:
            validate_unit_code(page_token, field="page_token")

        def page() -> ChildrenPage:
            children = [u for u in directory.children(code) if u.code > page_token]
            chosen = children[:size]
            more = len(children) > size
            return ChildrenPage(
                units=tuple(_served(directory, u) for u in chosen),
                next_page_token=chosen[-1].code if more else "",
            )

        return await self._run(page)

    async def search(self, query: str, *, limit: int) -> tuple[ServedUnit, ...]:
        """Units whose name holds ``query`` (without case or diacritics), higher units first."""
        directory = self._units()
        if not query.strip():
            raise RequestInvalid("give some words of the unit's name", field="query")
        if limit < 0:
            raise RequestInvalid("limit cannot be negative", field="limit")
        wanted = min(limit or DEFAULT_SEARCH, MAX_SEARCH)
        return await self._run(
            lambda: tuple(_served(directory, u) for u in directory.search(query, limit=wanted))
        )

    async def route(self, to_unit: str) -> NextHop:
        directory = self._units()
        decision = await self._run(directory.route, from_hub=self._hub_id, to_unit=to_unit)
        next_hub = decision.next_hub
        address = directory.topology.hub(next_hub).address if next_hub else ""
        return NextHop(kind=decision.kind, next_hub=next_hub, address=address)


def _served(directory: Directory, unit: Unit) -> ServedUnit:
    """``unit`` with its serving hub (blocking: may load the directory's routing index)."""
    return ServedUnit(unit=unit, hub=directory.serving_hub(unit.code))
