"""Fixtures for the verifier's tests: documents signed by kyso's own signer over the dev tokens.

Every signed document is made once per session (``signed`` caches by recipe) from a small PDF,
so the attack and hostile-input tests start from the same originals that are shown to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import pem, x509

from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from kyso.dev.init import DevEnvironment
from kyso.dev.pki import TestCertificate
from signer import (
    AppearanceKind,
    KeyProfile,
    Level,
    PdfSigningService,
    SignerSettings,
    SignRequest,
)
from signer.verify import Limits, TrustProfile, VerificationPolicy, dev_profile
from tests.signer.pdfgen import make_pdf

ALIASES = ("seal", "seal-ec", "official")
TEST_ALIASES = {kind.value: kind for kind in TestCertificate}
SEAL_RECT = (300.0, 650.0, 560.0, 740.0)
OFFICIAL_RECT = (330.0, 560.0, 560.0, 640.0)


def load_cert(path: Path) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(path.read_bytes())[2])


@pytest.fixture(scope="session")
def verify_keyring(dev_env: DevEnvironment) -> Iterator[KeyRing]:
    keys = {alias: dev_env.keys[alias] for alias in ALIASES} | {
        kind.value: dev_env.test_keys[kind] for kind in TestCertificate
    }
    specs = [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(key.uri),
            pin=PinSource.from_file(key.pin_path),
            module_path=str(dev_env.module_path),
            chain_files=(dev_env.intermediate_certificate_path,),
        )
        for alias, key in keys.items()
    ]
    with KeyRing(specs, workers=1) as ring:
        yield ring


@pytest.fixture(scope="session")
def signing_service(dev_env: DevEnvironment, verify_keyring: KeyRing) -> PdfSigningService:
    org = dev_env.organisation.name
    profiles = {
        alias: KeyProfile(
            alias=alias,
            organisation=org,
            seal_image=dev_env.seal_image,
            signer_image=dev_env.signature_image if alias == "official" else None,
        )
        for alias in (*ALIASES, *TEST_ALIASES)
    }
    settings = SignerSettings(
        tsa_urls=(dev_env.tsa_url,),
        tsa_timeout=5.0,
        trust_roots=(load_cert(dev_env.root_certificate_path),),
    )
    return PdfSigningService(keyring=verify_keyring, keys=profiles, settings=settings)


class Signed:
    """Signs on demand and caches by recipe: ``signed.get(alias, level, visible, base)``."""

    def __init__(self, service: PdfSigningService) -> None:
        self._service = service
        self._cache: dict[tuple[object, ...], bytes] = {}
        self.base = make_pdf(pages=2, title="Quyet dinh so 123/QD-UBND")

    def sign(
        self,
        pdf: bytes,
        alias: str,
        level: Level = Level.B_LT,
        *,
        appearance: AppearanceKind = AppearanceKind.NONE,
        rect: tuple[float, float, float, float] | None = None,
        certify: bool = False,
    ) -> bytes:
        key = (pdf, alias, level, appearance, rect, certify)
        if key not in self._cache:
            request = SignRequest(
                pdf=pdf,
                alias=alias,
                level=level,
                appearance=appearance,
                page=1 if rect else None,
                rect=rect,
                reason="Ký duyệt văn bản",
                location="Hạ Long, Quảng Ninh",
                certify=certify,
            )
            self._cache[key] = asyncio.run(self._service.sign(request)).pdf
        return self._cache[key]

    def get(self, alias: str = "seal", level: Level = Level.B_LT) -> bytes:
        return self.sign(self.base, alias, level)

    def official_then_seal(self, level: Level = Level.B_LT) -> bytes:
        first = self.sign(
            self.base, "official", level, appearance=AppearanceKind.SEAL, rect=OFFICIAL_RECT
        )
        return self.sign(first, "seal", level, appearance=AppearanceKind.SEAL, rect=SEAL_RECT)


@pytest.fixture(scope="session")
def signed(signing_service: PdfSigningService) -> Signed:
    return Signed(signing_service)


@pytest.fixture(scope="session")
def dev_trust(dev_env: DevEnvironment) -> TrustProfile:
    return dev_profile(dev_env.root_certificate_path)


@pytest.fixture(scope="session")
def policy(dev_trust: TrustProfile) -> VerificationPolicy:
    return VerificationPolicy(trust=(dev_trust,), limits=Limits(timeout_seconds=20.0))


@pytest.fixture(scope="session")
def online_policy(dev_trust: TrustProfile) -> VerificationPolicy:
    return VerificationPolicy(trust=(dev_trust,), online=True, limits=Limits(timeout_seconds=20.0))
