"""The storage port's contract, run against the filesystem adapter and against S3 (Ceph RGW)."""

from __future__ import annotations

import hashlib
import io
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from storage import (
    DeclaredHashMismatch,
    IntegrityError,
    InvalidMetadata,
    InvalidRef,
    ObjectNotFound,
    ObjectRef,
    ObjectStore,
    Retention,
    RetentionMode,
    StorageError,
)
from storage.port import BatchObjectStore, PutItem, put_many
from tests.storage.conftest import MiB, StoreKit, pseudo_random_bytes, pseudo_random_chunks

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _put(store: ObjectStore, data: bytes, **kwargs: object) -> object:
    return store.put(
        io.BytesIO(data),
        content_type=str(kwargs.pop("content_type", "application/pdf")),
        metadata=kwargs.pop("metadata", {}),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_put_then_read_stat_exists(kit: StoreKit) -> None:
    metadata = {"filename": "Quyết định số 12/QĐ-UBND.pdf", "unit": "000.00.01.H53"}
    stored = kit.store.put(io.BytesIO(PDF), content_type="application/pdf", metadata=metadata)
    assert str(stored.ref) == "sha256/" + hashlib.sha256(PDF).hexdigest()
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.size == len(PDF)
    assert kit.store.exists(stored.ref)
    assert kit.store.exists(str(stored.ref))
    stat = kit.store.stat(str(stored.ref))
    assert stat.size == len(PDF)
    assert stat.content_type == "application/pdf"
    assert dict(stat.metadata) == metadata
    with kit.store.open(stored.ref) as reader:
        assert reader.info.ref == stored.ref
        assert reader.read() == PDF


def test_put_accepts_an_iterable_of_chunks_and_empty_content(kit: StoreKit) -> None:
    stored = kit.store.put(iter([b"ab", b"", b"cd"]), content_type="text/plain", metadata={})
    assert stored.sha256 == hashlib.sha256(b"abcd").hexdigest()
    empty = kit.store.put(iter([]), content_type="text/plain", metadata={})
    assert empty.size == 0
    with kit.store.open(empty.ref) as reader:
        assert reader.read() == b""


def test_putting_stored_content_again_returns_the_same_ref_and_keeps_the_first_metadata(
    kit: StoreKit,
) -> None:
    first = kit.store.put(io.BytesIO(PDF), content_type="application/pdf", metadata={"n": "1"})
    second = kit.store.put(io.BytesIO(PDF), content_type="text/plain", metadata={"n": "2"})
    assert second.ref == first.ref
    assert dict(kit.store.stat(first.ref).metadata) == {"n": "1"}
    assert kit.store.stat(first.ref).content_type == "application/pdf"
    assert kit.object_count(first.ref) == 1


def test_declared_hash_is_checked_and_a_mismatch_stores_nothing(kit: StoreKit) -> None:
    right = hashlib.sha256(PDF).hexdigest()
    assert (
        kit.store.put(
            io.BytesIO(PDF), content_type="application/pdf", metadata={}, expected_sha256=right
        ).sha256
        == right
    )
    other = PDF + b"tampered"
    with pytest.raises(DeclaredHashMismatch, match="declared"):
        kit.store.put(
            io.BytesIO(other), content_type="application/pdf", metadata={}, expected_sha256=right
        )
    assert not kit.store.exists(ObjectRef(hashlib.sha256(other).hexdigest()))
    with pytest.raises(InvalidRef):
        kit.store.put(io.BytesIO(PDF), content_type="x", metadata={}, expected_sha256="abc")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256/",
        "sha256/" + "0" * 63,
        "sha256/" + "0" * 65,
        "sha256/" + "A" * 64,
        "sha1/" + "0" * 40,
        "0" * 64,
        "sha256/../../" + "0" * 58,
        "sha256/" + "g" * 64,
    ],
)
def test_malformed_refs_are_invalid(kit: StoreKit, bad: str) -> None:
    for call in (kit.store.stat, kit.store.open, kit.store.exists):
        with pytest.raises(InvalidRef):
            call(bad)


def test_absent_object_is_not_found(kit: StoreKit) -> None:
    ref = ObjectRef(hashlib.sha256(b"never stored").hexdigest())
    assert not kit.store.exists(ref)
    with pytest.raises(ObjectNotFound):
        kit.store.stat(ref)
    with pytest.raises(ObjectNotFound):
        kit.store.open(ref)


@pytest.mark.parametrize(
    "metadata",
    [{"Upper": "x"}, {"kyso-sha256": "x"}, {"bad key": "x"}, {"k": "v" * 3000}],
)
def test_bad_metadata_is_refused(kit: StoreKit, metadata: dict[str, str]) -> None:
    with pytest.raises(InvalidMetadata):
        kit.store.put(io.BytesIO(PDF), content_type="application/pdf", metadata=metadata)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_object_raises_and_is_never_handed_out_whole(kit: StoreKit, damage: str) -> None:
    data = pseudo_random_bytes(3 * MiB + 123)
    stored = kit.store.put(io.BytesIO(data), content_type="application/pdf", metadata={})
    broken = bytearray(data)
    if damage == "flip":
        broken[-1] ^= 0x01
    else:
        del broken[-1000:]
    kit.corrupt(stored.ref, bytes(broken))

    received = bytearray()

    def drain() -> None:
        with kit.store.open(stored.ref) as reader:
            for piece in reader.chunks():
                received.extend(piece)

    with pytest.raises(IntegrityError, match="restore"):
        drain()
    # The last chunk is withheld until the digest is checked: the caller never got all of it.
    assert len(received) < len(broken)
    with pytest.raises(IntegrityError), kit.store.open(stored.ref) as reader:
        reader.read()


def test_retention_is_recorded(kit: StoreKit) -> None:
    before = datetime.now(UTC)
    stored = kit.store.put(
        io.BytesIO(PDF + b"retained"),
        content_type="application/pdf",
        metadata={},
        retention=Retention(mode=RetentionMode.GOVERNANCE, days=1),
    )
    state = kit.store.stat(stored.ref).retention
    assert state is not None
    assert state.mode is RetentionMode.GOVERNANCE
    assert before + timedelta(hours=23) < state.retain_until < before + timedelta(days=1, hours=1)
    # A re-put may lengthen the retention, never shorten it.
    kit.store.put(
        io.BytesIO(PDF + b"retained"),
        content_type="application/pdf",
        metadata={},
        retention=Retention(mode=RetentionMode.GOVERNANCE, days=3),
    )
    longer = kit.store.stat(stored.ref).retention
    assert longer is not None
    assert longer.retain_until > state.retain_until + timedelta(days=1)
    kit.store.put(
        io.BytesIO(PDF + b"retained"),
        content_type="application/pdf",
        metadata={},
        retention=Retention(mode=RetentionMode.GOVERNANCE, days=1),
    )
    assert kit.store.stat(stored.ref).retention == longer


def test_concurrent_puts_of_the_same_content_make_one_object(kit: StoreKit) -> None:
    data = pseudo_random_bytes(2 * MiB, seed=11)
    refs: list[ObjectRef] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer() -> None:
        try:
            start.wait()
            refs.append(kit.store.put(io.BytesIO(data), content_type="x", metadata={}).ref)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(refs)) == 1
    assert kit.object_count(refs[0]) == 1
    with kit.store.open(refs[0]) as reader:
        assert hashlib.sha256(b"".join(reader.chunks())).hexdigest() == refs[0].sha256


@pytest.mark.slow
def test_a_200_mb_document_streams_in_and_out_with_bounded_memory(kit: StoreKit) -> None:
    size = 200 * 1000 * 1000
    expected = hashlib.sha256()
    for piece in pseudo_random_chunks(size, seed=3):
        expected.update(piece)

    tracemalloc.start()
    try:
        stored = kit.store.put(
            pseudo_random_chunks(size, seed=3),
            content_type="application/pdf",
            metadata={},
        )
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        total = 0
        with kit.store.open(stored.ref) as reader:
            for piece in reader.chunks():
                digest.update(piece)
                total += len(piece)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.sha256 == expected.hexdigest()
    assert total == size
    assert digest.hexdigest() == expected.hexdigest()
    # Whole-object buffering would need ≥ 200 MB; parts, spool buffer and chunks need far less.
    assert put_peak < 64 * MiB, put_peak
    assert get_peak < 16 * MiB, get_peak


def test_check_passes_on_a_healthy_store(kit: StoreKit) -> None:
    kit.store.check()


def test_errors_share_one_root() -> None:
    for cls in (DeclaredHashMismatch, IntegrityError, InvalidRef, ObjectNotFound, InvalidMetadata):
        assert issubclass(cls, StorageError)


# ---------------------------------------------------- batch puts (storage.port.put_many)
def _item(data: bytes, **kwargs: object) -> PutItem:
    return PutItem(source=io.BytesIO(data), content_type="application/pdf", **kwargs)  # type: ignore[arg-type]


def test_put_many_stores_each_item_and_describes_them_in_order(kit: StoreKit) -> None:
    datas = [PDF + bytes([n]) * n for n in range(5)]
    stored = put_many(kit.store, [_item(d, metadata={"n": str(n)}) for n, d in enumerate(datas)])
    assert [s.ref.sha256 for s in stored] == [hashlib.sha256(d).hexdigest() for d in datas]
    for n, (s, data) in enumerate(zip(stored, datas, strict=True)):
        assert s.size == len(data)
        assert dict(s.metadata) == {"n": str(n)}
        assert (kit.store.stat(s.ref).ref, kit.store.stat(s.ref).size) == (s.ref, s.size)
        with kit.store.open(s.ref) as reader:
            assert reader.read() == data


def test_put_many_of_equal_or_stored_content_makes_one_object_and_keeps_the_first_metadata(
    kit: StoreKit,
) -> None:
    first = kit.store.put(
        io.BytesIO(PDF), content_type="application/pdf", metadata={"who": "first"}
    )
    stored = put_many(
        kit.store,
        [
            _item(PDF + b"new", metadata={"who": "batch-1"}),
            _item(PDF, metadata={"who": "batch"}),
            _item(PDF + b"new", metadata={"who": "batch-2"}),
        ],
    )
    assert (stored[1].ref, stored[1].metadata) == (first.ref, first.metadata)
    assert stored[0].ref == stored[2].ref
    assert dict(kit.store.stat(stored[0].ref).metadata) == {"who": "batch-1"}
    assert kit.object_count(stored[0].ref) == 1
    assert kit.object_count(stored[1].ref) == 1


def test_put_many_of_nothing_stores_nothing(kit: StoreKit) -> None:
    assert put_many(kit.store, []) == []
    assert list(kit.store.iter_refs()) == []


def test_put_many_checks_declared_hashes_and_never_stores_a_mismatching_item(
    kit: StoreKit,
) -> None:
    good = PDF + b"good"
    bad = PDF + b"bad"
    with pytest.raises(DeclaredHashMismatch, match="declared"):
        put_many(
            kit.store,
            [
                _item(good, expected_sha256=hashlib.sha256(good).hexdigest()),
                _item(bad, expected_sha256=hashlib.sha256(good).hexdigest()),
            ],
        )
    assert not kit.store.exists(ObjectRef(hashlib.sha256(bad).hexdigest()))
    # A batch that failed may be sent again whole.
    again = put_many(kit.store, [_item(good), _item(bad)])
    assert [s.size for s in again] == [len(good), len(bad)]


def test_put_many_refuses_bad_metadata_before_storing_anything(kit: StoreKit) -> None:
    with pytest.raises(InvalidMetadata):
        put_many(kit.store, [_item(PDF), _item(PDF + b"x", metadata={"bad key": "v"})])
    if isinstance(kit.store, BatchObjectStore):
        assert list(kit.store.iter_refs()) == []
