"""Admission control per client: calls and streams in flight, a call rate, idle client streams.

The interceptor admits every authenticated call here before its handler runs, and releases it
when the call ends however it ends. A client over its share is refused at once with
:class:`~kyso.errors.Overloaded` (RESOURCE_EXHAUSTED with a retry delay): the server queues
nothing for it, and other clients keep their share. Limits are ``[limits]`` in the
configuration (``kyso.config.LimitsConfig``).

A refusal for the client's own limits (:class:`~kyso.errors.OverShare`) is answered after
``refusal_delay_seconds``: a client that ignores the retry delay and calls again at once would
otherwise cost the server a whole call per refusal, as fast as it can send them (a tarpit,
bounded by ``held_refusals`` per client).

Invariants: the counts of a client equal the calls it has admitted and not yet released; the
rate is a token bucket of ``burst`` tokens refilled at ``calls_per_second``; ``held`` counts the
client's refusals waiting to be answered, never more than ``held_refusals``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kyso.config import LimitsConfig
from kyso.errors import OverShare, StreamIdle

__all__ = ["Admission", "Ticket", "idle_bounded"]

T = TypeVar("T")

_DEADLINE_MARGIN_SECONDS = 0.5
"""A held refusal is answered this long before the call's deadline, so that the client
reads RESOURCE_EXHAUSTED and its retry delay rather than DEADLINE_EXCEEDED, even when the
answer is slow to travel on a loaded machine or network."""


@dataclass(slots=True)
class _Share:
    """What one client holds now."""

    tokens: float
    refilled_at: float
    calls: int = 0
    streams: int = 0
    held: int = 0


@dataclass(slots=True)
class Ticket:
    """An admitted call; :meth:`release` once when it ends."""

    share: _Share
    streaming: bool
    released: bool = field(default=False)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.share.calls -= 1
        if self.streaming:
            self.share.streams -= 1


class Admission:
    """Per-client limits; used from the event loop only (no locking)."""

    def __init__(
        self, limits: LimitsConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._shares: dict[str, _Share] = {}

    def admit(self, client: str, *, streaming: bool) -> Ticket:
        """Admit a call of ``client`` or raise :class:`Overloaded` saying which limit it hit."""
        limits = self._limits
        now = self._clock()
        share = self._shares.get(client)
        if share is None:
            share = self._shares[client] = _Share(tokens=float(limits.burst), refilled_at=now)
        share.tokens = min(
            float(limits.burst), share.tokens + (now - share.refilled_at) * limits.calls_per_second
        )
        share.refilled_at = now
        if share.tokens < 1.0:
            wait = (1.0 - share.tokens) / limits.calls_per_second
            raise OverShare(
                f"client {client} is over its rate of {limits.calls_per_second:g} calls per "
                f"second ([limits] calls_per_second); retry in {wait:.2f} s",
                retry_after=wait,
                client=client,
            )
        if share.calls >= limits.calls_in_flight:
            raise OverShare(
                f"client {client} already has {share.calls} calls in flight, the most allowed "
                "([limits] calls_in_flight); retry when one ends",
                retry_after=1.0,
                client=client,
            )
        if streaming and share.streams >= limits.streams_in_flight:
            raise OverShare(
                f"client {client} already has {share.streams} streams open, the most allowed "
                "([limits] streams_in_flight); close one or retry later",
                retry_after=1.0,
                client=client,
            )
        share.tokens -= 1.0
        share.calls += 1
        if streaming:
            share.streams += 1
        return Ticket(share, streaming)

    async def hold_refusal(self, refusal: OverShare, remaining: float | None) -> None:
        """Wait ``[limits] refusal_delay_seconds`` before a client's refusal is answered
        (never past the call's deadline), unless ``held_refusals`` of its refusals already
        wait: a client retrying at once then waits too, and costs the server less."""
        share = self._shares.get(refusal.client)
        delay = self._limits.refusal_delay_seconds
        if remaining is not None:
            delay = min(delay, remaining - _DEADLINE_MARGIN_SECONDS)
        if share is None or delay <= 0 or share.held >= self._limits.held_refusals:
            return
        share.held += 1
        try:
            await asyncio.sleep(delay)
        finally:
            share.held -= 1


async def idle_bounded(requests: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """The messages of a client stream, ending it with :class:`StreamIdle` when the client
    sends nothing for ``seconds`` (a stream that idles holds a call and its memory)."""
    iterator = aiter(requests)
    while True:
        try:
            item = await asyncio.wait_for(anext(iterator), seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StreamIdle(
                f"the stream sent nothing for {seconds:g} s ([limits] stream_idle_seconds); "
                "it was ended and nothing of it was kept"
            ) from None
        yield item
