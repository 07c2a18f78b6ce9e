"""``kyso agent --follow``: wait for work on the live stream instead of polling.

The agent signs what waits now, then keeps ``NotificationService.WatchEvents`` open for
``signature.waiting`` events of the token's certificate; each one that arrives (and those
arriving together) wakes a new round of the ordinary agent (``run_agent``): list, show, ask,
sign the batch the official confirms. The PIN is asked once and the token stays logged in.

The stream is opened before the first round, in a thread of its own, so a document requested
while a round runs is not missed; the stream is re-opened after the last event seen when it
ends or the connection drops (with a growing pause), and every ``_SAFETY_ROUND_SECONDS`` a round
runs anyway, in case a wake-up was lost while reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import grpc

import hsm
from kyso.cli.common import ClientTarget

__all__ = ["follow"]

_WAIT_SECONDS = 300
_SAFETY_ROUND_SECONDS = 300.0


@dataclass(frozen=True, kw_only=True)
class _PinOnce(hsm.PinSource):
    """The PIN source, read once for the whole session."""

    remembered: list[str] = field(default_factory=list, compare=False, repr=False)

    def read(self) -> str:
        if not self.remembered:
            self.remembered.append(super().read())
        return self.remembered[0]


class _LoginOnce:
    """The token key, logged in at the first batch and kept so."""

    def __init__(self, key: object) -> None:
        self._key = key
        self._logged_in = False
        self.certificate = key.certificate  # type: ignore[attr-defined]

    def login(self, pin: str) -> None:
        if not self._logged_in:
            self._key.login(pin)  # type: ignore[attr-defined]
            self._logged_in = True

    def sign_digest(
        self, digest: bytes, digest_algorithm: hsm.DigestAlgorithm, pss: bool = False
    ) -> bytes:
        signed: bytes = self._key.sign_digest(digest, digest_algorithm, pss)  # type: ignore[attr-defined]
        return signed

    def close(self) -> None:
        self._key.close()  # type: ignore[attr-defined]


def _watch(
    target: ClientTarget,
    fingerprint: str,
    wakes: queue.Queue[str],
    stop: threading.Event,
    ready: threading.Event,
) -> None:
    """Keep the stream open (reconnecting), putting each matching event id into ``wakes``."""
    from kyso.cli.agent.rpc import channel as _channel
    from kyso.cli.agent.rpc import metadata as _metadata
    from kyso.v1 import notifications_pb2, notifications_pb2_grpc

    async def once(after: str) -> str:
        async with _channel(target) as channel:
            stub = notifications_pb2_grpc.NotificationServiceStub(channel)
            request = notifications_pb2.WatchEventsRequest(
                event_types=["signature.waiting"], after_event_id=after, wait_seconds=_WAIT_SECONDS
            )
            call = stub.WatchEvents(request, metadata=_metadata(target))
            await channel.channel_ready()
            ready.set()
            async for event in call:
                after = event.event_id
                if event.data.get("certificate_sha256") == fingerprint:
                    wakes.put(event.event_id)
                if stop.is_set():
                    call.cancel()
                    break
        return after

    after = ""
    pause = 0.5
    while not stop.is_set():
        try:
            after = asyncio.run(once(after))
            pause = 0.5
        except grpc.RpcError:
            ready.set()
            time.sleep(pause)
            pause = min(pause * 2, 30.0)


def follow(
    *,
    run_round: Callable[..., int],
    target: ClientTarget,
    key: object,
    pin: hsm.PinSource,
    batches: int = 0,
    err: TextIO = sys.stderr,
) -> int:
    """Rounds of ``run_round(key=…, pin=…)`` now and whenever work arrives; returns the last
    round's exit code after ``batches`` rounds that had work (0: until interrupted)."""
    fingerprint = hashlib.sha256(key.certificate.dump()).hexdigest()  # type: ignore[attr-defined]
    once_key = _LoginOnce(key)
    once_pin = _PinOnce(kind=pin.kind, where=pin.where)
    wakes: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    ready = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(target, fingerprint, wakes, stop, ready), daemon=True
    )
    watcher.start()
    ready.wait(10)
    done = 0
    code = run_round(key=once_key, pin=once_pin)
    try:
        while not batches or done < batches:
            print("Waiting for documents to sign (Ctrl-C to stop)...", file=err, flush=True)
            with contextlib.suppress(queue.Empty):
                wakes.get(timeout=_SAFETY_ROUND_SECONDS)
            while not wakes.empty():  # several requests at once: one round
                wakes.get_nowait()
            code = run_round(key=once_key, pin=once_pin)
            done += 1
    finally:
        stop.set()
    return code
