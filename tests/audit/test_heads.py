"""Signed tree heads: with real SoftHSM keys through hsm.KeyRing, and every way they fail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from collections.abc import Iterator

import pytest

from audit import (
    HeadSignatureInvalid,
    HeadSignerUntrusted,
    HeadSigningFailed,
    Ledger,
    SignatureAlgorithm,
    verify_database,
    verify_head,
)
from audit.heads import TrustedCertificates, head_signed_data, sign_tree_head
from audit.hsm_signer import KeyRingHeadSigner
from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from tests.audit.conftest import SoftwareHeadSigner, make_event
from tests.support.tokens import DevToken

ROOT = bytes(range(32))
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def ring(hsm_token: DevToken) -> Iterator[KeyRing]:
    name = f"KYSO_TEST_AUDIT_PIN_{uuid.uuid4().hex[:8].upper()}"
    os.environ[name] = hsm_token.user_pin
    specs = [
        KeySpec(
            alias=alias,
            uri=Pkcs11Uri.parse(hsm_token.uri(alias)),
            module_path=hsm_token.module_path,
            pin=PinSource.from_env(name),
        )
        for alias in ("rsa2048", "p256", "p384")
    ]
    with KeyRing(specs, workers=1) as key_ring:
        yield key_ring


@pytest.mark.parametrize(
    ("alias", "pss", "algorithm"),
    [
        ("p256", False, SignatureAlgorithm.ECDSA_SHA256),
        ("p384", False, SignatureAlgorithm.ECDSA_SHA384),
        ("rsa2048", False, SignatureAlgorithm.RSA_PKCS1V15_SHA256),
        ("rsa2048", True, SignatureAlgorithm.RSA_PSS_SHA256),
    ],
)
def test_heads_signed_on_softhsm_verify(
    ring: KeyRing, alias: str, pss: bool, algorithm: SignatureAlgorithm
) -> None:
    signer = KeyRingHeadSigner(ring, alias=alias, pss=pss)
    assert signer.algorithm is algorithm
    head = sign_tree_head(signer, tree_size=5, root_hash=ROOT, time=NOW)
    verify_head(head, trusted=TrustedCertificates([signer.certificate]))
    with pytest.raises(HeadSignatureInvalid):
        verify_head(
            dataclasses.replace(head, tree_size=6),
            trusted=TrustedCertificates([signer.certificate]),
        )


def test_ledger_heads_from_the_hsm_verify_offline(ledger: Ledger, ring: KeyRing) -> None:
    signer = KeyRingHeadSigner(ring, alias="p256")
    ledger.append_batch([make_event(n) for n in range(10)])
    ledger.sign_head(signer)
    ledger.append(make_event(10))
    ledger.sign_head(signer)
    report = verify_database(ledger.engine, trusted_certs=[signer.certificate])
    assert report.ok, report.first_inconsistency
    assert report.heads_checked == 2


def test_ec_key_cannot_do_pss(ring: KeyRing) -> None:
    with pytest.raises(HeadSigningFailed, match="PSS"):
        KeyRingHeadSigner(ring, alias="p256", pss=True)


def test_signed_data_is_fixed_width_and_tagged() -> None:
    data = head_signed_data(
        tree_size=5, root_hash=ROOT, time=dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    )
    assert data == b"kyso-audit-tree-head-v1\x00" + (5).to_bytes(8, "big") + bytes(8) + ROOT


def test_time_is_kept_to_the_microsecond(head_signer: SoftwareHeadSigner) -> None:
    # a time inside the signer's validity, with microseconds and a +07:00 offset to normalise
    time = (NOW - dt.timedelta(hours=1)).replace(microsecond=456789)
    time = time.astimezone(dt.timezone(dt.timedelta(hours=7)))
    head = sign_tree_head(head_signer, tree_size=1, root_hash=ROOT, time=time)
    assert head.time == time
    assert head.time.tzinfo is dt.UTC


def test_untrusted_and_altered_heads(head_signer, other_signer) -> None:
    head = sign_tree_head(head_signer, tree_size=3, root_hash=ROOT, time=NOW)
    trusted = TrustedCertificates([head_signer.certificate])
    with pytest.raises(HeadSignerUntrusted):
        verify_head(head, trusted=TrustedCertificates([other_signer.certificate]))
    with pytest.raises(HeadSignerUntrusted):
        verify_head(head, trusted=TrustedCertificates([]))
    altered = {
        "root": dataclasses.replace(head, root_hash=bytes(32)),
        "time": dataclasses.replace(head, time=head.time + dt.timedelta(microseconds=1)),
        "signature": dataclasses.replace(head, signature=head.signature[:-2] + b"\x00\x00"),
        "algorithm": dataclasses.replace(head, algorithm=SignatureAlgorithm.RSA_PKCS1V15_SHA256),
        "unknown algorithm": dataclasses.replace(head, algorithm="dsa-md5"),  # type: ignore[arg-type]
        "outside validity": dataclasses.replace(head, time=NOW + dt.timedelta(days=365)),
    }
    for name, head_variant in altered.items():
        with pytest.raises(HeadSignatureInvalid) as caught:
            verify_head(head_variant, trusted=trusted)
        assert not isinstance(caught.value, HeadSignerUntrusted), name


def test_signer_whose_key_and_certificate_disagree(head_signer, other_signer) -> None:
    mismatched = dataclasses.replace(head_signer, certificate=other_signer.certificate)
    with pytest.raises(HeadSigningFailed, match="does not verify"):
        sign_tree_head(mismatched, tree_size=1, root_hash=ROOT, time=NOW)
