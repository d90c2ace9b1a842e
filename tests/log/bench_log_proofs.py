"""Time inclusion and consistency proofs at one million leaves (not a test).

Run: ``python tests/log/bench_log_proofs.py [leaves] [proofs]``. Proofs are produced
through a HashReader, both the in-memory one and an authenticating TileHashReader over
in-memory tiles, and each reader call is counted to show O(log n) reads.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from provenance.log.merkle import (
    HashReader,
    MemoryTree,
    Node,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from provenance.log.tiles import Tile, TileHashReader, read_tile_data, tiles_for_size


class CountingReader:
    def __init__(self, inner: HashReader) -> None:
        self.inner = inner
        self.calls = 0
        self.nodes = 0

    def read_hashes(self, nodes: Sequence[Node]) -> Sequence[bytes]:
        self.calls += 1
        self.nodes += len(nodes)
        return self.inner.read_hashes(nodes)


class MemoryTiles:
    def __init__(self, tiles: dict[Tile, bytes]) -> None:
        self.tiles = tiles
        self.fetched = 0

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        self.fetched += len(tiles)
        return [self.tiles[t] for t in tiles]


def per_op(label: str, n: int, fn: Callable[[int], object]) -> None:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    elapsed = time.perf_counter() - start
    print(f"  {label:<58} {elapsed / n * 1e6:9.1f} µs/op")


def main() -> None:
    leaves = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    proofs = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    rng = random.Random(1)

    t0 = time.perf_counter()
    tree = MemoryTree(leaf_hash(i.to_bytes(8, "big")) for i in range(leaves))
    root = tree.root()
    print(f"built {leaves:,} leaves in {time.perf_counter() - t0:.2f} s (setup, not per proof)")
    t0 = time.perf_counter()
    tiles = {t: read_tile_data(t, tree) for t in tiles_for_size(leaves)}
    print(f"assembled {len(tiles):,} tiles in {time.perf_counter() - t0:.2f} s (setup)")

    indexes = [rng.randrange(leaves) for _ in range(proofs)]
    olds = [rng.randrange(1, leaves) for _ in range(proofs)]
    leaf_of = tree.read_hashes([Node(0, i) for i in indexes])

    counting = CountingReader(tree)
    incl = [inclusion_proof(i, leaves, tree) for i in indexes]
    cons = [consistency_proof(o, leaves, tree) for o in olds]
    old_roots = [tree.root(o) for o in olds]

    print(f"\n{proofs:,} random proofs in a tree of {leaves:,} leaves:")
    per_op(
        "inclusion proof, MemoryTree reader",
        proofs,
        lambda k: inclusion_proof(indexes[k], leaves, counting),
    )
    per_op(
        "inclusion verify",
        proofs,
        lambda k: verify_inclusion(indexes[k], leaves, leaf_of[k], incl[k], root),
    )
    per_op(
        "consistency proof, MemoryTree reader",
        proofs,
        lambda k: consistency_proof(olds[k], leaves, counting),
    )
    per_op(
        "consistency verify",
        proofs,
        lambda k: verify_consistency(olds[k], leaves, cons[k], old_roots[k], root),
    )
    print(
        f"  reader calls per proof: {counting.calls / (2 * proofs):.0f}, "
        f"hashes read per proof: {counting.nodes / (2 * proofs):.1f}"
    )

    source = MemoryTiles(tiles)
    per_op(
        "inclusion proof, TileHashReader (authenticated, cold)",
        proofs,
        lambda k: inclusion_proof(indexes[k], leaves, TileHashReader(leaves, root, source)),
    )
    print(f"  tiles fetched per cold proof: {source.fetched / proofs:.1f}")
    source.fetched = 0
    per_op(
        "consistency proof, TileHashReader (authenticated, cold)",
        proofs,
        lambda k: consistency_proof(olds[k], leaves, TileHashReader(leaves, root, source)),
    )
    print(f"  tiles fetched per cold proof: {source.fetched / proofs:.1f}")
    warm = TileHashReader(leaves, root, source, cache_tiles=8192)
    for k in range(proofs):
        inclusion_proof(indexes[k], leaves, warm)
    per_op(
        "inclusion proof, TileHashReader (warm cache)",
        proofs,
        lambda k: inclusion_proof(indexes[k], leaves, warm),
    )
    trusted = TileHashReader(leaves, None, source)
    per_op(
        "inclusion proof, TileHashReader (own storage, no auth)",
        proofs,
        lambda k: inclusion_proof(indexes[k], leaves, trusted),
    )


if __name__ == "__main__":
    main()
