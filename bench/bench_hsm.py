"""Signatures per second through hsm.KeyRing on SoftHSM2, RSA-2048 and P-256.

Two ratios per key type, each against a baseline measured in the same run:
- one worker vs a plain python-pkcs11 loop (one process, one session, same output: raw
  mechanism over a DigestInfo / digest, ECDSA DER-encoded) — goal >= 0.9;
- all workers (one per core) vs one worker — goal >= 1.8 on 2 cores.
Each rate is the best of ROUNDS alternating rounds of SECONDS.
The ring is driven by 32 asyncio tasks (the server's model: a grpc.aio loop), so that its
workers always have a request queued. The benchmark makes its own token in a temporary
SOFTHSM2_CONF; the plain loop runs in a child interpreter so that this process never loads the
module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hsm import KeyRing, KeySpec, PinSource, Pkcs11Uri
from kyso.dev.softhsm import (
    SOFTHSM_MODULE,
    KeyKind,
    generate_keypair,
    init_token,
    softhsm_conf,
    store_certificate,
)
from tests.support.tokens import TestCa

__all__ = ["run"]

SECONDS = 1.5
ROUNDS = 3
CALLERS = 64
TOKEN_LABEL = "kyso-bench"  # noqa: S105  # a token label, not a secret
PIN = "bench-pin-1234"
ROOT = Path(__file__).resolve().parent.parent

_PLAIN_LOOP = """
import hashlib, json, sys, time
import pkcs11
from pkcs11 import Mechanism, ObjectClass
from hsm.schemes import digest_info, ecdsa_der_from_raw
req = json.loads(sys.stdin.read())
token = pkcs11.lib(req["module"]).get_token(token_label=req["token"])
with token.open(user_pin=req["pin"]) as session:
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=req["label"])
    ec = req["label"] == "p256"
    count, deadline = 0, time.perf_counter() + req["seconds"]
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        digest = hashlib.sha256(count.to_bytes(8, "big")).digest()
        if ec:
            ecdsa_der_from_raw(key.sign(digest, mechanism=Mechanism.ECDSA))
        else:
            key.sign(digest_info("sha256", digest), mechanism=Mechanism.RSA_PKCS)
        count += 1
    print(json.dumps(count / (time.perf_counter() - started)))
"""


def _plain_rate(label: str, env: dict[str, str]) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _PLAIN_LOOP],
        input=json.dumps(
            {
                "module": SOFTHSM_MODULE,
                "token": TOKEN_LABEL,
                "pin": PIN,
                "label": label,
                "seconds": SECONDS,
            }
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return float(json.loads(completed.stdout))


def _ring(label: str, workers: int, pin: PinSource) -> KeyRing:
    spec = KeySpec(
        alias=label,
        uri=Pkcs11Uri(token=TOKEN_LABEL, object=label, type="private"),
        module_path=SOFTHSM_MODULE,
        pin=pin,
    )
    return KeyRing([spec], workers=workers)


async def _drive(ring: KeyRing, label: str) -> float:
    """CALLERS asyncio tasks signing back to back for SECONDS, as the gRPC aio server does."""
    counts = [0] * CALLERS
    deadline = time.perf_counter() + SECONDS

    async def caller(number: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            digest = hashlib.sha256(f"{number}/{i}".encode()).digest()
            await ring.async_sign_digest(label, digest, digest_algorithm="sha256")
            i += 1
        counts[number] = i

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(CALLERS)))
    return sum(counts) / (time.perf_counter() - started)


def run() -> dict[str, dict[str, float | str]]:
    home = Path(tempfile.mkdtemp(prefix="kyso-bench-hsm-"))
    conf = softhsm_conf(home)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    saved = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # inherited by the ring's workers
    os.environ["KYSO_BENCH_HSM_PIN"] = PIN
    pin = PinSource.from_env("KYSO_BENCH_HSM_PIN")
    results: dict[str, dict[str, float | str]] = {}
    try:
        init_token(label=TOKEN_LABEL, so_pin="bench-so-pin", user_pin=PIN, env=env)
        ca = TestCa.create("Kyso Bench CA")
        kinds: tuple[KeyKind, ...] = ("rsa2048", "p256")
        for label in kinds:
            spki = generate_keypair(
                module_path=SOFTHSM_MODULE,
                token_label=TOKEN_LABEL,
                user_pin=PIN,
                label=label,
                key_id=label.encode(),
                kind=label,
                env=env,
            )
            store_certificate(
                module_path=SOFTHSM_MODULE,
                token_label=TOKEN_LABEL,
                user_pin=PIN,
                label=label,
                key_id=label.encode(),
                certificate_der=ca.issue(spki, label),
                env=env,
            )
        cores = os.cpu_count() or 1
        for label in kinds:
            # Rounds alternate the three measurements and keep each one's best, so that load
            # from other processes on a shared machine biases none of them more than another.
            plain = one = every = 0.0
            with _ring(label, 1, pin) as single, _ring(label, cores, pin) as full:
                for _ in range(ROUNDS):
                    plain = max(plain, _plain_rate(label, env))
                    one = max(one, asyncio.run(_drive(single, label)))
                    every = max(every, asyncio.run(_drive(full, label)))
            results[f"hsm_{label}_one_worker_vs_plain_loop"] = {
                "value": one,
                "unit": "signatures/s",
                "baseline": plain,
                "ratio": one / plain,
            }
            results[f"hsm_{label}_all_workers_vs_one"] = {
                "value": every,
                "unit": f"signatures/s ({cores} workers)",
                "baseline": one,
                "ratio": every / one,
            }
    finally:
        if saved is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = saved
        os.environ.pop("KYSO_BENCH_HSM_PIN", None)
    return results


if __name__ == "__main__":
    for name, row in run().items():
        print(f"{name}: {row['value']:.0f} vs {row['baseline']:.0f} -> x{row['ratio']:.2f}")
