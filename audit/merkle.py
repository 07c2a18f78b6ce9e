"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, as small pure functions.

Definitions (RFC 6962 §2.1):

- ``leaf_hash(d) = SHA-256(0x00 ‖ d)`` and ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``;
- ``MTH({}) = SHA-256()``, ``MTH({d0}) = leaf_hash(d0)``, and for ``n > 1`` with ``k`` the
  largest power of two smaller than ``n``: ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

Every subtree of that tree covers a range ``[start, end)`` of leaves where ``start`` is a
multiple of a power of two at least ``end - start``. Such a range is the right-folded chain of
the *perfect* subtrees given by the binary digits of its size, from the largest down
(``range_decomposition``). That is what lets a store keep only perfect subtrees — each written
once, when it becomes complete — and still answer any root or proof with O(log n) reads: the
proof functions here are written once over *ranges* (``inclusion_ranges``,
``consistency_ranges``), and the list-based functions and the ledger only differ in how they get
a range's hash.

Verification follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and raises
``ProofInvalid`` saying which check failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from audit.errors import InvalidTreeSize, ProofInvalid

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "consistency_ranges",
    "fold_perfect",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_decomposition",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# A subtree of the tree, as the half-open range of leaf indexes it covers.
Range = tuple[int, int]
# A perfect subtree: (level, position) covers leaves [position·2^level, (position+1)·2^level).
Perfect = tuple[int, int]


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 ‖ entry)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (``size`` ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def range_decomposition(start: int, end: int) -> list[Perfect]:
    """The perfect subtrees whose right fold is the subtree ``[start, end)``, largest first.

    ``[start, end)`` must be a subtree of some RFC 6962 tree: ``start`` a multiple of a power of
    two ≥ ``end - start`` (every range produced by this module is).
    """
    size = end - start
    if size <= 0:
        raise InvalidTreeSize(f"the range [{start}, {end}) is empty; a subtree has ≥ 1 leaf")
    parts: list[Perfect] = []
    position = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            if position % (1 << level):
                raise InvalidTreeSize(f"the range [{start}, {end}) is not a subtree of a tree")
            parts.append((level, position >> level))
            position += 1 << level
    return parts


def fold_perfect(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree hashes (largest first) into the hash of the range they cover."""
    if not hashes:
        raise InvalidTreeSize("nothing to fold: a subtree has at least one leaf")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, tree_size: int) -> list[Range]:
    """The subtrees whose hashes form the audit path of leaf ``index`` in a tree of ``tree_size``.

    This is RFC 6962 §2.1.1 PATH(m, D[n]), leaf side first, expressed as ranges.
    """
    if not 0 <= index < tree_size:
        raise InvalidTreeSize(
            f"leaf {index} is not in a tree of size {tree_size}; use an index below the size"
        )
    ranges: list[Range] = []
    start, end = 0, tree_size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The subtrees whose hashes prove a tree of ``old_size`` is a prefix of one of ``new_size``.

    This is RFC 6962 §2.1.2 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), expressed as ranges. The
    proof is empty when ``old_size`` is 0 or equal to ``new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise InvalidTreeSize(
            f"no consistency proof from size {old_size} to size {new_size}:"
            " the old size must be between 0 and the new size"
        )
    if old_size in (0, new_size):
        return []
    ranges: list[Range] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _range_hash_over(leaves: Sequence[bytes]) -> Callable[[Range], bytes]:
    def range_hash(span: Range) -> bytes:
        return root_hash(list(leaves[span[0] : span[1]]))

    return range_hash


def root_hash(leaves: list[bytes]) -> bytes:
    """MTH of the raw ``leaves`` (entries, not leaf hashes); SHA-256 of nothing when empty."""
    if not leaves:
        return EMPTY_ROOT
    # Bottom-up over the perfect subtrees of the binary decomposition: O(n) hashing, no
    # recursion depth issue for large lists.
    parts: list[bytes] = []
    position = 0
    for level, _ in range_decomposition(0, len(leaves)):
        layer = [leaf_hash(entry) for entry in leaves[position : position + (1 << level)]]
        while len(layer) > 1:
            layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
        parts.append(layer[0])
        position += 1 << level
    return fold_perfect(parts)


def inclusion_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The audit path of raw entry ``leaves[index]`` in the tree of all ``leaves``."""
    return [_range_hash_over(leaves)(span) for span in inclusion_ranges(index, len(leaves))]


def consistency_proof(leaves: list[bytes], old_size: int) -> list[bytes]:
    """The proof that the first ``old_size`` of ``leaves`` form a prefix of the whole tree."""
    range_hash = _range_hash_over(leaves)
    return [range_hash(span) for span in consistency_ranges(old_size, len(leaves))]


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofInvalid(f"{what} is {len(value)} bytes long; a SHA-256 hash has {HASH_SIZE}")


def verify_inclusion(
    *, leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf *hash* ``leaf`` is at ``index`` in the tree (``tree_size``, ``root``).

    RFC 9162 §2.1.3.2. Raises ``ProofInvalid`` naming the failed check; returns on success.
    """
    _check_hash(leaf, "the leaf hash")
    _check_hash(root, "the root hash")
    if not 0 <= index < tree_size:
        raise ProofInvalid(f"leaf {index} cannot be in a tree of size {tree_size}")
    fn, sn = index, tree_size - 1
    result = leaf
    for number, sibling in enumerate(proof):
        _check_hash(sibling, f"proof hash {number}")
        if sn == 0:
            raise ProofInvalid(
                f"the inclusion proof is too long for leaf {index} of {tree_size}"
                f" ({len(proof)} hashes)"
            )
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid(
            f"the inclusion proof is too short for leaf {index} of {tree_size}"
            f" ({len(proof)} hashes)"
        )
    if result != root:
        raise ProofInvalid(
            f"the inclusion proof for leaf {index} does not lead to the root of size {tree_size}"
        )


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    RFC 9162 §2.1.4.2, plus the trivial cases: from the empty tree (whose root must be
    ``EMPTY_ROOT``) and between equal sizes (equal roots), both with an empty proof.
    """
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    if not 0 <= old_size <= new_size:
        raise ProofInvalid(f"a tree of size {old_size} cannot be a prefix of one of {new_size}")
    if old_size in (0, new_size):
        if proof:
            raise ProofInvalid(
                f"a consistency proof from size {old_size} to {new_size} must be empty"
            )
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if old_root != expected:
            raise ProofInvalid(
                f"the old root does not match: size {old_size} to {new_size} needs"
                " the empty-tree root or equal roots"
            )
        return
    if not proof:
        raise ProofInvalid(f"the consistency proof from {old_size} to {new_size} is empty")
    for number, value in enumerate(proof):
        _check_hash(value, f"proof hash {number}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofInvalid(
                f"the consistency proof from {old_size} to {new_size} is too long"
                f" ({len(proof)} hashes)"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(value, fr)
            sr = node_hash(value, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, value)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid(
            f"the consistency proof from {old_size} to {new_size} is too short"
            f" ({len(proof)} hashes)"
        )
    if fr != old_root:
        raise ProofInvalid(f"the consistency proof does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise ProofInvalid(f"the consistency proof does not lead to the new root (size {new_size})")
