"""The background task that delivers notifications, and the live stream's wake-ups.

It runs in the server's event loop; the work (database, sockets) runs in its own pool of
``[notify] delivery_threads`` threads, one endpoint per thread at a time. It runs a round when
woken (an operation committed notifications: ``EventLog.listeners``), when the earliest
pending delivery is due, and at least every second otherwise (another process may have
written events). A round that fails (the database is away) is logged and tried again with a
growing pause, never dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from kyso.db import describe_failure, is_connection_failure
from kyso.notify.citizens import Citizens
from kyso.notify.schema import cursors, deliveries, endpoints, events, messages
from kyso.notify.webhooks import Webhooks

__all__ = ["Notifier", "backlog", "prune"]

log = logging.getLogger(__name__)

_IDLE_SECONDS = 1.0
_PRUNE_EVERY_SECONDS = 3600.0
T = TypeVar("T")


class Notifier:
    """Delivers webhooks and citizens' messages; wakes the live streams (``watch``)."""

    def __init__(
        self,
        webhooks: Webhooks,
        citizens: Citizens,
        *,
        threads: int = 8,
        keep: timedelta | None = None,
        engine: sa.Engine | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.citizens = citizens
        self._keep = keep
        self._engine = engine
        self._pruned_at = float("-inf")
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="notify")
        self._wake = asyncio.Event()
        self._watchers: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    def wake(self) -> None:
        """Something was committed: deliver now, and wake every live stream."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._set_all)

    def _set_all(self) -> None:
        self._wake.set()
        for watcher in self._watchers:
            watcher.set()

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Event]:
        """An event set whenever notifications were committed (for a live stream)."""
        event = asyncio.Event()
        self._watchers.add(event)
        try:
            yield event
        finally:
            self._watchers.discard(event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        pause = 0.5
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._round()
                timeout = await self._idle()
                if failures:
                    log.info("notification rounds work again", extra={"failed_rounds": failures})
                pause, failures = 0.5, 0
            except Exception as exc:
                failures += 1
                # The database away is an outage the health check reports: one line at the 1st,
                # 2nd, 4th, 8th … failure; a traceback only for the unexpected.
                if not is_connection_failure(exc):
                    log.exception("notification round failed; trying again", extra={"pause": pause})
                elif failures & (failures - 1) == 0:
                    log.warning(
                        "notification round failed: the database cannot be reached; trying again",
                        extra={
                            "reason": describe_failure(exc),
                            "failed_rounds": failures,
                            "pause": pause,
                        },
                    )
                timeout = pause
                pause = min(pause * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._pool, fn, *args)

    async def _round(self) -> None:
        assert self._loop is not None
        due = self._loop.time() - self._pruned_at >= _PRUNE_EVERY_SECONDS
        if due and self._keep is not None and self._engine is not None:
            self._pruned_at = self._loop.time()
            before = datetime.now(UTC) - self._keep
            removed = await self._in_pool(prune, self._engine, before)
            if any(removed.values()):
                log.info("old notifications removed", extra=removed)
        active = await self._in_pool(self.webhooks.active)
        work: list[Awaitable[object]] = [
            self._in_pool(self.webhooks.run_endpoint, endpoint) for endpoint in active
        ]
        if self.citizens.enabled:
            work.append(self._citizens())
        await asyncio.gather(*work)

    async def _citizens(self) -> None:
        await self._in_pool(self.citizens.collect)
        await self._in_pool(self.citizens.send_due)

    async def _idle(self) -> float:
        due = await self._in_pool(self.webhooks.next_due)
        if due is None:
            return _IDLE_SECONDS
        return max(0.0, min(_IDLE_SECONDS, (due - datetime.now(UTC)).total_seconds()))


def backlog(engine: sa.Engine) -> dict[str, int]:
    """What an operator watches (``kyso_notify_*``): deliveries pending and failed, endpoints
    disabled, citizens' messages pending and failed."""
    counts = {
        "deliveries_pending": 0,
        "deliveries_failed": 0,
        "endpoints_disabled": 0,
        "messages_pending": 0,
        "messages_failed": 0,
    }
    with engine.connect() as conn:
        for state, count in conn.execute(
            sa.select(deliveries.c.state, sa.func.count())
            .where(deliveries.c.state != "delivered")
            .group_by(deliveries.c.state)
        ):
            counts[f"deliveries_{state}"] = int(count)
        for state, count in conn.execute(
            sa.select(messages.c.state, sa.func.count())
            .where(messages.c.state != "sent")
            .group_by(messages.c.state)
        ):
            counts[f"messages_{state}"] = int(count)
        counts["endpoints_disabled"] = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(endpoints)
                .where(endpoints.c.disabled_at.is_not(None))
            ).scalar_one()
        )
    return counts


def prune(engine: sa.Engine, before: datetime) -> dict[str, int]:
    """Remove what is settled and older than ``before``: deliveries delivered or failed, messages
    sent or failed, and the events nothing refers to any more that every endpoint and the
    citizens' cursor have passed. Pending work is never removed."""
    settled = sa.select(events.c.id).where(events.c.occurred_at < before)
    with engine.begin() as conn:
        gone_deliveries = conn.execute(
            deliveries.delete().where(
                deliveries.c.state.in_(("delivered", "failed")), deliveries.c.event.in_(settled)
            )
        ).rowcount
        gone_messages = conn.execute(
            messages.delete().where(
                messages.c.state.in_(("sent", "failed")), messages.c.created_at < before
            )
        ).rowcount
        positions = [
            *conn.execute(sa.select(endpoints.c.cursor)).scalars(),
            *conn.execute(sa.select(cursors.c.position)).scalars(),
        ]
        bound = min(positions) if positions else 0
        gone_events = conn.execute(
            events.delete().where(
                events.c.occurred_at < before,
                events.c.id <= bound,
                events.c.id.not_in(sa.select(deliveries.c.event)),
                events.c.id.not_in(sa.select(messages.c.event)),
            )
        ).rowcount
    return {"deliveries": gone_deliveries, "messages": gone_messages, "events": gone_events}
