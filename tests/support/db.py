"""Database fixtures: every persistence test runs on SQLite and on PostgreSQL.

``db_engine`` is parametrised over both backends and gives each test a new, empty database:
a file in the test's temporary directory, or a PostgreSQL database created for the test and
dropped after it. ``KYSO_TEST_PG`` overrides the server URL (default: the local server, user
postgres, trust authentication).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kyso.db import create_engine

PG_ADMIN_URL = os.environ.get(
    "KYSO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = f"kyso_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kyso.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def db_engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on a new, empty database, on SQLite and on PostgreSQL."""
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()
