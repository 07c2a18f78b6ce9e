"""Conversions between protobuf messages and domain values, in one place."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

import storage
from kyso.catalogue import CatalogueEntry
from kyso.v1 import common_pb2, documents_pb2

__all__ = ["document_info", "stored_document", "timestamp"]


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def stored_document(ref: storage.ObjectRef | str, size: int) -> common_pb2.StoredDocument:
    parsed = storage.ObjectRef.parse(ref)
    return common_pb2.StoredDocument(
        ref=common_pb2.DocumentRef(ref=str(parsed)), sha256=parsed.sha256, size=size
    )


def document_info(entry: CatalogueEntry) -> documents_pb2.DocumentInfo:
    return documents_pb2.DocumentInfo(
        document=stored_document(entry.ref, entry.size),
        content_type=entry.content_type,
        filename=entry.filename,
        uploader=entry.uploader,
        unit_code=entry.unit_code,
        created_at=timestamp(entry.created_at),
        signatures=[
            documents_pb2.SignatureSummary(
                signer=s.signer,
                key_alias=s.key_alias,
                level=s.level,
                signed_at=timestamp(s.signed_at),
            )
            for s in entry.signatures
        ],
    )
