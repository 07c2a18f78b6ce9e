"""Operator listings, test_sign and LocalKey (in a child interpreter: see tests/hsm/_inprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509 import load_der_x509_certificate

ROOT = Path(__file__).resolve().parents[2]


def test_listings_test_sign_and_local_key(hsm_token):
    completed = subprocess.run(
        [sys.executable, "-m", "tests.hsm._inprocess"],
        input=json.dumps(
            {"module": hsm_token.module_path, "token": hsm_token.label, "pin": hsm_token.user_pin}
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert hsm_token.label in out["tokens"]
    assert out["public_keys"] == [["p256", True], ["p384", True], ["rsa2048", True]]
    assert out["private_keys"] == [
        ["p256", "EC", 256, True, False],
        ["p384", "EC", 384, True, False],
        ["rsa2048", "RSA", 2048, True, False],
    ]
    assert "SHA256_RSA_PKCS" in out["mechanisms"]
    assert "ECDSA" in out["mechanisms"]
    assert out["test_sign"] == ["SHA256_RSA_PKCS", "RSA-2048", True]
    assert out["test_sign_ec"] == "ECDSA"  # SoftHSM has no hashed ECDSA: host hash + raw
    assert out["missing"] == "KeyNotFound"
    assert "refused the PIN" in out["wrong_pin"]
    assert "wrong-pin" not in out["wrong_pin"]
    certificate = bytes.fromhex(out["local_certificate"])
    assert certificate == hsm_token.keys["p384"].certificate_der
    public_key = load_der_x509_certificate(certificate).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for digest, signature in out["local_signatures"]:
        public_key.verify(
            bytes.fromhex(signature),
            bytes.fromhex(digest),
            ec.ECDSA(utils.Prehashed(hashes.SHA384())),
        )
