"""The one interceptor every RPC passes through: request id, authentication, authorisation,
admission (``kyso.admission``: per-client limits, idle client streams), error mapping, metrics
and the access log.

Invariants:
- A kyso.v1 RPC runs only after its caller is authenticated and authorised (``kyso.authz``).
- Whatever a handler raises leaves as a mapped status (``kyso.errors.to_status``); unexpected
  errors are logged with their traceback and the request id, and reach the client as INTERNAL
  with the request id only.
- The caller's identity is available to servicers through :func:`current_identity`.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import grpc
from grpc import aio

from kyso.admission import Admission, Rate, Ticket, idle_bounded
from kyso.authz import PUBLIC_SERVICES, Authenticator, Identity, authorize
from kyso.config import LimitsConfig
from kyso.errors import (
    AuthenticationError,
    OverShare,
    PermissionDenied,
    StatusInfo,
    StreamIdle,
    to_status,
)
from kyso.metrics import Metrics
from kyso.operations.running import work_owner

__all__ = ["KysoInterceptor", "current_identity", "current_request_id"]

log = logging.getLogger(__name__)

_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("kyso_identity")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("kyso_request_id", default="")


def current_identity() -> Identity:
    """The authenticated caller of the RPC being served."""
    return _identity.get()


def current_request_id() -> str:
    return _request_id.get()


DeniedHook = Callable[[Identity, str, str], Awaitable[None]]
"""Called with (identity, method, reason) when a caller is refused: not authenticated (the
identity is then ``unauthenticated <peer address>``, without roles) or not authorised."""


class KysoInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        authenticator: Authenticator,
        metrics: Metrics,
        *,
        limits: LimitsConfig,
        rates: Mapping[str, Rate] | None = None,
        on_denied: DeniedHook | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._metrics = metrics
        self._admission = Admission(limits, rates=rates)
        self._idle_seconds = limits.stream_idle_seconds
        self._on_denied = on_denied

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.split("/")[1] in PUBLIC_SERVICES:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary, client_streaming=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, handler.stream_stream, client_streaming=True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(
        self, method: str, behaviour: Callable[..., Any], *, client_streaming: bool = False
    ) -> Callable[..., Any]:
        async def run(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            started = self._begin(method)
            code = grpc.StatusCode.OK
            ticket: Ticket | None = None
            try:
                ticket = self._admit(method, context, streaming=client_streaming)
                if client_streaming:
                    request = idle_bounded(request, self._idle_seconds)
                result = behaviour(request, context)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:  # every error leaves through the one mapping table
                status = await self._status(method, exc, context)
                code = status.code
                await _abort(context, status)
            finally:
                if ticket is not None:
                    ticket.release()
                self._end(method, started, code)

        return run

    def _streaming(
        self, method: str, behaviour: Callable[..., Any], *, client_streaming: bool = False
    ) -> Callable[..., Any]:
        # A coroutine that writes each message itself (rather than an async generator that
        # yields them) so that a write the client does not take is bounded in time.
        async def run(request: Any, context: aio.ServicerContext[Any, Any]) -> None:
            started = self._begin(method)
            code = grpc.StatusCode.OK
            ticket: Ticket | None = None
            try:
                ticket = self._admit(method, context, streaming=True)
                if client_streaming:
                    request = idle_bounded(request, self._idle_seconds)
                result = behaviour(request, context)
                if inspect.isawaitable(result):
                    result = await result
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        await self._write(context, item)
                else:
                    for item in result:
                        await self._write(context, item)
            except aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:  # every error leaves through the one mapping table
                status = await self._status(method, exc, context)
                code = status.code
                await _abort(context, status)
            finally:
                if ticket is not None:
                    ticket.release()
                self._end(method, started, code)

        return run

    async def _write(self, context: aio.ServicerContext[Any, Any], message: Any) -> None:
        """Send one message of a server stream; a client that takes nothing for
        ``stream_idle_seconds`` (a stalled reader holding the call) ends the stream."""
        try:
            await asyncio.wait_for(context.write(message), self._idle_seconds)
        except TimeoutError:
            raise StreamIdle(
                f"the client read nothing for {self._idle_seconds:g} s "
                "([limits] stream_idle_seconds); the stream was ended"
            ) from None

    def _begin(self, method: str) -> float:
        _request_id.set(uuid.uuid4().hex[:16])
        self._metrics.in_flight.labels(method).inc()
        return time.perf_counter()

    def _admit(
        self, method: str, context: aio.ServicerContext[Any, Any], *, streaming: bool
    ) -> Ticket:
        identity = self._authenticate(context)
        _identity.set(identity)
        work_owner.set(identity.name)  # the pools share their threads fairly between clients
        authorize(identity, method)
        return self._admission.admit(identity.name, streaming=streaming)

    def _authenticate(self, context: aio.ServicerContext[Any, Any]) -> Identity:
        auth = context.auth_context()
        certificates = list(auth.get("x509_pem_cert", ())) if auth else []
        der = None
        if certificates:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            der = x509.load_pem_x509_certificate(certificates[0]).public_bytes(Encoding.DER)
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                text = value if isinstance(value, str) else value.decode()
                scheme, _, token = text.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise AuthenticationError("the authorization header must be 'Bearer <token>'")
                token = token.strip()
                break
        identity = self._authenticator.identify(certificate_der=der, token=token)
        return replace(
            identity,
            certificate_sha256=hashlib.sha256(der).hexdigest() if der is not None else "",
            loopback=_is_loopback(context.peer()),
        )

    async def _status(
        self, method: str, exc: Exception, context: aio.ServicerContext[Any, Any]
    ) -> StatusInfo:
        if isinstance(exc, OverShare):
            await self._admission.hold_refusal(exc, context.time_remaining())
        request_id = _request_id.get()
        status = to_status(exc, request_id=request_id)
        peer = context.peer()
        if isinstance(exc, AuthenticationError | PermissionDenied):
            # Who was refused and from where: the address is what a firewall rule needs.
            identity = _identity.get(None)
            log.warning(
                "refused",
                extra={
                    "rpc": method,
                    "request_id": request_id,
                    "peer": peer,
                    "identity": identity.name if identity else "-",
                    "code": status.code.name,
                    "reason": status.message,
                },
            )
        if status.code is grpc.StatusCode.INTERNAL:
            log.error(
                "unexpected error", exc_info=exc, extra={"rpc": method, "request_id": request_id}
            )
        identity = _identity.get(None)
        if isinstance(exc, AuthenticationError):
            identity = Identity(name=_anonymous(context), unit="", roles=frozenset())
        if isinstance(exc, PermissionDenied | AuthenticationError) and identity and self._on_denied:
            try:
                await self._on_denied(identity, method, str(exc))
            except Exception:  # the refusal stands even if the ledger cannot take it now
                log.exception("could not record a refusal", extra={"request_id": request_id})
        return status

    def _end(self, method: str, started: float, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - started
        self._metrics.in_flight.labels(method).dec()
        self._metrics.requests.labels(method, code.name).inc()
        self._metrics.latency.labels(method).observe(elapsed)
        identity = _identity.get(None)
        log.info(
            "rpc",
            extra={
                "request_id": _request_id.get(),
                "rpc": method,
                "identity": identity.name if identity else "-",
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _anonymous(context: aio.ServicerContext[Any, Any]) -> str:
    """An unauthenticated caller, named by its address without the port (one per host)."""
    peer = context.peer() or "unknown"
    host = peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
    return f"unauthenticated {host}"


async def _abort(context: aio.ServicerContext[Any, Any], status: StatusInfo) -> None:
    trailing: tuple[tuple[str, str | bytes], ...] = (("kyso-request-id", _request_id.get()),)
    if status.details is not None:
        trailing += (("grpc-status-details-bin", status.details),)
    await context.abort(status.code, status.message, trailing_metadata=trailing)


def _is_loopback(peer: str | None) -> bool:
    """Whether gRPC's peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``,
    ``unix:…``) names this machine."""
    if not peer:
        return False
    kind, _, rest = peer.partition(":")
    if kind == "unix":
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
