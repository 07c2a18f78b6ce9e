"""Notification operations: webhook endpoints, citizens' consents and messages, the live stream.

Who may do what (on top of the role table in ``kyso.authz``):
- an endpoint belongs to the client that created it, for a unit that client acts for (its
  configured unit or one below it in the directory; without a directory, its own unit). A
  client sees, changes and replays only its own endpoints; an operator sees and manages all;
- a consent is recorded for a unit the caller acts for; the messages are the operator's view;
- WatchEvents streams the events of the caller's unit (and of the units below it); a caller
  configured without a unit sees every unit's, as for pending signatures.

The events themselves are written by the operations that make the changes (``Staging``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from exchange.errors import UnitNotFound
from kyso.app import Application
from kyso.authz import Identity
from kyso.errors import FailedPrecondition, NotFound, PermissionDenied, RequestInvalid
from kyso.notify.citizens import ConsentRecord, MessageRecord
from kyso.notify.outbox import KINDS, committed_prefix
from kyso.notify.schema import events
from kyso.notify.webhooks import (
    DeliveryRecord,
    Endpoint,
    EndpointNotFound,
    TargetRefused,
    Webhooks,
)

__all__ = ["Notifications", "WatchedEvent"]

_WATCH_POLL_SECONDS = 1.0
_MAX_WAIT_SECONDS = 3600
_MAX_URL = 2000
_MAX_DESCRIPTION = 500
_MAX_ENDPOINTS = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchedEvent:
    event_id: str
    type: str
    unit: str
    occurred_at: datetime
    data: dict[str, str]


class Notifications:
    """The NotificationService's operations (see the module docstring)."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._run = app.executors.io.run

    def _hooks(self) -> Webhooks:
        if self._app.webhooks is None:
            raise FailedPrecondition("notifications are off on this server ([notify] enabled)")
        return self._app.webhooks

    def _acts_for(self, identity: Identity, unit: str) -> None:
        if not unit:
            raise RequestInvalid("name the unit (its code, e.g. 000.00.21.H49)", field="unit_code")
        if "operator" in identity.roles:
            return
        directory = self._app.directory
        lineage = directory.lineage(unit) if directory is not None else [unit]
        if identity.unit and identity.unit in lineage:
            return
        raise PermissionDenied(
            f"client {identity.name!r} (unit {identity.unit or 'none'}) may not act for unit"
            f" {unit}; configure the client with that unit or one above it"
        )

    @staticmethod
    def _owner(identity: Identity) -> str | None:
        return None if "operator" in identity.roles else identity.name

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._run(lambda: fn(*args, **kwargs))
        except EndpointNotFound as exc:
            raise NotFound(f"no endpoint {exc.args[0]!r} of this client") from None

    # -- endpoints -----------------------------------------------------------------------------

    async def create(
        self,
        identity: Identity,
        *,
        unit: str,
        url: str,
        types: Sequence[str],
        personal_data: bool,
        description: str,
    ) -> tuple[Endpoint, str]:
        hooks = self._hooks()
        await self._run(self._acts_for, identity, unit)
        if not url:
            raise RequestInvalid("give the endpoint's https:// URL", field="url")
        if len(url) > _MAX_URL:
            raise RequestInvalid(
                f"the URL has {len(url)} characters; at most {_MAX_URL}", field="url"
            )
        if len(description) > _MAX_DESCRIPTION:
            raise RequestInvalid(
                f"the description has at most {_MAX_DESCRIPTION} characters", field="description"
            )
        owned = await self._run(lambda: hooks.endpoints(owner=identity.name))
        if len(owned) >= _MAX_ENDPOINTS:
            raise FailedPrecondition(
                f"client {identity.name!r} has {len(owned)} endpoints, the most one client may"
                " have; delete one first"
            )
        for index, kind in enumerate(types):
            if kind not in KINDS:
                raise RequestInvalid(
                    f"{kind!r} is not an event type; known: {', '.join(KINDS)}",
                    field=f"event_types[{index}]",
                )
        try:
            created: tuple[Endpoint, str] = await self._run(
                lambda: hooks.create(
                    owner=identity.name,
                    unit=unit,
                    url=url,
                    types=types,
                    personal_data=personal_data,
                    description=description,
                )
            )
        except TargetRefused as exc:
            raise RequestInvalid(str(exc), field="url") from None
        return created

    async def endpoints(self, identity: Identity) -> list[Endpoint]:
        hooks = self._hooks()
        found: list[Endpoint] = await self._run(
            lambda: hooks.endpoints(owner=self._owner(identity))
        )
        return found

    async def delete(self, identity: Identity, endpoint_id: str) -> None:
        await self._call(self._hooks().delete, endpoint_id, owner=self._owner(identity))

    async def rotate(self, identity: Identity, endpoint_id: str) -> tuple[str, datetime]:
        hooks = self._hooks()
        secret = await self._call(hooks.rotate, endpoint_id, owner=self._owner(identity))
        overlap = timedelta(hours=self._app.config.notify.secret_overlap_hours)
        return str(secret), datetime.now(UTC) + overlap

    async def send_test(self, identity: Identity, endpoint_id: str) -> str:
        event_id = await self._call(
            self._hooks().send_test, endpoint_id, owner=self._owner(identity)
        )
        self._wake()
        return str(event_id)

    async def replay(
        self, identity: Identity, endpoint_id: str, *, since: datetime, until: datetime | None
    ) -> int:
        if until is not None and until <= since:
            raise RequestInvalid("until must be after since", field="until")
        count = await self._call(
            self._hooks().replay, endpoint_id, since=since, until=until, owner=self._owner(identity)
        )
        self._wake()
        return int(count)

    async def deliveries(
        self, identity: Identity, endpoint_id: str, *, state: str, limit: int
    ) -> list[DeliveryRecord]:
        if limit < 0:
            raise RequestInvalid("limit cannot be negative", field="limit")
        found: list[DeliveryRecord] = await self._call(
            self._hooks().deliveries,
            endpoint_id,
            owner=self._owner(identity),
            state=state,
            limit=min(limit or 100, 1000),
        )
        return found

    def _wake(self) -> None:
        if self._app.notifier is not None:
            self._app.notifier.wake()

    # -- citizens ------------------------------------------------------------------------------

    async def set_consent(
        self, identity: Identity, *, document_id: str, unit: str, phone: str, withdraw: bool
    ) -> ConsentRecord | None:
        citizens = self._app.citizens
        if citizens is None:
            raise FailedPrecondition("notifications are off on this server ([notify] enabled)")
        if not document_id:
            raise RequestInvalid("name the dossier (its document id)", field="document_id")
        await self._run(self._acts_for, identity, unit)
        if withdraw:
            await self._run(citizens.withdraw_consent, document_id)
            return None
        try:
            record: ConsentRecord = await self._run(
                lambda: citizens.set_consent(
                    document_id=document_id, phone=phone, unit=unit, recorded_by=identity.name
                )
            )
        except ValueError as exc:
            raise RequestInvalid(str(exc), field="phone") from None
        return record

    async def messages(
        self, identity: Identity, *, document_id: str, state: str, limit: int
    ) -> list[MessageRecord]:
        citizens = self._app.citizens
        if citizens is None:
            raise FailedPrecondition("notifications are off on this server ([notify] enabled)")
        if limit < 0:
            raise RequestInvalid("limit cannot be negative", field="limit")
        found: list[MessageRecord] = await self._run(
            lambda: citizens.messages(
                document_id=document_id, state=state, limit=min(limit or 100, 1000)
            )
        )
        return found

    # -- the live stream -----------------------------------------------------------------------

    async def watch(
        self, identity: Identity, *, types: Sequence[str], after: str, wait_seconds: int
    ) -> AsyncIterator[WatchedEvent]:
        """The caller's events as they are committed (see the module docstring), until none
        came for ``wait_seconds``."""
        if not 0 <= wait_seconds <= _MAX_WAIT_SECONDS:
            raise RequestInvalid(
                f"wait_seconds is from 0 to {_MAX_WAIT_SECONDS}", field="wait_seconds"
            )
        for index, kind in enumerate(types):
            if kind not in KINDS:
                raise RequestInvalid(
                    f"{kind!r} is not an event type; known: {', '.join(KINDS)}",
                    field=f"event_types[{index}]",
                )
        position = await self._run(self._start, after)
        wanted = frozenset(types)
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + wait_seconds
        while True:
            batch = await self._next_batch(position, quiet_until)
            if batch is None:
                return
            quiet_until = loop.time() + wait_seconds
            for row in batch:
                position = row.id
                if wanted and row.type not in wanted:
                    continue
                if row.endpoint_id is not None or not await self._run(self._sees, identity, row):
                    continue
                yield WatchedEvent(
                    event_id=row.event_id,
                    type=row.type,
                    unit=row.unit,
                    occurred_at=row.occurred_at
                    if row.occurred_at.tzinfo
                    else row.occurred_at.replace(tzinfo=UTC),
                    data={str(k): str(v) for k, v in (row.data or {}).items()},
                )

    async def _next_batch(self, position: int, quiet_until: float) -> list[Any] | None:
        """The events after ``position``; waits for some (woken by commits of this process,
        polling for other processes') until ``quiet_until``, then None."""
        loop = asyncio.get_running_loop()
        notifier = self._app.notifier
        while True:
            with contextlib.ExitStack() as stack:
                woken = stack.enter_context(notifier.watch()) if notifier is not None else None
                batch: list[Any] = await self._run(self._after, position)
                if batch:
                    return batch
                left = quiet_until - loop.time()
                if left <= 0:
                    return None
                wait = min(left, _WATCH_POLL_SECONDS)
                if woken is None:
                    await asyncio.sleep(wait)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), wait)

    def _start(self, after: str) -> int:
        with self._app.engine.connect() as conn:
            if after:
                found = conn.execute(
                    sa.select(events.c.id).where(events.c.event_id == after)
                ).scalar()
                if found is None:
                    raise RequestInvalid(
                        f"no event {after!r}; give an id the stream sent", field="after_event_id"
                    )
                return int(found)
            return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)

    def _after(self, position: int) -> list[Any]:
        with self._app.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.id > position).order_by(events.c.id).limit(500)
            ).all()
        return committed_prefix(rows, position, datetime.now(UTC))

    def _sees(self, identity: Identity, row: Any) -> bool:
        if not identity.unit:
            return True
        directory = self._app.directory
        for unit in (row.unit, row.other_unit):
            if not unit:
                continue
            try:
                lineage = directory.lineage(unit) if directory is not None else (unit,)
            except UnitNotFound:
                lineage = (unit,)
            if identity.unit in lineage:
                return True
        return False
