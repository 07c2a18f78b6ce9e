"""A gRPC channel to the server for the client subcommands (imported only when one connects)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import grpc

__all__ = ["Target", "grpc_target", "open_channel"]


class Target(Protocol):
    """Where and how to connect (``kyso.cli.common.ClientTarget`` is one)."""

    @property
    def address(self) -> str: ...
    @property
    def token(self) -> str | None: ...
    @property
    def ca_pem(self) -> bytes | None: ...
    @property
    def certificate_pem(self) -> bytes | None: ...
    @property
    def private_key_pem(self) -> bytes | None: ...


def grpc_target(address: str) -> tuple[str, list[tuple[str, str]]]:
    """The gRPC target for ``address`` and the options it needs.

    ``address`` is one ``host:port``, or several ``ip:port`` separated by commas (replicas of
    one service, each reachable directly): calls are then spread over them round robin, and a
    replica that stops answering is left out until it is back.
    """
    parts = [part.strip() for part in address.split(",") if part.strip()]
    if len(parts) <= 1:
        return address, []
    scheme = "ipv6" if all(part.startswith("[") for part in parts) else "ipv4"
    return f"{scheme}:{','.join(parts)}", [("grpc.lb_policy_name", "round_robin")]


def open_channel(target: Target, *, options: Sequence[tuple[str, int]] = ()) -> grpc.Channel:
    """A channel carrying the bearer token on every call (over TLS when a CA is configured);
    round robin over the replicas when ``target.address`` lists several (``grpc_target``)."""
    address, balancing = grpc_target(target.address)
    opts: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        *balancing,
        *options,
    ]
    if target.ca_pem is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=target.ca_pem,
            private_key=target.private_key_pem,
            certificate_chain=target.certificate_pem,
        )
        if target.token:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(target.token)
            )
        return grpc.secure_channel(address, credentials, options=opts)
    channel = grpc.insecure_channel(address, options=opts)
    if target.token:
        channel = grpc.intercept_channel(channel, _BearerToken(target.token))
    return channel


if TYPE_CHECKING:  # the stubs make these generic; at run time they are plain classes
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary = grpc.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.UnaryStreamClientInterceptor
    _StreamUnary = grpc.StreamUnaryClientInterceptor
    _StreamStream = grpc.StreamStreamClientInterceptor


class _BearerToken(_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream):
    """Adds ``authorization: Bearer`` on a plaintext loopback channel (gRPC refuses call
    credentials without TLS)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(  # type: ignore[no-untyped-call]
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):  # type: ignore[no-untyped-def]
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression
