"""Staged files: written by one process of a filesystem store, adopted by another's put."""

from __future__ import annotations

import hashlib
import os

import pytest

import storage
from storage.streams import iter_chunks


@pytest.fixture
def store(tmp_path):
    return storage.FilesystemStore(tmp_path / "store")


def test_a_put_adopts_a_staged_file_and_keeps_it_until_discarded(store):
    data = b"%PDF-1.7 signed" * 1000
    staged = store.stage(data)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    stored = store.put(staged, content_type="application/pdf", metadata={})
    assert stored.sha256 == staged.sha256
    assert os.path.exists(staged.path)  # a failed commit could put it again
    store.discard(staged)
    assert not os.path.exists(staged.path)
    with store.open(stored.ref) as reader:
        assert reader.read() == data


def test_a_batch_adopts_staged_files_beside_bytes(store):
    staged = store.stage(b"one", sha256=hashlib.sha256(b"one").hexdigest())
    first, second = storage.put_many(
        store,
        [
            storage.PutItem(source=staged, content_type="application/pdf"),
            storage.PutItem(source=b"two", content_type="application/pdf"),
        ],
    )
    store.discard(staged)
    with store.open(first.ref) as reader:
        assert reader.read() == b"one"
    with store.open(second.ref) as reader:
        assert reader.read() == b"two"


def test_a_staged_file_with_a_wrong_digest_is_caught_when_read(store):
    staged = store.stage(b"real bytes", sha256=hashlib.sha256(b"other bytes").hexdigest())
    stored = store.put(staged, content_type="application/pdf", metadata={})
    store.discard(staged)
    with pytest.raises(storage.IntegrityError), store.open(stored.ref) as reader:
        reader.read()


def test_only_the_stores_own_staging_files_are_adopted(store, tmp_path):
    outside = tmp_path / ".put-elsewhere"
    outside.write_bytes(b"x")
    forged = storage.StagedFile(path=str(outside), sha256=hashlib.sha256(b"x").hexdigest(), size=1)
    with pytest.raises(storage.StorageError, match="not a staging file"):
        store.put(forged, content_type="application/pdf", metadata={})
    with pytest.raises(storage.StorageError, match="not a staging file"):
        store.discard(forged)
    assert outside.exists()


def test_a_staged_file_of_another_size_is_refused(store):
    staged = store.stage(b"abc")
    wrong = storage.StagedFile(path=staged.path, sha256=staged.sha256, size=4)
    with pytest.raises(storage.StorageError, match="not 4 bytes"):
        store.put(wrong, content_type="application/pdf", metadata={})
    assert list(store.iter_refs()) == []


def test_other_adapters_read_a_staged_file_as_chunks(store):
    staged = store.stage(b"chunked")
    assert b"".join(iter_chunks(staged)) == b"chunked"
