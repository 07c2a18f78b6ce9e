"""KeyRing against real SoftHSM2 tokens: mechanisms, lookups, policy, PINs, probes."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import load_der_x509_certificate

from hsm import (
    CertificateNotFound,
    KeyNotFound,
    KeyPolicyViolation,
    KeyRing,
    KeySpec,
    MultipleKeysFound,
    PinIncorrect,
    ProbeFailed,
    SignatureScheme,
    TokenNotFound,
)
from tests.hsm.conftest import pin_env, spec_for
from tests.support.tokens import KeyRequest, make_token, new_token_label

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def _verify(ring: KeyRing, alias: str, data: bytes, signature: bytes, dg: str, pss: bool):
    """Verify with pyca/cryptography against the certificate (raises InvalidSignature)."""
    public_key = load_der_x509_certificate(ring.certificate(alias).dump()).public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        pad = (
            padding.PSS(mgf=padding.MGF1(_HASHES[dg]), salt_length=_HASHES[dg].digest_size)
            if pss
            else padding.PKCS1v15()
        )
        public_key.verify(signature, data, pad, _HASHES[dg])
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, data, ec.ECDSA(_HASHES[dg]))


CASES = [
    (alias, dg, pss)
    for alias in ("rsa2048", "p256", "p384")
    for dg in ("sha256", "sha384", "sha512")
    for pss in ((False, True) if alias == "rsa2048" else (False,))
]


@pytest.mark.parametrize(("alias", "dg", "pss"), CASES)
def test_every_scheme_verifies_against_the_certificate(ring, alias, dg, pss):
    data = f"văn bản {alias} {dg} {pss}".encode()
    signature = ring.sign(alias, data, digest_algorithm=dg, pss=pss)
    _verify(ring, alias, data, signature, dg, pss)
    digest = hashlib.new(dg, data).digest()
    signature = ring.sign_digest(alias, digest, digest_algorithm=dg, pss=pss)
    _verify(ring, alias, data, signature, dg, pss)


async def test_async_variants(ring):
    data = b"async document"
    sig = await ring.async_sign("p256", data)
    _verify(ring, "p256", data, sig, "sha256", False)
    big = b"x" * 200_000  # hashed on the host, off the loop
    sig = await ring.async_sign("rsa2048", big, digest_algorithm="sha384")
    _verify(ring, "rsa2048", big, sig, "sha384", False)
    digest = hashlib.sha512(data).digest()
    sig = await ring.async_sign_digest("rsa2048", digest, digest_algorithm="sha512", pss=True)
    _verify(ring, "rsa2048", data, sig, "sha512", True)


def test_key_facts_and_chain(ring, hsm_token):
    info = ring.key_info("rsa2048")
    assert (info.algorithm, info.sensitive, info.extractable) == ("RSA-2048", True, False)
    assert ring.key_info("p384").algorithm == "EC-P384"
    assert info.uri.token == hsm_token.label
    assert ring.certificate("p256").dump() == hsm_token.keys["p256"].certificate_der
    assert ring.chain("p256") == ()
    assert ring.health() == {f"token={hsm_token.label!r}": True}


def test_unknown_alias_and_bad_digest(ring):
    with pytest.raises(KeyNotFound, match="no-such"):
        ring.sign("no-such", b"x")
    with pytest.raises(Exception, match="32 bytes"):
        ring.sign_digest("p256", b"short", digest_algorithm="sha256")
    with pytest.raises(Exception, match="PSS"):
        ring.sign("p256", b"x", pss=True)


def test_key_found_by_id_and_chain_from_files(hsm_token, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(
        b"-----BEGIN CERTIFICATE-----\n"
        + __import__("base64").encodebytes(hsm_token.ca.certificate_der)
        + b"-----END CERTIFICATE-----\n"
    )
    spec = spec_for(
        hsm_token,
        "by-id",
        uri=f"pkcs11:token={hsm_token.label};id=%02;type=private",
        chain_files=(ca_file,),
    )
    with KeyRing([spec], workers=1) as ring:
        assert ring.key_info("by-id").label == "p256"
        assert [c.dump() for c in ring.chain("by-id")] == [hsm_token.ca.certificate_der]


def test_missing_key_and_token(hsm_token):
    with pytest.raises(KeyNotFound, match="nope"):
        KeyRing([spec_for(hsm_token, "nope")], workers=1)
    with pytest.raises(TokenNotFound, match="no-such-token"):
        KeyRing([spec_for(hsm_token, "x", uri="pkcs11:token=no-such-token;object=x")], workers=1)


@pytest.fixture(scope="module")
def odd_token(test_ca):
    """Duplicate ids, an exportable key, a key without certificate, an always-auth key."""
    return make_token(
        label=new_token_label("odd"),
        keys=[
            KeyRequest(label="twin-a", kind="p256", key_id=b"\x07"),
            KeyRequest(label="twin-b", kind="p256", key_id=b"\x07"),
            KeyRequest(label="soft", kind="p256", exportable=True),
            KeyRequest(label="bare", kind="p256", with_certificate=False),
            KeyRequest(label="every-time", kind="rsa2048", always_authenticate=True),
        ],
        ca=test_ca,
    )


def test_duplicate_keys_are_refused(odd_token):
    uri = f"pkcs11:token={odd_token.label};id=%07;type=private"
    with pytest.raises(MultipleKeysFound, match="2 private keys"):
        KeyRing([spec_for(odd_token, "twin", uri=uri)], workers=1)


def test_exportable_key_is_refused_unless_allowed(odd_token):
    with pytest.raises(KeyPolicyViolation, match="soft"):
        KeyRing([spec_for(odd_token, "soft")], workers=1)
    with KeyRing([spec_for(odd_token, "soft", allow_exportable=True)], workers=1) as ring:
        assert ring.key_info("soft").extractable
        _verify(ring, "soft", b"d", ring.sign("soft", b"d"), "sha256", False)


def test_key_without_certificate_is_refused(odd_token):
    with pytest.raises(CertificateNotFound, match="bare"):
        KeyRing([spec_for(odd_token, "bare")], workers=1)


def test_always_authenticate_key_signs_every_time(odd_token):
    with KeyRing([spec_for(odd_token, "every-time")], workers=2) as ring:
        assert ring.key_info("every-time").always_authenticate
        for i in range(5):
            data = f"doc {i}".encode()
            _verify(ring, "every-time", data, ring.sign("every-time", data), "sha256", False)


def test_wrong_pin_fails_clearly_and_is_tried_once(test_ca, monkeypatch):
    token = make_token(
        label=new_token_label("pin"), keys=[KeyRequest(label="k", kind="p256")], ca=test_ca
    )
    monkeypatch.setenv("KYSO_TEST_WRONG_PIN", "000000")
    from hsm import PinSource

    bad = PinSource.from_env("KYSO_TEST_WRONG_PIN")
    for _ in range(2):  # SoftHSM locks the user PIN after 10 failures; 4 workers x 2 = 8
        with pytest.raises(PinIncorrect) as info:
            KeyRing([spec_for(token, "k", pin=bad)], workers=4)
        assert "000000" not in str(info.value)
    # Each start tried the PIN once (not once per worker): the right PIN still works.
    with KeyRing([spec_for(token, "k")], workers=1) as ring:
        assert ring.serving


def test_probe_catches_certificate_of_another_key(test_ca):
    token = make_token(
        label=new_token_label("probe"),
        keys=[KeyRequest(label="a", kind="p256"), KeyRequest(label="b", kind="p256")],
        ca=test_ca,
    )
    from kyso.dev.softhsm import store_certificate

    store_certificate(
        module_path=token.module_path,
        token_label=token.label,
        user_pin=token.user_pin,
        label="a",
        key_id=b"a",
        certificate_der=token.keys["b"].certificate_der or b"",
    )
    with pytest.raises(ProbeFailed, match="belongs to another key"):
        KeyRing([spec_for(token, "a")], workers=1)


def test_key_spec_validation(hsm_token):
    from hsm import InvalidUri, Pkcs11Uri

    with pytest.raises(InvalidUri, match="type=private"):
        spec_for(hsm_token, "x", uri=f"pkcs11:token={hsm_token.label};object=x;type=cert")
    with pytest.raises(InvalidUri, match="object= or id="):
        spec_for(hsm_token, "x", uri=f"pkcs11:token={hsm_token.label}")
    with pytest.raises(InvalidUri, match="module"):
        KeySpec(alias="x", uri=Pkcs11Uri.parse("pkcs11:object=x"), pin=pin_env(hsm_token))


def test_signature_scheme_identifiers():
    assert SignatureScheme(key_type="rsa", pss=True).signature_algorithm.signature_algo == (
        "rsassa_pss"
    )
    assert (
        SignatureScheme(key_type="ec", digest_algorithm="sha384")
        .signature_algorithm["algorithm"]
        .native
        == "sha384_ecdsa"
    )
