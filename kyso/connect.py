"""The kyso.v1 services over HTTP/JSON: the Connect protocol (PyPI ``connectrpc``) beside gRPC.

``POST /kyso.v1.<Service>/<Method>`` with ``Content-Type: application/json`` (or
``application/proto``) calls the RPC; server-streaming RPCs (Download, Receive, WatchEvents)
answer with Connect's enveloped stream (``application/connect+json``), and so does the
client-streaming Upload. docs/api.md ("HTTP/JSON") shows each call with curl.

Invariants:
- No second implementation: every call runs the very handlers the gRPC server runs — the
  servicers wrapped by the same :class:`kyso.interceptors.KysoInterceptor` instance — so
  authentication (bearer token or client certificate), authorisation, admission (a client's
  limits count its calls over both protocols), error mapping (``kyso.errors``), metrics, the
  access log and the ledger's refusal events are the gRPC ones. Only the transport differs:
  :class:`_CallContext` gives the interceptor what a gRPC context would (the headers as metadata,
  the TLS client certificate, the peer), and an abort becomes a :class:`ConnectError` with the
  same code, message and details (``google.rpc.BadRequest``, ``RetryInfo``).
- The same TLS as gRPC (``[tls]``): HTTPS with the server's certificate, client certificates
  required and checked against ``tls.client_ca`` when it is set; plain HTTP only where the gRPC
  address may be plain (loopback, or ``server.insecure``).
- Requests are limited to ``server.max_message_bytes`` like gRPC's, and JSON requests are parsed
  strictly: an unknown field is INVALID_ARGUMENT, not silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import grpc
import uvicorn
from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from protobuf.wkt import Any as WireAny
from uvicorn.protocols.http.h11_impl import H11Protocol

from kyso.config import Config, is_loopback, parse_address
from kyso.interceptors import KysoInterceptor, current_request_id

__all__ = ["ConnectServer", "build_app"]

log = logging.getLogger(__name__)

# gRPC's names, Connect's codes: the same fifteen, spelled in lower case (CANCELLED → canceled).
_CODES: Mapping[grpc.StatusCode, Code] = {
    status: Code.CANCELED if status is grpc.StatusCode.CANCELLED else Code(status.name.lower())
    for status in grpc.StatusCode
    if status is not grpc.StatusCode.OK
}


class _Aborted(Exception):
    """What the interceptor's abort carried: the status the gRPC client would get."""

    def __init__(self, code: grpc.StatusCode, message: str, trailers: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = dict(trailers or ())

    def to_connect(self) -> ConnectError:
        details: list[ErrorDetail] = []
        for detail in self._details():
            details.append(_detail(WireAny(type_url=detail.type_url, value=detail.value)))
        return ConnectError(_CODES.get(self.code, Code.UNKNOWN), self.message, details)

    def retry_after(self) -> int | None:
        """The whole seconds of a ``google.rpc.RetryInfo`` detail (for a ``Retry-After``
        header, which HTTP clients and proxies understand), rounded up; None without one."""
        for detail in self._details():
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                delay = info.retry_delay
                return max(1, int(delay.seconds) + (1 if delay.nanos else 0))
        return None

    def _details(self) -> list[Any]:
        packed = self.trailers.get("grpc-status-details-bin")
        if not isinstance(packed, bytes):
            return []
        return list(status_pb2.Status.FromString(packed).details)


@functools.cache
def _details_registry() -> Any:
    """google/rpc/error_details.proto for connectrpc's own Protobuf runtime (protobuf-py), so
    that an error's details also carry Connect's ``debug`` field: the detail as JSON (e.g.
    ``{"fieldViolations": [{"field": "placement.rect", …}]}``), readable without a decoder."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.rpc import error_details_pb2
    from protobuf import merge_from_binary
    from protobuf._file_registry import create_file_registry  # pinned (constraints.txt)
    from protobuf.wkt.google.protobuf.descriptor_pb import FileDescriptorProto

    def convert(name: str) -> FileDescriptorProto:
        source = descriptor_pb2.FileDescriptorProto()
        descriptor_pool.Default().FindFileByName(name).CopyToProto(source)
        for message in source.message_type:  # CopyToProto leaves out the JSON names
            _name_json_fields(message)
        converted = FileDescriptorProto()
        merge_from_binary(converted, source.SerializeToString())
        return converted

    return create_file_registry(convert(error_details_pb2.DESCRIPTOR.name), convert)


def _name_json_fields(message: Any) -> None:
    for field in message.field:
        head, *rest = field.name.split("_")
        field.json_name = head + "".join(part[:1].upper() + part[1:] for part in rest)
    for nested in message.nested_type:
        _name_json_fields(nested)


def _detail(packed: WireAny) -> ErrorDetail:
    """A detail with its decoded form when its type is one of google.rpc's details."""
    try:
        desc = _details_registry().message(packed.type_url.rpartition("/")[2])
        decoded = packed.unpack(desc) if desc is not None else None
    except Exception:  # the debug form is a courtesy: the detail itself goes in any case
        log.debug("no debug form for an error detail", exc_info=True)
        decoded = None
    return ErrorDetail(decoded if decoded is not None else packed)


class _CallContext:
    """The part of ``grpc.aio.ServicerContext`` the interceptor and the servicers use, over one
    HTTP request: metadata from its headers, the TLS client certificate, the peer address; a
    server stream's messages go to ``messages``; an abort raises :class:`_Aborted`."""

    def __init__(
        self,
        ctx: RequestContext[Any, Any],
        certificate_der: bytes | None,
        messages: asyncio.Queue[Any] | None = None,
    ) -> None:
        self._ctx = ctx
        self._certificate_der = certificate_der
        self._messages = messages
        self._started = time.monotonic()
        self.request_id = ""

    def time_remaining(self) -> float | None:
        """Seconds left before the client's deadline (``connect-timeout-ms``), None without."""
        timeout_ms = self._ctx.timeout_ms
        if timeout_ms is None:
            return None
        return max(timeout_ms / 1000 - (time.monotonic() - self._started), 0.0)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((key.lower(), value) for key, value in self._ctx.request_headers.allitems())

    def auth_context(self) -> dict[str, list[bytes]]:
        if self._certificate_der is None:
            return {}
        pem = ssl.DER_cert_to_PEM_cert(self._certificate_der).encode()
        return {"x509_pem_cert": [pem]}

    def peer(self) -> str:
        address = self._ctx.client_address or "unknown"
        host, _, port = address.rpartition(":")
        if ":" in host:
            return f"ipv6:[{host}]:{port}"
        return f"ipv4:{address}" if host else address

    def code(self) -> grpc.StatusCode | None:
        return None

    async def write(self, message: Any) -> None:
        assert self._messages is not None, "write on a call that does not stream its answer"
        self.request_id = current_request_id()
        await self._messages.put(message)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        self.request_id = current_request_id()
        raise _Aborted(code, details, trailing_metadata)


class _PeerCertificates:
    """The client certificate of each TLS connection, by the ``host:port`` Connect reports as
    the client address (uvicorn does not put it in the ASGI scope)."""

    def __init__(self) -> None:
        self.by_address: dict[str, bytes] = {}

    def protocol(self) -> type[H11Protocol]:
        registry = self.by_address

        class CertificateRecordingProtocol(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                # asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP, and
                # socket.create_server leaves proto 0: without it, the last small write of
                # each answer waits for the client's delayed ACK (~40 ms a call).
                sock = transport.get_extra_info("socket")
                if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                ssl_object = transport.get_extra_info("ssl_object")
                peer = transport.get_extra_info("peername")
                if ssl_object is not None and peer:
                    der = ssl_object.getpeercert(binary_form=True)
                    if der:
                        registry[f"{peer[0]}:{peer[1]}"] = der
                self._kyso_peer = f"{peer[0]}:{peer[1]}" if peer else ""

            def connection_lost(self, exc: Exception | None) -> None:
                registry.pop(getattr(self, "_kyso_peer", ""), None)
                super().connection_lost(exc)

        return CertificateRecordingProtocol


Wrapped = Callable[..., Awaitable[Any]]


class _Endpoints:
    """One Connect endpoint per kyso.v1 method, each calling its interceptor-wrapped handler."""

    def __init__(
        self,
        interceptor: KysoInterceptor,
        handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
        certificates: _PeerCertificates,
    ) -> None:
        self._interceptor = interceptor
        self._handlers = handlers
        self._certificates = certificates

    async def build(self) -> dict[str, Endpoint[Any, Any]]:
        endpoints: dict[str, Endpoint[Any, Any]] = {}
        # every handler the gRPC server registered, described by the descriptor its generated
        # module put in the default pool: a new service needs no list here
        pool = descriptor_pool.Default()
        for path, handler in self._handlers.items():
            service, method = path.strip("/").split("/")
            described = pool.FindServiceByName(service).methods_by_name[method]
            wrapped = await self._wrap(path, handler)
            endpoints[path] = self._endpoint(described, wrapped)
        return endpoints

    async def _wrap(self, path: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Wrapped:
        async def continuation(_details: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return handler

        details = _CallDetails(path)
        intercepted = await self._interceptor.intercept_service(continuation, details)
        behaviour = (
            intercepted.unary_unary
            or intercepted.stream_unary
            or intercepted.unary_stream
            or intercepted.stream_stream
        )
        assert behaviour is not None
        return behaviour  # type: ignore[return-value]

    def _endpoint(self, method: MethodDescriptor, wrapped: Wrapped) -> Endpoint[Any, Any]:
        streams = (method.client_streaming, method.server_streaming)
        stream_type = {
            (False, False): StreamType.UNARY,
            (True, False): StreamType.CLIENT_STREAM,
            (False, True): StreamType.SERVER_STREAM,
            (True, True): StreamType.BIDI_STREAM,
        }[streams]
        info: MethodInfo[Any, Any] = MethodInfo(
            name=method.name,
            service_name=method.containing_service.full_name,
            input=message_factory.GetMessageClass(method.input_type),
            output=message_factory.GetMessageClass(method.output_type),
            idempotency_level=IdempotencyLevel.UNKNOWN,
            stream_type=stream_type,
        )
        if method.server_streaming:

            def streaming(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
                return self._stream(wrapped, request, ctx)

            if method.client_streaming:
                return Endpoint.bidi_stream(info, streaming)
            return Endpoint.server_stream(info, streaming)

        async def unary(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            call = _CallContext(ctx, self._certificate(ctx))
            try:
                return await wrapped(request, call)
            except _Aborted as aborted:
                if (seconds := aborted.retry_after()) is not None:
                    ctx.response_headers["retry-after"] = str(seconds)
                raise aborted.to_connect() from None
            finally:
                ctx.response_headers["kyso-request-id"] = call.request_id or current_request_id()

        if method.client_streaming:
            return Endpoint.client_stream(info, unary)
        return Endpoint.unary(info, unary)

    async def _stream(
        self, wrapped: Wrapped, request: Any, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """Run the handler as a task that writes into a queue of one message (so a client that
        reads nothing holds the handler's write, which ``[limits] stream_idle_seconds`` bounds,
        as on gRPC) and hand each message on."""
        messages: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        call = _CallContext(ctx, self._certificate(ctx), messages)
        end = object()

        async def run() -> None:
            try:
                await wrapped(request, call)
            finally:
                # the interceptor set the request id in this task's context
                call.request_id = call.request_id or current_request_id()
                await messages.put(end)

        task = asyncio.create_task(run())
        try:
            while (message := await messages.get()) is not end:
                yield message
            try:
                await task
            except _Aborted as aborted:
                raise aborted.to_connect() from None
        finally:
            ctx.response_trailers["kyso-request-id"] = call.request_id
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, _Aborted):
                    await task

    def _certificate(self, ctx: RequestContext[Any, Any]) -> bytes | None:
        return self._certificates.by_address.get(ctx.client_address or "")


class _CallDetails(grpc.HandlerCallDetails):
    """``grpc.HandlerCallDetails`` for the interceptor: the method's full name."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[tuple[str, str], ...] = ()


class _JsonCodec(Codec[Message, Any]):
    """Protobuf's JSON mapping (lowerCamelCase names, int64 as strings, bytes in base64), read
    strictly (an unknown field is refused, so a misspelt field is not silently dropped) and
    written as UTF-8 (Vietnamese as it is, not as escapes) with every field, also those at
    their default (``"ledgerIndex": "0"``, ``"content": ""``): a client of a language without
    the generated types finds each field where the contract says it is. A field of a ``oneof``
    or a message field that is not set stays out."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(
            message,
            ensure_ascii=False,
            indent=None,
            always_print_fields_with_no_presence=True,
        ).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        message = message_class()
        json_format.Parse(bytes(data), message, ignore_unknown_fields=False)
        return message


class _Application(ConnectASGIApplication[Any]):
    """Every kyso.v1 service in one ASGI application (the paths carry the service name)."""

    @property
    def path(self) -> str:
        return "/kyso.v1."


async def build_app(
    interceptor: KysoInterceptor,
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
    *,
    max_message_bytes: int,
    certificates: _PeerCertificates | None = None,
) -> ConnectASGIApplication[Any]:
    """The ASGI application serving ``handlers`` (a :class:`HandlerCollector`'s) through
    ``interceptor`` — the gRPC server's own instance."""
    endpoints = await _Endpoints(interceptor, handlers, certificates or _PeerCertificates()).build()
    return _Application(
        service=endpoints,
        endpoints=lambda table: table,
        read_max_bytes=max_message_bytes,
        codecs=[_JsonCodec(), google_protobuf_binary_codec()],
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the gRPC server's loop decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConnectServer:
    """The HTTP/JSON listener on ``[server] http_address``, beside the gRPC server."""

    def __init__(
        self,
        config: Config,
        interceptor: KysoInterceptor,
        handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
    ) -> None:
        self._config = config
        self._interceptor = interceptor
        self._handlers = handlers
        address = config.server.http_address
        host, port = parse_address(address, key="server.http_address")
        tls = config.tls
        if not tls.enabled and not is_loopback(address):
            log.warning(
                "serving HTTP/JSON WITHOUT TLS on a network address (server.insecure = true):"
                " API tokens and documents cross the network in the clear",
                extra={"address": address},
            )
        try:
            self._socket = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            from kyso.startup import StartupError

            raise StartupError(
                f"server.http_address: cannot listen on {address} ({exc.strerror}); choose"
                " another address or stop the other server"
            ) from None
        self.port: int = self._socket.getsockname()[1]
        self.host = host
        self.scheme = "https" if tls.enabled else "http"
        self._certificates = _PeerCertificates()
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        app = await build_app(
            self._interceptor,
            self._handlers,
            max_message_bytes=self._config.server.max_message_bytes,
            certificates=self._certificates,
        )
        tls = self._config.tls
        self._server = _Server(
            uvicorn.Config(
                app,
                http=self._certificates.protocol(),
                log_config=None,
                access_log=False,  # kyso's access log: one "rpc" line per call (interceptor)
                lifespan="off",
                timeout_graceful_shutdown=max(1, round(self._config.server.grace_seconds)),
                ssl_certfile=str(tls.certificate) if tls.enabled and tls.certificate else None,
                ssl_keyfile=str(tls.private_key) if tls.enabled and tls.private_key else None,
                ssl_ca_certs=str(tls.client_ca) if tls.enabled and tls.client_ca else None,
                ssl_cert_reqs=ssl.CERT_REQUIRED if tls.enabled and tls.client_ca else ssl.CERT_NONE,
            )
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        log.info("serving HTTP/JSON (Connect)", extra={"url": self.url})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._socket.close()
