"""Direct transfer: documents' bytes go between the client and the S3 service, not through kyso.

Offered only when ``[storage] direct_transfer`` is on and the store can do it
(``storage.DirectTransferStore``: S3); otherwise every call here is FAILED_PRECONDITION and the
client streams with Upload/Download.

Upload: ``begin`` records an upload (who began it, the SHA-256 and size it declares — both
required, the size within ``[signing] max_document_bytes`` before any URL is issued — and until
when it may be completed) and answers a presigned PUT to a staging object named by the upload
id. ``complete`` has the store check the staged bytes against the declaration and copy them to
their content address, then writes the catalogue row, the ``document.stored`` event and the
upload's ``completed`` state in one transaction (as Upload does: object first, then row and
event together), and then removes the staging object (after answering: the client does not wait
for the clean-up).

Invariants:
- only the client that began an upload completes it; an upload is completed at most once, and a
  repeated Complete answers the same document without a second row or event;
- bytes other than declared (size or digest) never reach the content address: the upload is
  closed as ``refused``, its staging object removed, and nothing is catalogued;
- an upload completed after ``expires_at`` is refused (``expired``) and its staging object
  removed; one never completed leaves its staging object to the bucket's lifecycle rule
  (docs/operations.md, "The bucket");
- a download URL is given only to a client that may read the document's bytes (as Download),
  with the SHA-256 the client checks the bytes against.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

import storage
from kyso.app import Application
from kyso.authz import Identity
from kyso.catalogue import Catalogue
from kyso.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    RequestInvalid,
    fields_named,
)
from kyso.operations.documents import Documents, UploadMeta, stored_document, who_metadata
from kyso.operations.ledger import Staging
from kyso.schema import direct_uploads

__all__ = ["DirectTransfer", "DirectUpload", "DownloadGrant", "UploadGrant"]

log = logging.getLogger(__name__)

_OPEN, _COMPLETED, _REFUSED, _EXPIRED = "open", "completed", "refused", "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadGrant:
    """What a client needs to send the bytes: PUT them to ``url`` with ``headers``."""

    upload_id: str
    url: str
    headers: Mapping[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadGrant:
    """A presigned GET of a stored document and what its bytes must hash to."""

    url: str
    sha256: str
    size: int
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectUpload:
    """A recorded upload (a row of ``catalogue_direct_uploads``)."""

    upload_id: str
    client: str
    unit_code: str
    sha256: str
    size: int
    content_type: str
    filename: str
    state: str
    expires_at: datetime

    @property
    def stored(self) -> storage.StoredObject:
        return storage.StoredObject(
            ref=storage.ObjectRef(self.sha256), size=self.size, content_type=self.content_type
        )


class DirectTransfer:
    """Begin and complete direct uploads; hand out download URLs."""

    def __init__(self, app: Application, documents: Documents) -> None:
        self._app = app
        self._documents = documents
        self._run = app.executors.io.run
        self._transfer = app.executors.transfer.run
        self._discarding: set[asyncio.Future[None]] = set()

    def _store(self) -> storage.DirectTransferStore:
        store = self._app.store
        if not self._app.config.storage.direct_transfer:
            raise FailedPrecondition(
                "this server does not offer direct transfer ([storage] direct_transfer is off):"
                " send the bytes with DocumentService.Upload and fetch them with Download"
            )
        if not isinstance(store, storage.DirectTransferStore):  # refused by the configuration
            raise FailedPrecondition(
                "this server's store cannot hand out transfer URLs (a filesystem store): send"
                " the bytes with DocumentService.Upload and fetch them with Download"
            )
        return store

    @property
    def _lifetime(self) -> timedelta:
        return timedelta(seconds=self._app.config.storage.direct_url_seconds)

    async def begin(self, actor: Identity, meta: UploadMeta) -> UploadGrant:
        """Record an upload and answer where to PUT its bytes (see the module docstring)."""
        store = self._store()
        if not meta.sha256:
            raise RequestInvalid(
                "a direct upload declares the SHA-256 (hex) of its bytes", field="sha256"
            )
        with fields_named({None: "sha256"}):
            sha256 = storage.model.parse_sha256(meta.sha256, what="sha256")
        limit = self._app.config.signing.max_document_bytes
        if meta.size < 0:
            raise RequestInvalid("size is a number of bytes, 0 or more", field="size")
        if meta.size > limit:
            raise RequestInvalid(
                f"the upload declares {meta.size} bytes; this server stores documents of at "
                f"most {limit} bytes ([signing] max_document_bytes); no URL was issued",
                field="size",
            )
        for name, value, most in (
            ("content_type", meta.content_type, 200),
            ("filename", meta.filename, 500),
        ):
            if len(value) > most:
                raise RequestInvalid(f"{name} is longer than {most} characters", field=name)
        now = datetime.now(UTC)
        upload = DirectUpload(
            upload_id=secrets.token_urlsafe(32),
            client=actor.name,
            unit_code=actor.unit,
            sha256=sha256,
            size=meta.size,
            content_type=meta.content_type,
            filename=meta.filename,
            state=_OPEN,
            expires_at=now + self._lifetime,
        )
        await self._run(self._record, upload, now)
        put = await self._run(
            store.staging_put,
            upload.upload_id,
            expires=self._lifetime,
            content_type=upload.content_type,
        )
        return UploadGrant(
            upload_id=upload.upload_id,
            url=put.url,
            headers=put.headers,
            expires_at=upload.expires_at,
        )

    async def complete(self, actor: Identity, upload_id: str) -> storage.StoredObject:
        """Check, store, catalogue and ledger a direct upload (see the module docstring)."""
        store = self._store()
        upload = await self._run(self._upload, upload_id)
        if upload.client != actor.name:
            raise PermissionDenied(
                f"client {actor.name!r} may not complete upload {upload_id}: another client"
                " began it"
            )
        if upload.state == _COMPLETED:
            return upload.stored
        if upload.state != _OPEN:
            raise FailedPrecondition(f"upload {upload_id} was {upload.state}: begin a new upload")
        if datetime.now(UTC) > upload.expires_at:
            await self._close(store, upload, _EXPIRED)
            raise FailedPrecondition(
                f"upload {upload_id} expired at {upload.expires_at.isoformat()}: begin a new"
                " upload and complete it sooner"
            )
        try:
            with fields_named({None: "upload_id"}):
                stored = await self._transfer(
                    store.adopt_staged,
                    upload.upload_id,
                    sha256=upload.sha256,
                    size=upload.size,
                    content_type=upload.content_type,
                    metadata=who_metadata(upload.client, upload.unit_code),
                )
        except storage.DeclaredHashMismatch:
            await self._close(store, upload, _REFUSED)
            raise
        except storage.StagedObjectMissing:
            now = await self._run(self._upload, upload_id)
            if now.state == _COMPLETED:  # a concurrent Complete did it (and removed the staging)
                return now.stored
            raise
        staging = await self._run(self._commit, actor, upload, stored)
        if staging is not None:  # else a concurrent Complete committed it, and discards
            await self._app.events.settled(staging)
            self._discard_later(store, upload)
        return upload.stored

    async def download_url(self, actor: Identity, ref: str) -> DownloadGrant:
        """A presigned GET of a document ``actor`` may read (as Download)."""
        with fields_named({None: "ref.ref"}):
            parsed = storage.ObjectRef.parse(ref)
        # who may read it first: a refusal does not depend on what this server offers
        await self._run(self._documents.check_readable, actor, str(parsed))
        self._store()  # direct transfer is offered
        store = self._app.store
        lifetime = self._lifetime
        expires_at = datetime.now(UTC) + lifetime

        def grant() -> DownloadGrant:
            url = store.presigned_get_url(parsed, expires=lifetime)  # NOT_FOUND when absent
            try:
                size = self._app.catalogue.get(str(parsed)).size
            except NotFound:  # stored but not catalogued (yet): the store knows its size
                size = store.stat(parsed).size
            return DownloadGrant(url=url, sha256=parsed.sha256, size=size, expires_at=expires_at)

        return await self._run(grant)

    # ------------------------------------------------------------------ steps (blocking)
    def _record(self, upload: DirectUpload, now: datetime) -> None:
        with self._app.engine.begin() as conn:
            conn.execute(
                direct_uploads.insert().values(
                    upload_id=upload.upload_id,
                    client=upload.client,
                    unit_code=upload.unit_code,
                    sha256=upload.sha256,
                    size=upload.size,
                    content_type=upload.content_type,
                    filename=upload.filename,
                    state=upload.state,
                    created_at=now,
                    expires_at=upload.expires_at,
                )
            )

    def _upload(self, upload_id: str) -> DirectUpload:
        with self._app.engine.connect() as conn:
            row = conn.execute(
                sa.select(direct_uploads).where(direct_uploads.c.upload_id == upload_id)
            ).first()
        if row is None:
            raise NotFound(f"no direct upload {upload_id!r} was begun on this server")
        return DirectUpload(
            upload_id=row.upload_id,
            client=row.client,
            unit_code=row.unit_code,
            sha256=row.sha256,
            size=row.size,
            content_type=row.content_type,
            filename=row.filename,
            state=row.state,
            expires_at=_utc(row.expires_at),
        )

    def _set_state(self, conn: sa.Connection, upload_id: str, state: str) -> bool:
        """Move an open upload to ``state``; False when it was not open any more."""
        result = conn.execute(
            direct_uploads.update()
            .where(direct_uploads.c.upload_id == upload_id, direct_uploads.c.state == _OPEN)
            .values(state=state)
        )
        return result.rowcount == 1

    def _commit(
        self, actor: Identity, upload: DirectUpload, stored: storage.StoredObject
    ) -> Staging | None:
        """The catalogue row, its event and the upload's completion, in one transaction; None
        when a concurrent Complete committed first (nothing written here)."""
        entry, event = stored_document(
            self._app,
            actor,
            stored,
            content_type=upload.content_type,
            filename=upload.filename,
            uploader=upload.client,
            unit_code=upload.unit_code,
        )
        staging = Staging()
        with self._app.engine.begin() as conn:
            if not self._set_state(conn, upload.upload_id, _COMPLETED):
                return None
            Catalogue.write(conn, entry)
            staging.write(conn, [event])
        return staging

    async def _close(
        self, store: storage.DirectTransferStore, upload: DirectUpload, state: str
    ) -> None:
        def close() -> None:
            with self._app.engine.begin() as conn:
                self._set_state(conn, upload.upload_id, state)

        await self._run(close)
        await self._discard(store, upload)

    def _discard_later(self, store: storage.DirectTransferStore, upload: DirectUpload) -> None:
        """Remove the staging object of a completed upload after the answer: the document is
        stored and catalogued, and the client need not wait for the clean-up."""
        task = asyncio.ensure_future(self._discard(store, upload))
        self._discarding.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._discarding.discard)

    async def _discard(self, store: storage.DirectTransferStore, upload: DirectUpload) -> None:
        """Remove the staging object; one left behind (the store is down) is only a leftover
        that the bucket's lifecycle rule reclaims, never a failure of the call."""
        try:
            await self._run(store.discard_staged, upload.upload_id)
        except storage.StorageError as exc:
            log.warning(
                "the staging object of a direct upload was left behind",
                extra={"upload_id": upload.upload_id, "reason": str(exc)},
            )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything kyso writes is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
