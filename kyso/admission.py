"""Admission control per client: calls and streams in flight, a call rate, idle client streams.

The interceptor admits every authenticated call here before its handler runs, and releases it
when the call ends however it ends. A client over its share is refused at once with
:class:`~kyso.errors.Overloaded` (RESOURCE_EXHAUSTED with a retry delay): the server queues
nothing for it, and other clients keep their share. Limits are ``[limits]`` in the
configuration (``kyso.config.LimitsConfig``).

A refusal for the client's own limits (:class:`~kyso.errors.OverShare`) is answered after
between half and all of ``refusal_delay_seconds``, at random so that refusals held together
do not come back together: a client that ignores the retry delay and calls again at once would
otherwise cost the server a whole call per refusal, as fast as it can send them (a tarpit,
bounded by ``held_refusals`` per client).

A client's rate is ``[limits]``'s unless its ``[clients.NAME]`` sets its own
``calls_per_second`` and ``burst`` (:class:`Rate`): the default is one client's share of one
server, and a system that needs more (a peer hub catching up, a batch signer) is named.

Invariants: the counts of a client equal the calls it has admitted and not yet released; the
rate is a token bucket of ``burst`` tokens refilled at ``calls_per_second``; ``held`` counts the
client's refusals waiting to be answered, never more than ``held_refusals``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from kyso.config import ClientConfig, LimitsConfig
from kyso.errors import OverShare, StreamIdle

__all__ = ["Admission", "Rate", "Ticket", "client_rates", "idle_bounded"]

T = TypeVar("T")

_DEADLINE_MARGIN_SECONDS = 0.5
"""A held refusal is answered this long before the call's deadline, so that the client
reads RESOURCE_EXHAUSTED and its retry delay rather than DEADLINE_EXCEEDED, even when the
answer is slow to travel on a loaded machine or network."""


@dataclass(frozen=True, slots=True)
class Rate:
    """One client's token bucket: ``per_second`` sustained, ``burst`` at once; ``key`` names the
    setting it comes from, for the refusal's message."""

    per_second: float
    burst: int
    key: str = "[limits] calls_per_second"


def client_rates(clients: Mapping[str, ClientConfig], limits: LimitsConfig) -> dict[str, Rate]:
    """The rates of the clients whose ``[clients.NAME]`` sets its own (the others take
    ``[limits]``'s); a client that sets only one of the two takes the other from ``[limits]``."""
    return {
        name: Rate(
            client.calls_per_second or limits.calls_per_second,
            client.burst or limits.burst,
            key=f"[clients.{name}] calls_per_second"
            if client.calls_per_second
            else "[limits] calls_per_second",
        )
        for name, client in clients.items()
        if client.calls_per_second is not None or client.burst is not None
    }


@dataclass(slots=True)
class _Share:
    """What one client holds now."""

    rate: Rate
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
        self,
        limits: LimitsConfig,
        *,
        rates: Mapping[str, Rate] | None = None,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = lambda: random.uniform(0.5, 1.0),  # noqa: S311 (jitter)
    ) -> None:
        self._limits = limits
        self._default_rate = Rate(limits.calls_per_second, limits.burst)
        self._rates = dict(rates or {})
        self._clock = clock
        self._spread = spread
        self._shares: dict[str, _Share] = {}

    def admit(self, client: str, *, streaming: bool) -> Ticket:
        """Admit a call of ``client`` or raise :class:`Overloaded` saying which limit it hit."""
        limits = self._limits
        now = self._clock()
        share = self._shares.get(client)
        if share is None:
            rate = self._rates.get(client, self._default_rate)
            share = self._shares[client] = _Share(rate, tokens=float(rate.burst), refilled_at=now)
        rate = share.rate
        share.tokens = min(
            float(rate.burst), share.tokens + (now - share.refilled_at) * rate.per_second
        )
        share.refilled_at = now
        if share.tokens < 1.0:
            wait = (1.0 - share.tokens) / rate.per_second
            raise OverShare(
                f"client {client} is over its rate of {rate.per_second:g} calls per "
                f"second ({rate.key}); retry in {wait:.2f} s",
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
        """Wait between half and all of ``[limits] refusal_delay_seconds`` (at random) before a
        client's refusal is answered (never past the call's deadline), unless ``held_refusals``
        of its refusals already wait: a client retrying at once then waits too, and costs the
        server less."""
        share = self._shares.get(refusal.client)
        # A random share of the delay: refusals held alike would all be answered at once, and a
        # flood that retries at once would come back as one burst each delay (which then takes
        # the whole bucket at once and stalls everyone else's calls behind it).
        delay = self._limits.refusal_delay_seconds * self._spread()
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
