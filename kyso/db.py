"""Database engines and versioned migrations.

Invariants:
- SQLite runs in WAL mode with ``synchronous=FULL`` and foreign keys on, on every connection.
- A component's migration steps are applied in version order, each in its own transaction,
  and recorded in ``kyso_schema_versions``; an applied step is never applied again.
- A database that is *ahead* of the code (a recorded version this code does not know) stops the
  start: running old code on a newer schema could lose data.
- On PostgreSQL, ``upgrade`` holds an advisory lock (``MIGRATIONS_LOCK``) from reading the
  recorded versions to its last step: replicas that start together on a new database apply
  each step once, one after the other, instead of racing to create the same tables.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kyso.errors import ConfigError, DatabaseError, SchemaAheadError

if TYPE_CHECKING:
    from kyso.config import DatabaseConfig

__all__ = [
    "MIGRATIONS_LOCK",
    "Component",
    "DatabaseError",
    "MigrationStep",
    "SchemaAheadError",
    "advisory_lock",
    "applied_versions",
    "create_engine",
    "describe_failure",
    "is_connection_failure",
    "open_engine",
    "try_advisory_lock",
    "try_advisory_xact_lock",
    "upgrade",
    "wait_until_reachable",
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
    # A server that drops packets would otherwise hold a connection attempt for minutes.
    # TCP keepalives: a connection to a server that vanished fails within about 25 s instead
    # of blocking a thread until the kernel gives up (hours).
    kwargs.setdefault(
        "connect_args",
        {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        },
    )
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def open_engine(database: DatabaseConfig) -> sa.Engine:
    """The engine for ``[database]``: the URL plus the password from its file or variable.

    ``postgresql://`` means psycopg 3 (the driver kyso ships). The password never appears in
    the configuration, in logs or in errors (SQLAlchemy masks it when printing the URL).
    """
    url = sa.engine.make_url(database.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    password = None
    if database.password_file is not None:
        try:
            password = database.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"database.password_file: cannot read {database.password_file} ({exc.strerror})"
            ) from None
    elif database.password_env:
        password = os.environ.get(database.password_env)
        if password is None:
            raise ConfigError(
                f"database.password_env: the variable {database.password_env} is not set"
            )
    if password is not None:
        url = url.set(password=password)
    return create_engine(url.render_as_string(hide_password=False))


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached (worth retrying), as opposed
    to a refusal that waiting will not fix (a wrong password, a database that does not exist)."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    # None: no server answered (refused, reset, timed out, unknown host); 57P03: the server is
    # starting or shutting down; 57P01/57P02: an administrator or crash ended the session.
    return sqlstate in (None, "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001")


def describe_failure(exc: BaseException) -> str:
    """One line for an operator: what the driver said, without the SQL or the URL's secrets."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return text[:300]


def wait_until_reachable(
    engine: sa.Engine, *, timeout: float, backoff: tuple[float, float] = (0.5, 5.0)
) -> None:
    """Return once the database answers ``SELECT 1``; retry connection failures with jittered
    exponential backoff for up to ``timeout`` seconds, then raise :class:`DatabaseError`.
    A refusal that waiting cannot fix (authentication, a missing database) raises at once."""
    deadline = time.monotonic() + timeout
    delay = backoff[0]
    attempts = 0
    while True:
        attempts += 1
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            if attempts > 1:
                log.info("database reachable", extra={"attempts": attempts})
            return
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = describe_failure(exc)
            if not is_connection_failure(exc):
                raise DatabaseError(f"the database refused the connection: {reason}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseError(
                    f"the database did not answer within {timeout:g} s ({attempts} attempts):"
                    f" {reason}"
                ) from None
            log.warning(
                "database not reachable yet; retrying",
                extra={"reason": reason, "retry_in_seconds": round(min(delay, left), 2)},
            )
            time.sleep(min(delay * random.uniform(0.8, 1.2), left))  # noqa: S311 (jitter)
            delay = min(delay * 2, backoff[1])


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


MIGRATIONS_LOCK = 0x6B79_736F_0001
"""The PostgreSQL advisory lock key that serialises ``upgrade`` across processes ("kyso" 1)."""


@contextlib.contextmanager
def advisory_lock(engine: sa.Engine, key: int) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``key`` (waiting for it) on a connection of its
    own for the duration; on SQLite, nothing (its single writer lock serialises writers)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()


@contextlib.contextmanager
def try_advisory_lock(engine: sa.Engine, key: int) -> Iterator[bool]:
    """Try PostgreSQL's session advisory lock ``key`` without waiting; yield whether it was
    taken, holding it (on a connection of its own) until the block ends. A process that dies
    loses its connection and so the lock. On SQLite, always True (one machine, one process)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        taken = bool(
            conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        )
        conn.commit()
        try:
            yield taken
        finally:
            if taken:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def try_advisory_xact_lock(conn: sa.Connection, key: int) -> bool:
    """Take PostgreSQL's transaction advisory lock ``key`` if no other session holds it; True
    when taken (it is released at the end of ``conn``'s transaction). Always True on SQLite."""
    if conn.dialect.name != "postgresql":
        return True
    taken = conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(taken.scalar_one())


def upgrade(engine: sa.Engine, components: Iterable[Component]) -> list[tuple[str, int, str]]:
    """Apply every pending step of ``components``; return what was applied, in order.

    On PostgreSQL, under ``MIGRATIONS_LOCK`` (see the module docstring)."""
    with advisory_lock(engine, MIGRATIONS_LOCK):
        return _upgrade(engine, list(components))


def _upgrade(engine: sa.Engine, components: list[Component]) -> list[tuple[str, int, str]]:
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


def dialect_insert(
    conn: sa.Connection, table: sa.Table
) -> sa.dialects.postgresql.Insert | sa.dialects.sqlite.Insert:
    """The database's own INSERT (PostgreSQL's or SQLite's), which has ``on_conflict_do_nothing``
    and ``on_conflict_do_update``: one statement where a look-up then an insert would race."""
    from sqlalchemy.dialects import postgresql, sqlite

    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
