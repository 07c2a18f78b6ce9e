"""Filesystem-adapter specifics: layout, atomicity, disk full, and the verified reader."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
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
    filesystem,
)
from storage.port import PutItem
from tests.storage.conftest import MiB, pseudo_random_chunks


def test_layout_is_sharded_with_the_description_beside_and_no_leftovers(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    stored = store.put(io.BytesIO(b"hello"), content_type="text/plain", metadata={"a": "b"})
    hexdigest = hashlib.sha256(b"hello").hexdigest()
    path = tmp_path / "objects" / hexdigest[:2] / hexdigest[2:4] / hexdigest
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
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


# ---------------------------------------------------------------- group commit (put_many)
def _items(count: int, *, size: int = 4096, seed: int = 0) -> list[PutItem]:
    return [
        PutItem(source=io.BytesIO(_content(n + seed, size)), content_type="application/pdf")
        for n in range(count)
    ]


def _content(n: int, size: int) -> bytes:
    block = hashlib.sha512(n.to_bytes(8, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


def _leftovers(root: Path) -> list[Path]:
    """Staging and temp-description files: none may outlive a put, failed or not."""
    return [*(root / "tmp").iterdir(), *(root / "objects").rglob(".meta-*")]


@pytest.mark.parametrize("flush", ["syncfs", "fsync each"])
def test_put_many_lays_out_like_put_and_leaves_nothing_behind(
    tmp_path: Path, flush: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if flush == "fsync each":
        monkeypatch.setattr(filesystem, "_SYNCFS", None)  # the fallback of kernels before 5.8
    elif filesystem._SYNCFS is None:
        pytest.skip("no trustworthy syncfs(2) on this kernel")
    store = FilesystemStore(tmp_path)
    stored = store.put_many(_items(40))
    assert len({s.ref for s in stored}) == 40
    for s in stored:
        path = tmp_path / "objects" / s.ref.sha256[:2] / s.ref.sha256[2:4] / s.ref.sha256
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
        assert sorted(p.name for p in path.parent.iterdir()) == [
            s.ref.sha256,
            s.ref.sha256 + ".json",
        ]
        assert store.stat(s.ref) == s
    assert sorted(store.iter_refs(), key=str) == sorted((s.ref for s in stored), key=str)
    assert _leftovers(tmp_path) == []


def test_put_many_on_a_full_disk_raises_storage_full_and_leaves_no_partial_object(
    tiny_disk: Path,
) -> None:
    store = FilesystemStore(tiny_disk)
    with pytest.raises(StorageFull, match="full"):
        store.put_many(_items(12, size=256 * 1024))
    assert _leftovers(tiny_disk) == []
    for ref in store.iter_refs():  # whatever is visible is complete and described
        with store.open(ref) as reader:
            assert len(reader.read()) == 256 * 1024
    fits = store.put_many(_items(2, size=1024, seed=100))
    assert [store.stat(s.ref).size for s in fits] == [1024, 1024]


_WRITER = """
import io, sys
from pathlib import Path
from storage import FilesystemStore
from storage.port import PutItem
store = FilesystemStore(Path(sys.argv[1]))
n = 0
while True:
    batch = []
    for _ in range(16):
        n += 1
        batch.append(PutItem(source=io.BytesIO(n.to_bytes(8, "big") * 32768), content_type="x"))
    store.put_many(batch)
    print(n, flush=True)
"""


def test_a_writer_killed_during_put_many_leaves_only_complete_described_objects(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    FilesystemStore(root)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert writer.stdout is not None
    for _ in range(3):  # let it finish a few batches, then kill it in the middle of another
        assert writer.stdout.readline(), "the writer died before storing anything"
    writer.kill()
    writer.wait()
    store = FilesystemStore(root, create=False)
    refs = list(store.iter_refs())
    assert len(refs) >= 48
    for ref in refs:
        assert store.stat(ref).size == 8 * 32768
        with store.open(ref) as reader:
            assert len(reader.read()) == 8 * 32768  # verified against the ref while read
    # The killed batch's leftovers are staging files only, never under objects/ as content.
    assert all(not p.name.startswith(".put-") for p in (root / "objects").rglob("*"))


@pytest.mark.parametrize("operators", [False, True])
def test_only_the_service_and_its_operators_group_read_the_store(
    tmp_path: Path, operators: bool
) -> None:
    """Issue 15, observation 6: no other local user reads a stored document."""
    group = os.getgid() if operators else None
    root = tmp_path / "store"
    store = FilesystemStore(root, group=group)
    one = store.put(io.BytesIO(b"one"), content_type="text/plain", metadata={})
    [two] = store.put_many([PutItem(source=b"two", content_type="text/plain")])
    directories = [root, root / "objects", root / "tmp"]
    files: list[Path] = []
    for ref in (one.ref, two.ref):
        path = root / "objects" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
        directories += [path.parent, path.parent.parent]
        files.append(path)
        assert stat.S_IMODE(path.stat().st_mode) == (0o440 if operators else 0o400)
        meta = path.with_name(path.name + ".json")
        assert stat.S_IMODE(meta.stat().st_mode) == (0o640 if operators else 0o600)
        files.append(meta)
    for directory in directories:
        assert stat.S_IMODE(directory.stat().st_mode) == (0o750 if operators else 0o700)
    if operators:
        assert {p.stat().st_gid for p in [*directories, *files]} == {os.getgid()}
