"""Webhook subscriptions and their deliveries (Standard Webhooks).

Delivery rules:
- at least once: a delivery is pending until its endpoint answers 2xx; the receiver
  deduplicates by ``webhook-id`` (the event's stable id, the same on every attempt);
- in order per document (or session): a delivery is attempted only when no earlier delivery of
  the same key to the same endpoint is still pending; one process at a time delivers to an
  endpoint (``lease_until``);
- retries follow :data:`RETRY_SCHEDULE` (≈ 3.2 days), each delay with ±20 % jitter; after the
  last one the delivery is ``failed`` (an operator can replay it);
- 410 Gone disables the endpoint; 429, 5xx and an unreachable receiver slow the endpoint down
  (nothing more is sent to it until the failed delivery's next attempt, or ``Retry-After``);
  an endpoint failing for longer than the retry window is disabled; other answers count as a
  failed attempt of that delivery only;
- a target the address rules refuse (``kyso.notify.http``) disables the endpoint, saying why.

Every method is blocking (SQLAlchemy, sockets): call it from a thread. Time comes from
``clock`` (scheduling: next attempts, pauses) so tests can pass a simulated day; the
``webhook-timestamp`` header is the wall clock (``wall``), as receivers check it against theirs.
"""

from __future__ import annotations

import json
import logging
import random
import secrets as secrets_module
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kyso.db import dialect_insert
from kyso.notify import signing
from kyso.notify.http import Answer, TargetRefused, check_url, post
from kyso.notify.outbox import KINDS, TEST_KIND, Notification, committed_prefix, new_event_id
from kyso.notify.schema import deliveries, endpoints, events
from signer.verify import FetchRules

__all__ = [
    "RETRY_SCHEDULE",
    "DeliveryRecord",
    "Endpoint",
    "EndpointNotFound",
    "TargetRefused",
    "WebhookSettings",
    "Webhooks",
]

log = logging.getLogger(__name__)

RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    *(timedelta(hours=12),) * 5,
)
"""Delays before the 2nd, 3rd, … attempt: about 3.2 days in all."""
RETRY_WINDOW = sum(RETRY_SCHEDULE, timedelta())
_LEASE = timedelta(minutes=2)
_BATCH = 200
_MAX_RETRY_AFTER = timedelta(hours=12)


class EndpointNotFound(LookupError):
    """No endpoint with that id (for that client)."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    allow: tuple[str, ...] = ()
    """Hosts, addresses or networks that may be private (``[notify] webhook_allow``)."""
    http_loopback: bool = False
    timeout: float = 15.0
    secret_overlap: timedelta = timedelta(hours=24)
    ca_file: Path | None = None
    """Trust these CAs for https:// targets instead of the system's (``[notify]
    webhook_ca_file``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: str
    owner: str
    unit: str
    url: str
    types: tuple[str, ...]
    personal_data: bool
    description: str
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str
    paused_until: datetime | None
    pending: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    endpoint_id: str
    event_id: str
    type: str
    key: str
    state: str
    attempts: int
    next_at: datetime
    last_status: int
    last_error: str
    delivered_at: datetime | None


@dataclass(slots=True)
class _Round:
    delivered: int = 0
    failed: int = 0
    blocked: set[str] = field(default_factory=set)
    succeeded: list[tuple[int, int, int]] = field(default_factory=list)
    """(delivery id, attempts, status) answered 2xx, recorded together at the round's end (a
    crash before that sends them again: at least once)."""
    slowed: bool = False


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Webhooks:
    """Endpoints (create, list, delete, rotate, test, replay) and the delivery rounds."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: WebhookSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wall: Callable[[], float] = time.time,
        poster: Callable[..., Answer] = post,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._rules = FetchRules(settings.allow)
        self._tls = (
            ssl.create_default_context(cafile=str(settings.ca_file))
            if settings.ca_file is not None
            else None
        )
        self._clock = clock
        self._wall = wall
        self._post = poster
        self._jitter = jitter

    # -- subscriptions -------------------------------------------------------------------------

    def check_target(self, url: str) -> None:
        """Refuse a URL whose shape or literal address the rules refuse (raises
        ``TargetRefused``); a host name is checked again, resolved, at every attempt."""
        _, host, _, _ = check_url(url, http_loopback=self._settings.http_loopback)
        if _is_address(host) and not self._rules.address_allowed(host, host):
            raise TargetRefused(
                f"{host} is a loopback, private or link-local address; list it in"
                " [notify] webhook_allow to allow it"
            )

    def create(
        self,
        *,
        owner: str,
        unit: str,
        url: str,
        types: Sequence[str] = (),
        personal_data: bool = False,
        description: str = "",
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (shown once). It receives events from now on."""
        self.check_target(url)
        unknown = sorted(set(types) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(KINDS)}")
        secret = signing.new_secret()
        endpoint_id = "ep_" + secrets_module.token_hex(12)
        now = self._clock()
        with self._engine.begin() as conn:
            cursor = conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0
            conn.execute(
                endpoints.insert().values(
                    id=endpoint_id,
                    owner=owner,
                    unit=unit,
                    url=url,
                    types=sorted(set(types)),
                    secrets=[{"secret": secret, "until": None}],
                    personal_data=personal_data,
                    description=description[:500],
                    created_at=now,
                    cursor=cursor,
                )
            )
        return self.get(endpoint_id), secret

    def get(self, endpoint_id: str, *, owner: str | None = None) -> Endpoint:
        found = self.endpoints(owner=owner, ids=[endpoint_id])
        if not found:
            raise EndpointNotFound(endpoint_id)
        return found[0]

    def endpoints(self, *, owner: str | None = None, ids: Iterable[str] = ()) -> list[Endpoint]:
        """Endpoints (of ``owner`` when given), with their pending and failed counts."""
        counts = (
            sa.select(
                deliveries.c.endpoint_id,
                sa.func.sum(sa.case((deliveries.c.state == "pending", 1), else_=0)).label("p"),
                sa.func.sum(sa.case((deliveries.c.state == "failed", 1), else_=0)).label("f"),
            )
            .group_by(deliveries.c.endpoint_id)
            .subquery()
        )
        query = (
            sa.select(endpoints, counts.c.p, counts.c.f)
            .outerjoin(counts, counts.c.endpoint_id == endpoints.c.id)
            .order_by(endpoints.c.created_at, endpoints.c.id)
        )
        if owner is not None:
            query = query.where(endpoints.c.owner == owner)
        wanted = list(ids)
        if wanted:
            query = query.where(endpoints.c.id.in_(wanted))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Endpoint(
                id=row.id,
                owner=row.owner,
                unit=row.unit,
                url=row.url,
                types=tuple(row.types),
                personal_data=row.personal_data,
                description=row.description,
                created_at=_utc(row.created_at) or self._clock(),
                disabled_at=_utc(row.disabled_at),
                disabled_reason=row.disabled_reason,
                paused_until=_utc(row.paused_until),
                pending=int(row.p or 0),
                failed=int(row.f or 0),
            )
            for row in rows
        ]

    def delete(self, endpoint_id: str, *, owner: str | None = None) -> None:
        self.get(endpoint_id, owner=owner)
        with self._engine.begin() as conn:
            conn.execute(deliveries.delete().where(deliveries.c.endpoint_id == endpoint_id))
            conn.execute(endpoints.delete().where(endpoints.c.id == endpoint_id))

    def rotate(self, endpoint_id: str, *, owner: str | None = None) -> str:
        """A new secret; the current ones stay valid (signatures with both) for
        ``secret_overlap``, so the receiver can switch without losing a message."""
        self.get(endpoint_id, owner=owner)
        secret = signing.new_secret()
        now = self._clock()
        until = (now + self._settings.secret_overlap).isoformat()
        with self._engine.begin() as conn:
            current = conn.execute(
                sa.select(endpoints.c.secrets).where(endpoints.c.id == endpoint_id)
            ).scalar_one()
            kept = [
                {"secret": s["secret"], "until": s["until"] or until}
                for s in current
                if s["until"] is None or datetime.fromisoformat(s["until"]) > now
            ]
            conn.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(secrets=[{"secret": secret, "until": None}, *kept])
            )
        return secret

    def send_test(self, endpoint_id: str, *, owner: str | None = None) -> str:
        """Queue a ``kyso.test`` event for this endpoint only; return its event id."""
        endpoint = self.get(endpoint_id, owner=owner)
        now = self._clock()
        note = Notification(
            event_id=new_event_id(),
            type=TEST_KIND,
            unit=endpoint.unit,
            other_unit="",
            key=endpoint_id,
            occurred_at=now,
            data={"endpoint": endpoint_id, "unit": endpoint.unit},
            personal={},
            endpoint_id=endpoint_id,
        )
        with self._engine.begin() as conn:
            conn.execute(events.insert().values(**note.row()))
        return note.event_id

    def replay(
        self,
        endpoint_id: str,
        *,
        since: datetime,
        until: datetime | None = None,
        owner: str | None = None,
    ) -> int:
        """Deliver again every event of the endpoint's filter that occurred in [since, until),
        delivered or not, in their order; re-enables a disabled endpoint. Returns how many."""
        endpoint = self.get(endpoint_id, owner=owner)
        now = self._clock()
        query = sa.select(events).where(events.c.occurred_at >= since).order_by(events.c.id)
        if until is not None:
            query = query.where(events.c.occurred_at < until)
        count = 0
        with self._engine.begin() as conn:
            rows = [row for row in conn.execute(query) if _matches(endpoint, row)]
            values = {
                "state": "pending",
                "attempts": 0,
                "next_at": now,
                "last_error": "",
                "delivered_at": None,
            }
            for row in rows:
                # One statement, not a look-up then an insert: the notifier may queue the same
                # event for this endpoint in between (seen: UNIQUE constraint failed).
                conn.execute(
                    dialect_insert(conn, deliveries)
                    .values(endpoint_id=endpoint_id, event=row.id, key=row.key, **values)
                    .on_conflict_do_update(
                        index_elements=[deliveries.c.endpoint_id, deliveries.c.event],
                        set_=values,
                    )
                )
                count += 1
            conn.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(
                    disabled_at=None,
                    disabled_reason="",
                    paused_until=None,
                    failing_since=None,
                )
            )
        return count

    def deliveries(
        self, endpoint_id: str, *, owner: str | None = None, state: str = "", limit: int = 100
    ) -> list[DeliveryRecord]:
        """The endpoint's deliveries, newest event first (``state`` filters)."""
        self.get(endpoint_id, owner=owner)
        query = (
            sa.select(deliveries, events.c.event_id, events.c.type)
            .join(events, events.c.id == deliveries.c.event)
            .where(deliveries.c.endpoint_id == endpoint_id)
            .order_by(deliveries.c.event.desc())
            .limit(limit)
        )
        if state:
            query = query.where(deliveries.c.state == state)
        with self._engine.connect() as conn:
            return [
                DeliveryRecord(
                    endpoint_id=row.endpoint_id,
                    event_id=row.event_id,
                    type=row.type,
                    key=row.key,
                    state=row.state,
                    attempts=row.attempts,
                    next_at=_utc(row.next_at) or self._clock(),
                    last_status=row.last_status,
                    last_error=row.last_error,
                    delivered_at=_utc(row.delivered_at),
                )
                for row in conn.execute(query)
            ]

    # -- delivery rounds -----------------------------------------------------------------------

    def run_once(self) -> int:
        """One round over every endpoint (fan out new events, attempt what is due); returns
        the deliveries made."""
        return sum(self.run_endpoint(endpoint_id) for endpoint_id in self.active())

    def active(self) -> list[str]:
        """The endpoints that are enabled and not slowed down now."""
        now = self._clock()
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(endpoints.c.id).where(
                        endpoints.c.disabled_at.is_(None),
                        sa.or_(endpoints.c.paused_until.is_(None), endpoints.c.paused_until <= now),
                    )
                ).scalars()
            )

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery of an enabled endpoint is due (None: none)."""
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(deliveries.c.next_at))
                .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
                .where(deliveries.c.state == "pending", endpoints.c.disabled_at.is_(None))
            ).scalar()
        return _utc(value)

    def run_endpoint(self, endpoint_id: str) -> int:
        """Fan out and deliver for one endpoint, if no other process holds it now."""
        now = self._clock()
        with self._engine.begin() as conn:  # the claim and the fan-out: one commit
            claimed = conn.execute(
                endpoints.update()
                .where(
                    endpoints.c.id == endpoint_id,
                    endpoints.c.disabled_at.is_(None),
                    sa.or_(endpoints.c.lease_until.is_(None), endpoints.c.lease_until < now),
                )
                .values(lease_until=now + _LEASE)
            ).rowcount
            if claimed:
                self._fan_out(conn, endpoint_id, now)
        if not claimed:
            return 0
        try:
            return self._deliver(endpoint_id).delivered
        except Exception:
            with self._engine.begin() as conn:  # let the next round (or process) go on
                conn.execute(
                    endpoints.update().where(endpoints.c.id == endpoint_id).values(lease_until=None)
                )
            raise

    def _fan_out(self, conn: sa.Connection, endpoint_id: str, now: datetime) -> None:
        row = conn.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id)).one()
        endpoint = _endpoint_view(row)
        fresh = committed_prefix(
            conn.execute(
                sa.select(events).where(events.c.id > row.cursor).order_by(events.c.id).limit(5000)
            ).all(),
            row.cursor,
            now,
        )
        if not fresh:
            return
        replayed = set(  # a replay may have queued some of them already
            conn.execute(
                sa.select(deliveries.c.event).where(
                    deliveries.c.endpoint_id == endpoint_id,
                    deliveries.c.event > row.cursor,
                )
            ).scalars()
        )
        rows = [
            {
                "endpoint_id": endpoint_id,
                "event": e.id,
                "key": e.key,
                "state": "pending",
                "attempts": 0,
                "next_at": now,
            }
            for e in fresh
            if _matches(endpoint, e) and e.id not in replayed
        ]
        if rows:
            conn.execute(deliveries.insert(), rows)
        conn.execute(
            endpoints.update().where(endpoints.c.id == endpoint_id).values(cursor=fresh[-1].id)
        )

    def _deliver(self, endpoint_id: str) -> _Round:
        done = _Round()
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id)).one()
            pending = conn.execute(
                sa.select(deliveries, events.c.event_id, events.c.type, events.c.occurred_at)
                .add_columns(events.c.data, events.c.personal)
                .join(events, events.c.id == deliveries.c.event)
                .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.state == "pending")
                .order_by(deliveries.c.event)
                .limit(_BATCH)
            ).all()
        if not pending:
            self._finish(row, done)
            return done
        now = self._clock()
        secrets = [
            s["secret"]
            for s in row.secrets
            if s["until"] is None or datetime.fromisoformat(s["until"]) > now
        ]
        try:
            for item in pending:
                if item.key in done.blocked:
                    continue
                if (_utc(item.next_at) or now) > now:
                    done.blocked.add(item.key)
                    continue
                body = _payload(item, personal=row.personal_data)
                stop = self._attempt(row, item, body, secrets, done)
                if stop:
                    break
        finally:
            self._finish(row, done)
        return done

    def _finish(self, endpoint: Any, done: _Round) -> None:
        """Record the round's deliveries and release the endpoint, in one commit."""
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                endpoints.update().where(endpoints.c.id == endpoint.id).values(lease_until=None)
            )
            if not done.succeeded:
                return
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == sa.bindparam("delivery"))
                .values(
                    state="delivered",
                    attempts=sa.bindparam("tries"),
                    last_status=sa.bindparam("status"),
                    last_error="",
                    delivered_at=now,
                ),
                [
                    {"delivery": delivery, "tries": tries, "status": status}
                    for delivery, tries, status in done.succeeded
                ],
            )
            healthy = endpoint.failing_since is None and endpoint.paused_until is None
            if not healthy and not done.slowed:
                conn.execute(
                    endpoints.update()
                    .where(endpoints.c.id == endpoint.id)
                    .values(failing_since=None, paused_until=None)
                )

    def _attempt(
        self, endpoint: Any, item: Any, body: bytes, secrets: Sequence[str], done: _Round
    ) -> bool:
        """One attempt; True when nothing more should go to this endpoint in this round."""
        headers = signing.headers(
            secrets, msg_id=item.event_id, timestamp=int(self._wall()), body=body
        )
        try:
            answer = self._post(
                endpoint.url,
                body,
                headers,
                rules=self._rules,
                http_loopback=self._settings.http_loopback,
                timeout=self._settings.timeout,
                context=self._tls,
            )
        except TargetRefused as exc:
            self._disable(endpoint.id, f"target refused: {exc}")
            return True
        except OSError as exc:
            self._failed(endpoint, item, 0, f"{type(exc).__name__}: {exc}"[:500], slow=True)
            done.blocked.add(item.key)
            done.slowed = True
            return True
        status = answer.status
        if 200 <= status < 300:
            done.succeeded.append((item.id, item.attempts + 1, status))
            done.delivered += 1
            return False
        if status == 410:
            self._disable(endpoint.id, "the receiver answered 410 Gone")
            return True
        slow = status == 429 or status >= 500
        retry_after = answer.retry_after if status == 429 else None
        self._failed(endpoint, item, status, f"HTTP {status}", slow=slow, retry_after=retry_after)
        done.blocked.add(item.key)
        done.failed += 1
        done.slowed = done.slowed or slow
        return slow

    def _failed(
        self,
        endpoint: Any,
        item: Any,
        status: int,
        error: str,
        *,
        slow: bool,
        retry_after: float | None = None,
    ) -> None:
        now = self._clock()
        attempts = item.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
        if attempts > len(RETRY_SCHEDULE):
            values["state"] = "failed"
            next_at = now
        else:
            delay = RETRY_SCHEDULE[attempts - 1] * (0.8 + 0.4 * self._jitter())
            if retry_after is not None:
                delay = max(delay, min(timedelta(seconds=retry_after), _MAX_RETRY_AFTER))
            next_at = now + delay
            values["next_at"] = next_at
        log.warning(
            "webhook delivery failed",
            extra={
                "endpoint": endpoint.id,
                "event_id": item.event_id,
                "attempts": attempts,
                "error": error,
            },
        )
        with self._engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == item.id).values(**values))
            if slow:
                since = _utc(endpoint.failing_since) or now
                update: dict[str, Any] = {"failing_since": since, "paused_until": next_at}
                if now - since > RETRY_WINDOW:
                    update["disabled_at"] = now
                    update["disabled_reason"] = (
                        f"failing since {since.isoformat()} (longer than the retry window)"
                    )
                conn.execute(
                    endpoints.update().where(endpoints.c.id == endpoint.id).values(**update)
                )

    def _disable(self, endpoint_id: str, reason: str) -> None:
        log.warning("webhook endpoint disabled", extra={"endpoint": endpoint_id, "reason": reason})
        with self._engine.begin() as conn:
            conn.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(disabled_at=self._clock(), disabled_reason=reason[:500])
            )


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _endpoint_view(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        owner=row.owner,
        unit=row.unit,
        url=row.url,
        types=tuple(row.types),
        personal_data=row.personal_data,
        description=row.description,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        paused_until=row.paused_until,
    )


def _matches(endpoint: Endpoint, event: Any) -> bool:
    if event.endpoint_id is not None:
        return bool(event.endpoint_id == endpoint.id)
    if endpoint.types and event.type not in endpoint.types:
        return False
    return endpoint.unit in (event.unit, event.other_unit)


def _payload(item: Any, *, personal: bool) -> bytes:
    """The thin body: ``{"type", "timestamp", "data"}`` (the Standard Webhooks shape)."""
    data = dict(item.data)
    if personal:
        data.update(item.personal)
    data["event_id"] = item.event_id
    occurred = _utc(item.occurred_at) or datetime.now(UTC)
    body = {
        "type": item.type,
        "timestamp": occurred.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
