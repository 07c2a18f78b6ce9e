"""Fixtures for the signer's tests: a key ring over the development keys and a signing service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asn1crypto import pem, x509

from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from kyso.dev.init import DevEnvironment
from signer import KeyProfile, PdfSigningService, SignerSettings

ALIASES = ("seal", "seal-ec", "official")


def load_cert(path) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(path.read_bytes())[2])


@pytest.fixture(scope="session")
def keyring(dev_env: DevEnvironment) -> Iterator[KeyRing]:
    specs = [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(dev_env.keys[alias].uri),
            pin=PinSource.from_file(dev_env.keys[alias].pin_path),
            module_path=str(dev_env.module_path),
            chain_files=(dev_env.intermediate_certificate_path,),
        )
        for alias in ALIASES
    ]
    with KeyRing(specs, workers=1) as ring:
        yield ring


def profiles(dev_env: DevEnvironment) -> dict[str, KeyProfile]:
    org = dev_env.organisation.name
    return {
        "seal": KeyProfile(alias="seal", organisation=org, seal_image=dev_env.seal_image),
        "seal-ec": KeyProfile(alias="seal-ec", organisation=org, seal_image=dev_env.seal_image),
        "official": KeyProfile(
            alias="official", organisation=org, signer_image=dev_env.signature_image
        ),
    }


def make_service(dev_env: DevEnvironment, keyring: KeyRing, **settings) -> PdfSigningService:
    defaults: dict[str, Any] = {
        "tsa_urls": (dev_env.tsa_url,),
        "tsa_timeout": 5.0,
        "trust_roots": (load_cert(dev_env.root_certificate_path),),
    }
    defaults.update(settings)
    return PdfSigningService(
        keyring=keyring, keys=profiles(dev_env), settings=SignerSettings(**defaults)
    )


@pytest.fixture(scope="session")
def service(dev_env: DevEnvironment, keyring: KeyRing) -> PdfSigningService:
    return make_service(dev_env, keyring)
