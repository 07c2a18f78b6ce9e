"""Many concurrent callers sign through one ring: no crash, no error, every signature verifies.

SoftHSM under python-pkcs11 corrupts memory when threads use separate sessions; this is the
test that would catch a design that let that happen.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import load_der_x509_certificate

from hsm import KeyRing

PER_CALLER = 2000


def _verifier(ring: KeyRing, alias: str):
    public_key = load_der_x509_certificate(ring.certificate(alias).dump()).public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return lambda d, s: public_key.verify(s, d, ec.ECDSA(prehashed))
    assert isinstance(public_key, rsa.RSAPublicKey)
    return lambda d, s: public_key.verify(s, d, padding.PKCS1v15(), prehashed)


@pytest.mark.slow
def test_threads_rsa_and_ec(ring):
    verify = {alias: _verifier(ring, alias) for alias in ("rsa2048", "p256")}
    errors: list[BaseException] = []
    done = [0] * 6

    def caller(number: int) -> None:
        try:
            for i in range(PER_CALLER):
                alias = "rsa2048" if (i + number) % 2 else "p256"
                digest = hashlib.sha256(f"{number}/{i}".encode()).digest()
                signature = ring.sign_digest(alias, digest, digest_algorithm="sha256")
                verify[alias](digest, signature)
                done[number] += 1
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert done == [PER_CALLER] * 6
    assert all(state is True for state in ring.health().values())


@pytest.mark.slow
async def test_asyncio_tasks_ec(ring):
    verify = {alias: _verifier(ring, alias) for alias in ("p256", "p384")}

    async def caller(number: int) -> int:
        for i in range(PER_CALLER):
            alias = "p384" if (i + number) % 2 else "p256"
            digest = hashlib.sha256(f"a{number}/{i}".encode()).digest()
            signature = await ring.async_sign_digest(alias, digest, digest_algorithm="sha256")
            verify[alias](digest, signature)
        return PER_CALLER

    results = await asyncio.gather(*(caller(n) for n in range(4)))
    assert results == [PER_CALLER] * 4
