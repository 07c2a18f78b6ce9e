"""Signing the chosen documents in one batch, the token never kept waiting.

For each document, in order: the server prepares it again now (``ClaimSignature``: the stamp
and the signing time become the moment of signing), the agent fetches the new prepared PDF and
checks it as before (``kyso.cli.agent_check``: it must commit to the same document the official
saw), the token signs, and the completions go in ``CompleteSignatures`` calls on the event loop
(``kyso.cli.agent_batch``: what the token signed during one call goes in the next) while the
token already signs the next one. The next documents' claims (up to three) run while the
token signs.

Stopping: when the token fails or the server cannot be reached, no further document is signed;
on Ctrl-C (``stop`` set) the document in hand is finished, then the batch stops. Completions in
flight are always awaited; the summary says what is left, which stays pending on the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import grpc
from asn1crypto import x509

import hsm
from kyso.cli.agent import rpc
from kyso.cli.agent_batch import CompletionBatcher, ItemError
from kyso.cli.agent_check import PreparedMismatch, inspect_prepared
from kyso.cli.common import ClientTarget
from kyso.cli.text import Language, say
from kyso.v1 import documents_pb2_grpc, signing_pb2, signing_pb2_grpc

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_STOPPED",
    "BatchResult",
    "TokenKey",
    "sign_batch",
]

EXIT_FAILED = 1
"""Some chosen documents were refused by the server (the summary lists why)."""
EXIT_STOPPED = 3
"""The batch stopped early (token or network); the rest are still pending."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: the document in hand was finished, the rest are still pending."""

# Completions in flight while the token signs: enough to hide a slow network round trip,
# few enough not to flood the server from one desk.
_IN_FLIGHT = 8
_MECHANISMS = {"rsa_pkcs1v15", "ecdsa"}
# Documents prepared again ahead of the one the token signs: enough to keep a fast token busy
# while the server stamps the next ones, few enough that each stamp's time stays within seconds
# of its signature.
_CLAIM_AHEAD = 3
# Server answers that mean "this document, not the batch": count it failed, go on.
_PER_DOCUMENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
}


class TokenKey(Protocol):
    """What the agent needs of a token key (``hsm.LocalKey``; tests wrap it)."""

    certificate: x509.Certificate

    def login(self, pin: str) -> None: ...

    def sign_digest(
        self, digest: bytes, digest_algorithm: hsm.DigestAlgorithm, pss: bool = False
    ) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class BatchResult:
    """How a batch ended. ``stopped`` says why it ended early (None: it ran to the end)."""

    chosen: int
    signed: list[tuple[str, str]] = field(default_factory=list)
    """(title, ref of the signed document)"""
    failed: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None
    interrupted: bool = False
    left_titles: list[str] = field(default_factory=list)

    @property
    def left(self) -> int:
        return self.chosen - len(self.signed) - len(self.failed)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.stopped is not None:
            return EXIT_STOPPED
        return EXIT_FAILED if self.failed else 0


def _title(item: signing_pb2.PendingSignature) -> str:
    return item.title or item.session_id


async def sign_batch(
    target: ClientTarget,
    key: TokenKey,
    items: Sequence[signing_pb2.PendingSignature],
    *,
    progress: Callable[[BatchResult], None] = lambda _r: None,
    lang: Language = "en",
    stop: threading.Event | None = None,
    claim: bool = True,
) -> BatchResult:
    """Sign ``items`` on the token (one thread) while their completions run concurrently.

    ``claim``: prepare each document again just before it is signed (the time on its stamp is
    the time of signing). ``stop``: when set (Ctrl-C), no new document is started."""
    result = BatchResult(chosen=len(items))
    token_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kyso-token")
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(_IN_FLIGHT)
    started: set[str] = set()
    async with rpc.channel(target) as chan:
        stub = signing_pb2_grpc.SigningServiceStub(chan)
        documents = documents_pb2_grpc.DocumentServiceStub(chan)
        metadata = rpc.metadata(target)

        async def ready(item: signing_pb2.PendingSignature) -> signing_pb2.PendingSignature:
            """The item prepared again now and checked (PreparedMismatch when it is not)."""
            if not claim:
                return item
            fresh = await rpc.claim(stub, target, item)
            if fresh is not item:
                pdf = await rpc.download(documents, target, fresh.prepared_ref)
                if not pdf:
                    raise PreparedMismatch("the server gave no prepared PDF to check")
                inspect_prepared(
                    pdf,
                    digest_algorithm=fresh.digest_algorithm,
                    signed_attributes=fresh.signed_attributes,
                    data_to_sign=fresh.data_to_sign,
                    document_sha256=item.document_sha256,
                )
            return fresh

        def outcome(
            item: signing_pb2.PendingSignature,
            reply: signing_pb2.CompleteSignatureResponse | None,
            error: ItemError | None,
        ) -> None:
            slots.release()
            if reply is not None:
                result.signed.append((_title(item), reply.document.ref.ref))
            elif error is not None and error.per_document:
                result.failed.append((_title(item), error.message))
            elif error is not None and result.stopped is None:
                result.stopped = say("agent.server_lost", lang, error=error.message)
            progress(result)

        # Completions go in CompleteSignatures calls: what the token signed while one call was
        # in flight goes in the next (kyso.cli.agent_batch).
        batcher = CompletionBatcher(
            stub,
            metadata=metadata,
            timeout=rpc.RPC_TIMEOUT,
            on_outcome=outcome,
            per_document=frozenset(_PER_DOCUMENT),
        )

        ahead: dict[int, asyncio.Task[signing_pb2.PendingSignature]] = {}

        def look_ahead(start: int) -> None:
            """Start the claims of the next documents, so the token never waits for one."""
            if stop is not None and stop.is_set():
                return
            for later in range(start, min(start + _CLAIM_AHEAD, len(items))):
                if later not in ahead and items[later].signature_mechanism in _MECHANISMS:
                    ahead[later] = asyncio.ensure_future(ready(items[later]))

        try:
            for index, listed in enumerate(items):
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
                if result.stopped is not None:
                    break
                if listed.signature_mechanism not in _MECHANISMS:
                    result.failed.append(
                        (
                            _title(listed),
                            say("agent.mechanism", lang, mechanism=listed.signature_mechanism),
                        )
                    )
                    continue
                started.add(listed.session_id)
                task = ahead.pop(index, None) or asyncio.ensure_future(ready(listed))
                try:
                    item = await task
                except PreparedMismatch as exc:
                    result.failed.append((_title(listed), str(exc)))
                    progress(result)
                    continue
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in _PER_DOCUMENT:
                        result.failed.append((_title(listed), rpc.rpc_text(exc)))
                        progress(result)
                        continue
                    result.stopped = say("agent.server_lost", lang, error=rpc.rpc_text(exc))
                    break
                await slots.acquire()
                look_ahead(index + 1)
                try:
                    value = await loop.run_in_executor(
                        token_thread,
                        key.sign_digest,
                        item.data_to_sign,
                        cast(hsm.DigestAlgorithm, item.digest_algorithm),
                    )
                except hsm.HsmError as exc:
                    slots.release()
                    result.stopped = say("agent.token_stopped", lang, error=exc)
                    break
                batcher.add(item, value)
        finally:
            if ahead:
                # Prepared again but not signed: they stay pending (a later claim re-prepares).
                for task in ahead.values():
                    task.cancel()
                await asyncio.gather(*ahead.values(), return_exceptions=True)
            # Completions already sent are finished, never abandoned: the server may be
            # embedding them right now.
            await batcher.drain()
            token_thread.shutdown(wait=True)
    finished = {t for t, _ in result.signed} | {t for t, _ in result.failed}
    result.left_titles = [_title(i) for i in items if _title(i) not in finished]
    return result
