"""Helpers for the hsm tests: key specs over the test tokens, and a ring on ``hsm_token``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from tests.support.tokens import DevToken


def pin_env(token: DevToken) -> PinSource:
    """A PIN source for ``token``: an environment variable set for this test process."""
    name = f"KYSO_TEST_PIN_{uuid.uuid4().hex[:8].upper()}"
    os.environ[name] = token.user_pin
    return PinSource.from_env(name)


def spec_for(token: DevToken, alias: str, *, uri: str | None = None, **extra) -> KeySpec:
    return KeySpec(
        alias=alias,
        uri=Pkcs11Uri.parse(uri or token.uri(alias)),
        module_path=token.module_path,
        pin=extra.pop("pin", None) or pin_env(token),
        **extra,
    )


@pytest.fixture(scope="module")
def ring(hsm_token: DevToken) -> Iterator[KeyRing]:
    pin = pin_env(hsm_token)
    specs = [spec_for(hsm_token, alias, pin=pin) for alias in ("rsa2048", "p256", "p384")]
    with KeyRing(specs, workers=2) as key_ring:
        yield key_ring
