"""Fixtures for the exchange tests: a PKI, packages, directories and hubs on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from exchange.directory import Directory
from exchange.edxml import (
    VIETNAM_TIME,
    CryptographyKey,
    MessageHeader,
    Organization,
    Package,
    TraceHeader,
    TrustPolicy,
)
from exchange.hubs import Hub, Topology
from exchange.schema import MIGRATIONS
from kyso.db import Component, create_engine, upgrade
from tests.exchange.pki import Authority

# A copy of the team's shared test directory (../shared/data/units-quangninh.csv): 718 units.
UNITS_CSV = Path(__file__).parent / "data" / "units-quangninh.csv"

G22 = "000.00.00.G22"
H49 = "000.00.00.H49"
H41 = "000.00.00.H41"
NOI_VU_QN = "000.00.02.H49"  # Sở Nội vụ Quảng Ninh
NOI_VU_NA = "000.00.02.H41"  # Sở Nội vụ Nghệ An


class Clock:
    """A clock the test moves by hand (leases, claims and backoff depend on it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def topology(*, peers: bool = False) -> Topology:
    """The suite's hubs: G22 above the provincial hubs H49 and H41 (optionally peers)."""
    return Topology(
        [
            Hub(id="G22", root_unit=G22, address="127.0.0.1:50061"),
            Hub(
                id="H49",
                root_unit=H49,
                parent_hub="G22",
                address="127.0.0.1:50062",
                peers=("H41",) if peers else (),
            ),
            Hub(
                id="H41",
                root_unit=H41,
                parent_hub="G22",
                address="127.0.0.1:50063",
                peers=("H49",) if peers else (),
            ),
        ]
    )


def migrate(engine: sa.Engine) -> sa.Engine:
    upgrade(engine, [Component("exchange", MIGRATIONS)])
    return engine


def load_directory(engine: sa.Engine, *, topo: Topology | None = None) -> Directory:
    directory = Directory(migrate(engine), topology=topo or topology())
    with UNITS_CSV.open(encoding="utf-8") as source:
        directory.import_csv(source)
    return directory


@pytest.fixture(scope="session")
def authority() -> Authority:
    return Authority.create("Kyso Test Root CA")


@pytest.fixture(scope="session")
def rsa_key(authority: Authority) -> CryptographyKey:
    return authority.issue("Sở Nội vụ Quảng Ninh", algorithm="rsa")


@pytest.fixture(scope="session")
def ec_key(authority: Authority) -> CryptographyKey:
    return authority.issue("Sở Nội vụ Nghệ An", algorithm="ec")


@pytest.fixture(scope="session")
def policy(authority: Authority) -> TrustPolicy:
    return TrustPolicy(anchors=(authority.certificate,))


def simple_package(
    *, sender: str = NOI_VU_QN, to: tuple[str, ...] = (NOI_VU_NA,), document_id: str = "doc-1"
) -> Package:
    return Package(
        header=MessageHeader(
            from_=Organization(organ_id=sender, organ_name="Sở Nội vụ Quảng Ninh"),
            to=tuple(Organization(organ_id=code) for code in to),
            document_id=document_id,
            subject="Về việc báo cáo tình hình thực hiện",
        ),
        traces=(
            TraceHeader(
                organ_id=sender,
                timestamp=datetime(2026, 11, 29, 9, 30, 0, tzinfo=VIETNAM_TIME),
            ),
        ),
    )


@pytest.fixture
def directory(db_engine: sa.Engine) -> Directory:
    return load_directory(db_engine)


@pytest.fixture
def sqlite_engines(tmp_path: Path) -> Iterator[dict[str, sa.Engine]]:
    """One SQLite database per hub, for tests with several hubs."""
    engines = {
        hub: create_engine(f"sqlite:///{tmp_path / f'{hub}.db'}") for hub in ("G22", "H49", "H41")
    }
    try:
        yield engines
    finally:
        for engine in engines.values():
            engine.dispose()
