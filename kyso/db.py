"""Database engines and versioned migrations.

Invariants:
- SQLite runs in WAL mode with ``synchronous=FULL`` and foreign keys on, on every connection.
- A component's migration steps are applied in version order, each in its own transaction,
  and recorded in ``kyso_schema_versions``; an applied step is never applied again.
- A database that is *ahead* of the code (a recorded version this code does not know) stops the
  start: running old code on a newer schema could lose data.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kyso.errors import DatabaseError, SchemaAheadError

__all__ = [
    "Component",
    "DatabaseError",
    "MigrationStep",
    "SchemaAheadError",
    "applied_versions",
    "create_engine",
    "upgrade",
]

log = logging.getLogger(__name__)

MigrationStep = tuple[int, str, Callable[[sa.Connection], None]]

_versions_metadata = sa.MetaData()
schema_versions = sa.Table(
    "kyso_schema_versions",
    _versions_metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Component:
    """A component that owns tables: its name (the table prefix) and its ordered steps."""

    name: str
    steps: Sequence[MigrationStep]


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """Build an engine for ``url``; SQLite gets WAL, full sync, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def restrict_sqlite(url: str, *, group: int | None = None) -> None:
    """Make an SQLite database and its WAL files readable by the service's user only (0600),
    or also by the operators' ``group`` (0640); create the database file so, if it is absent.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, so they stay
    as private as it. Other databases are left alone (their server owns its files).
    """
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    mode = 0o640 if group is not None else 0o600
    path = Path(database)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            if group is not None:
                os.chown(name, -1, group)
            os.chmod(name, mode)


def applied_versions(engine: sa.Engine) -> dict[str, set[int]]:
    """The versions recorded per component (empty when the database is new)."""
    _versions_metadata.create_all(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema_versions.c.component, schema_versions.c.version))
        applied: dict[str, set[int]] = {}
        for component, version in rows:
            applied.setdefault(component, set()).add(version)
        return applied


def upgrade(engine: sa.Engine, components: Iterable[Component]) -> list[tuple[str, int, str]]:
    """Apply every pending step of ``components``; return what was applied, in order."""
    components = list(components)
    applied = applied_versions(engine)
    done: list[tuple[str, int, str]] = []
    for component in components:
        known = {version for version, _, _ in component.steps}
        ahead = applied.get(component.name, set()) - known
        if ahead:
            raise SchemaAheadError(
                f"the database has {component.name} schema version(s) {sorted(ahead)} that this"
                " kyso does not know; run a kyso release at least as new as the one that wrote it"
            )
        for version, description, step in sorted(component.steps, key=lambda s: s[0]):
            if version in applied.get(component.name, set()):
                continue
            with engine.begin() as conn:
                step(conn)
                conn.execute(
                    schema_versions.insert().values(
                        component=component.name,
                        version=version,
                        description=description,
                        applied_at=datetime.now(UTC),
                    )
                )
            log.info("applied migration", extra={"component": component.name, "version": version})
            done.append((component.name, version, description))
    return done
