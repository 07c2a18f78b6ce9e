"""The S3 adapter, over the minio SDK: MinIO, Ceph's RADOS Gateway, or any S3 service.

How a put works, and why. The content address is the SHA-256 of the bytes, which is known only
after the last byte. The adapter therefore spools the stream to a local temporary file while
hashing it (kept in memory up to ``spool_memory_bytes``, on disk beyond; ``spool_dir`` chooses
where), then uploads the spool straight to ``sha256/<hex>``: a single PUT carrying
``x-amz-checksum-sha256`` (the server checks the bytes; object-lock buckets require a
checksum) or, above ``part_size``, a multipart upload whose object appears only when it is
completed. The alternative, uploading under a temporary key and copying server-side, doubles the
backend's work and leaves orphans when the process dies between copy and delete.

When the caller declares the digest (``expected_sha256``, as every kyso client does), the address
is known before the first byte, so nothing is spooled: the bytes are hashed as they arrive and
sent as the parts of a multipart upload at ``sha256/<declared>`` (up to ``parallel_uploads``
parts in flight, so at most ``parallel_uploads + 1`` parts are held in memory). The upload is
completed only if the digest of all the bytes equals the declared one; otherwise, or on any
failure, it is aborted. An uncompleted multipart upload is never an object: a mismatch or a crash
leaves nothing visible at the address (a crash can leave invisible parts, which an
``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket reclaims). Content of at most
``part_size`` bytes goes in one PUT with ``x-amz-checksum-sha256``, after the check.

Direct transfer (``DirectTransferStore``): a client PUTs a document's bytes itself, through a
presigned URL, to ``staging/<name>`` — never to ``sha256/<hex>``, where wrong bytes in an
object-lock bucket could not be removed. ``adopt_staged`` then reads the staged version back,
hashing it as it streams (Ceph's gateway, 16.2, accepts a PUT whose ``x-amz-checksum-sha256``
is wrong without a word — probed; only ``Content-MD5`` is checked, which binds nothing to the
SHA-256 — so the adapter checks the digest itself), and only when size and digest are the
declared ones copies that same version server-side (CopyObject, with the content address's
metadata and retention: what ``put`` gives it; the gateway ignores object-lock headers on a
copy, so the retention is then set on the copy) to ``sha256/<hex>``. The gateway shares the
copied data rather than rewriting it: a 100 MB copy takes ~50 ms. A second PUT to the staging
key between the check and the copy cannot slip in: the copy names the version that was checked.
A staged object of at most 1 MiB is instead put again from the bytes just checked (one PUT
with its checksum, as ``put`` does: cheaper than a copy and its source's stat).
``discard_staged`` removes every version of the staging key (the bucket is versioned: a plain
DELETE would only add a delete marker). A bucket with a *default* retention rule would lock
staging objects too, so direct transfer needs a bucket without one (kyso's buckets have none:
retention is set per object).

Invariants:
- nothing under ``sha256/…`` is ever visible incomplete; existing content is never re-uploaded
  (a HEAD first), so a re-put is a no-op that can only lengthen the retention;
- the ETag is never trusted: Ceph's gateway answers CompleteMultipartUpload with an empty one.
  After an upload the adapter stats the object and checks its size and its recorded digest;
- retention is read from the object's ``x-amz-object-lock-*`` headers with our own date parser,
  because the gateway writes dates with nanoseconds that minio-py's ``get_object_retention``
  cannot parse;
- transient failures (connection refused/reset, timeouts, HTTP 500/502/503/504) are retried by
  the HTTP pool with exponential backoff; what still fails becomes ``StorageUnavailable``.
  The health probe uses a pool without retries so that it answers quickly;
- credentials come from the environment or files (``S3Credentials.from_env``), never from
  configuration text, and never appear in reprs, messages or logs;
- the multipart steps of a declared-digest upload have no public minio call: they go through
  ``storage._minio_private``, the only place that touches the SDK's private API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import quote, unquote

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, ENABLED, GOVERNANCE, REPLACE, CopySource
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention as MinioRetention
from minio.versioningconfig import VersioningConfig

from storage import _minio_private
from storage.errors import (
    CredentialsRejected,
    DeclaredHashMismatch,
    IntegrityError,
    ObjectNotFound,
    StagedObjectMissing,
    StorageConfigError,
    StorageError,
    StorageFull,
    StorageUnavailable,
)
from storage.model import (
    ObjectRef,
    Retention,
    RetentionMode,
    RetentionState,
    StoredObject,
    check_metadata,
    parse_sha256,
)
from storage.port import PresignedPut
from storage.reader import ObjectReader
from storage.streams import PutSource, iter_chunks

__all__ = ["S3Config", "S3Credentials", "S3Store", "parse_s3_datetime"]

_META_PREFIX = "x-amz-meta-"
_DIGEST_KEY = _META_PREFIX + "kyso-sha256"
_TRANSIENT_STATUS = (500, 502, 503, 504)
_UNAVAILABLE_CODES = {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}
_FULL_CODES = {"QuotaExceeded", "XMinioStorageFull", "EntityTooLarge"}
_MAX_PRESIGN = timedelta(days=7)
_MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload
_REF_KEY = re.compile(r"sha256/[0-9a-f]{64}")
_STAGING_PREFIX = "staging/"
_STAGING_NAME = re.compile(r"[A-Za-z0-9_-]{16,128}")
_VERIFY_CHUNK = 1024 * 1024
_SMALL_STAGED = 1024 * 1024
_S3_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair. The secret is kept out of repr()."""

    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Credentials:
        """Read ``KYSO_S3_ACCESS_KEY``/``KYSO_S3_SECRET_KEY``, or the files named by
        ``KYSO_S3_ACCESS_KEY_FILE``/``KYSO_S3_SECRET_KEY_FILE`` (first line, stripped)."""
        env = os.environ if environ is None else environ
        return cls(
            access_key=_secret(env, "KYSO_S3_ACCESS_KEY"),
            secret_key=_secret(env, "KYSO_S3_SECRET_KEY"),
        )


def _secret(env: Mapping[str, str], name: str) -> str:
    if env.get(name):
        return env[name]
    path = env.get(name + "_FILE")
    if not path:
        raise StorageConfigError(f"set {name} or {name}_FILE (a file holding it) for the S3 store")
    try:
        value = Path(path).read_text("utf-8").strip().splitlines()
    except OSError as exc:
        raise StorageConfigError(f"cannot read {name}_FILE ({path}): {exc.strerror}") from exc
    if not value or not value[0].strip():
        raise StorageConfigError(f"{name}_FILE ({path}) is empty")
    return value[0].strip()


@dataclass(frozen=True)
class S3Config:
    """Where and how to store objects in S3. No credentials here (see ``S3Credentials``)."""

    endpoint: str
    """``host:port`` (no scheme)."""
    bucket: str
    secure: bool = True
    ca_bundle: Path | None = None
    """PEM file of CA certificates to trust instead of the system store (TLS only)."""
    region: str = "us-east-1"
    object_lock: bool = False
    """Create the bucket with object lock (and require it on an existing bucket)."""
    part_size: int = 16 * 1024 * 1024
    parallel_uploads: int = 2
    spool_memory_bytes: int = 8 * 1024 * 1024
    spool_dir: Path | None = None
    retries: int = 4
    backoff_seconds: float = 0.2
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if "://" in self.endpoint or not self.endpoint:
            raise StorageConfigError(
                f"S3 endpoint {self.endpoint!r} must be host:port without a scheme; "
                "use secure=True/False for TLS"
            )
        if not 5 * 1024 * 1024 <= self.part_size <= 5 * 1024**3:
            raise StorageConfigError("S3 part_size must be between 5 MiB and 5 GiB")
        if self.ca_bundle is not None and not self.secure:
            raise StorageConfigError("a CA bundle was given but TLS is off (secure=False)")


class S3Store:
    """Content-addressed, write-once object store in one S3 bucket (see module doc)."""

    def __init__(self, config: S3Config, *, credentials: S3Credentials) -> None:
        self.config = config
        self._client = self._make_client(config, credentials, retries=config.retries)
        # The probe must answer within a health-check deadline: no retries, short timeouts.
        self._probe = self._make_client(config, credentials, retries=0)
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        # Same-content puts in this process run one at a time, so the second finds the first's
        # object instead of adding a redundant version (across processes that can still
        # happen; the versions are identical and harmless).
        self._put_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._put_locks_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.config.endpoint!r}, bucket={self.config.bucket!r})"

    @staticmethod
    def _make_client(config: S3Config, credentials: S3Credentials, *, retries: int) -> Minio:
        retry = urllib3.Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=config.backoff_seconds,
            status_forcelist=_TRANSIENT_STATUS,
            allowed_methods=None,  # every request body is in memory, so PUT/POST replay safely
            raise_on_status=False,  # let minio read the S3 error document of the last answer
        )
        pool_args: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=config.connect_timeout, read=config.read_timeout),
            "retries": retry,
            "maxsize": max(10, config.parallel_uploads * 2),
        }
        if config.secure:
            pool_args["cert_reqs"] = "CERT_REQUIRED"
            if config.ca_bundle is not None:
                pool_args["ca_certs"] = str(config.ca_bundle)
        return Minio(
            config.endpoint,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            secure=config.secure,
            region=config.region,
            http_client=urllib3.PoolManager(**pool_args),
        )

    # ------------------------------------------------------------------ port
    def put(
        self,
        stream: PutSource,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        expected_sha256: str | None = None,
        retention: Retention | None = None,
    ) -> StoredObject:
        meta = check_metadata(metadata)
        if expected_sha256 is not None:
            ref = ObjectRef(parse_sha256(expected_sha256, what="the declared sha256"))
            self._ensure_bucket()
            with self._ref_lock(ref):
                return self._put_declared(ref, stream, content_type, meta, retention)
        with tempfile.SpooledTemporaryFile(
            max_size=self.config.spool_memory_bytes,
            dir=None if self.config.spool_dir is None else str(self.config.spool_dir),
        ) as spool:
            digest, size = _spool(stream, spool)
            ref = ObjectRef(digest.hexdigest())
            self._ensure_bucket()
            with self._ref_lock(ref):
                return self._upload(
                    ref, spool, digest.digest(), size, content_type, meta, retention
                )

    def _ref_lock(self, ref: ObjectRef) -> threading.Lock:
        with self._put_locks_guard:
            return self._put_locks.setdefault(ref.sha256, threading.Lock())

    def _put_declared(
        self,
        ref: ObjectRef,
        stream: PutSource,
        content_type: str,
        meta: Mapping[str, str],
        retention: Retention | None,
    ) -> StoredObject:
        """Store a stream whose digest was declared: hash while uploading (see module doc)."""
        digest = hashlib.sha256()
        parts = _parts(iter_chunks(stream), digest, self.config.part_size)
        existing = self._head(ref)
        if existing is not None:
            for _ in parts:  # the bytes must still be the declared ones
                pass
            _check_declared(ref, digest)
            return self._extend_retention(existing, retention)
        first = next(parts, b"")
        second = next(parts, None)
        if second is None:  # all of it fits one part: check, then one PUT
            _check_declared(ref, digest)
            return self._upload(
                ref, io.BytesIO(first), digest.digest(), len(first), content_type, meta, retention
            )
        return self._multipart(
            ref, _chain(first, second, parts), digest, content_type, meta, retention
        )

    def _multipart(
        self,
        ref: ObjectRef,
        parts: Iterator[bytes],
        digest: Any,
        content_type: str,
        meta: Mapping[str, str],
        retention: Retention | None,
    ) -> StoredObject:
        """Upload ``parts`` (hashed into ``digest`` as they are drawn) at ``ref``; complete only
        if the digest matches the address, abort on a mismatch or any failure."""
        bucket, key = self.config.bucket, str(ref)
        headers = {
            _DIGEST_KEY: ref.sha256,
            **{_META_PREFIX + k: quote(v, safe="") for k, v in meta.items()},
            "Content-Type": content_type or "application/octet-stream",
            **_retention_headers(retention),
        }
        try:
            upload_id = _minio_private.create_multipart_upload(
                self._client, bucket=bucket, key=key, headers=headers
            )
        except Exception as exc:
            _raise_mapped(exc, f"cannot store {ref}")
        size = 0
        sent: list[Future[str]] = []
        failed: list[Future[str]] = []
        in_flight = threading.BoundedSemaphore(self.config.parallel_uploads)

        def done(future: Future[str]) -> None:
            if future.exception() is not None:
                failed.append(future)
            in_flight.release()

        try:
            # Leaving the pool waits for the parts in flight, so none lands after an abort.
            with ThreadPoolExecutor(self.config.parallel_uploads, "s3-part") as pool:
                for number, data in enumerate(parts, start=1):
                    if number > _MAX_PARTS:
                        raise StorageError(
                            f"{ref} needs more than {_MAX_PARTS} parts of "
                            f"{self.config.part_size} bytes: raise the S3 part_size to store "
                            "documents this large"
                        )
                    size += len(data)
                    in_flight.acquire()  # bounds the parts held in memory
                    if failed:  # stop reading at the first failed part
                        failed[0].result()
                    future = pool.submit(
                        _minio_private.upload_part,
                        self._client,
                        bucket=bucket,
                        key=key,
                        upload_id=upload_id,
                        number=number,
                        data=data,
                    )
                    future.add_done_callback(done)
                    sent.append(future)
                _check_declared(ref, digest)
                etags = [future.result() for future in sent]
            _minio_private.complete_multipart_upload(
                self._client, bucket=bucket, key=key, upload_id=upload_id, etags=etags
            )
        except BaseException as exc:
            self._abort(ref, upload_id)
            _raise_mapped(exc, f"cannot store {ref}")
        return self._verify_stored(ref, size, retention)

    def _abort(self, ref: ObjectRef, upload_id: str) -> None:
        """Best effort: an upload that cannot be aborted (the service is down) stays invisible."""
        # The failure that led here is the one to report, not the abort's.
        with contextlib.suppress(Exception):
            _minio_private.abort_multipart_upload(
                self._client, bucket=self.config.bucket, key=str(ref), upload_id=upload_id
            )

    def _verify_stored(
        self, ref: ObjectRef, size: int, retention: Retention | None
    ) -> StoredObject:
        """After a multipart upload: never the ETag (empty from Ceph's
        CompleteMultipartUpload) but a stat, whose recorded digest ``_describe`` checks.

        Ceph's gateway ignores the object-lock headers of CreateMultipartUpload, so a retention
        the new object lacks is set now (until then the object is briefly unlocked)."""
        stored = self._head(ref)
        if stored is None or stored.size != size:
            raise IntegrityError(
                f"{ref} was uploaded but the store reports "
                f"{'no object' if stored is None else f'{stored.size} bytes, not {size}'}; "
                "retry the upload and check the S3 service"
            )
        return self._extend_retention(stored, retention)

    def _upload(
        self,
        ref: ObjectRef,
        spool: Any,
        raw_digest: bytes,
        size: int,
        content_type: str,
        meta: Mapping[str, str],
        retention: Retention | None,
    ) -> StoredObject:
        """Upload the spool to ``ref`` unless it is already stored; verify by a stat."""
        existing = self._head(ref)
        if existing is not None:
            return self._extend_retention(existing, retention)
        spool.seek(0)
        headers = {_DIGEST_KEY: ref.sha256}
        headers.update({_META_PREFIX + k: quote(v, safe="") for k, v in meta.items()})
        if size <= self.config.part_size:
            # One PUT: the server checks the bytes (and object-lock buckets demand a checksum).
            headers["x-amz-checksum-sha256"] = base64.b64encode(raw_digest).decode()
        try:
            self._client.put_object(
                self.config.bucket,
                str(ref),
                spool,
                size,
                content_type=content_type or "application/octet-stream",
                metadata=headers,  # type: ignore[arg-type]
                retention=_minio_retention(retention),
                part_size=self.config.part_size,
                num_parallel_uploads=self.config.parallel_uploads,
            )
        except Exception as exc:
            _raise_mapped(exc, f"cannot store {ref}")
        if size <= self.config.part_size:
            # A single PUT answered 200 for exactly these bytes: no second round trip.
            return StoredObject(
                ref=ref,
                size=size,
                content_type=content_type or "application/octet-stream",
                metadata=MappingProxyType(dict(meta)),
                created=datetime.now(UTC),
                retention=None
                if retention is None
                else RetentionState(
                    mode=retention.mode,
                    retain_until=datetime.now(UTC) + timedelta(days=retention.days),
                ),
            )
        return self._verify_stored(ref, size, retention)

    def open(self, ref: ObjectRef | str) -> ObjectReader:
        ref = ObjectRef.parse(ref)
        self._ensure_bucket()
        try:
            response = self._client.get_object(self.config.bucket, str(ref))
        except Exception as exc:
            _raise_mapped(exc, f"cannot read {ref}", ref=ref)
        info = _describe(ref, response.headers)

        def read_chunk(n: int) -> bytes:
            try:
                return bytes(response.read(n))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StorageUnavailable(
                    f"the S3 service stopped sending {ref} mid-read; retry"
                ) from exc

        def close_source() -> None:
            response.close()
            response.release_conn()

        return ObjectReader(info=info, read_chunk=read_chunk, close_source=close_source)

    def stat(self, ref: ObjectRef | str) -> StoredObject:
        ref = ObjectRef.parse(ref)
        stored = self._head(ref)
        if stored is None:
            raise ObjectNotFound(f"no object {ref} is stored here")
        return stored

    def exists(self, ref: ObjectRef | str) -> bool:
        return self._head(ObjectRef.parse(ref)) is not None

    def iter_refs(self) -> Iterator[ObjectRef]:
        """List the bucket's current objects under ``sha256/`` (S3 lists keys in ascending
        binary order, a page of up to 1000 at a time); keys of any other shape are skipped."""
        self._ensure_bucket()
        try:
            for obj in self._client.list_objects(
                self.config.bucket, prefix="sha256/", recursive=True
            ):
                name = obj.object_name or ""
                if _REF_KEY.fullmatch(name) and not obj.is_delete_marker:
                    yield ObjectRef.parse(name)
        except Exception as exc:
            _raise_mapped(exc, f"cannot list the objects of bucket {self.config.bucket}")

    def presigned_get_url(self, ref: ObjectRef | str, *, expires: timedelta) -> str:
        ref = ObjectRef.parse(ref)
        if not timedelta(seconds=1) <= expires <= _MAX_PRESIGN:
            raise ValueError("a download URL must expire between 1 second and 7 days from now")
        self.stat(ref)  # no URLs for objects that are not there
        try:
            return self._client.presigned_get_object(self.config.bucket, str(ref), expires=expires)
        except Exception as exc:
            _raise_mapped(exc, f"cannot sign a download URL for {ref}", ref=ref)

    # ------------------------------------------------------------ direct transfer
    def staging_put(self, name: str, *, expires: timedelta, content_type: str) -> PresignedPut:
        key = _staging_key(name)
        if not timedelta(seconds=1) <= expires <= _MAX_PRESIGN:
            raise ValueError("an upload URL must expire between 1 second and 7 days from now")
        self._ensure_bucket()
        try:
            url = self._client.presigned_put_object(self.config.bucket, key, expires=expires)
        except Exception as exc:
            _raise_mapped(exc, "cannot sign an upload URL")
        return PresignedPut(
            url=url,
            headers=MappingProxyType({"Content-Type": content_type or "application/octet-stream"}),
        )

    def adopt_staged(
        self,
        name: str,
        *,
        sha256: str,
        size: int,
        content_type: str,
        metadata: Mapping[str, str],
        retention: Retention | None = None,
    ) -> StoredObject:
        key = _staging_key(name)
        ref = ObjectRef(parse_sha256(sha256, what="the declared sha256"))
        meta = check_metadata(metadata)
        self._ensure_bucket()
        version, small = self._check_staged(key, ref, size)
        with self._ref_lock(ref):
            if small is not None:  # the checked bytes are in hand: one PUT, as ``put`` does
                raw_digest = bytes.fromhex(ref.sha256)
                return self._upload(
                    ref, io.BytesIO(small), raw_digest, size, content_type, meta, retention
                )
            existing = self._head(ref)
            if existing is not None:
                return self._extend_retention(existing, retention)
            headers = {
                _DIGEST_KEY: ref.sha256,
                **{_META_PREFIX + k: quote(v, safe="") for k, v in meta.items()},
                "Content-Type": content_type or "application/octet-stream",
            }
            try:
                self._client.copy_object(
                    self.config.bucket,
                    str(ref),
                    CopySource(self.config.bucket, key, version_id=version),
                    metadata=headers,  # type: ignore[arg-type]
                    metadata_directive=REPLACE,
                    retention=_minio_retention(retention),
                )
            except Exception as exc:
                _raise_mapped(exc, f"cannot store {ref} from its staged upload")
            if retention is not None:
                # Ceph's gateway (16.2) ignores object-lock headers on CopyObject: set the lock
                # on the copy (a no-op where the copy already has it).
                return self._extend_retention(self.stat(ref), retention)
        # CopyObject answered 200 for the version whose bytes were just checked.
        return StoredObject(
            ref=ref,
            size=size,
            content_type=content_type or "application/octet-stream",
            metadata=MappingProxyType(dict(meta)),
            created=datetime.now(UTC),
        )

    def _check_staged(self, key: str, ref: ObjectRef, size: int) -> tuple[str | None, bytes | None]:
        """Read the staged object's current version back, hashing it. When it is ``size`` bytes
        with ``ref``'s digest, return its version id, and its bytes when it is small (at most
        ``_SMALL_STAGED``: put again from memory, which costs less than a copy); else raise
        (nothing is stored)."""
        try:
            response = self._client.get_object(self.config.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise StagedObjectMissing(
                    "nothing was uploaded to the upload URL: PUT the bytes to it, then complete"
                ) from exc
            _raise_mapped(exc, "cannot read the staged upload")
        except Exception as exc:
            _raise_mapped(exc, "cannot read the staged upload")
        try:
            version = response.headers.get("x-amz-version-id")
            got = int(response.headers.get("content-length", "-1"))
            if got != size:
                raise DeclaredHashMismatch(
                    f"the uploaded object is {got} bytes, not the declared {size}: nothing was "
                    "stored; begin a new upload"
                )
            digest = hashlib.sha256()
            kept: list[bytes] | None = [] if size <= _SMALL_STAGED else None
            try:
                while piece := response.read(_VERIFY_CHUNK):
                    digest.update(piece)
                    if kept is not None:
                        kept.append(piece)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StorageUnavailable(
                    "the S3 service stopped sending the staged upload mid-read; retry"
                ) from exc
            if digest.hexdigest() != ref.sha256:
                raise DeclaredHashMismatch(
                    f"the uploaded bytes have SHA-256 {digest.hexdigest()}, not the declared "
                    f"{ref.sha256}: nothing was stored; begin a new upload"
                )
            return version, None if kept is None else b"".join(kept)
        finally:
            response.close()
            response.release_conn()

    def discard_staged(self, name: str) -> None:
        key = _staging_key(name)
        self._ensure_bucket()
        try:
            for obj in self._client.list_objects(
                self.config.bucket, prefix=key, include_version=True
            ):
                if obj.object_name == key:
                    self._client.remove_object(self.config.bucket, key, version_id=obj.version_id)
        except Exception as exc:
            _raise_mapped(exc, "cannot remove the staged upload")

    def check(self) -> None:
        try:
            self._probe.bucket_exists(self.config.bucket)
        except Exception as exc:
            _raise_mapped(exc, "S3 health check failed")
        self._ensure_bucket()  # once: creates or validates the bucket

    # ------------------------------------------------------------------ steps
    def _head(self, ref: ObjectRef) -> StoredObject | None:
        self._ensure_bucket()
        try:
            obj = self._client.stat_object(self.config.bucket, str(ref))
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
                return None
            _raise_mapped(exc, f"cannot look up {ref}", ref=ref)
        except Exception as exc:
            _raise_mapped(exc, f"cannot look up {ref}", ref=ref)
        assert obj.metadata is not None
        return _describe(ref, obj.metadata)

    def _ensure_bucket(self) -> None:
        """Create the bucket (with versioning, and object lock if configured) when missing."""
        if self._bucket_ready:
            return
        bucket = self.config.bucket
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                if not self._client.bucket_exists(bucket):
                    try:
                        self._client.make_bucket(bucket, object_lock=self.config.object_lock)
                    except S3Error as exc:
                        if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                            raise
                versioning = self._client.get_bucket_versioning(bucket)
                if versioning.status != ENABLED:
                    self._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
                if self.config.object_lock:
                    self._require_object_lock()
            except StorageError:
                raise
            except Exception as exc:
                _raise_mapped(exc, f"cannot prepare bucket {bucket}")
            self._bucket_ready = True

    def _require_object_lock(self) -> None:
        try:
            self._client.get_object_lock_config(self.config.bucket)
        except S3Error as exc:
            if exc.code == "ObjectLockConfigurationNotFoundError":
                raise StorageConfigError(
                    f"bucket {self.config.bucket} exists without object lock, which can only be "
                    "chosen when a bucket is created: use a new bucket name or turn "
                    "object_lock off"
                ) from exc
            raise

    def _extend_retention(self, stored: StoredObject, retention: Retention | None) -> StoredObject:
        """Existing content re-put with a retention: lengthen the lock if it would end sooner."""
        if retention is None:
            return stored
        until = datetime.now(UTC) + timedelta(days=retention.days)
        current = stored.retention
        if current is not None and current.retain_until >= until:
            return stored
        mode = retention.mode
        if current is not None and current.mode is RetentionMode.COMPLIANCE:
            mode = RetentionMode.COMPLIANCE  # a lock is never weakened
        try:
            self._client.set_object_retention(
                self.config.bucket, str(stored.ref), _minio_retention_until(mode, until)
            )
        except Exception as exc:
            _raise_mapped(exc, f"cannot extend the retention of {stored.ref}", ref=stored.ref)
        return self.stat(stored.ref)


def _staging_key(name: str) -> str:
    if not _STAGING_NAME.fullmatch(name):
        raise ValueError("a staging name is 16 to 128 characters of A-Z, a-z, 0-9, _ and -")
    return _STAGING_PREFIX + name


def _spool(stream: PutSource, spool: Any) -> tuple[Any, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in iter_chunks(stream):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
    except OSError as exc:
        if exc.errno in {28, 122}:  # ENOSPC, EDQUOT in the spool directory
            raise StorageFull(
                "the local spool directory for S3 uploads is full: free space there or "
                "set spool_dir to a larger volume"
            ) from exc
        raise
    return digest, size


def _parts(chunks: Iterable[bytes], digest: Any, part_size: int) -> Iterator[bytes]:
    """Regroup ``chunks`` into parts of exactly ``part_size`` bytes (the last one shorter, and
    one empty part for empty content), hashing every chunk into ``digest`` as it is drawn.

    Each byte is copied once, into its part: a chunk is cut only where a part ends (the cut
    copies at most that chunk), and chunks that fill a part exactly (1 MiB chunks, 16 MiB
    parts) are joined without any other copy; a single chunk of exactly a part is not copied.
    """
    pending: list[bytes] = []
    pending_size = 0
    yielded = False
    for chunk in chunks:
        digest.update(chunk)
        while pending_size + len(chunk) >= part_size:
            cut = part_size - pending_size
            pending.append(chunk[:cut])  # the chunk itself when it ends the part
            yield b"".join(pending)
            yielded = True
            chunk = chunk[cut:]
            pending, pending_size = [], 0
        if chunk:
            pending.append(chunk)
            pending_size += len(chunk)
    if pending_size or not yielded:
        yield b"".join(pending)


def _chain(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest


def _check_declared(ref: ObjectRef, digest: Any) -> None:
    if digest.hexdigest() != ref.sha256:
        raise DeclaredHashMismatch(
            f"the uploaded bytes have SHA-256 {digest.hexdigest()}, not the declared "
            f"{ref.sha256}: nothing was stored; send the document again"
        )


def _describe(ref: ObjectRef, headers: Mapping[str, str]) -> StoredObject:
    """Build a StoredObject from HEAD/GET response headers (case-insensitive mapping)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    recorded = lowered.get(_DIGEST_KEY)
    if recorded is not None and recorded != ref.sha256:
        raise IntegrityError(
            f"the S3 object {ref} records digest {recorded}: it was overwritten out of band; "
            "restore the right version"
        )
    metadata = {
        unquote(k.removeprefix(_META_PREFIX)): unquote(v)
        for k, v in lowered.items()
        if k.startswith(_META_PREFIX) and k != _DIGEST_KEY
    }
    created = None
    if "last-modified" in lowered:
        created = parsedate_to_datetime(lowered["last-modified"])
    retention = None
    mode = lowered.get("x-amz-object-lock-mode")
    until = lowered.get("x-amz-object-lock-retain-until-date")
    if mode in {m.value for m in RetentionMode} and until:
        retention = RetentionState(mode=RetentionMode(mode), retain_until=parse_s3_datetime(until))
    return StoredObject(
        ref=ref,
        size=int(lowered.get("content-length", "0")),
        content_type=lowered.get("content-type", "application/octet-stream"),
        metadata=MappingProxyType(metadata),
        created=created,
        retention=retention,
    )


def parse_s3_datetime(text: str) -> datetime:
    """Parse an ISO 8601 instant as S3 servers write it, including nanoseconds (Ceph RGW)."""
    match = _S3_DATETIME.fullmatch(text.strip())
    if match is None:
        raise StorageError(f"the S3 service sent an unreadable date {text!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")  # nanoseconds are truncated to microseconds
    suffix = "+00:00" if zone in {None, "Z"} else zone
    return datetime.fromisoformat(f"{base}.{micro}{suffix}")


def _minio_retention(retention: Retention | None) -> MinioRetention | None:
    if retention is None:
        return None
    return _minio_retention_until(
        retention.mode, datetime.now(UTC) + timedelta(days=retention.days)
    )


def _minio_retention_until(mode: RetentionMode, until: datetime) -> MinioRetention:
    return MinioRetention(COMPLIANCE if mode is RetentionMode.COMPLIANCE else GOVERNANCE, until)


def _retention_headers(retention: Retention | None) -> dict[str, str]:
    """The object-lock headers of a request that creates an object (S3's ISO 8601 form, UTC,
    milliseconds), for the multipart path where no public SDK call builds them."""
    if retention is None:
        return {}
    until = datetime.now(UTC) + timedelta(days=retention.days)
    return {
        "x-amz-object-lock-mode": retention.mode.value,
        "x-amz-object-lock-retain-until-date": until.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }


def _raise_mapped(exc: BaseException, what: str, *, ref: ObjectRef | None = None) -> NoReturn:
    """Re-raise a minio/urllib3 failure as the StorageError a caller can act on."""
    if isinstance(exc, StorageError):
        raise exc
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code in {"NoSuchKey", "NoSuchObject"} and ref is not None:
            raise ObjectNotFound(f"no object {ref}") from exc
        if code == "NoSuchBucket":
            raise StorageConfigError(f"{what}: the bucket does not exist") from exc
        if code in _CREDENTIAL_CODES:
            raise CredentialsRejected(
                f"{what}: the S3 service refused the credentials ({code}); check "
                "KYSO_S3_ACCESS_KEY/KYSO_S3_SECRET_KEY and the user's permissions"
            ) from exc
        if code in _FULL_CODES:
            raise StorageFull(f"{what}: the S3 service is full or over quota ({code})") from exc
        if code in _UNAVAILABLE_CODES:
            raise StorageUnavailable(
                f"{what}: the S3 service is unavailable ({code}); retry"
            ) from exc
        raise StorageError(f"{what}: the S3 service answered {code or 'an error'}") from exc
    if isinstance(exc, ServerError | InvalidResponseError):
        raise StorageUnavailable(
            f"{what}: the S3 service failed ({type(exc).__name__}); retry"
        ) from exc
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        raise StorageUnavailable(
            f"{what}: the S3 service cannot be reached; check that it is running and retry"
        ) from exc
    if isinstance(exc, MinioException):
        raise StorageError(f"{what}: {type(exc).__name__}") from exc
    raise exc
