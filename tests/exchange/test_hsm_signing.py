"""Packages signed by keys on a real SoftHSM2 token, through hsm.KeyRing (the key never leaves)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from exchange.adapters import HsmSigningKey
from exchange.edxml import (
    VIETNAM_TIME,
    StatusCode,
    TrustPolicy,
    build_package,
    build_status,
    open_package,
    open_status,
)
from exchange.edxml.model import Organization, ResponseFor, StatusPacket
from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from tests.exchange.conftest import NOI_VU_NA, NOI_VU_QN, simple_package
from tests.support.tokens import DevToken

AT = datetime(2026, 11, 29, 14, 5, 9, tzinfo=VIETNAM_TIME)


@pytest.fixture(scope="module")
def ring(hsm_token: DevToken) -> Iterator[KeyRing]:
    variable = f"KYSO_TEST_PIN_{uuid.uuid4().hex[:8].upper()}"
    os.environ[variable] = hsm_token.user_pin
    specs = [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(hsm_token.uri(alias)),
            module_path=hsm_token.module_path,
            pin=PinSource.from_env(variable),
        )
        for alias in ("rsa2048", "p256")
    ]
    with KeyRing(specs, workers=1) as ring:
        yield ring


@pytest.mark.parametrize(
    ("alias", "algorithm"), [("rsa2048", "rsa-sha256"), ("p256", "ecdsa-sha256")]
)
def test_an_hsm_key_signs_packages_that_verify(
    ring: KeyRing, hsm_token: DevToken, alias: str, algorithm: str
) -> None:
    key = HsmSigningKey(ring=ring, alias=alias)
    assert key.algorithm == algorithm
    package = simple_package(sender=NOI_VU_QN, to=(NOI_VU_NA,))
    data = build_package(package, key=key)
    pinned = TrustPolicy(sender_certificates=(key.certificate,))
    opened = open_package(data, policy=pinned)
    assert opened.package == package
    assert (opened.signature.algorithm, opened.signature.signer) == (algorithm, key.certificate)
    status = StatusPacket(
        response_for=ResponseFor(organ_id=NOI_VU_QN, document_id="doc-1"),
        from_=Organization(organ_id=NOI_VU_NA),
        code=StatusCode.ACCEPTED,
        timestamp=AT,
    )
    assert open_status(build_status(status, key=key), policy=pinned).status == status
