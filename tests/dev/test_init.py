"""dev_init: tokens, keys and certificates on them, secrets on disk, idempotence."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from typing import Any

from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kyso.dev.init import DEV_TOKEN, OFFICIAL_TOKEN, dev_init

# Runs in a child: the test process must not load the PKCS#11 module (see tests/conftest.py).
_SIGN_IN_CHILD = """
import json, sys, pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass
req = json.loads(sys.stdin.read())
token = pkcs11.lib(req["module"]).get_token(token_label=req["token"])
with token.open(user_pin=req["pin"]) as session:
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=req["label"])
    certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                      Attribute.LABEL: req["label"]}))
    mech = Mechanism.SHA256_RSA_PKCS if req["rsa"] else Mechanism.ECDSA
    data = bytes.fromhex(req["data"])
    print(json.dumps({
        "signature": key.sign(data, mechanism=mech).hex(),
        "certificates": [c[Attribute.VALUE].hex() for c in certs],
        "ids": [c[Attribute.ID].hex() for c in certs],
        "key_id": key[Attribute.ID].hex(),
    }))
"""


def _on_token(env, key, data: bytes) -> dict[str, Any]:
    request = {
        "module": str(env.module_path),
        "token": key.token_label,
        "pin": key.pin_path.read_text().strip(),
        "label": key.label,
        "rsa": key.kind.startswith("rsa"),
        "data": data.hex(),
    }
    done = subprocess.run(
        [sys.executable, "-c", _SIGN_IN_CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env.child_env(),
        check=True,
        timeout=60,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _pem_der(path) -> bytes:
    return bytes(pem.unarmor(path.read_bytes())[2])


def test_each_key_signs_on_its_token_and_its_certificate_is_stored_beside_it(dev_env):
    import hashlib

    for key in [*dev_env.keys.values(), *dev_env.test_keys.values()]:
        message = f"kyso {key.alias}".encode()
        data = message if key.kind.startswith("rsa") else hashlib.sha256(message).digest()
        answer = _on_token(dev_env, key, data)
        der = _pem_der(key.certificate_path)
        assert answer["certificates"] == [der.hex()], key.alias
        assert answer["ids"] == [key.key_id.hex()] == [answer["key_id"]]
        public = x509.load_der_x509_certificate(der).public_key()
        signature = bytes.fromhex(answer["signature"])
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            half = len(signature) // 2
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            der_sig = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            public.verify(der_sig, message, ec.ECDSA(hashes.SHA256()))


def test_uris_name_token_and_object(dev_env):
    assert dev_env.keys["seal"].uri == "pkcs11:token=kyso-dev;object=seal;type=private"
    assert dev_env.keys["official"].uri == "pkcs11:token=kyso-official;object=official;type=private"
    assert {k.token_label for k in dev_env.keys.values()} == {DEV_TOKEN, OFFICIAL_TOKEN}


def test_secrets_are_private_and_random(dev_env):
    secrets = [*dev_env.pin_paths.values(), dev_env.api_token_path]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    values = [path.read_text().strip() for path in secrets]
    assert len(set(values)) == len(values)
    assert all(len(value) >= 16 for value in values)
    assert stat.S_IMODE((dev_env.pki.key_dir / "root.key.pem").stat().st_mode) == 0o600


def test_a_second_run_reuses_everything(dev_env):
    before = {path: path.read_bytes() for path in dev_env.pki.certificates.values()}
    pins = {token: path.read_text() for token, path in dev_env.pin_paths.items()}
    again = dev_init(
        dev_env.home,
        responders_port=dev_env.responders_port,
        softhsm_conf_path=dev_env.softhsm_conf,
    )
    assert again == dev_env
    assert {path: path.read_bytes() for path in again.pki.certificates.values()} == before
    assert {token: path.read_text() for token, path in again.pin_paths.items()} == pins


def test_sample_images_are_transparent_pngs(dev_env):
    from PIL import Image

    for path, colour_channel in ((dev_env.signature_image, 2), (dev_env.seal_image, 0)):
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.mode == "RGBA"
            pixels: list[tuple[int, int, int, int]] = list(image.get_flattened_data())  # type: ignore[arg-type]
            assert pixels[0][3] == 0  # a transparent corner
            opaque = [p for p in pixels if p[3] > 200]
            assert len(opaque) > 500
            # Blue ink for the signature, red for the seal: that channel dominates.
            assert all(p[colour_channel] == max(p[:3]) for p in opaque)
