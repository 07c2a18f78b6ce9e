"""Completing an agent's signatures in batches: ``CompleteSignatures``, one call per batch.

``CompletionBatcher``: the token hands over each signature value as it makes it (``add``);
while no call is in flight the values waiting go at once in one ``CompleteSignatures`` call, and
those that arrive meanwhile go in the next (at most ``max_batch`` a call). A fast token therefore
completes a whole batch in one or two calls; a slow one (a USB token, 0.5–2 s a signature) still
has each document completed while it signs the next. No timer: nothing ever waits to fill a
batch.

``on_outcome(item, reply, error)`` is called once per item, on the event loop: ``reply`` (a
``CompleteSignatureResponse``) when it was completed; else ``error``, a ``(code, message)``
pair, with ``per_document`` true when the server refused that document alone (the batch goes
on) and false when the call itself failed (the server cannot be reached: stop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from kyso.v1 import signing_pb2

__all__ = ["CompletionBatcher", "ItemError"]

MAX_BATCH = 100
"""The most completions in one call (the server's limit)."""


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an item was not completed."""

    code: grpc.StatusCode
    message: str
    per_document: bool


Outcome = Callable[
    [
        signing_pb2.PendingSignature,
        "signing_pb2.CompleteSignatureResponse | None",
        "ItemError | None",
    ],
    None,
]

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class CompletionBatcher:
    """See the module docstring."""

    def __init__(
        self,
        stub: Any,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
        on_outcome: Outcome,
        per_document: frozenset[grpc.StatusCode],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._stub = stub
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._on_outcome = on_outcome
        self._per_document = per_document
        self._max_batch = max_batch
        self._waiting: list[tuple[signing_pb2.PendingSignature, bytes]] = []
        self._sending: asyncio.Task[None] | None = None
        self.calls = 0

    def add(self, item: signing_pb2.PendingSignature, value: bytes) -> None:
        """Queue ``item``'s signature value; sent now if no call is in flight."""
        self._waiting.append((item, value))
        if self._sending is None:
            self._sending = asyncio.ensure_future(self._send())

    async def drain(self) -> None:
        """Wait until every queued value has been sent and answered."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._call(batch)
        finally:
            self._sending = None

    async def _call(self, batch: list[tuple[signing_pb2.PendingSignature, bytes]]) -> None:
        self.calls += 1
        request = signing_pb2.CompleteSignaturesRequest(
            items=[
                signing_pb2.CompleteSignatureRequest(session_id=item.session_id, signature_value=v)
                for item, v in batch
            ]
        )
        try:
            reply = await self._stub.CompleteSignatures(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            error = ItemError(
                exc.code(), exc.details() or exc.code().name, exc.code() in self._per_document
            )
            for item, _ in batch:
                self._on_outcome(item, None, error)
            return
        for (item, _), result in zip(batch, reply.results, strict=False):
            if result.WhichOneof("outcome") == "completed":
                self._on_outcome(item, result.completed, None)
            else:
                code = _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN)
                message = result.error.message or code.name
                self._on_outcome(item, None, ItemError(code, message, code in self._per_document))
        for item, _ in batch[len(reply.results) :]:  # a server that answered fewer
            self._on_outcome(
                item, None, ItemError(grpc.StatusCode.UNKNOWN, "no answer for this item", False)
            )
