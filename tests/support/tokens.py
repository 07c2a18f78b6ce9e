"""Fixtures: SoftHSM2 tokens with keys generated on the token and certificates from a test CA.

Tokens live in the one SoftHSM2 token directory that ``tests/conftest.py`` fixes for the whole
test process; every fixture here creates its tokens under a unique label. Provisioning runs in
child processes (``kyso.dev.softhsm``), so the test process never loads the module by using them.

The private keys never leave the token: their certificates are issued by a software test CA
(``TestCa``) over the SPKI that the token returns. That is enough for the hsm tests, which only
need a certificate whose public key matches the token key.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kyso.dev.softhsm import (
    SOFTHSM_MODULE,
    KeyKind,
    generate_keypair,
    init_token,
    store_certificate,
)

__all__ = [
    "DevKey",
    "DevToken",
    "KeyRequest",
    "TestCa",
    "hsm_token",
    "make_token",
    "new_token_label",
    "test_ca",
]

USER_PIN = "123456"
SO_PIN = "so-pin-987654"


@dataclass(frozen=True)
class TestCa:
    """A software certification authority for tests (its key is in memory, never on disk)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    __test__ = False  # not a pytest test class

    @classmethod
    def create(cls, name: str = "Kyso Test CA") -> TestCa:
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
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=cert)

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def issue(self, spki_der: bytes, common_name: str) -> bytes:
        """Issue a signing certificate (DER) for the public key ``spki_der``."""
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(serialization.load_der_public_key(spki_der))  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class KeyRequest:
    """A key pair to create on a test token."""

    label: str
    kind: KeyKind
    key_id: bytes = b""
    exportable: bool = False
    always_authenticate: bool = False
    with_certificate: bool = True


@dataclass(frozen=True)
class DevKey:
    """A key pair that exists on a test token, with its certificate (if one was stored)."""

    label: str
    key_id: bytes
    kind: KeyKind
    spki_der: bytes
    certificate_der: bytes | None


@dataclass(frozen=True)
class DevToken:
    """A provisioned test token."""

    label: str
    module_path: str
    user_pin: str
    so_pin: str
    ca: TestCa
    keys: dict[str, DevKey] = field(default_factory=dict)

    def uri(self, key_label: str, *, type_: str = "private") -> str:
        return f"pkcs11:token={self.label};object={key_label};type={type_}"


def new_token_label(prefix: str = "t") -> str:
    """A token label unique in the test process (SoftHSM labels hold at most 32 bytes)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_token(
    *,
    label: str,
    keys: Sequence[KeyRequest],
    ca: TestCa,
    user_pin: str = USER_PIN,
    so_pin: str = SO_PIN,
    module_path: str = SOFTHSM_MODULE,
) -> DevToken:
    """Create (idempotently) a token with ``keys``; each key's certificate is issued by ``ca``."""
    init_token(label=label, so_pin=so_pin, user_pin=user_pin, module_path=module_path)
    made: dict[str, DevKey] = {}
    for request in keys:
        key_id = request.key_id or request.label.encode()
        spki = generate_keypair(
            module_path=module_path,
            token_label=label,
            user_pin=user_pin,
            label=request.label,
            key_id=key_id,
            kind=request.kind,
            exportable=request.exportable,
            always_authenticate=request.always_authenticate,
        )
        cert_der = None
        if request.with_certificate:
            cert_der = ca.issue(spki, f"{label} {request.label}")
            store_certificate(
                module_path=module_path,
                token_label=label,
                user_pin=user_pin,
                label=request.label,
                key_id=key_id,
                certificate_der=cert_der,
            )
        made[request.label] = DevKey(
            label=request.label,
            key_id=key_id,
            kind=request.kind,
            spki_der=spki,
            certificate_der=cert_der,
        )
    return DevToken(
        label=label,
        module_path=module_path,
        user_pin=user_pin,
        so_pin=so_pin,
        ca=ca,
        keys=made,
    )


@pytest.fixture(scope="session")
def test_ca() -> TestCa:
    """A software test CA shared by the session."""
    return TestCa.create()


@pytest.fixture(scope="session")
def hsm_token(test_ca: TestCa) -> DevToken:
    """A token with RSA-2048 (``rsa2048``), P-256 (``p256``) and P-384 (``p384``) signing keys.

    Keys are sensitive and non-extractable; each has a certificate (same label and CKA_ID)
    issued by ``test_ca``. User PIN: ``DevToken.user_pin``. Treat it as read-only: tests that
    change or break a token make their own with ``make_token``.
    """
    return make_token(
        label=new_token_label("hsm"),
        keys=[
            KeyRequest(label="rsa2048", kind="rsa2048", key_id=b"\x01"),
            KeyRequest(label="p256", kind="p256", key_id=b"\x02"),
            KeyRequest(label="p384", kind="p384", key_id=b"\x03"),
        ],
        ca=test_ca,
    )
