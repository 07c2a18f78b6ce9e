"""``WorkerPool``: worker processes that serve requests, supervised, with a watchdog.

Why processes: the work is CPU-bound Python, or a library that must not be shared between
threads (PKCS#11 modules), or untrusted input that may exhaust memory. Each worker is a fresh
interpreter (see ``workers.child``) that the pool starts, feeds over one socket pair
(``workers.wire``) and supervises:

- **start**: every worker must report ready within ``start_timeout`` (``first_alone``: the first
  one alone before the others, so that a login is tried once, not by every worker at once);
  ``on_start`` then checks the pool before it takes requests. A start error of a class in
  ``retry_start`` is tried again with backoff until ``start_timeout``; any other is raised at
  once (after stopping what was started).
- **dispatch**: each request goes to the least busy serving worker. Without
  ``max_in_flight`` a worker may hold many requests (it answers in order, in batches); with it,
  requests beyond the workers' capacity wait in the pool until a worker is free.
- **watchdog**: a worker that has worked on its oldest request for longer than the request's
  timeout (since it was written, or since the worker's previous answer, whichever is later) is
  killed. That request fails with ``WorkerTimedOut``, the others it held with ``WorkerLost``;
  requests on other workers are not touched. Deadlines are checked when due (at most
  ``_PERIOD`` late for a request queued behind others on a pipelined worker).
- **supervision**: a worker that dies, is killed, or retires (see ``workers.child``) is replaced
  with bounded exponential backoff: at once when it was lost while working on a request or
  after serving ``backoff[1]`` seconds, else after ``backoff[0]``, doubling up to ``backoff[1]``
  (a worker that cannot start, or dies on its own, does not spin). ``restart="pool"``: workers
  share their fate — the loss of one takes the whole pool DOWN (every request in flight fails,
  every worker is stopped) and the pool restarts together, ``on_start`` included. An error of a
  class in ``permanent`` is never retried: the pool is FAILED until its owner makes a new one.
- **heartbeat**: optionally, a request of the given kind to every serving worker at an
  interval, so that a worker whose resource is gone is noticed without traffic.

Invariants: every request submitted is answered exactly once — by its worker, or with one of
``workers.errors``' errors; a pool never runs more than ``workers`` processes; ``close`` stops
them all and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from workers import wire
from workers._channel import Call, Channel, ChannelSettings
from workers.errors import PoolUnavailable, WorkerLost, WorkerStartFailed

__all__ = ["Heartbeat", "PoolSpec", "PoolState", "StartCheck", "WorkerPool"]

_log = logging.getLogger("workers")

_PERIOD = 1.0
"""The supervisor looks at its workers at least this often."""

_Queued = tuple[Call, int, int, bytes, "bytes | None", "asyncio.AbstractEventLoop | None"]
"""A request waiting for a free worker: the call, kind, arg, payload, data and loop."""


class PoolState(Enum):
    STARTING = "starting"
    SERVING = "serving"
    DOWN = "down"
    """Every worker stopped (``restart="pool"``); being restarted with backoff."""
    FAILED = "failed"
    """A permanent error; never retried."""
    CLOSED = "closed"


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """Send a request of ``kind`` (empty payload) to every serving worker every ``interval``
    seconds; its answer is dropped, but a failure that retires the worker is acted on."""

    kind: int
    interval: float


@dataclass(frozen=True, kw_only=True)
class PoolSpec:
    """How a pool's workers are started, fed and supervised (see the module docstring).

    ``entry`` (``"package.module:function"``) runs in each worker with ``config`` (pickled over
    the socket: secrets may travel in it, never in argv) and returns a ``WorkerSetup``.
    ``request_timeout``: the default deadline of a request (``None``: none). ``memory_bytes``:
    the workers' address-space limit (RLIMIT_AS), set before they read any request.
    ``expected_errors``: failures of the workers' code that are the caller's business; others
    are logged here with the worker's traceback. ``environment``: ``"inherit"`` (the parent's
    variables) or ``"minimal"`` (only ``hardening.MINIMAL_ENVIRONMENT``: for workers that need
    no secret, so a PIN in an environment variable never reaches them).
    """

    name: str
    entry: str
    config: object = None
    workers: int
    start_timeout: float = 60.0
    request_timeout: float | None = None
    stop_grace: float = 5.0
    backoff: tuple[float, float] = (0.5, 30.0)
    restart: Literal["worker", "pool"] = "worker"
    first_alone: bool = False
    max_in_flight: int | None = None
    memory_bytes: int | None = None
    heartbeat: Heartbeat | None = None
    retry_start: tuple[type[BaseException], ...] = ()
    permanent: tuple[type[BaseException], ...] = ()
    expected_errors: tuple[type[BaseException], ...] = ()
    environment: Literal["inherit", "minimal"] = "inherit"
    on_note: Callable[[bytes], None] | None = None
    """Called with each note a worker sends before it answers (``workers.child.send_note``), on
    that worker's reader thread, in the order sent and before the answers that follow it; notes
    already written when a worker is killed still arrive."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"{self.name}: a pool needs at least one worker, not {self.workers}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"{self.name}: max_in_flight must be at least 1")


class StartCheck:
    """What ``on_start`` receives: every worker's ready value, and a way to send requests to
    the first worker (no other request reaches the pool until ``on_start`` returns)."""

    def __init__(self, *, ready: tuple[object, ...], first: Channel, timeout: float) -> None:
        self.ready = ready
        self._first = first
        self._timeout = timeout

    def call(self, *, kind: int, arg: int = 0, payload: bytes = b"") -> bytes:
        """The first worker's answer's payload (raises its error)."""
        call = Call(None, self._timeout)
        self._first.send(call, kind, arg, payload, None, None)
        answer, _ = call.wait(self._timeout)
        return answer


class _Slot:
    """One of the pool's places for a worker, and its restart backoff."""

    __slots__ = ("channel", "failures", "index", "next_attempt")

    def __init__(self, index: int) -> None:
        self.index = index
        self.channel: Channel | None = None
        self.failures = 0
        self.next_attempt: float | None = None


def _load(channel: Channel) -> int:
    return len(channel.pending)


class WorkerPool:
    """``spec.workers`` supervised worker processes (see the module docstring).

    The constructor returns once every worker is ready and ``on_start`` has passed, or raises
    the start error (the workers' own exception, or ``WorkerStartFailed``). Thread-safe and
    asyncio-friendly; ``close()`` (or ``with``) stops it.
    """

    def __init__(
        self, spec: PoolSpec, *, on_start: Callable[[StartCheck], None] | None = None
    ) -> None:
        self._spec = spec
        self._on_start = on_start
        self._settings = ChannelSettings(
            name=spec.name,
            start_timeout=spec.start_timeout,
            stop_grace=spec.stop_grace,
            expected_errors=spec.expected_errors,
            bounded=spec.max_in_flight is not None,
            minimal_environment=spec.environment == "minimal",
            on_note=spec.on_note,
        )
        self._boot = wire.Boot(entry=spec.entry, config=spec.config, memory_bytes=spec.memory_bytes)
        self._request_timeout = spec.request_timeout
        self._bounded = spec.max_in_flight is not None
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._state = PoolState.STARTING
        self._reason = "starting"
        self._failure: BaseException | None = None
        self._closed = False
        self._slots = [_Slot(i) for i in range(spec.workers)]
        self._serving: tuple[Channel, ...] = ()
        self._starting: set[Channel] = set()
        self._backlog: deque[_Queued] = deque()
        self._restart_failures = 0  # consecutive failed restarts of the whole pool (restart="pool")
        self._next_attempt = 0.0
        self._next_beat = math.inf
        # When the supervisor wakes next; a request due earlier wakes it (-inf: it is awake).
        self._next_wake = -math.inf
        try:
            self._install(self._start_with_retries())
        except BaseException:
            with self._lock:
                self._closed = True
                self._state = PoolState.CLOSED
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"{spec.name} supervisor", daemon=True
        )
        self._supervisor.start()

    # -- requests -------------------------------------------------------------------------

    def submit(
        self,
        *,
        kind: int,
        arg: int = 0,
        payload: bytes = b"",
        data: bytes | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float | None = None,
    ) -> Call:
        """Send a request to the least busy worker; wait with ``Call.wait`` (no ``loop``) or
        ``await Call.wait_async()`` (``loop``: the running loop, which then does the writes).

        ``timeout`` overrides the pool's ``request_timeout``. Raises ``PoolUnavailable`` when
        no worker can take it, ``WorkerLost`` when the chosen one just went away.
        """
        if timeout is None:
            timeout = self._request_timeout
        if self._state is not PoolState.SERVING:
            raise self._unavailable()
        call = Call(loop, timeout)
        if self._bounded:
            self._submit_bounded((call, kind, arg, payload, data, loop))
            return call
        serving = self._serving
        if not serving:
            raise PoolUnavailable(
                f"{self._spec.name}: no worker is running (they are being restarted); try again"
                " shortly"
            )
        channel = serving[0] if len(serving) == 1 else min(serving, key=_load)
        channel.send(call, kind, arg, payload, data, loop)
        if timeout is not None and call.sent + timeout < self._next_wake:
            self._poke()
        return call

    # -- facts ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._spec.workers

    @property
    def state(self) -> PoolState:
        return self._state

    @property
    def reason(self) -> str:
        """Why the pool is not serving ("" when it is)."""
        return self._reason

    def pids(self) -> tuple[int | None, ...]:
        """Per worker: its process id, or None while it is being replaced."""
        with self._lock:
            return tuple(
                slot.channel.pid if slot.channel is not None and slot.channel.serving else None
                for slot in self._slots
            )

    # -- life -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker; requests not finished fail with ``PoolUnavailable``. Idempotent."""
        name = self._spec.name
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._state = PoolState.CLOSED
            self._reason = "closed"
            channels = [slot.channel for slot in self._slots if slot.channel is not None]
            channels.extend(self._starting)
            for slot in self._slots:
                slot.channel = None
                slot.next_attempt = None
            self._set_serving(())
            backlog = list(self._backlog)
            self._backlog.clear()
            self._wake.notify_all()
        for queued in backlog:
            queued[0].fail(PoolUnavailable(f"{name} is closed", closed=True))

        def closed() -> BaseException:
            return PoolUnavailable(f"{name} was closed before the request finished", closed=True)

        for channel in channels:
            channel.begin_stop(closed)
        for channel in channels:
            channel.end_stop()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals: start -----------------------------------------------------------------

    def _start_with_retries(self) -> list[Channel]:
        spec = self._spec
        deadline = time.monotonic() + spec.start_timeout
        failures = 0
        while True:
            try:
                return self._start_all()
            except spec.retry_start as exc:
                failures += 1
                delay = self._delay(failures)
                if time.monotonic() + delay > deadline:
                    raise
                _log.warning("%s could not start yet (%s); retrying", spec.name, exc)
                time.sleep(delay)

    def _start_all(self) -> list[Channel]:
        """Start every worker and run ``on_start``; stop them all on any failure."""
        spec = self._spec
        launched: list[Channel] = []
        try:
            first = self._launch(0, launched)
            if spec.first_alone:
                self._await(first)
            for index in range(1, spec.workers):
                self._launch(index, launched)
            for channel in launched:
                self._await(channel)
            if self._on_start is not None:
                self._on_start(
                    StartCheck(
                        ready=tuple(c.ready_value for c in launched),
                        first=first,
                        timeout=spec.request_timeout or spec.start_timeout,
                    )
                )
        except BaseException:
            for channel in launched:
                channel.begin_stop(lambda: WorkerLost(f"{spec.name}: start abandoned"))
            for channel in launched:
                channel.end_stop()
            raise
        finally:
            with self._lock:
                self._starting.difference_update(launched)
        return launched

    def _launch(self, index: int, launched: list[Channel]) -> Channel:
        channel = Channel(self, self._settings, index, self._boot)
        with self._lock:
            if self._closed:  # closed while the supervisor restarts the pool
                raise PoolUnavailable(f"{self._spec.name} is closed", closed=True)
            self._starting.add(channel)
        launched.append(channel)
        channel.start()
        return channel

    def _await(self, channel: Channel) -> None:
        channel.ready.wait()  # bounded: the handshake has the start timeout
        if channel.start_error is not None:
            raise channel.start_error

    def _install(self, channels: list[Channel]) -> None:
        """Put started workers in service (the pool serves from now on)."""
        with self._lock:
            for channel in channels:
                self._slots[channel.slot].channel = channel
                channel.installed = True
            self._set_serving(tuple(c for c in channels if not c.dead))
            self._state = PoolState.SERVING
            self._reason = ""
            if self._spec.heartbeat is not None:
                self._next_beat = time.monotonic() + self._spec.heartbeat.interval
            gone = [c for c in channels if c.dead]
        for channel in gone:  # died between its start and now: handled as any loss
            self._channel_lost(channel)

    # -- internals: the channels' events (from their reader threads) ------------------------

    def _channel_ready(self, channel: Channel) -> None:
        with self._lock:
            if not channel.installed or self._slots[channel.slot].channel is not channel:
                return  # started by _start_all, which waits for it itself
            self._set_serving((*self._serving, channel))
        _log.info("%s restarted (pid %s)", channel.name, channel.pid)
        self._dispatch_backlog()

    def _channel_start_failed(self, channel: Channel, error: BaseException) -> None:
        spec = self._spec
        with self._lock:
            slot = self._slots[channel.slot]
            if not channel.installed or slot.channel is not channel:
                return
            slot.channel = None
            if self._closed:
                return
            permanent = isinstance(error, spec.permanent)
            if not permanent:
                slot.failures += 1
                slot.next_attempt = time.monotonic() + self._delay(slot.failures)
            idle = not self._serving
        _log.error("%s could not restart: %s", channel.name, error)
        if permanent:
            self._fail(error)
        elif idle:
            # Nobody could take what waits now; callers hear it rather than wait blind.
            self._fail_backlog(f"{spec.name}: no worker could be started ({error})")
        self._poke()

    def _channel_leaving(self, channel: Channel) -> None:
        """The worker retires or was killed by the watchdog: send it nothing more."""
        if self._spec.restart == "pool":
            self._take_down(channel.end_reason, busy=True)
            return
        with self._lock:
            self._set_serving(tuple(c for c in self._serving if c is not channel))

    def _channel_answered(self, channel: Channel) -> None:
        if self._backlog:
            self._dispatch_backlog()

    def _channel_lost(self, channel: Channel) -> None:
        spec = self._spec
        delay = 0.0
        with self._lock:
            if not channel.installed or channel.loss_handled or channel.stopping:
                return
            channel.loss_handled = True
            slot = self._slots[channel.slot]
            if slot.channel is channel:
                slot.channel = None
            self._set_serving(tuple(c for c in self._serving if c is not channel))
            if self._closed:
                return
            if spec.restart == "worker":
                now = time.monotonic()
                if channel.busy_at_end or now - channel.ready_at >= spec.backoff[1]:
                    slot.failures = 0  # the work's doing, or after a long life: not a spin
                else:
                    slot.failures += 1
                delay = self._delay(slot.failures)
                slot.next_attempt = now + delay
        if spec.restart == "pool":
            self._take_down(channel.end_reason, busy=channel.busy_at_end)
            return
        level = logging.INFO if channel.retiring else logging.WARNING
        _log.log(level, "%s: %s; replacing it in %.1f s", spec.name, channel.end_reason, delay)
        self._poke()

    def _set_serving(self, channels: tuple[Channel, ...]) -> None:
        """Replace the serving set (under the lock); readers take it without the lock."""
        for channel in self._serving:
            channel.serving = False
        for channel in channels:
            channel.serving = True
        self._serving = channels

    # -- internals: faults ----------------------------------------------------------------

    def _take_down(self, reason: str, *, busy: bool) -> None:
        """``restart="pool"``: stop every worker; the supervisor restarts them together."""
        spec = self._spec
        with self._lock:
            if self._state is not PoolState.SERVING:
                return
            now = time.monotonic()
            self._state = PoolState.DOWN
            self._reason = reason
            served = min((c.ready_at for c in self._serving), default=now)
            if busy or now - served >= spec.backoff[1]:
                self._restart_failures = 0
            else:
                self._restart_failures += 1
            self._next_attempt = now + self._delay(self._restart_failures)
            channels = [slot.channel for slot in self._slots if slot.channel is not None]
            for slot in self._slots:
                slot.channel = None
            self._set_serving(())
        _log.warning("%s unavailable: %s", spec.name, reason)
        self._fail_backlog(f"{spec.name} became unavailable: {reason}")
        self._stop_all(channels, f"{spec.name} became unavailable ({reason})")
        self._poke()

    def _fail(self, error: BaseException) -> None:
        """A permanent error: stop everything; the pool stays FAILED."""
        spec = self._spec
        with self._lock:
            if self._closed:
                return
            self._state = PoolState.FAILED
            self._reason = str(error)
            self._failure = error
            channels = [slot.channel for slot in self._slots if slot.channel is not None]
            for slot in self._slots:
                slot.channel = None
                slot.next_attempt = None
            self._set_serving(())
        _log.error("%s failed and will not be retried: %s", spec.name, error)
        self._fail_backlog(f"{spec.name} failed: {error}")
        self._stop_all(channels, f"{spec.name} failed ({error})")

    def _stop_all(self, channels: Sequence[Channel], why: str) -> None:
        def lost() -> BaseException:
            return WorkerLost(why)

        for channel in channels:
            channel.begin_stop(lost)
        for channel in channels:
            channel.end_stop()

    def _unavailable(self) -> PoolUnavailable:
        name, state = self._spec.name, self._state
        if state is PoolState.CLOSED:
            return PoolUnavailable(f"{name} is closed", closed=True)
        if state is PoolState.FAILED:
            return PoolUnavailable(f"{name} failed: {self._reason}", failure=self._failure)
        return PoolUnavailable(f"{name} is unavailable: {self._reason}")

    def _delay(self, failures: int) -> float:
        low, high = self._spec.backoff
        return 0.0 if failures <= 0 else min(low * 2.0 ** (failures - 1), high)

    # -- internals: bounded pools ---------------------------------------------------------

    def _submit_bounded(self, queued: _Queued) -> None:
        limit = self._spec.max_in_flight
        assert limit is not None
        with self._lock:
            if self._state is not PoolState.SERVING:
                raise self._unavailable()
            free = [c for c in self._serving if len(c.pending) < limit]
            if not free:
                if not any(s.channel or s.next_attempt is not None for s in self._slots):
                    raise PoolUnavailable(f"{self._spec.name}: no worker is running")
                self._backlog.append(queued)
                return
            self._send(min(free, key=_load), queued)

    def _dispatch_backlog(self) -> None:
        limit = self._spec.max_in_flight
        if limit is None:
            return
        with self._lock:
            while self._backlog:
                free = [c for c in self._serving if len(c.pending) < limit]
                if not free:
                    return
                queued = self._backlog.popleft()
                try:
                    self._send(min(free, key=_load), queued)
                except WorkerLost:
                    # That worker just went: the request waits for the next one.
                    self._backlog.appendleft(queued)
                    return

    def _send(self, channel: Channel, queued: _Queued) -> None:
        call, kind, arg, payload, data, loop = queued
        channel.send(call, kind, arg, payload, data, loop)
        if call.timeout is not None and call.sent + call.timeout < self._next_wake:
            self._wake.notify()

    def _fail_backlog(self, message: str) -> None:
        with self._lock:
            backlog = list(self._backlog)
            self._backlog.clear()
        for queued in backlog:
            queued[0].fail(PoolUnavailable(message))

    # -- internals: the supervisor --------------------------------------------------------

    def _poke(self) -> None:
        with self._wake:
            self._wake.notify()

    def _supervise(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                now = time.monotonic()
                wake = self._plan(now)
                if wake > now:
                    self._next_wake = wake
                    self._wake.wait(wake - now)
                    self._next_wake = -math.inf
                if self._closed:
                    return
            now = time.monotonic()
            self._watch(now)
            if self._spec.restart == "pool":
                if self._state is PoolState.DOWN and now >= self._next_attempt:
                    self._recover()
            else:
                self._restart_due(now)
            self._beat(now)

    def _plan(self, now: float) -> float:
        """When the supervisor has something to do next (under the lock)."""
        wake = now + _PERIOD
        for channel in self._serving:
            head = channel.head()
            if head is not None and head.timeout is not None:
                wake = min(wake, max(head.sent, channel.last_answer) + head.timeout)
        if self._spec.restart == "pool":
            if self._state is PoolState.DOWN:
                wake = min(wake, self._next_attempt)
        else:
            for slot in self._slots:
                if slot.next_attempt is not None:
                    wake = min(wake, slot.next_attempt)
        if self._state is PoolState.SERVING:
            wake = min(wake, self._next_beat)
        return wake

    def _watch(self, now: float) -> None:
        """Kill the workers that missed a deadline (the watchdog)."""
        for channel in self._serving:
            head = channel.head()
            if head is None or head.timeout is None:
                continue
            overdue = now >= max(head.sent, channel.last_answer) + head.timeout
            if overdue and channel.expire(head):
                _log.error("%s", channel.end_reason)

    def _restart_due(self, now: float) -> None:
        with self._lock:
            if self._closed or self._state is not PoolState.SERVING:
                return
            due: list[Channel] = []
            for slot in self._slots:
                attempt = slot.next_attempt
                if slot.channel is None and attempt is not None and now >= attempt:
                    slot.next_attempt = None
                    channel = Channel(self, self._settings, slot.index, self._boot)
                    channel.installed = True
                    slot.channel = channel
                    due.append(channel)
        for channel in due:
            try:
                channel.start()
            except WorkerStartFailed as exc:
                self._channel_start_failed(channel, exc)

    def _recover(self) -> None:
        """``restart="pool"``: start every worker again (runs on the supervisor)."""
        spec = self._spec
        try:
            channels = self._start_all()
        except Exception as exc:
            with self._lock:
                if self._closed:
                    return
                permanent = isinstance(exc, spec.permanent)
                if not permanent:
                    self._restart_failures += 1
                    self._next_attempt = time.monotonic() + self._delay(self._restart_failures)
                    self._reason = str(exc)
            if permanent:
                self._fail(exc)
            else:
                _log.warning("%s still unavailable: %s", spec.name, exc)
            return
        with self._lock:
            closed = self._closed
        if closed:
            self._stop_all(channels, f"{spec.name} is closed")
            return
        self._install(channels)
        _log.info("%s serving again with %d workers", spec.name, len(channels))

    def _beat(self, now: float) -> None:
        heartbeat = self._spec.heartbeat
        if heartbeat is None or self._state is not PoolState.SERVING or now < self._next_beat:
            return
        self._next_beat = now + heartbeat.interval
        for channel in self._serving:
            try:
                channel.send(Call(None, self._request_timeout), heartbeat.kind, 0, b"", None, None)
            except WorkerLost:
                continue  # that worker's end is being handled
