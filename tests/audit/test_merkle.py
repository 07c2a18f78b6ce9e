"""audit.merkle against a naive transcription of RFC 6962 §2.1 and the CT project's vectors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from audit import merkle
from audit.errors import InvalidTreeSize, ProofInvalid

# -- reference: RFC 6962 §2.1, transcribed literally (recursive, over raw entries) ----------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


LEAVES = [f"entry {i}".encode() for i in range(40)]

# The eight leaves of certificate-transparency's merkle_tree_test.cc and the roots of their
# prefixes; checked here against the reference above, then against audit.merkle.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hash_definitions() -> None:
    assert merkle.leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == _sha256(b"\x01" + b"L" * 32 + b"R" * 32)
    assert merkle.root_hash([]) == _sha256(b"") == merkle.EMPTY_ROOT
    assert merkle.EMPTY_ROOT.hex().startswith("e3b0c442")


@pytest.mark.parametrize("size", range(1, len(CT_LEAVES) + 1))
def test_certificate_transparency_roots(size: int) -> None:
    leaves = CT_LEAVES[:size]
    assert ref_mth(leaves).hex() == CT_ROOTS[size - 1]
    assert merkle.root_hash(leaves).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize("size", range(len(LEAVES) + 1))
def test_root_matches_reference(size: int) -> None:
    assert merkle.root_hash(LEAVES[:size]) == ref_mth(LEAVES[:size])


@pytest.mark.parametrize("size", range(1, 34))
def test_inclusion_proofs_match_reference_and_verify(size: int) -> None:
    leaves = LEAVES[:size]
    root = ref_mth(leaves)
    for index in range(size):
        proof = merkle.inclusion_proof(leaves, index)
        assert proof == ref_path(index, leaves)
        merkle.verify_inclusion(
            leaf=merkle.leaf_hash(leaves[index]),
            index=index,
            tree_size=size,
            proof=proof,
            root=root,
        )


@pytest.mark.parametrize("new_size", range(1, 34))
def test_consistency_proofs_match_reference_and_verify(new_size: int) -> None:
    leaves = LEAVES[:new_size]
    new_root = ref_mth(leaves)
    for old_size in range(new_size + 1):
        proof = merkle.consistency_proof(leaves, old_size)
        expected = [] if old_size in (0, new_size) else ref_subproof(old_size, leaves, True)
        assert proof == expected
        merkle.verify_consistency(
            old_size=old_size,
            new_size=new_size,
            old_root=ref_mth(leaves[:old_size]),
            new_root=new_root,
            proof=proof,
        )


def test_every_proof_range_is_the_fold_of_its_perfect_subtrees() -> None:
    # What lets the ledger store only perfect subtrees and still serve every proof.
    for size in range(1, len(LEAVES) + 1):
        spans = {span for i in range(size) for span in merkle.inclusion_ranges(i, size)}
        spans |= {span for m in range(size + 1) for span in merkle.consistency_ranges(m, size)}
        spans.add((0, size))
        for start, end in spans:
            parts = merkle.range_decomposition(start, end)
            assert sum(1 << level for level, _ in parts) == end - start
            hashes = [ref_mth(LEAVES[p << level : (p + 1) << level]) for level, p in parts]
            assert merkle.fold_perfect(hashes) == ref_mth(LEAVES[start:end])


def test_range_decomposition_rejects_unaligned_ranges() -> None:
    with pytest.raises(InvalidTreeSize):
        merkle.range_decomposition(1, 3)
    with pytest.raises(InvalidTreeSize):
        merkle.range_decomposition(4, 4)


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


_SIZE, _INDEX, _OLD = 21, 13, 6
_ROOT = ref_mth(LEAVES[:_SIZE])
_OLD_ROOT = ref_mth(LEAVES[:_OLD])
_LEAF = merkle.leaf_hash(LEAVES[_INDEX])
_PATH = merkle.inclusion_proof(LEAVES[:_SIZE], _INDEX)
_CONSISTENCY = merkle.consistency_proof(LEAVES[:_SIZE], _OLD)

INCLUSION_ALTERATIONS: dict[str, dict[str, Any]] = {
    "leaf": {"leaf": _flip(_LEAF)},
    "root": {"root": _flip(_ROOT)},
    "index": {"index": _INDEX + 1},
    # A size whose tree gives the leaf another path shape (sizes with the same shape are told
    # apart by the signed head, which binds size and root together).
    "size": {"tree_size": 2 * _SIZE},
    "index beyond size": {"index": _SIZE},
    "short proof": {"proof": _PATH[:-1]},
    "long proof": {"proof": [*_PATH, _ROOT]},
    "hash in proof": {"proof": [_PATH[0], _flip(_PATH[1]), *_PATH[2:]]},
    "truncated hash": {"proof": [_PATH[0][:31], *_PATH[1:]]},
}


def test_unaltered_proofs_verify() -> None:
    merkle.verify_inclusion(leaf=_LEAF, index=_INDEX, tree_size=_SIZE, proof=_PATH, root=_ROOT)
    merkle.verify_consistency(
        old_size=_OLD, new_size=_SIZE, old_root=_OLD_ROOT, new_root=_ROOT, proof=_CONSISTENCY
    )


@pytest.mark.parametrize("name", INCLUSION_ALTERATIONS)
def test_inclusion_verification_rejects_alterations(name: str) -> None:
    arguments: dict[str, Any] = {
        "leaf": _LEAF,
        "index": _INDEX,
        "tree_size": _SIZE,
        "proof": _PATH,
        "root": _ROOT,
    }
    with pytest.raises(ProofInvalid):
        merkle.verify_inclusion(**(arguments | INCLUSION_ALTERATIONS[name]))


CONSISTENCY_ALTERATIONS: dict[str, dict[str, Any]] = {
    "old root": {"old_root": _flip(_OLD_ROOT)},
    "new root": {"new_root": _flip(_ROOT)},
    "old size": {"old_size": _OLD + 1},
    "new size": {"new_size": 2 * _SIZE},  # another shape (see the inclusion alterations)
    "sizes reversed": {"old_size": _SIZE, "new_size": _OLD},
    "short proof": {"proof": _CONSISTENCY[:-1]},
    "long proof": {"proof": [*_CONSISTENCY, _ROOT]},
    "empty proof": {"proof": []},
    "hash in proof": {"proof": [_flip(_CONSISTENCY[0]), *_CONSISTENCY[1:]]},
    "equal sizes, other roots": {"old_size": _SIZE, "proof": []},
    "from empty, not the empty root": {"old_size": 0, "proof": []},
    "from empty, with a proof": {"old_size": 0, "old_root": merkle.EMPTY_ROOT},
}


@pytest.mark.parametrize("name", CONSISTENCY_ALTERATIONS)
def test_consistency_verification_rejects_alterations(name: str) -> None:
    arguments: dict[str, Any] = {
        "old_size": _OLD,
        "new_size": _SIZE,
        "old_root": _OLD_ROOT,
        "new_root": _ROOT,
        "proof": _CONSISTENCY,
    }
    with pytest.raises(ProofInvalid):
        merkle.verify_consistency(**(arguments | CONSISTENCY_ALTERATIONS[name]))


def test_consistency_with_power_of_two_old_size() -> None:
    # RFC 9162 prepends the old root itself when the old size is a power of two.
    leaves = LEAVES[:37]
    for old_size in (1, 2, 4, 8, 16, 32):
        merkle.verify_consistency(
            old_size=old_size,
            new_size=37,
            old_root=ref_mth(leaves[:old_size]),
            new_root=ref_mth(leaves),
            proof=merkle.consistency_proof(leaves, old_size),
        )


def test_proof_requests_out_of_range() -> None:
    with pytest.raises(InvalidTreeSize):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(InvalidTreeSize):
        merkle.inclusion_ranges(-1, 5)
    with pytest.raises(InvalidTreeSize):
        merkle.consistency_ranges(6, 5)
