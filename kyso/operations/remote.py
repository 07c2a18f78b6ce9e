"""Remote signing: two-phase sessions signed by an official's key held by a provider.

Steps of a request: the provider's credential for the user (certificate and issuers) → one
two-phase session per document, prepared for that certificate (``TwoPhase.prepare``) → the
batch of ``data_to_sign`` hashes submitted for ONE approval → the request recorded and its
sessions moved OPEN → WAITING_APPROVAL with one ``signature.requested`` event each, in one
transaction. Then (at once for a CSC server, which answers synchronously; by :meth:`poll` for an
asynchronous provider) the answer settles it:

- approved: exactly one signature per hash (else the whole batch fails), every value verified
  against the certificate before any is embedded; then each session is completed as a
  token-signed one would be (``TwoPhase.complete_remote``: time-stamp, DSS, store, catalogue,
  ``signature.completed``). The request is ``completed`` when all are.
- rejected / expired (by the provider, or ``approval_seconds`` passed): the request and its
  sessions close with one ``signature.rejected`` / ``signature.expired`` event per session.

Everything is in the database: a service restarted while a request waits finds it with
:meth:`poll_waiting` and asks the provider again. A failed submission cancels the sessions it
prepared. Nothing half-signed is stored: a signed PDF is stored only once its signature is
complete (``TwoPhase``). Secrets stay inside the drivers (``signer.remote``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import audit
import signer
from kyso.app import Application
from kyso.authz import Identity
from kyso.config import Config, RemoteProviderConfig
from kyso.errors import ConfigError, FailedPrecondition, KysoError, NotFound, RequestInvalid
from kyso.operations.documents import DocumentSource
from kyso.operations.ledger import Staging
from kyso.operations.twophase import Completed, PrepareOrder, TwoPhase
from signer.remote import (
    Approval,
    BatchMismatch,
    CscProvider,
    CscSettings,
    RemoteProvider,
    SmartCaProvider,
    SmartCaSettings,
    Transaction,
)
from signer.twophase import (
    RemoteRequest,
    RemoteRequestNotFound,
    RemoteState,
    RemoteStore,
    SessionState,
    SigningSession,
    verify_signature_value,
)

__all__ = ["RemoteOutcome", "RemotePoller", "RemoteSigning", "remote_providers"]

log = logging.getLogger(__name__)


def _secret(name: str, provider: RemoteProviderConfig) -> str:
    """The provider's secret, read when needed (from its file or the environment)."""
    import os

    if provider.client_secret_file is not None:
        return provider.client_secret_file.read_text(encoding="utf-8").strip()
    value = os.environ.get(provider.client_secret_env, "")
    if not value:
        raise ConfigError(
            f"remote.{name}.client_secret_env: the variable {provider.client_secret_env} is unset"
        )
    return value


def remote_providers(config: Config) -> dict[str, RemoteProvider]:
    """A driver for every ``[remote.NAME]`` of the configuration."""
    providers: dict[str, RemoteProvider] = {}
    for name, p in config.remote.items():

        def secret(name: str = name, p: RemoteProviderConfig = p) -> str:
            return _secret(name, p)

        ca = str(p.ca_file) if p.ca_file else None
        if p.kind == "csc":
            providers[name] = CscProvider(
                CscSettings(
                    name=name,
                    base_url=p.url,
                    api_version=p.api_version,
                    client_id=p.client_id,
                    client_secret=secret,
                    grant=p.grant,
                    timeout=p.timeout_seconds,
                    ca_file=ca,
                )
            )
        else:
            providers[name] = SmartCaProvider(
                SmartCaSettings(
                    name=name,
                    base_url=p.url,
                    sp_id=p.client_id,
                    sp_password=secret,
                    multisign=p.multisign,
                    timeout=p.timeout_seconds,
                    ca_file=ca,
                )
            )
    return providers


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteOutcome:
    """A request as it stands, with what its completed sessions produced."""

    request: RemoteRequest
    completed: tuple[Completed, ...] = ()


class RemoteSigning:
    """Request, poll and list remote signatures (see the module docstring)."""

    def __init__(
        self,
        app: Application,
        two_phase: TwoPhase,
        providers: Mapping[str, RemoteProvider],
    ) -> None:
        self._app = app
        self._two_phase = two_phase
        self._providers = providers
        self._store = RemoteStore(app.engine, app.sessions)
        self._run = app.executors.io.run
        self._events = app.events

    @property
    def providers(self) -> Mapping[str, RemoteProvider]:
        return self._providers

    def _provider(self, name: str) -> tuple[RemoteProvider, RemoteProviderConfig]:
        provider = self._providers.get(name)
        settings = self._app.config.remote.get(name)
        if provider is None or settings is None:
            known = ", ".join(sorted(self._providers)) or "none"
            raise NotFound(f"no remote-signing provider {name!r} is configured (known: {known})")
        return provider, settings

    async def request(
        self,
        actor: Identity,
        *,
        provider_name: str,
        user: str,
        documents: Sequence[DocumentSource],
        description: str = "",
        level: signer.Level | None = None,
    ) -> RemoteOutcome:
        if not user:
            raise RequestInvalid("name the official's account at the provider", field="user")
        if not documents:
            raise RequestInvalid("give at least one document to sign", field="documents")
        provider, settings = self._provider(provider_name)
        credential = await self._run(provider.credential, user)
        if len(documents) > credential.multisign and settings.kind != "csc":
            raise RequestInvalid(
                f"{len(documents)} documents exceed the {credential.multisign} one approval "
                f"of {provider_name!r} covers; send them in smaller batches",
                field="documents",
            )
        sessions: list[SigningSession] = []
        for document in documents:
            sessions.append(
                await self._two_phase.prepare(
                    actor,
                    PrepareOrder(
                        document=document,
                        certificate=credential.certificate,
                        chain=credential.chain,
                        level=level or signer.Level(settings.level),
                        title=description or document.filename,
                    ),
                )
            )
        text = description or f"kyso: {len(sessions)} văn bản cần ký"
        try:
            transaction = await self._run(
                provider.submit, user, credential, [s.data_to_sign for s in sessions], text
            )
        except BaseException:
            for session in sessions:
                await asyncio.shield(
                    self._two_phase.cancel(actor, session.id, reason="remote request failed")
                )
            raise
        now = datetime.now(UTC)
        request = RemoteRequest(
            id=secrets.token_hex(16),
            provider=provider_name,
            user_id=user,
            credential_id=credential.id,
            reference=transaction.reference,
            state=RemoteState.WAITING,
            session_ids=tuple(s.id for s in sessions),
            requester=actor.name,
            unit_code=actor.unit,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.approval_seconds),
        )
        events = [
            self._session_event(audit.EventType.SIGNATURE_REQUESTED, actor, request, session)
            for session in sessions
        ]
        staging = Staging()
        await self._run(self._store.create, request, now=now, journal=staging.journal(*events))
        await self._events.settled(staging)
        if transaction.approval is not Approval.PENDING:
            return await self._settle(actor, request, transaction)
        return RemoteOutcome(request=request)

    async def poll(self, actor: Identity, request_id: str) -> RemoteOutcome:
        """Ask the provider about a waiting request and act on the answer."""
        request = await self._get(request_id)
        if request.state is not RemoteState.WAITING:
            return RemoteOutcome(request=request)
        provider, _ = self._provider(request.provider)
        if datetime.now(UTC) >= request.expires_at:
            transaction = Transaction(
                reference=request.reference, approval=Approval.EXPIRED, reason="no approval in time"
            )
        elif provider.answers_at_submit:
            # settled by the process that submitted it (or, if that one stopped, expired in time)
            return RemoteOutcome(request=request)
        else:
            transaction = await self._run(provider.status, request.user_id, request.reference)
        if transaction.approval is Approval.PENDING:
            return RemoteOutcome(request=request)
        return await self._settle(actor, request, transaction)

    async def poll_waiting(self, actor: Identity) -> list[RemoteOutcome]:
        """Poll every waiting request (after a restart, or from a periodic task)."""
        waiting = await self._run(self._store.list, state=RemoteState.WAITING)
        return [await self.poll(actor, request.id) for request in waiting]

    async def wait(
        self, actor: Identity, request_id: str, *, interval: float | None = None
    ) -> RemoteOutcome:
        """Poll until the request leaves ``waiting`` (every ``poll_seconds`` of its provider)."""
        while True:
            outcome = await self.poll(actor, request_id)
            if outcome.request.state is not RemoteState.WAITING:
                return outcome
            _, settings = self._provider(outcome.request.provider)
            await asyncio.sleep(interval if interval is not None else settings.poll_seconds)

    async def list(self, *, state: RemoteState | None = None) -> list[RemoteRequest]:
        return await self._run(self._store.list, state=state)

    async def _get(self, request_id: str) -> RemoteRequest:
        try:
            return await self._run(self._store.get, request_id)
        except RemoteRequestNotFound as exc:
            raise NotFound(str(exc)) from exc

    async def _settle(
        self, actor: Identity, request: RemoteRequest, transaction: Transaction
    ) -> RemoteOutcome:
        if transaction.approval is Approval.REJECTED:
            return await self._close(actor, request, RemoteState.REJECTED, transaction.reason)
        if transaction.approval is Approval.EXPIRED:
            return await self._close(actor, request, RemoteState.EXPIRED, transaction.reason)
        sessions = [await self._run(self._app.sessions.get, i) for i in request.session_ids]
        # The whole batch or nothing: count, then every value, before anything is embedded.
        try:
            if len(transaction.signatures) != len(sessions):
                raise BatchMismatch(
                    f"the provider returned {len(transaction.signatures)} signatures for "
                    f"{len(sessions)} documents"
                )
            for session, value in zip(sessions, transaction.signatures, strict=True):
                verify_signature_value(session, value)
        except (BatchMismatch, signer.SigningError) as exc:
            await self._close(actor, request, RemoteState.FAILED, str(exc))
            raise FailedPrecondition(
                f"remote request {request.id} failed as a whole: {exc}"
            ) from exc
        done: list[Completed] = []
        elsewhere = False
        for session, value in zip(sessions, transaction.signatures, strict=True):
            if session.state is SessionState.WAITING_APPROVAL:
                try:
                    done.append(await self._two_phase.complete_remote(actor, session, value))
                except FailedPrecondition:
                    # claimed by another process (the server's poller, or a command's wait)
                    elsewhere = True
        if elsewhere:
            # that process closes the request; a later poll here finds it settled
            return RemoteOutcome(request=await self._get(request.id), completed=tuple(done))
        await self._run(
            self._store.close, request, state=RemoteState.COMPLETED, now=datetime.now(UTC)
        )
        return RemoteOutcome(request=await self._get(request.id), completed=tuple(done))

    async def _close(
        self, actor: Identity, request: RemoteRequest, state: RemoteState, reason: str
    ) -> RemoteOutcome:
        event_type = (
            audit.EventType.SIGNATURE_EXPIRED
            if state is RemoteState.EXPIRED
            else audit.EventType.SIGNATURE_REJECTED
        )
        sessions_to = (
            SessionState.EXPIRED if state is RemoteState.EXPIRED else SessionState.REJECTED
        )
        sessions = [await self._run(self._app.sessions.get, i) for i in request.session_ids]
        events = [
            self._session_event(event_type, actor, request, s, reason=reason)
            for s in sessions
            if s.state is SessionState.WAITING_APPROVAL
        ]
        staging = Staging()
        await self._run(
            self._store.close,
            request,
            state=state,
            now=datetime.now(UTC),
            reason=reason,
            sessions_to=sessions_to,
            journal=staging.journal(*events),
        )
        await self._events.settled(staging)
        return RemoteOutcome(request=await self._get(request.id))

    def _session_event(
        self,
        event_type: audit.EventType,
        actor: Identity,
        request: RemoteRequest,
        session: SigningSession,
        *,
        reason: str = "",
    ) -> audit.Event:
        details = {
            "session": session.id,
            "remote_request": request.id,
            "provider": request.provider,
            "user": request.user_id,
            "certificate_sha256": session.certificate_sha256,
        }
        if reason:
            details["reason"] = reason[:500]
        return self._events.event(
            event_type,
            actor=actor,
            unit=request.unit_code,
            document_sha256=session.document_sha256,
            refs=(session.prepared_ref,),
            details=details,
        )


class RemotePoller:
    """Moves waiting requests on without anyone running ``kyso remote poll`` (``kyso serve``
    starts one when ``[remote.*]`` providers are configured).

    Every ``tick`` seconds it reads the WAITING requests from the database (so it picks up what
    another process created, and what waited across a restart) and asks the provider about
    each one that is due. A request still pending, or whose provider failed, is asked again
    after an interval that starts at the provider's ``poll_seconds`` and doubles up to
    ``max_interval``; ``approval_seconds`` bounds it all (an overdue request is closed EXPIRED
    without asking). The poller acts as the client that made the request. A failure is logged
    (never with a secret: the drivers' errors hold none) and never stops the loop.
    """

    def __init__(
        self,
        remote: RemoteSigning,
        config: Config,
        *,
        tick: float | None = None,
        max_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remote = remote
        self._config = config
        self._tick = tick or max(
            0.05, min((p.poll_seconds for p in config.remote.values()), default=2.0)
        )
        self._max_interval = max_interval
        self._clock = clock
        self._due: dict[str, tuple[float, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> list[RemoteOutcome]:
        """One round: poll every waiting request that is due; the requests settled."""
        waiting = await self._remote.list(state=RemoteState.WAITING)
        self._due = {k: v for k, v in self._due.items() if k in {r.id for r in waiting}}
        settled: list[RemoteOutcome] = []
        for request in waiting:
            now = self._clock()
            provider = self._config.remote.get(request.provider)
            first = provider.poll_seconds if provider is not None else self._max_interval
            due, interval = self._due.get(request.id, (now, first))
            if now < due:
                continue
            try:
                outcome = await self._remote.poll(self._actor(request), request.id)
            except (KysoError, signer.SigningError) as exc:
                log.warning(
                    "remote request not advanced",
                    extra={"remote_request": request.id, "error": str(exc)[:300]},
                )
                outcome = None
            if outcome is not None and outcome.request.state is not RemoteState.WAITING:
                self._due.pop(request.id, None)
                settled.append(outcome)
                continue
            self._due[request.id] = (now + interval, min(interval * 2, self._max_interval))
        return settled

    def _actor(self, request: RemoteRequest) -> Identity:
        client = self._config.clients.get(request.requester)
        roles = frozenset(client.roles) if client is not None else frozenset()
        return Identity(name=request.requester, unit=request.unit_code, roles=roles)

    async def _loop(self) -> None:
        while True:
            try:
                for outcome in await self.run_once():
                    log.info(
                        "remote request settled",
                        extra={
                            "remote_request": outcome.request.id,
                            "state": outcome.request.state.value,
                        },
                    )
            except Exception:
                log.exception("remote poller round failed")
            await asyncio.sleep(self._tick)
