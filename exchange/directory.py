"""The unit directory: units, their parents (data), their hubs, and where a message goes next.

Invariants:
- every stored code is a valid unit code and every ``parent_code`` names a stored unit;
- a unit's parent comes from the data only, never from its code;
- a unit is served by the first hub found walking up from it: its own ``hub`` column, else the
  hub whose ``root_unit`` it is, else its parent's serving hub; a unit with none is unreachable.

``route`` answers from an in-memory index of (parent, hub) per unit, loaded on first use and
rebuilt after an import through this object; call ``reload()`` after another process imports,
or give ``max_age``: the index is then rebuilt when it is older than that, so an import by
another process (``kyso directory import``, another replica) is routed by within ``max_age``.

Imports are serialised across processes on PostgreSQL (the transaction advisory lock
``IMPORT_LOCK``): replicas that start together on an empty directory each import the
configured file in turn, the later ones updating rows to the same values, instead of failing on
each other's inserts.
"""

from __future__ import annotations

import csv
import enum
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import sqlalchemy as sa

from exchange.codes import fold_name, validate_unit_code
from exchange.errors import DirectoryImportError, InvalidUnitCode, NoRoute, UnitNotFound
from exchange.hubs import Topology
from exchange.schema import units

__all__ = ["CSV_COLUMNS", "IMPORT_LOCK", "Directory", "RouteDecision", "RouteKind", "Unit"]

IMPORT_LOCK = 0x6B79_736F_0004
"""The PostgreSQL advisory lock key that serialises directory imports ("kyso" 4)."""

CSV_COLUMNS = ("code", "name", "parent_code", "level", "kind", "hub")
_REQUIRED_COLUMNS = CSV_COLUMNS[:5]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """A unit of the directory. ``hub`` is the hub set for this unit itself (not inherited)."""

    code: str
    name: str
    parent_code: str | None
    level: int
    kind: str
    hub: str | None = None


class RouteKind(enum.StrEnum):
    """Where a message to a unit goes from a hub."""

    LOCAL = "local"
    UP = "up"
    DOWN = "down"
    PEER = "peer"


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecision:
    """The next step towards a unit: ``next_hub`` is None for LOCAL; ``serving_hub`` serves it."""

    kind: RouteKind
    next_hub: str | None
    serving_hub: str


def _unit(row: Any) -> Unit:
    code, name, parent_code, level, kind, hub = row
    return Unit(code=code, name=name, parent_code=parent_code, level=level, kind=kind, hub=hub)


_UNIT_COLUMNS = (
    units.c.code,
    units.c.name,
    units.c.parent_code,
    units.c.level,
    units.c.kind,
    units.c.hub,
)


class Directory:
    """The directory on a database, with the hub topology this hub is configured with."""

    def __init__(
        self, engine: sa.Engine, *, topology: Topology, max_age: float | None = None
    ) -> None:
        self._engine = engine
        self.topology = topology
        self._max_age = max_age
        self._loaded_at = 0.0
        self._index: dict[str, tuple[str | None, str | None]] | None = None
        self._serving: dict[str, str | None] = {}

    # -- reading -------------------------------------------------------------------------------

    def get(self, code: str) -> Unit:
        """The unit with this code; ``InvalidUnitCode`` or ``UnitNotFound`` otherwise."""
        validate_unit_code(code)
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(*_UNIT_COLUMNS).where(units.c.code == code)).first()
        if row is None:
            raise UnitNotFound(f"unit {code} is not in the directory", field="code")
        return _unit(row)

    def children(self, code: str) -> list[Unit]:
        """The units whose parent is ``code``, by code; ``UnitNotFound`` if ``code`` is unknown."""
        self.get(code)
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_UNIT_COLUMNS).where(units.c.parent_code == code).order_by(units.c.code)
            )
            return [_unit(row) for row in rows]

    def search(self, text: str, *, limit: int = 50) -> list[Unit]:
        """Units whose name contains ``text``, compared without case or Vietnamese diacritics.

        Higher units come first (level, then code); at most ``limit`` results.
        """
        folded = fold_name(text)
        if not folded:
            return []
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_UNIT_COLUMNS)
                .where(units.c.folded_name.contains(folded, autoescape=True))
                .order_by(units.c.level, units.c.code)
                .limit(limit)
            )
            return [_unit(row) for row in rows]

    def units(self) -> Iterator[Unit]:
        """Every unit, parents before their children."""
        with self._engine.connect() as conn:
            rows = [_unit(r) for r in conn.execute(sa.select(*_UNIT_COLUMNS))]
        yield from _parents_first(rows)

    # -- routing -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget the in-memory routing index (rebuilt on the next ``route``)."""
        self._index = None
        self._serving = {}

    def _expire(self) -> None:
        """Forget an index older than ``max_age`` (another process may have imported)."""
        if (
            self._max_age is not None
            and self._index is not None
            and time.monotonic() - self._loaded_at > self._max_age
        ):
            self.reload()

    def _load_index(self) -> dict[str, tuple[str | None, str | None]]:
        self._expire()
        index = self._index
        if index is None:
            loaded_at = time.monotonic()
            with self._engine.connect() as conn:
                rows = conn.execute(sa.select(units.c.code, units.c.parent_code, units.c.hub))
                index = {code: (parent, hub) for code, parent, hub in rows}
            self._index, self._serving, self._loaded_at = index, {}, loaded_at
        return index

    def serving_hub(self, code: str) -> str | None:
        """The hub that serves ``code`` (see the module's invariants), or None if none does."""
        self._expire()
        if code in self._serving:
            return self._serving[code]
        index = self._load_index()
        if code not in index:
            validate_unit_code(code)
            raise UnitNotFound(f"unit {code} is not in the directory", field="code")
        seen: list[str] = []
        current: str | None = code
        found: str | None = None
        while current is not None and current not in seen:
            seen.append(current)
            parent, hub = index.get(current, (None, None))
            found = hub or self.topology.hub_rooted_at(current)
            if found is not None:
                break
            current = parent
        self._serving[code] = found
        return found

    def route(self, *, from_hub: str, to_unit: str) -> RouteDecision:
        """Where a message at ``from_hub`` goes next to reach ``to_unit``.

        LOCAL when this hub serves the unit; DOWN to the child hub on the path when the serving
        hub is below this one; PEER when a configured peer's subtree holds the serving hub; UP to
        the parent hub otherwise. ``NoRoute`` when no hub serves the unit or this hub is the top.
        """
        target = self.serving_hub(to_unit)
        if target is None:
            raise NoRoute(
                f"no hub serves unit {to_unit}: ask this hub's operator to set the unit's hub"
                " in the directory (kyso directory import, column hub), or check the code"
                " (kyso directory search NAME)"
            )
        if target == from_hub:
            return RouteDecision(kind=RouteKind.LOCAL, next_hub=None, serving_hub=target)
        chain = self.topology.ancestors(target)
        if from_hub in chain:
            child = chain[chain.index(from_hub) - 1]
            return RouteDecision(kind=RouteKind.DOWN, next_hub=child, serving_hub=target)
        here = self.topology.hub(from_hub)
        for peer in here.peers:
            if peer in chain:
                return RouteDecision(kind=RouteKind.PEER, next_hub=peer, serving_hub=target)
        if here.parent_hub is None:
            raise NoRoute(
                f"hub {from_hub} has no parent and no peer towards hub {target}, which serves"
                f" unit {to_unit}; configure a peer or a parent hub"
            )
        return RouteDecision(kind=RouteKind.UP, next_hub=here.parent_hub, serving_hub=target)

    def lineage(self, code: str) -> tuple[str, ...]:
        """``code`` and the units above it, nearest first (``UnitNotFound`` when unknown)."""
        index = self._load_index()
        if code not in index:
            validate_unit_code(code)
            raise UnitNotFound(f"unit {code} is not in the directory", field="code")
        chain: list[str] = []
        current: str | None = code
        while current is not None and current not in chain:
            chain.append(current)
            current = index.get(current, (None, None))[0]
        return tuple(chain)

    def path(self, *, from_hub: str, to_unit: str) -> tuple[str, ...]:
        """The hubs a message at ``from_hub`` passes through to reach ``to_unit``: ``from_hub``
        first, the serving hub last (``route`` hop by hop; ``NoRoute`` when there is none)."""
        hubs = [from_hub]
        limit = len(self.topology.hubs())
        while True:
            decision = self.route(from_hub=hubs[-1], to_unit=to_unit)
            if decision.next_hub is None:
                return tuple(hubs)
            if decision.next_hub in hubs or len(hubs) > limit:
                raise NoRoute(
                    f"the route to unit {to_unit} loops through hub {decision.next_hub}: the"
                    " hubs' parents and peers disagree"
                )
            hubs.append(decision.next_hub)

    # -- import and export ---------------------------------------------------------------------

    def import_csv(self, source: TextIO) -> int:
        """Insert or update the units of a CSV file; return how many rows it held.

        Columns: code, name, parent_code, level, kind and optionally hub (UTF-8, header row).
        A parent must be in the file or already in the directory. All or nothing: one bad line
        stops the import with ``DirectoryImportError`` naming the line.
        """
        reader = csv.DictReader(source)
        header = tuple(reader.fieldnames or ())
        missing = [c for c in _REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DirectoryImportError(f"the CSV header lacks column(s) {', '.join(missing)}")
        parsed: dict[str, Unit] = {}
        lines: dict[str, int] = {}
        for row in reader:
            unit = _unit_from_csv(row, line=reader.line_num)
            if unit.code in parsed:
                raise DirectoryImportError(
                    f"line {reader.line_num}: unit {unit.code} appears twice in the file"
                )
            parsed[unit.code] = unit
            lines[unit.code] = reader.line_num
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one import at a time (module docstring)
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK})
            existing = set(conn.scalars(sa.select(units.c.code)))
            known = existing | parsed.keys()
            for unit in parsed.values():
                if unit.parent_code and unit.parent_code not in known:
                    line = lines[unit.code]
                    raise DirectoryImportError(
                        f"line {line}: parent {unit.parent_code} of unit {unit.code} is neither"
                        " in the file nor in the directory"
                    )
            ordered = _parents_first(parsed.values())
            new = [_row(u) for u in ordered if u.code not in existing]
            old = [_row(u) | {"b_code": u.code} for u in ordered if u.code in existing]
            if new:
                conn.execute(units.insert(), new)
            if old:
                conn.execute(
                    units.update()
                    .where(units.c.code == sa.bindparam("b_code"))
                    .values({c: sa.bindparam(c) for c in _row(ordered[0]) if c != "code"}),
                    old,
                )
        self.reload()
        return len(parsed)

    def export_csv(self, target: TextIO) -> int:
        """Write every unit as CSV (parents first, with the hub column); return the count."""
        writer = csv.writer(target, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        count = 0
        for unit in self.units():
            writer.writerow(
                [
                    unit.code,
                    unit.name,
                    unit.parent_code or "",
                    unit.level,
                    unit.kind,
                    unit.hub or "",
                ]
            )
            count += 1
        return count


def _row(unit: Unit) -> dict[str, object]:
    return {
        "code": unit.code,
        "name": unit.name,
        "folded_name": fold_name(unit.name),
        "parent_code": unit.parent_code,
        "level": unit.level,
        "kind": unit.kind,
        "hub": unit.hub,
    }


def _unit_from_csv(row: dict[str, str | None], *, line: int) -> Unit:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    try:
        code = validate_unit_code(cell("code"))
        parent = cell("parent_code") or None
        if parent is not None:
            validate_unit_code(parent, field="parent_code")
    except InvalidUnitCode as exc:
        raise DirectoryImportError(f"line {line}: {exc}") from exc
    if parent == code:
        raise DirectoryImportError(f"line {line}: unit {code} names itself as its parent")
    name = cell("name")
    if not name:
        raise DirectoryImportError(f"line {line}: unit {code} has no name")
    try:
        level = int(cell("level"))
    except ValueError:
        raise DirectoryImportError(
            f"line {line}: level of unit {code} must be a whole number"
        ) from None
    if level < 1:
        raise DirectoryImportError(f"line {line}: level of unit {code} must be 1 or more")
    return Unit(
        code=code,
        name=name,
        parent_code=parent,
        level=level,
        kind=cell("kind") or "unit",
        hub=cell("hub") or None,
    )


def _parents_first(items: Iterable[Unit]) -> list[Unit]:
    """Order units so that a parent precedes its children; a parent cycle is an import error."""
    by_code = {u.code: u for u in items}
    ordered: list[Unit] = []
    placed: set[str] = set()
    for unit in by_code.values():
        chain: list[Unit] = []
        current: Unit | None = unit
        while current is not None and current.code not in placed:
            if current in chain:
                raise DirectoryImportError(f"units form a parent cycle through {current.code}")
            chain.append(current)
            current = by_code.get(current.parent_code) if current.parent_code else None
        for link in reversed(chain):
            placed.add(link.code)
            ordered.append(link)
    return ordered
