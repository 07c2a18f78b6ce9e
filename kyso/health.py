"""Health per service, from the reachability of what each service needs and the load it is under.

A monitor task probes every dependency (database, storage, HSM tokens …) at an interval, in the
application's ``health`` pool (never shared with requests, so probes run when every other pool
is full), and sets each kyso.v1 service SERVING only while everything it needs answers and
none of the work pools it needs is saturated (``kyso.operations.running``: its oldest waiting
call has waited over ``[limits] saturated_after_seconds``). The overall status ("") is SERVING
only when every configured dependency answers and no pool is saturated, so a load balancer
stops sending to a server that cannot keep up. A service whose dependency is not configured at
all (no keys on a hub) stays NOT_SERVING. A dependency that comes back, or a pool that drains,
turns its services SERVING again without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from kyso.operations.running import Executors

__all__ = ["FAILING_METADATA", "SERVICE_NEEDS", "ExplainingHealthServicer", "HealthMonitor"]

FAILING_METADATA = "kyso-unavailable"
"""Trailing metadata of a Check answer: one ``dependency: reason`` value per dependency down."""

log = logging.getLogger(__name__)

#: What each service needs to do its work; names are the keys of the probes given to the monitor.
#: Work pools (``kyso.operations.running.Executors``) are needs too, by name.
SERVICE_NEEDS: Mapping[str, frozenset[str]] = {
    "kyso.v1.SigningService": frozenset({"database", "storage", "hsm", "io", "pdf"}),
    "kyso.v1.VerificationService": frozenset({"io", "pdf", "xml"}),
    "kyso.v1.DocumentService": frozenset({"database", "storage", "io", "transfer"}),
    "kyso.v1.ExchangeService": frozenset({"database", "storage", "io", "xml"}),
    "kyso.v1.DirectoryService": frozenset({"database", "io"}),
    "kyso.v1.ArchiveService": frozenset({"database", "storage", "io"}),
    "kyso.v1.AuditService": frozenset({"database", "io"}),
}

Probe = Callable[[], None]
"""Returns when the dependency answers; raises when it does not."""


class ExplainingHealthServicer(HealthServicer):  # type: ignore[misc]
    """The standard health service, whose Check answer also says in trailing metadata
    (:data:`FAILING_METADATA`) which dependency is down and why, so ``kyso health`` can tell
    an operator. Reasons are the probe's one-line message, at most 200 characters."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: Callable[[], Mapping[str, str]] = dict

    async def Check(  # noqa: N802 (the gRPC method's name)
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        response = await super().Check(request, context)
        failing = self.failing()
        if failing:
            context.set_trailing_metadata(
                tuple(
                    (FAILING_METADATA, " ".join(f"{name}: {reason}".split())[:200])
                    for name, reason in sorted(failing.items())
                )
            )
        return response


class HealthMonitor:
    def __init__(
        self,
        servicer: HealthServicer,
        probes: Mapping[str, Probe],
        interval: float,
        *,
        executors: Executors,
        after_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._after_check = after_check
        self._servicer = servicer
        self._probes = dict(probes)
        self._interval = interval
        self._executors = executors
        self._failing: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def failing(self) -> Mapping[str, str]:
        """Dependencies that did not answer at the last check, with the reason."""
        return dict(self._failing)

    async def check_once(self) -> None:
        failing: dict[str, str] = {}
        limit = max(5.0, self._interval * 5)
        for name, probe in self._probes.items():
            try:
                # A dependency that does not answer is down, and must not stall the monitor.
                await asyncio.wait_for(self._executors.health.run(probe), limit)
            except TimeoutError:
                failing[name] = f"did not answer within {limit:g} s"
            except Exception as exc:  # a probe failing is the information we collect
                failing[name] = f"{type(exc).__name__}: {exc}"
        for pool in self._executors:
            if pool.saturated:
                failing[pool.name] = (
                    f"saturated: {pool.running} running, {pool.waiting} waiting, the oldest "
                    f"for {pool.longest_wait():.1f} s"
                )
        for name in failing.keys() - self._failing.keys():
            log.warning(
                "dependency unavailable", extra={"dependency": name, "reason": failing[name]}
            )
        for name in self._failing.keys() - failing.keys():
            log.info("dependency recovered", extra={"dependency": name})
        self._failing = failing
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        for service, needs in SERVICE_NEEDS.items():
            # A need with no probe is not configured here (e.g. no keys on a hub): the service
            # cannot work, but that is the deployment's shape, not an outage of the server.
            known = self._probes.keys() | {pool.name for pool in self._executors}
            down = any(n in failing or n not in known for n in needs)
            await self._servicer.set(service, not_serving if down else serving)
        await self._servicer.set("", not_serving if failing else serving)
        if self._after_check is not None:
            try:
                await self._after_check()
            except Exception:  # what is watched must not stop the health checks
                log.exception("updating the status metrics failed")

    @property
    def probed(self) -> frozenset[str]:
        """The dependencies this monitor probes."""
        return frozenset(self._probes)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._servicer.enter_graceful_shutdown()
