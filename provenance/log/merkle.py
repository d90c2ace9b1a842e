"""RFC 6962 / RFC 9162 Merkle trees: hashes, roots, inclusion and consistency proofs.

Everything here is a pure function over hashes. Proof *generation* reads stored node
hashes through a :class:`HashReader` (a complete subtree per ``(level, index)``), so a
log can answer from tiles or a database with O(log n) reads instead of loading the
tree. Proof *verification* needs only the proof and costs O(log n) hashes.

The proof shapes are RFC 6962 §2.1.1 ``PATH`` and §2.1.2 ``PROOF``, generalised to the
subtrees of draft-ietf-plants-merkle-tree-certs (``[start, end)`` ranges), which
transparency-dev/merkle and the C2SP cosignature spec use. An inclusion proof for leaf
``i`` is the same thing as a consistency proof for the one-leaf subtree ``[i, i+1)``,
which is how this module computes and checks both with one walk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from provenance.errors import InputError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "HashReader",
    "HashReaderFunc",
    "MemoryTree",
    "Node",
    "consistency_proof",
    "inclusion_proof",
    "is_valid_subtree",
    "leaf_hash",
    "merkle_root",
    "new_stored_hashes",
    "node_hash",
    "range_nodes",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "subtree_consistency_proof",
    "subtree_hash",
    "subtree_inclusion_proof",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
"""SHA-256, the only hash C2SP logs use."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the empty tree."""

MAX_TREE_SIZE = (1 << 63) - 1
"""Largest tree size or leaf index accepted (Go's tlog uses int64)."""


@dataclass(frozen=True, slots=True)
class Node:
    """A complete subtree: ``2**level`` leaves starting at leaf ``index << level``."""

    level: int
    index: int


class HashReader(Protocol):
    """Returns stored hashes of complete subtrees, like Go's ``tlog.HashReader``.

    One call per proof, so implementations backed by tiles or a database can batch.
    """

    def read_hashes(self, nodes: Sequence[Node]) -> Sequence[bytes]:
        """Return one 32-byte hash per node, in the order asked."""
        ...


class HashReaderFunc:
    """Adapts a plain function to :class:`HashReader`."""

    def __init__(self, func: Callable[[Sequence[Node]], Sequence[bytes]]) -> None:
        self._func = func

    def read_hashes(self, nodes: Sequence[Node]) -> Sequence[bytes]:
        return self._func(nodes)


# --------------------------------------------------------------------------- hashes


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash, ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash, ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf hashes, in one pass with O(log n) memory."""
    # Stack of complete subtrees, strictly decreasing in size from bottom to top.
    stack: list[tuple[int, bytes]] = []
    for h in leaf_hashes:
        _check_hash(h, "leaf hash")
        size = 1
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            h = node_hash(left, h)
            size *= 2
        stack.append((size, h))
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


# --------------------------------------------------------------------- tree shapes


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree in the sense of the MTC draft.

    Valid iff ``0 <= start <= end`` and ``start`` is 0, equal to ``end``, or a multiple of
    the smallest power of two >= ``end - start``.
    """
    if start < 0 or end < start or end > MAX_TREE_SIZE:
        return False
    if start == 0 or start == end:
        return True
    width = 1 << (end - start - 1).bit_length()
    return start % width == 0


def range_nodes(start: int, end: int) -> list[Node]:
    """Complete subtrees whose hashes, folded right to left, give MTH(D[start:end]).

    ``[start, end)`` must be a valid subtree; the result has at most 64 nodes, largest
    first, exactly the stored hashes Go's ``subTreeIndex`` reads.
    """
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append(Node(level, start >> level))
        start += 1 << level
    return nodes


# Proof steps, from the leaf (or subtree) upwards. Each consumes one proof hash.
_RIGHT = 0  # sibling to the right: only the new root includes it
_LEFT_OUTSIDE = 1  # sibling to the left of the proven subtree
_LEFT_INSIDE = 2  # left part of the proven subtree itself (consistency proofs)


def _plan(
    start: int, end: int, lo: int, hi: int
) -> tuple[tuple[int, int] | None, list[tuple[int, int, int]]]:
    """Walk RFC 6962's recursion from ``[lo, hi)`` down to the subtree ``[start, end)``.

    Returns the optional seed range (a piece of the subtree the verifier cannot know,
    sent first) and the steps ``(kind, a, b)`` bottom-up, each naming the range whose
    MTH is the next proof hash. Requires a valid non-empty subtree inside ``[lo, hi)``.
    """
    steps: list[tuple[int, int, int]] = []
    known = True
    while start != lo or end != hi:
        mid = lo + _split(hi - lo)
        if end <= mid:
            steps.append((_RIGHT, mid, hi))
            hi = mid
        elif mid <= start:
            steps.append((_LEFT_OUTSIDE, lo, mid))
            lo = mid
        else:
            # The subtree straddles the split, so it starts at lo: its left part is a
            # complete subtree we send, and its right part is no longer "known".
            steps.append((_LEFT_INSIDE, lo, mid))
            lo = start = mid
            known = False
    steps.reverse()
    return (None if known else (lo, hi)), steps


# ------------------------------------------------------------------ hash reading


def _check_hash(h: object, what: str) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        size = len(h) if isinstance(h, bytes | bytearray) else type(h).__name__
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {size}")


def _read(reader: HashReader, nodes: Sequence[Node]) -> list[bytes]:
    if not nodes:
        return []
    hashes = list(reader.read_hashes(nodes))
    if len(hashes) != len(nodes):
        raise ProofError(f"hash reader returned {len(hashes)} hashes for {len(nodes)} nodes")
    for h in hashes:
        _check_hash(h, "stored hash")
    return hashes


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _range_hashes(ranges: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """MTH of each range, with a single batched read."""
    groups = [range_nodes(a, b) for a, b in ranges]
    flat = [n for g in groups for n in g]
    hashes = _read(reader, flat)
    out: list[bytes] = []
    i = 0
    for g in groups:
        out.append(_fold_right(hashes[i : i + len(g)]))
        i += len(g)
    return out


def _check_size(value: int, what: str) -> None:
    if not 0 <= value <= MAX_TREE_SIZE:
        raise InputError(f"{what} {value} is out of range [0, 2**63)")


def tree_hash(size: int, reader: HashReader) -> bytes:
    """Root hash of the first ``size`` leaves, from at most 63 stored hashes."""
    _check_size(size, "tree size")
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, size)], reader)[0]


def subtree_hash(start: int, end: int, reader: HashReader) -> bytes:
    """MTH(D[start:end]) for a valid subtree."""
    if not is_valid_subtree(start, end):
        raise InputError(f"[{start}, {end}) is not a valid subtree")
    if start == end:
        return EMPTY_ROOT
    return _range_hashes([(start, end)], reader)[0]


def _prove(start: int, end: int, lo: int, hi: int, reader: HashReader) -> list[bytes]:
    seed, steps = _plan(start, end, lo, hi)
    ranges = ([seed] if seed is not None else []) + [(a, b) for _, a, b in steps]
    return _range_hashes(ranges, reader)


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 6962 audit path for leaf ``index`` in the tree of ``size`` leaves."""
    _check_size(size, "tree size")
    if not 0 <= index < size:
        raise InputError(f"leaf index {index} is not in a tree of size {size}")
    return _prove(index, index + 1, 0, size, reader)


def consistency_proof(size1: int, size2: int, reader: HashReader) -> list[bytes]:
    """RFC 6962 consistency proof from the tree of ``size1`` leaves to ``size2``.

    Like Go, ``size1`` must be at least 1: every tree extends the empty tree, and
    tlog-witness handles old size 0 without a proof.
    """
    _check_size(size2, "tree size")
    if not 0 < size1 <= size2:
        raise InputError(f"no consistency proof from size {size1} to size {size2}")
    return _prove(0, size1, 0, size2, reader)


def subtree_inclusion_proof(index: int, start: int, end: int, reader: HashReader) -> list[bytes]:
    """Inclusion proof for leaf ``index`` in the subtree ``[start, end)``."""
    if not is_valid_subtree(start, end) or not start <= index < end:
        raise InputError(f"leaf {index} is not in a valid subtree [{start}, {end})")
    return _prove(index, index + 1, start, end, reader)


def subtree_consistency_proof(start: int, end: int, size: int, reader: HashReader) -> list[bytes]:
    """Proof that the subtree ``[start, end)`` is part of the tree of ``size`` leaves."""
    _check_size(size, "tree size")
    if not is_valid_subtree(start, end) or end > size:
        raise InputError(f"[{start}, {end}) is not a valid subtree of a tree of size {size}")
    if start == end:
        return []
    return _prove(start, end, 0, size, reader)


# ------------------------------------------------------------------ verification


def _root_from_proof(
    start: int, end: int, lo: int, hi: int, proof: Sequence[bytes], sub_root: bytes, what: str
) -> bytes:
    """Run a proof that ``[start, end)`` with root ``sub_root`` is in ``[lo, hi)``."""
    seed, steps = _plan(start, end, lo, hi)
    want = len(steps) + (seed is not None)
    if len(proof) != want:
        raise ProofError(f"{what} has {len(proof)} hashes, expected {want}")
    for i, h in enumerate(proof):
        _check_hash(h, f"{what} hash {i}")
    if seed is not None:
        old = new = proof[0]
        rest = proof[1:]
    else:
        old = new = sub_root
        rest = proof
    for (kind, _, _), p in zip(steps, rest, strict=True):
        if kind == _RIGHT:
            new = node_hash(new, p)
        elif kind == _LEFT_OUTSIDE:
            new = node_hash(p, new)
        else:
            new = node_hash(p, new)
            old = node_hash(p, old)
    if seed is not None and old != sub_root:
        raise ProofError(f"{what} does not match the old root hash")
    return new


def _check_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{what} must be an integer")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {value} is out of range [0, 2**63)")
    return value


def _match(calculated: bytes, expected: bytes, what: str) -> None:
    if calculated != expected:
        raise ProofError(
            f"{what}: calculated root {calculated.hex()} does not match {bytes(expected).hex()}"
        )


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root hash implied by an inclusion proof; raises :class:`ProofError` if malformed."""
    _check_int(index, "leaf index")
    _check_int(size, "tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    return _root_from_proof(index, index + 1, 0, size, proof, leaf, "inclusion proof")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with hash ``root``."""
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    _match(calculated, root, f"inclusion proof for leaf {index} in tree of size {size}")


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The root of tree ``size2`` implied by a consistency proof from ``(size1, root1)``.

    Follows transparency-dev/merkle: ``size1`` must be at least 1, and for equal sizes
    the proof must be empty (the root is then ``root1`` itself).
    """
    _check_int(size1, "old tree size")
    _check_int(size2, "new tree size")
    if size2 < size1:
        raise ProofError(f"new tree size {size2} is smaller than old tree size {size1}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("tree sizes are equal but the consistency proof is not empty")
        return root1
    if not proof:
        raise ProofError(f"empty consistency proof from size {size1} to size {size2}")
    return _root_from_proof(0, size1, 0, size2, proof, root1, "consistency proof")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``."""
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    _match(calculated, root2, f"consistency proof from size {size1} to size {size2}")


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes], subtree_root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the subtree ``[start, end)``."""
    _check_int(index, "leaf index")
    _check_int(start, "subtree start")
    _check_int(end, "subtree end")
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ProofError(f"leaf index {index} is not in subtree [{start}, {end})")
    _check_hash(leaf, "leaf hash")
    calculated = _root_from_proof(index, index + 1, start, end, proof, leaf, "inclusion proof")
    _match(calculated, subtree_root, f"inclusion proof for leaf {index} in [{start}, {end})")


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
) -> None:
    """Check that the subtree ``[start, end)`` with ``subtree_root`` is in ``(size, root)``.

    An empty subtree is in every tree, provided its root is the empty root.
    """
    _check_int(start, "subtree start")
    _check_int(end, "subtree end")
    _check_int(size, "tree size")
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if end > size:
        raise ProofError(f"subtree [{start}, {end}) is not in a tree of size {size}")
    if start == end:
        if proof:
            raise ProofError("the subtree is empty but the proof is not")
        if subtree_root != EMPTY_ROOT:
            raise ProofError("the subtree is empty but its root is not the empty root")
        return
    calculated = _root_from_proof(start, end, 0, size, proof, subtree_root, "consistency proof")
    _match(calculated, root, f"consistency proof for [{start}, {end}) in tree of size {size}")


# ------------------------------------------------------------------ stored hashes


def new_stored_hashes(index: int, leaf: bytes, reader: HashReader) -> list[tuple[Node, bytes]]:
    """The node hashes completed by appending leaf ``index`` (Go's ``StoredHashes``).

    Reads the left siblings (at most 63) of the subtrees that the new leaf completes;
    the first returned node is the leaf itself.
    """
    _check_size(index, "leaf index")
    _check_hash(leaf, "leaf hash")
    levels = ((index + 1) & -(index + 1)).bit_length() - 1  # trailing one bits of index
    siblings = _read(reader, [Node(level, (index >> level) - 1) for level in range(levels)])
    out = [(Node(0, index), leaf)]
    h = leaf
    for level, left in enumerate(siblings):
        h = node_hash(left, h)
        out.append((Node(level + 1, index >> (level + 1)), h))
    return out


class MemoryTree:
    """Every stored hash of a tree, in memory: a :class:`HashReader` for tests, tools
    and small logs. Each level is one ``bytearray`` (32 bytes per node)."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = []
        self._size = 0
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash; return its index."""
        _check_hash(leaf, "leaf hash")
        index = self._size
        h = leaf
        level = 0
        n = index
        while True:
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += h
            if n & 1 == 0:
                break
            left = self._levels[level][(n - 1) * HASH_SIZE : n * HASH_SIZE]
            h = node_hash(bytes(left), h)
            level += 1
            n >>= 1
        self._size += 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (all by default)."""
        return tree_hash(self._size if size is None else size, self)

    def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        out: list[bytes] = []
        for node in nodes:
            level, index = node.level, node.index
            if (
                level < 0
                or index < 0
                or level >= len(self._levels)
                or (index + 1) * HASH_SIZE > len(self._levels[level])
            ):
                raise ProofError(
                    f"node ({level}, {index}) is not stored in a tree of size {self._size}"
                )
            out.append(bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE]))
        return out
