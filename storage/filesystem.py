"""The filesystem adapter: the embedded default store.

Layout under ``root``::

    objects/ab/cd/abcd…(64 hex)         the content, read-only for its owner (0400)
    objects/ab/cd/abcd….json            its description (size, content type, metadata, retention)
    tmp/                                staging for puts in progress

Only the service's user reads the store: directories are 0700, content 0400, descriptions
0600. With ``group`` (the operators' group id), directories are 0750, content 0440 and
descriptions 0640, owned by that group, so its members can read (never change) the store.

Invariants:
- a put streams into a staging file in ``tmp/`` while hashing (the shard directory is not known
  until the digest is); ``tmp/`` is checked to be on the same filesystem as ``objects/`` so that
  the final step is an atomic directory-entry operation. The file is fsynced, then hard-linked
  to its final name (``link`` never replaces: a concurrent writer of the same content that got
  there first wins, and both return the same ref), then the shard directory is fsynced;
- the description is written first (temp file in the shard directory, fsync, link) so that an
  object, once visible, always has one;
- ``put_many`` (group commit) keeps the same invariants for a batch with fewer flushes: every
  object is staged in ``tmp/`` and every description written to a temp file in its shard
  directory without a flush; then all of them are made durable together; only then are they
  linked in (description first, as above); then the new directory entries are made durable
  together; only then does it return. "Together" is one ``syncfs(2)`` of the store's filesystem
  on Linux ≥ 5.8 (earlier kernels may not report write-back errors from it), else an fsync of
  each file, then of each touched directory once. Content is linked only after its bytes are
  durable, so a power cut at any point leaves either nothing or a complete object under a name;
- ENOSPC/EDQUOT raises ``StorageFull`` and removes every file the put created;
- retention is recorded, not enforced: a filesystem cannot lock a file against root, and this
  API never deletes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from storage.errors import (
    DeclaredHashMismatch,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UnsupportedOperation,
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
from storage.port import PutItem
from storage.reader import ObjectReader
from storage.streams import PutSource, iter_chunks

__all__ = ["FilesystemStore"]

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SHARD = re.compile(r"[0-9a-f]{2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NO_HARDLINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class FilesystemStore:
    """Content-addressed, write-once object store in a local directory (see module doc)."""

    def __init__(self, root: Path, *, create: bool = True, group: int | None = None) -> None:
        self.root = root
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        self._group = group
        self._dir_mode = 0o750 if group is not None else 0o700
        self._file_mode = 0o440 if group is not None else 0o400
        self._meta_mode = 0o640 if group is not None else 0o600
        try:
            if create:
                self._objects.mkdir(parents=True, exist_ok=True)
                self._tmp.mkdir(exist_ok=True)
                for directory in (root, self._objects, self._tmp):
                    if directory.stat().st_uid == os.geteuid():  # not a parent someone else owns
                        self._restrict(directory, self._dir_mode)
            devices = {os.stat(self._objects).st_dev, os.stat(self._tmp).st_dev}
        except FileNotFoundError as exc:
            raise StorageConfigError(
                f"storage directory {root} does not exist or is incomplete: create it or let "
                "kyso create it (create=True)"
            ) from exc
        except OSError as exc:
            raise StorageConfigError(
                f"cannot use storage directory {root}: {exc.strerror}"
            ) from exc
        if len(devices) != 1:
            raise StorageConfigError(
                f"{self._objects} and {self._tmp} are on different filesystems; atomic puts "
                "need them on one: do not mount anything over either"
            )

    def __repr__(self) -> str:
        return f"FilesystemStore(root={str(self.root)!r})"

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
            parse_sha256(expected_sha256, what="the declared sha256")
        staged, digest, size = self._stage(stream)
        try:
            if expected_sha256 is not None and digest != expected_sha256:
                raise DeclaredHashMismatch(
                    f"the uploaded bytes have SHA-256 {digest}, not the declared "
                    f"{expected_sha256}: nothing was stored; send the document again"
                )
            ref = ObjectRef(digest)
            final = self._path(ref)
            if final.exists():
                return self._extend_retention(ref, retention)
            now = datetime.now(UTC)
            record = {
                "sha256": digest,
                "size": size,
                "content_type": content_type,
                "metadata": dict(meta),
                "created": now.isoformat(),
                "retention": _retention_json(retention, now),
            }
            self._publish(staged, final, record)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
        return self.stat(ref)

    def put_many(self, items: Sequence[PutItem], /) -> list[StoredObject]:
        """Store a batch with one group flush (see the module doc); descriptions in order."""
        for item in items:
            check_metadata(item.metadata)
            if item.expected_sha256 is not None:
                parse_sha256(item.expected_sha256, what="the declared sha256")
        # Opened before any write so that syncfs reports write-back errors of this batch.
        try:
            root_fd = os.open(self._objects, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise _os_error(exc, f"cannot open the storage directory {self._objects}") from exc
        staged: list[_Staged] = []
        try:
            for item in items:
                path, digest, size = self._stage(item.source, durable=False)
                staged.append(_Staged(item=item, path=path, sha256=digest, size=size))
                if item.expected_sha256 is not None and digest != item.expected_sha256:
                    raise DeclaredHashMismatch(
                        f"item {len(staged) - 1} of the batch has SHA-256 {digest}, not the "
                        f"declared {item.expected_sha256}: nothing of the batch was stored; "
                        "send the documents again"
                    )
            return self._publish_many(staged, root_fd)
        finally:
            os.close(root_fd)
            for entry in staged:
                with contextlib.suppress(FileNotFoundError):
                    entry.path.unlink()

    def _publish_many(self, staged: Sequence[_Staged], root_fd: int) -> list[StoredObject]:
        now = datetime.now(UTC)
        fresh: dict[str, tuple[_Staged, Path, dict[str, Any]]] = {}
        described: dict[str, StoredObject] = {}
        existing: list[_Staged] = []
        pending: list[Path] = []  # temp descriptions not yet linked (removed on failure)
        created: list[Path] = []
        dirty: set[Path] = set()
        try:
            for entry in staged:
                final = self._path(ObjectRef(entry.sha256))
                if entry.sha256 in fresh:
                    continue  # equal content earlier in the batch: one object, first one wins
                if final.exists():
                    existing.append(entry)
                    continue
                record = {
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "content_type": entry.item.content_type,
                    "metadata": dict(entry.item.metadata),
                    "created": now.isoformat(),
                    "retention": _retention_json(entry.item.retention, now),
                }
                dirty |= self._make_dirs(final.parent, durable=False)
                pending.append(self._write_temp_json(final.parent, record, durable=False))
                self._restrict(entry.path, self._file_mode)
                fresh[entry.sha256] = (entry, final, record)
            self._flush(root_fd, [*(e.path for e, _, _ in fresh.values()), *pending])
            for (entry, final, record), temp in zip(fresh.values(), pending, strict=True):
                meta_path = final.with_name(final.name + ".json")
                if _link_new(temp, meta_path):
                    created.append(meta_path)
                if _link_new(entry.path, final):
                    created.append(final)
                    described[entry.sha256] = _from_record(ObjectRef(entry.sha256), record)
                dirty.add(final.parent)
            pending.clear()
            self._flush(root_fd, sorted(dirty))
        except OSError as exc:
            for path in reversed(created):
                path.unlink(missing_ok=True)
            raise _os_error(exc, "cannot store the documents") from exc
        finally:
            for temp in pending:
                temp.unlink(missing_ok=True)
        for entry in existing:
            described[entry.sha256] = self._extend_retention(
                ObjectRef(entry.sha256), entry.item.retention
            )
        # A concurrent writer may have linked one of ours first: it is stored; describe it.
        return [described.get(e.sha256) or self.stat(ObjectRef(e.sha256)) for e in staged]

    def _flush(self, root_fd: int, paths: Sequence[Path]) -> None:
        """Make ``paths`` (files and directories of this store) durable: one syncfs, or each."""
        if not paths:
            return
        if _SYNCFS is not None:
            _SYNCFS(root_fd)
            return
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def open(self, ref: ObjectRef | str) -> ObjectReader:
        info = self.stat(ref)
        try:
            handle = self._path(info.ref).open("rb", buffering=0)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {info.ref} is stored here") from exc
        except OSError as exc:
            raise _os_error(exc, f"cannot open {info.ref}") from exc

        def read_chunk(n: int) -> bytes:
            try:
                return handle.read(n) or b""
            except OSError as exc:
                raise _os_error(exc, f"cannot read {info.ref}") from exc

        return ObjectReader(info=info, read_chunk=read_chunk, close_source=handle.close)

    def stat(self, ref: ObjectRef | str) -> StoredObject:
        ref = ObjectRef.parse(ref)
        path = self._path(ref)
        try:
            record = json.loads(path.with_name(path.name + ".json").read_text("utf-8"))
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {ref} is stored here") from exc
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"the description of {ref} cannot be read; check the .json file in {path.parent}"
            ) from exc
        if not path.exists():
            raise ObjectNotFound(f"no object {ref} is stored here")
        return _from_record(ref, record)

    def exists(self, ref: ObjectRef | str) -> bool:
        return self._path(ObjectRef.parse(ref)).exists()

    def iter_refs(self) -> Iterator[ObjectRef]:
        """Walk the shard directories in sorted order (so refs come out ascending); only
        content files under their own shard count (descriptions, ``.meta-`` temp files and
        anything misplaced are skipped)."""
        try:
            for first in _sorted_names(self._objects, _SHARD):
                for second in _sorted_names(self._objects / first, _SHARD):
                    shard = self._objects / first / second
                    for name in _sorted_names(shard, _HEX64):
                        if name.startswith(first + second):
                            yield ObjectRef(name)
        except OSError as exc:
            raise _os_error(exc, f"cannot list the objects in {self._objects}") from exc

    def presigned_get_url(self, ref: ObjectRef | str, *, expires: timedelta) -> str:
        ObjectRef.parse(ref)
        raise UnsupportedOperation(
            "the filesystem store has no download URLs: stream the document through the "
            "service instead, or configure the S3 store"
        )

    def check(self) -> None:
        for directory in (self._objects, self._tmp):
            if not os.access(directory, os.W_OK | os.X_OK):
                # no path: this message reaches clients (health's reasons, UNAVAILABLE)
                raise StorageUnavailable(
                    f"the store's {directory.name} directory (under [storage] path) is missing"
                    " or not writable: check the mount and its permissions"
                )

    # ------------------------------------------------------------------ steps
    def _path(self, ref: ObjectRef) -> Path:
        hexdigest = ref.sha256
        return self._objects / hexdigest[:2] / hexdigest[2:4] / hexdigest

    def _stage(self, stream: PutSource, *, durable: bool = True) -> tuple[Path, str, int]:
        """Copy the stream into a staging file (fsynced if ``durable``); return it with its
        digest and size."""
        try:
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix=".put-")
        except OSError as exc:
            raise _os_error(exc, "cannot create a staging file") from exc
        staged = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in iter_chunks(stream):
                    digest.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) or 0 :]
                if durable:
                    os.fsync(out.fileno())
        except BaseException as exc:
            staged.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _os_error(exc, "cannot write the document") from exc
            raise
        return staged, digest.hexdigest(), size

    def _publish(self, staged: Path, final: Path, record: dict[str, Any]) -> None:
        """Make the staged file visible under ``final``: description first, then content."""
        meta_path = final.with_name(final.name + ".json")
        created: list[Path] = []
        try:
            self._make_dirs(final.parent)
            if _link_new(self._write_temp_json(final.parent, record), meta_path):
                created.append(meta_path)
            self._restrict(staged, self._file_mode)
            if _link_new(staged, final):
                created.append(final)
            _fsync_dir(final.parent)
        except OSError as exc:
            for path in reversed(created):
                path.unlink(missing_ok=True)
            raise _os_error(exc, "cannot store the document") from exc

    def _write_temp_json(
        self, directory: Path, record: dict[str, Any], *, durable: bool = True
    ) -> Path:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".meta-")
        try:
            self._restrict(Path(name), self._meta_mode)
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
                out.flush()
                if durable:
                    os.fsync(out.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def _make_dirs(self, directory: Path, *, durable: bool = True) -> set[Path]:
        """Create the shard directories; return the parents whose entries changed, fsynced
        unless ``durable`` is false (then the caller flushes them before relying on them)."""
        missing: list[Path] = []
        for path in (directory, directory.parent):
            if path.exists():
                break
            missing.append(path)
        changed: set[Path] = set()
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=self._dir_mode)
                self._restrict(path, self._dir_mode)
            if durable:
                _fsync_dir(path.parent)
            changed.add(path.parent)
        return changed

    def _restrict(self, path: Path, mode: int) -> None:
        """Give ``path`` its mode (whatever the umask) and the operators' group, if any."""
        if self._group is not None:
            os.chown(path, -1, self._group)
        os.chmod(path, mode)

    def _extend_retention(self, ref: ObjectRef, retention: Retention | None) -> StoredObject:
        """Re-put of stored content: keep it, but lengthen (never shorten) its retention record."""
        current = self.stat(ref)
        if retention is None:
            return current
        now = datetime.now(UTC)
        wanted = _retention_json(retention, now)
        assert wanted is not None
        if current.retention is not None:
            if current.retention.retain_until >= datetime.fromisoformat(wanted["retain_until"]):
                return current
            if current.retention.mode is RetentionMode.COMPLIANCE:
                wanted["mode"] = RetentionMode.COMPLIANCE.value
        path = self._path(ref)
        meta_path = path.with_name(path.name + ".json")
        record = json.loads(meta_path.read_text("utf-8"))
        record["retention"] = wanted
        try:
            temp = self._write_temp_json(path.parent, record)
            os.replace(temp, meta_path)  # the description only; content is never replaced
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _os_error(exc, f"cannot record the retention of {ref}") from exc
        return self.stat(ref)


@dataclass(frozen=True, slots=True)
class _Staged:
    """An item of a batch put, copied into ``tmp/`` (not yet durable)."""

    item: PutItem
    path: Path
    sha256: str
    size: int


def _load_syncfs() -> Callable[[int], None] | None:
    """libc's ``syncfs(2)`` where it reports write-back errors (Linux ≥ 5.8), else None.

    Python's ``os`` has no syncfs; without a trustworthy one, batches fall back to one fsync per
    file and per directory, which is as durable, only slower.
    """
    system = os.uname()
    release = re.match(r"(\d+)\.(\d+)", system.release)
    if system.sysname != "Linux" or release is None:
        return None
    if (int(release[1]), int(release[2])) < (5, 8):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


_SYNCFS = _load_syncfs()


def _link_new(source: Path, target: Path) -> bool:
    """Give ``source`` the name ``target`` unless it exists; remove ``source``. True if created."""
    try:
        os.link(source, target)
    except FileExistsError:
        source.unlink(missing_ok=True)
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            source.unlink(missing_ok=True)
            raise
        # No hard links on this filesystem: rename, which replaces an identical object at worst.
        os.rename(source, target)
        return True
    source.unlink(missing_ok=True)
    return True


def _sorted_names(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    """The names in ``directory`` that fully match ``pattern``, sorted; [] if it vanished."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if pattern.fullmatch(name))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, what: str) -> StorageError:
    if exc.errno in _FULL_ERRNOS:
        return StorageFull(
            f"{what}: the storage filesystem is full (or over quota); free space or grow the "
            "volume, then retry"
        )
    return StorageError(f"{what}: {exc.strerror or exc}")


def _retention_json(retention: Retention | None, now: datetime) -> dict[str, str] | None:
    if retention is None:
        return None
    until = now + timedelta(days=retention.days)
    return {"mode": retention.mode.value, "retain_until": until.isoformat()}


def _from_record(ref: ObjectRef, record: dict[str, Any]) -> StoredObject:
    if record.get("sha256") != ref.sha256:
        raise StorageError(f"the description beside {ref} names another digest: it is corrupt")
    retention = record.get("retention")
    return StoredObject(
        ref=ref,
        size=int(record["size"]),
        content_type=str(record["content_type"]),
        metadata=MappingProxyType({str(k): str(v) for k, v in record["metadata"].items()}),
        created=datetime.fromisoformat(record["created"]),
        retention=None
        if retention is None
        else RetentionState(
            mode=RetentionMode(retention["mode"]),
            retain_until=datetime.fromisoformat(retention["retain_until"]),
        ),
    )
