"""RFC 6962 Merkle trees against every external vector, plus property tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tlog_vectors import b64, b64_list, load, vector_files, vector_id

from provenance.errors import InputError, ProofError, ProvenanceError
from provenance.log.merkle import (
    EMPTY_ROOT,
    HashReaderFunc,
    MemoryTree,
    Node,
    consistency_proof,
    inclusion_proof,
    is_valid_subtree,
    leaf_hash,
    merkle_root,
    new_stored_hashes,
    node_hash,
    range_nodes,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    subtree_consistency_proof,
    subtree_hash,
    subtree_inclusion_proof,
    tree_hash,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

# ----------------------------------------------------------- transparency-dev vectors

INCLUSION = vector_files("inclusion")
CONSISTENCY = vector_files("consistency")
SUBTREE_INCLUSION = vector_files("subtreeinclusion")
SUBTREE_CONSISTENCY = vector_files("subtreeconsistency")


def test_corpus_is_complete() -> None:
    """Guard against silently skipping vectors: the README promises 98 + 98."""
    if not INCLUSION:
        pytest.skip("shared corpus not available")
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    assert len(SUBTREE_INCLUSION) == 204
    assert len(SUBTREE_CONSISTENCY) == 118


def _outcome(check: object) -> bool:
    """True if the check raised one of the project's errors."""
    assert callable(check)
    try:
        check()
    except ProofError:
        return True
    return False


@pytest.mark.parametrize("path", INCLUSION, ids=vector_id)
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    failed = _outcome(
        lambda: verify_inclusion(
            v["leafIdx"], v["treeSize"], b64(v["leafHash"]), b64_list(v["proof"]), b64(v["root"])
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", CONSISTENCY, ids=vector_id)
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    failed = _outcome(
        lambda: verify_consistency(
            v["size1"], v["size2"], b64_list(v["proof"]), b64(v["root1"]), b64(v["root2"])
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", SUBTREE_INCLUSION, ids=vector_id)
def test_subtree_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    failed = _outcome(
        lambda: verify_subtree_inclusion(
            v["leafIdx"],
            v["start"],
            v["end"],
            b64(v["leafHash"]),
            b64_list(v["proof"]),
            b64(v["root"]),
        )
    )
    assert failed == v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", SUBTREE_CONSISTENCY, ids=vector_id)
def test_subtree_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    failed = _outcome(
        lambda: verify_subtree_consistency(
            v["start"],
            v["end"],
            v["size"],
            b64_list(v["proof"]),
            b64(v["root1"]),
            b64(v["root2"]),
        )
    )
    assert failed == v["wantErr"], v["desc"]


# --------------------------------------------------------------- RFC 6962 reference


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    ref: dict[str, object] = load("rfc6962_reference.json")
    return ref


@pytest.fixture(scope="module")
def reference_tree(reference: dict[str, object]) -> MemoryTree:
    inputs = reference["leaf_inputs_hex"]
    assert isinstance(inputs, list)
    return MemoryTree(leaf_hash(bytes.fromhex(x)) for x in inputs)


def test_reference_node_hashes(reference: dict[str, object], reference_tree: MemoryTree) -> None:
    levels = reference["node_hashes_hex"]
    assert isinstance(levels, list)
    for level, row in enumerate(levels):
        got = reference_tree.read_hashes([Node(level, i) for i in range(len(row))])
        assert [h.hex() for h in got] == row


def test_reference_roots(reference: dict[str, object], reference_tree: MemoryTree) -> None:
    inputs = reference["leaf_inputs_hex"]
    roots = reference["root_hashes_hex"]
    assert isinstance(inputs, list) and isinstance(roots, list)
    assert roots[0] == EMPTY_ROOT.hex()
    for n, root in enumerate(roots):
        assert reference_tree.root(n).hex() == root
        assert merkle_root(leaf_hash(bytes.fromhex(x)) for x in inputs[:n]).hex() == root


def test_reference_inclusion_proofs(
    reference: dict[str, object], reference_tree: MemoryTree
) -> None:
    cases = reference["inclusion_proofs"]
    assert isinstance(cases, list) and len(cases) == 5
    for case in cases:
        index, size = case["leaf_index"], case["tree_size"]
        proof = inclusion_proof(index, size, reference_tree)
        assert [h.hex() for h in proof] == case["proof_hex"]
        leaf = reference_tree.read_hashes([Node(0, index)])[0]
        verify_inclusion(index, size, leaf, proof, reference_tree.root(size))


def test_reference_consistency_proofs(
    reference: dict[str, object], reference_tree: MemoryTree
) -> None:
    cases = reference["consistency_proofs"]
    assert isinstance(cases, list) and len(cases) == 5
    for case in cases:
        size1, size2 = case["size1"], case["size2"]
        proof = consistency_proof(size1, size2, reference_tree)
        assert [h.hex() for h in proof] == case["proof_hex"]
        verify_consistency(
            size1, size2, proof, reference_tree.root(size1), reference_tree.root(size2)
        )


# ------------------------------------------------------------------ rolling digests

MAX_ROLLING = 130


@pytest.fixture(scope="module")
def rolling() -> dict[str, Any]:
    data: dict[str, Any] = load("merkle_rolling_digests.json")
    assert data["max_size"] == MAX_ROLLING
    return data


@pytest.fixture(scope="module")
def tree130() -> MemoryTree:
    return MemoryTree(leaf_hash(bytes([i])) for i in range(MAX_ROLLING))


def _proof_line(prefix: str, proof: Sequence[bytes]) -> bytes:
    return (prefix + "".join(" " + h.hex() for h in proof) + "\n").encode()


def _digest(rolling: dict[str, Any], section: str, key: str) -> str:
    entry = rolling[section][key]
    digest = entry["digest"] if isinstance(entry, dict) else entry
    assert isinstance(digest, str)
    return digest


def _subtrees(end_max: int, start0_only: bool = False) -> list[tuple[int, int]]:
    return [
        (start, end)
        for end in range(end_max + 1)
        for start in ([0] if start0_only else range(end + 1))
        if is_valid_subtree(start, end)
    ]


@pytest.mark.parametrize("start0_only", [False, True])
def test_rolling_subtree_hashes(
    rolling: dict[str, Any], tree130: MemoryTree, start0_only: bool
) -> None:
    h = hashlib.sha256()
    for start, end in _subtrees(MAX_ROLLING, start0_only):
        sub = subtree_hash(start, end, tree130)
        assert sub == merkle_root(tree130.read_hashes([Node(0, i) for i in range(start, end)]))
        h.update(f"[{start}, {end}) {sub.hex()}\n".encode())
    want = (
        _digest(rolling, "derived_start0_only", "roots")
        if start0_only
        else _digest(rolling, "published", "subtree_hash")
    )
    assert h.hexdigest() == want


@pytest.mark.parametrize("start0_only", [False, True])
def test_rolling_inclusion_proofs(
    rolling: dict[str, Any], tree130: MemoryTree, start0_only: bool
) -> None:
    h = hashlib.sha256()
    leaves = tree130.read_hashes([Node(0, i) for i in range(MAX_ROLLING)])
    for start, end in _subtrees(MAX_ROLLING, start0_only):
        root = subtree_hash(start, end, tree130)
        for index in range(start, end):
            if start == 0:
                proof = inclusion_proof(index, end, tree130)
                assert proof == subtree_inclusion_proof(index, 0, end, tree130)
                verify_inclusion(index, end, leaves[index], proof, root)
            else:
                proof = subtree_inclusion_proof(index, start, end, tree130)
            verify_subtree_inclusion(index, start, end, leaves[index], proof, root)
            h.update(_proof_line(f"{index} [{start}, {end})", proof))
    want = (
        _digest(rolling, "derived_start0_only", "inclusion")
        if start0_only
        else _digest(rolling, "published", "subtree_inclusion")
    )
    assert h.hexdigest() == want


@pytest.mark.parametrize("start0_only", [False, True])
def test_rolling_consistency_proofs(
    rolling: dict[str, Any], tree130: MemoryTree, start0_only: bool
) -> None:
    h = hashlib.sha256()
    roots = [tree130.root(n) for n in range(MAX_ROLLING + 1)]
    for n in range(MAX_ROLLING + 1):
        for start, end in _subtrees(n, start0_only):
            proof = subtree_consistency_proof(start, end, n, tree130)
            sub = subtree_hash(start, end, tree130)
            verify_subtree_consistency(start, end, n, proof, sub, roots[n])
            if start == 0 and end > 0:
                assert proof == consistency_proof(end, n, tree130)
                verify_consistency(end, n, proof, roots[end], roots[n])
            h.update(_proof_line(f"[{start}, {end}) {n}", proof))
    want = (
        _digest(rolling, "derived_start0_only", "consistency")
        if start0_only
        else _digest(rolling, "published", "subtree_consistency")
    )
    assert h.hexdigest() == want


# ------------------------------------------------------------------ property tests

BIG = 70_000


@pytest.fixture(scope="module")
def big_tree() -> MemoryTree:
    return MemoryTree(leaf_hash(i.to_bytes(4, "big")) for i in range(BIG))


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    h = bytearray(out[i])
    h[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(h)
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_inclusion_roundtrip_and_tamper(big_tree: MemoryTree, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, BIG), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf = big_tree.read_hashes([Node(0, index)])[0]
    root = big_tree.root(size)
    proof = inclusion_proof(index, size, big_tree)
    assert len(proof) <= (size - 1).bit_length()
    verify_inclusion(index, size, leaf, proof, root)
    assert root_from_inclusion_proof(index, size, leaf, proof) == root

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="tampered hash")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, _flip(proof, i, bit), root)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, [*proof, leaf], root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, _flip([leaf], 0, 7)[0], proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, proof, _flip([root], 0, 0)[0])
    # In a tree of a given size the path directions identify the leaf, so the same
    # proof cannot place the leaf anywhere else. (The size itself is bound by the
    # checkpoint: sizes with the same path shape accept the same proof.)
    other = data.draw(st.integers(0, BIG), label="other index")
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(other, size, leaf, proof, root)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_consistency_roundtrip_and_tamper(big_tree: MemoryTree, data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, BIG), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    root1, root2 = big_tree.root(size1), big_tree.root(size2)
    proof = consistency_proof(size1, size2, big_tree)
    assert len(proof) <= 2 * size2.bit_length()
    verify_consistency(size1, size2, proof, root1, root2)
    assert root_from_consistency_proof(size1, size2, proof, root1) == root2

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="tampered hash")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, _flip(proof, i, bit), root1, root2)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof[1:], root1, root2)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, _flip([root1], 0, 3)[0], root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, [*proof, root1], root1, root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, root1, _flip([root2], 0, 5)[0])
    if size1 != size2:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root2, root1)
    other = data.draw(st.integers(1, BIG), label="other size1")
    assume(other != size1)
    with pytest.raises(ProofError):
        verify_consistency(other, size2, proof, root1, root2)


@settings(max_examples=100, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), max_size=70))
def test_memory_tree_matches_recursive_definition(leaves: list[bytes]) -> None:
    def mth(d: list[bytes]) -> bytes:
        if not d:
            return hashlib.sha256(b"").digest()
        if len(d) == 1:
            return leaf_hash(d[0])
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return node_hash(mth(d[:k]), mth(d[k:]))

    hashes = [leaf_hash(x) for x in leaves]
    tree = MemoryTree(hashes)
    assert tree.size == len(leaves)
    assert tree.root() == merkle_root(hashes) == mth(leaves)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, (1 << 63) - 1))
def test_range_nodes_cover_the_tree(size: int) -> None:
    nodes = range_nodes(0, size)
    assert len(nodes) == bin(size).count("1")
    covered = 0
    for n in nodes:
        assert n.index << n.level == covered
        covered += 1 << n.level
    assert covered == size


# ------------------------------------------------------------ readers and errors


def test_new_stored_hashes_match_memory_tree() -> None:
    tree = MemoryTree()
    for i in range(300):
        leaf = leaf_hash(str(i).encode())
        stored = new_stored_hashes(i, leaf, tree)
        tree.append(leaf)
        assert stored[0] == (Node(0, i), leaf)
        assert len(stored) == 1 + ((i + 1) & -(i + 1)).bit_length() - 1
        for node, h in stored:
            assert tree.read_hashes([node]) == [h]


def test_proofs_use_one_batched_read_of_log_n_nodes(big_tree: MemoryTree) -> None:
    calls: list[int] = []

    def read(nodes: Sequence[Node]) -> Sequence[bytes]:
        calls.append(len(nodes))
        return big_tree.read_hashes(nodes)

    reader = HashReaderFunc(read)
    inclusion_proof(12345, BIG, reader)
    consistency_proof(40_001, BIG, reader)
    tree_hash(BIG, reader)
    assert len(calls) == 3
    assert all(n <= 2 * BIG.bit_length() for n in calls)


def test_bad_reader_results_are_proof_errors(big_tree: MemoryTree) -> None:
    with pytest.raises(ProofError, match="returned 0 hashes"):
        inclusion_proof(5, 100, HashReaderFunc(lambda nodes: []))
    with pytest.raises(ProofError, match="32 bytes"):
        inclusion_proof(5, 100, HashReaderFunc(lambda nodes: [b"x"] * len(nodes)))
    with pytest.raises(ProofError, match="not stored"):
        inclusion_proof(5, BIG + 10, big_tree)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda t: inclusion_proof(8, 8, t), InputError),
        (lambda t: inclusion_proof(-1, 8, t), InputError),
        (lambda t: consistency_proof(0, 8, t), InputError),
        (lambda t: consistency_proof(5, 4, t), InputError),
        (lambda t: subtree_hash(1, 3, t), InputError),
        (lambda t: subtree_inclusion_proof(0, 1, 2, t), InputError),
        (lambda t: subtree_consistency_proof(2, 6, 8, t), InputError),
        (lambda t: tree_hash(1 << 63, t), InputError),
    ],
)
def test_bad_requests(reference_tree: MemoryTree, call: object, error: type[Exception]) -> None:
    assert callable(call)
    with pytest.raises(error):
        call(reference_tree)


@pytest.mark.parametrize(
    "args",
    [
        (0, 1, b"short", [], EMPTY_ROOT),
        (0, 2, EMPTY_ROOT, [b"short"], EMPTY_ROOT),
        (0, 2, EMPTY_ROOT, ["not bytes"], EMPTY_ROOT),
        (-1, 2, EMPTY_ROOT, [EMPTY_ROOT], EMPTY_ROOT),
        (0, 1 << 64, EMPTY_ROOT, [EMPTY_ROOT], EMPTY_ROOT),
        (True, 2, EMPTY_ROOT, [EMPTY_ROOT], EMPTY_ROOT),
        (0, 2, EMPTY_ROOT, [EMPTY_ROOT] * 10_000, EMPTY_ROOT),
    ],
)
def test_malformed_inclusion_inputs_are_proof_errors(args: tuple[object, ...]) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(*args)  # type: ignore[arg-type]


def test_error_messages_are_actionable() -> None:
    with pytest.raises(ProofError, match="has 2 hashes, expected 3"):
        verify_inclusion(0, 8, EMPTY_ROOT, [EMPTY_ROOT] * 2, EMPTY_ROOT)
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 8, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="does not match"):
        verify_inclusion(0, 1, EMPTY_ROOT, [], leaf_hash(b""))


def test_everything_raised_is_a_provenance_error() -> None:
    calls: list[Callable[[], None]] = [
        lambda: verify_consistency(3, 2, [], b"", b""),
        lambda: verify_subtree_consistency(1, 3, 8, [], b"", b""),
        lambda: verify_subtree_inclusion(0, 0, 0, b"", [], b""),
    ]
    for call in calls:
        with pytest.raises(ProvenanceError):
            call()


class UniformTree:
    """A consistent tree of any size whose leaves are all equal: every complete node
    at level L has the same hash, so huge trees cost O(log n) to read."""

    def __init__(self) -> None:
        self.by_level = [leaf_hash(b"same")]
        for _ in range(64):
            self.by_level.append(node_hash(self.by_level[-1], self.by_level[-1]))
        self.reads = 0

    def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        self.reads += len(nodes)
        return [self.by_level[n.level] for n in nodes]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_proofs_in_huge_trees(data: st.DataObject) -> None:
    tree = UniformTree()
    size = data.draw(st.integers(1, (1 << 63) - 1), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    root = tree_hash(size, tree)
    tree.reads = 0
    proof = inclusion_proof(index, size, tree)
    assert tree.reads <= 2 * 63  # O(log n) hashes read, never O(n)
    verify_inclusion(index, size, tree.by_level[0], proof, root)
    tree.reads = 0
    cproof = consistency_proof(size1, size, tree)
    assert tree.reads <= 2 * 63
    verify_consistency(size1, size, cproof, tree_hash(size1, tree), root)
    if cproof:
        with pytest.raises(ProofError):
            verify_consistency(size1, size, _flip(cproof, 0, 1), tree_hash(size1, tree), root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, _flip([tree.by_level[0]], 0, 1)[0], proof, root)
