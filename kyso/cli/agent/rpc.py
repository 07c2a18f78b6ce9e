"""The agent's calls to the server (asyncio gRPC): list, fetch, claim, complete; unit names."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from kyso.cli.common import ClientTarget
from kyso.v1 import (
    common_pb2,
    directory_pb2,
    directory_pb2_grpc,
    documents_pb2,
    documents_pb2_grpc,
    signing_pb2,
    signing_pb2_grpc,
)

__all__ = [
    "RPC_TIMEOUT",
    "channel",
    "claim",
    "download",
    "fetch_prepared",
    "list_pending",
    "metadata",
    "rpc_text",
    "unit_names",
]

RPC_TIMEOUT = 120.0


def channel(target: ClientTarget) -> grpc.aio.Channel:
    from kyso.cli.channel import grpc_target

    address, balancing = grpc_target(target.address)  # replicas: round robin
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        *balancing,
    ]
    if target.ca_pem is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=target.ca_pem,
            private_key=target.private_key_pem,
            certificate_chain=target.certificate_pem,
        )
        return grpc.aio.secure_channel(address, credentials, options=options)
    return grpc.aio.insecure_channel(address, options=options)


def metadata(target: ClientTarget) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {target.token}"),) if target.token else ()


def rpc_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code else 'ERROR'}: {details}"


async def list_pending(
    target: ClientTarget, fingerprint: str
) -> list[signing_pb2.PendingSignature]:
    """Every session pending for the certificate with SHA-256 ``fingerprint`` (all pages)."""
    pending: list[signing_pb2.PendingSignature] = []
    async with channel(target) as chan:
        stub = signing_pb2_grpc.SigningServiceStub(chan)
        token = ""
        while True:
            page = await stub.ListPendingSignatures(
                signing_pb2.ListPendingSignaturesRequest(
                    certificate_sha256=fingerprint, page_size=500, page_token=token
                ),
                metadata=metadata(target),
                timeout=RPC_TIMEOUT,
            )
            pending.extend(page.pending)
            token = page.next_page_token
            if not token:
                return pending


async def download(
    stub: documents_pb2_grpc.DocumentServiceStub, target: ClientTarget, ref: str
) -> bytes:
    if not ref:
        return b""
    request = documents_pb2.DownloadRequest(ref=common_pb2.DocumentRef(ref=ref))
    pieces = stub.Download(request, metadata=metadata(target), timeout=RPC_TIMEOUT)
    return b"".join([piece.chunk async for piece in pieces])


async def fetch_prepared(
    target: ClientTarget, items: Sequence[signing_pb2.PendingSignature]
) -> dict[str, bytes]:
    """Each session's prepared PDF, fetched from the server (by ``prepared_ref``)."""
    fetched: dict[str, bytes] = {}
    async with channel(target) as chan:
        stub = documents_pb2_grpc.DocumentServiceStub(chan)
        for item in items:
            fetched[item.session_id] = await download(stub, target, item.prepared_ref)
    return fetched


async def claim(
    stub: signing_pb2_grpc.SigningServiceStub,
    target: ClientTarget,
    item: signing_pb2.PendingSignature,
) -> signing_pb2.PendingSignature:
    """The session prepared again now (ClaimSignature), so its stamp shows the time of signing.
    A server without ClaimSignature (UNIMPLEMENTED) leaves the session as listed."""
    try:
        reply = await stub.ClaimSignature(
            signing_pb2.ClaimSignatureRequest(session_id=item.session_id),
            metadata=metadata(target),
            timeout=RPC_TIMEOUT,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return item
        raise
    fresh: signing_pb2.PendingSignature = reply.pending
    return fresh


async def unit_names(target: ClientTarget, codes: Sequence[str]) -> dict[str, str]:
    """Unit code -> name from the server's directory (codes it does not know are left out)."""
    names: dict[str, str] = {}
    wanted = sorted({c for c in codes if c})
    if not wanted:
        return names
    async with channel(target) as chan:
        stub = directory_pb2_grpc.DirectoryServiceStub(chan)
        for code in wanted:
            try:
                unit = await stub.GetUnit(
                    directory_pb2.GetUnitRequest(code=code),
                    metadata=metadata(target),
                    timeout=10.0,
                )
            except grpc.aio.AioRpcError:
                continue
            if unit.name:
                names[code] = unit.name
    return names
