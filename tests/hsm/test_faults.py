"""Faults under a running ring: token removed, token re-initialised, worker crash.

Each fails requests with TokenUnavailable, turns health to not serving, and the ring recovers
by itself once the token is back, without being re-created.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm import (
    KeyRing,
    PinIncorrect,
    SignatureScheme,
    TokenState,
    TokenUnavailable,
    verify_signature,
)
from tests.hsm.conftest import spec_for
from tests.support.tokens import DevToken, KeyRequest, make_token, new_token_label

KEYS = [KeyRequest(label="seal", kind="p256"), KeyRequest(label="rsa", kind="rsa2048")]
SCHEME = SignatureScheme(key_type="ec")


def _token_dir(label: str) -> Path:
    home = Path(os.environ["KYSO_TEST_SOFTHSM_HOME"]) / "tokens"
    for candidate in home.iterdir():
        token_object = candidate / "token.object"
        if token_object.exists() and label.encode() in token_object.read_bytes():
            return candidate
    raise AssertionError(f"no token directory for {label}")


def _wait_until(condition, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def _signs(ring: KeyRing) -> bool:
    digest = hashlib.sha256(b"probe").digest()
    try:
        signature = ring.sign_digest("seal", digest, digest_algorithm="sha256")
    except TokenUnavailable:
        return False
    assert verify_signature(ring.certificate("seal"), SCHEME, digest, signature)
    return True


@pytest.fixture
def faulty(test_ca) -> Iterator[tuple[DevToken, KeyRing]]:
    token = make_token(label=new_token_label("fault"), keys=KEYS, ca=test_ca)
    specs = [spec_for(token, "seal"), spec_for(token, "rsa")]
    specs[1] = spec_for(token, "rsa", pin=specs[0].pin)
    ring = KeyRing(specs, workers=2, backoff=(0.1, 0.5), health_interval=0.3)
    try:
        yield token, ring
    finally:
        ring.close()


def _sign_three(ring: KeyRing) -> None:
    for _ in range(3):  # the first request may be the one that discovers the fault
        ring.sign_digest("seal", hashlib.sha256(b"x").digest(), digest_algorithm="sha256")


def _assert_unavailable(ring: KeyRing) -> None:
    with pytest.raises(TokenUnavailable):
        _sign_three(ring)
    (state,) = ring.health().values()
    assert state is not True
    assert isinstance(state, str)
    assert not ring.serving


def test_token_removed_then_restored(faulty, tmp_path):
    token, ring = faulty
    assert _signs(ring)
    directory = _token_dir(token.label)
    shutil.move(directory, tmp_path / "unplugged")
    try:
        _assert_unavailable(ring)
        time.sleep(0.5)  # let the supervisor try (and fail) to recover while it is gone
        assert not ring.serving
    finally:
        shutil.move(tmp_path / "unplugged", directory)
    _wait_until(lambda: ring.serving, "ring serving again after the token came back")
    assert _signs(ring)
    assert ring.sign("rsa", b"after recovery")


def test_token_reinitialised_then_reprovisioned(faulty, test_ca):
    token, ring = faulty
    old_certificate = ring.certificate("seal").dump()
    # Test PINs on argv: softhsm2-util takes no other non-interactive form (dev tool only).
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--token",
            token.label,
            "--label",
            token.label,
            "--so-pin",
            token.so_pin,
            "--pin",
            token.user_pin,
        ],
        check=True,
        capture_output=True,
    )
    _assert_unavailable(ring)
    make_token(label=token.label, keys=KEYS, ca=test_ca)  # new keys, new certificates
    _wait_until(lambda: ring.serving, "ring serving again after re-provisioning")
    assert _signs(ring)
    assert ring.certificate("seal").dump() != old_certificate


def test_worker_crash_is_recovered(faulty):
    _, ring = faulty
    assert _signs(ring)
    ((first, *_),) = ring.worker_pids().values()
    os.kill(first, signal.SIGKILL)  # as a module crash would
    _wait_until(lambda: not ring.serving, "crash noticed")
    _wait_until(lambda: ring.serving, "workers restarted")
    assert _signs(ring)


_CHANGE_PIN = """
import json, sys
import pkcs11
req = json.loads(sys.stdin.read())
token = pkcs11.lib(req["module"]).get_token(token_label=req["token"])
with token.open(rw=True, user_pin=req["old"]) as session:
    session.set_pin(req["old"], req["new"])
print(int(token.flags))
"""


def test_pin_changed_under_the_ring_is_not_retried(faulty):
    token, ring = faulty
    changed = subprocess.run(
        [sys.executable, "-c", _CHANGE_PIN],
        input=json.dumps(
            {
                "module": token.module_path,
                "token": token.label,
                "old": token.user_pin,
                "new": "654321",
            }
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert changed.stdout.strip()
    ((name, (first, *_)),) = ring.worker_pids().items()
    os.kill(first, signal.SIGKILL)  # a crash forces a restart, which logs in again
    _wait_until(lambda: ring.token_states() != {name: TokenState.SERVING}, "crash noticed")
    _wait_until(lambda: ring.token_states()[name] is TokenState.FAILED, "restart refused the PIN")
    time.sleep(1.0)  # several backoff periods: a retry loop would show up as more attempts
    assert ring.token_states()[name] is TokenState.FAILED
    (state,) = ring.health().values()
    assert isinstance(state, str)
    assert "refused the PIN" in state
    with pytest.raises(PinIncorrect):
        ring.sign("seal", b"x")
