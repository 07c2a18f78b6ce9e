"""Filesystem-adapter specifics: layout, atomicity, disk full, and the verified reader."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import (
    FilesystemStore,
    IntegrityError,
    ObjectReader,
    ObjectRef,
    StorageConfigError,
    StorageFull,
    StoredObject,
    UnsupportedOperation,
)
from tests.storage.conftest import MiB, pseudo_random_chunks


def test_layout_is_sharded_with_the_description_beside_and_no_leftovers(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    stored = store.put(io.BytesIO(b"hello"), content_type="text/plain", metadata={"a": "b"})
    hexdigest = hashlib.sha256(b"hello").hexdigest()
    path = tmp_path / "objects" / hexdigest[:2] / hexdigest[2:4] / hexdigest
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert (path.parent / (hexdigest + ".json")).exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [hexdigest, hexdigest + ".json"]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert stored.ref == ObjectRef(hexdigest)


def test_presigned_urls_are_unsupported(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    ref = store.put(io.BytesIO(b"x"), content_type="text/plain", metadata={}).ref
    from datetime import timedelta

    with pytest.raises(UnsupportedOperation, match="S3"):
        store.presigned_get_url(ref, expires=timedelta(minutes=1))


def test_missing_root_without_create_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match="does not exist"):
        FilesystemStore(tmp_path / "absent", create=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (we run as root in CI)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_raises_storage_full_and_leaves_no_partial_object(tiny_disk: Path) -> None:
    store = FilesystemStore(tiny_disk)
    with pytest.raises(StorageFull, match="full"):
        store.put(pseudo_random_chunks(3 * MiB), content_type="application/pdf", metadata={})
    assert list((tiny_disk / "tmp").iterdir()) == []
    assert [p for p in (tiny_disk / "objects").rglob("*") if p.is_file()] == []
    # The store still works once the document fits.
    small = store.put(io.BytesIO(b"fits"), content_type="text/plain", metadata={})
    with store.open(small.ref) as reader:
        assert reader.read() == b"fits"


def _reader(chunks: list[bytes], *, size: int, digest_of: bytes) -> ObjectReader:
    pending = list(chunks)
    info = StoredObject(
        ref=ObjectRef(hashlib.sha256(digest_of).hexdigest()), size=size, content_type="x"
    )
    return ObjectReader(
        info=info,
        read_chunk=lambda n: pending.pop(0) if pending else b"",
        close_source=lambda: None,
    )


def test_reader_releases_the_last_chunk_only_after_the_digest_matches() -> None:
    good = [b"aaaa", b"bbbb", b"cc"]
    with _reader(good, size=10, digest_of=b"aaaabbbbcc") as reader:
        assert b"".join(reader.chunks()) == b"aaaabbbbcc"

    bad = [b"aaaa", b"bbbb", b"cX"]
    received = bytearray()

    def drain() -> None:
        with _reader(bad, size=10, digest_of=b"aaaabbbbcc") as reader:
            for piece in reader.chunks():
                received.extend(piece)

    with pytest.raises(IntegrityError, match="does not hash"):
        drain()
    assert bytes(received) == b"aaaabbbb"  # the final chunk was never handed out


def test_reader_rejects_content_longer_than_recorded() -> None:
    with (
        pytest.raises(IntegrityError, match="longer"),
        _reader([b"aaaa", b"bbbb"], size=6, digest_of=b"aaaabb") as reader,
    ):
        reader.read(100)
