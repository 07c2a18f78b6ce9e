"""Reading a ``DocumentInput``: inline bytes (at most 4 MiB) or a stored document's ref."""

from __future__ import annotations

import asyncio

import storage
from kyso.app import Application
from kyso.errors import RequestInvalid
from kyso.v1 import common_pb2

__all__ = ["INLINE_LIMIT", "read_document"]

INLINE_LIMIT = 4 * 1024 * 1024


async def read_document(
    app: Application, document: common_pb2.DocumentInput, *, field: str
) -> tuple[bytes, str]:
    """The document's bytes and its ref ("" when inline), within the configured size limit."""
    limit = app.config.signing.max_document_bytes
    source = document.WhichOneof("source")
    if source == "content":
        if len(document.content) > INLINE_LIMIT:
            raise RequestInvalid(
                f"inline documents are limited to {INLINE_LIMIT} bytes; upload it with "
                "DocumentService.Upload and pass its ref",
                field=f"{field}.content",
            )
        return document.content, ""
    if source != "ref":
        raise RequestInvalid("give the document inline (content) or by ref", field=field)
    ref = storage.ObjectRef.parse(document.ref.ref)
    info = await asyncio.to_thread(app.store.stat, ref)
    if info.size > limit:
        raise RequestInvalid(
            f"the document is {info.size} bytes; this server accepts at most {limit}",
            field=f"{field}.ref",
        )

    def read() -> bytes:
        with app.store.open(ref) as reader:
            return reader.read()

    return await asyncio.to_thread(read), str(ref)
