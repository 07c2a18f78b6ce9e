"""Fixtures for the audit tests: a migrated ledger on each backend, a head signer, events."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from audit import Event, EventType, Ledger, SignatureAlgorithm
from audit.schema import MIGRATIONS
from kyso.db import Component, upgrade

AUDIT = Component("audit", MIGRATIONS)


@dataclass(frozen=True)
class SoftwareHeadSigner:
    """A HeadSigner over an in-memory P-256 key: for tests only (the service uses an HSM key)."""

    key: ec.EllipticCurvePrivateKey
    certificate: bytes
    algorithm: SignatureAlgorithm = SignatureAlgorithm.ECDSA_SHA256

    @classmethod
    def create(cls, name: str = "Kyso audit test heads") -> SoftwareHeadSigner:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=cert.public_bytes(serialization.Encoding.DER))

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture
def ledger(db_engine: sa.Engine) -> Ledger:
    upgrade(db_engine, [AUDIT])
    return Ledger(db_engine)


@pytest.fixture(scope="session")
def head_signer() -> SoftwareHeadSigner:
    return SoftwareHeadSigner.create()


@pytest.fixture(scope="session")
def other_signer() -> SoftwareHeadSigner:
    return SoftwareHeadSigner.create("Someone else")


_BASE_TIME = dt.datetime(2026, 11, 29, 8, 30, tzinfo=dt.UTC)


def make_event(number: int, **changes: object) -> Event:
    """A varied, realistic event; ``number`` makes it distinct."""
    types = list(EventType)
    fields: dict[str, object] = {
        "time": _BASE_TIME + dt.timedelta(milliseconds=number),
        "actor": f"CN=Hệ thống một cửa {number % 7},O=UBND tỉnh Hà Giang",
        "unit": f"000.00.{number % 13:02d}.H23",
        "type": types[number % len(types)],
        "document_sha256": f"{number:064x}" if number % 3 else None,
        "refs": (f"sha256/{number:064x}", f"session/{number}") if number % 2 else (),
        "key": "pkcs11:token=kyso-seal;object=seal" if number % 4 == 0 else None,
        "details": {"reason": f"lý do {number}", "level": "B-LT"} if number % 5 else {},
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


@pytest.fixture
def events() -> Callable[[int], list[Event]]:
    counter = itertools.count()

    def make(count: int) -> list[Event]:
        return [make_event(next(counter)) for _ in range(count)]

    return make
