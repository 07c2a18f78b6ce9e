"""Hubs: the kyso services that each serve a subtree of the directory, and how they connect.

A hub is configuration, not directory data: ``Hub(id, root_unit, parent_hub, address, peers)``.
Its ``root_unit`` is the top of the subtree it serves (a unit may also name its hub explicitly in
the directory's ``hub`` column); ``parent_hub`` links hubs into a tree of their own, independent of
the unit tree (the central hub G22 is the parent of the provincial hubs H49 and H41, although the
provinces' units have no parent unit); ``peers`` are hubs reached directly, across the tree.

Invariants checked by ``Topology``: hub ids are unique, every parent and peer is a known hub,
the parent links have no cycle, no two hubs share a root unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exchange.codes import validate_unit_code
from exchange.errors import HubConfigError

__all__ = ["Hub", "Topology"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hub:
    """One hub: its id, the unit at the top of its subtree, its parent hub, address and peers."""

    id: str
    root_unit: str
    parent_hub: str | None = None
    address: str = ""
    peers: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.id or self.id != self.id.strip():
            raise HubConfigError(f"hub id {self.id!r} must be a non-empty name without spaces")
        validate_unit_code(self.root_unit, field=f"hubs.{self.id}.root_unit")


class Topology:
    """The configured hubs, checked for consistency; answers questions about the hub tree."""

    __slots__ = ("_by_id", "_by_root")

    def __init__(self, hubs: Iterable[Hub]) -> None:
        by_id: dict[str, Hub] = {}
        by_root: dict[str, str] = {}
        for hub in hubs:
            if hub.id in by_id:
                raise HubConfigError(f"hub {hub.id!r} is configured twice")
            if hub.root_unit in by_root:
                raise HubConfigError(
                    f"hubs {by_root[hub.root_unit]!r} and {hub.id!r} both claim root unit"
                    f" {hub.root_unit}; give each hub its own subtree"
                )
            by_id[hub.id] = hub
            by_root[hub.root_unit] = hub.id
        for hub in by_id.values():
            if hub.parent_hub is not None and hub.parent_hub not in by_id:
                raise HubConfigError(f"hub {hub.id!r} names unknown parent hub {hub.parent_hub!r}")
            for peer in hub.peers:
                if peer not in by_id or peer == hub.id:
                    raise HubConfigError(f"hub {hub.id!r} names unknown peer hub {peer!r}")
        self._by_id: Mapping[str, Hub] = by_id
        self._by_root: Mapping[str, str] = by_root
        for hub_id in by_id:
            self.ancestors(hub_id)  # raises on a cycle

    def hub(self, hub_id: str) -> Hub:
        """The hub with this id; ``HubConfigError`` when it is not configured."""
        try:
            return self._by_id[hub_id]
        except KeyError:
            raise HubConfigError(f"hub {hub_id!r} is not configured") from None

    def hubs(self) -> tuple[Hub, ...]:
        """All configured hubs."""
        return tuple(self._by_id.values())

    def hub_rooted_at(self, unit_code: str) -> str | None:
        """The id of the hub whose root unit is ``unit_code``, if any."""
        return self._by_root.get(unit_code)

    def ancestors(self, hub_id: str) -> tuple[str, ...]:
        """``hub_id`` and its parent hubs up to the top, nearest first."""
        chain = [hub_id]
        parent = self.hub(hub_id).parent_hub
        while parent is not None:
            if parent in chain:
                raise HubConfigError(f"hub parents form a cycle through {parent!r}")
            chain.append(parent)
            parent = self._by_id[parent].parent_hub
        return tuple(chain)
