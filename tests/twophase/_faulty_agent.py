"""``kyso agent`` in a child process with a token wrapper, for fault and timing tests.

    python -m tests.twophase._faulty_agent [--fail-after N] [--delay SECONDS] -- AGENT ARGS

``--fail-after N``: the token signs N documents, then behaves as if pulled out (every later
call raises ``TokenUnavailable``, as python-pkcs11 errors are translated by ``hsm``).
``--delay``: each signature takes this long first (a slow USB token).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import hsm
from kyso.cli import agent_cmd


class WrappedKey:
    """A ``LocalKey`` that is slow and/or is pulled out after ``fail_after`` signatures."""

    def __init__(self, key: hsm.LocalKey, *, fail_after: int | None, delay: float) -> None:
        self._key = key
        self._fail_after = fail_after
        self._delay = delay
        self._count = 0
        self._lock = threading.Lock()
        self.certificate = key.certificate

    def login(self, pin: str) -> None:
        self._key.login(pin)

    def sign_digest(self, digest, digest_algorithm, pss=False):
        with self._lock:
            if self._fail_after is not None and self._count >= self._fail_after:
                raise hsm.TokenUnavailable("signing: the token was removed (simulated)")
            self._count += 1
        if self._delay:
            time.sleep(self._delay)
        return self._key.sign_digest(digest, digest_algorithm, pss)

    def close(self) -> None:
        self._key.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-after", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("agent_args", nargs=argparse.REMAINDER)
    ours = parser.parse_args()
    agent_args = [a for a in ours.agent_args if a not in ("--", "agent")]
    sub = argparse.ArgumentParser(prog="kyso").add_subparsers()
    agent_cmd.register(sub)
    args = sub.choices["agent"].parse_args(agent_args)
    original = hsm.open_token_key

    def open_wrapped(*a, **k):
        return WrappedKey(original(*a, **k), fail_after=ours.fail_after, delay=ours.delay)

    agent_cmd.hsm.open_token_key = open_wrapped  # type: ignore[attr-defined]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
