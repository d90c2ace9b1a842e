"""tlog-tiles paths, tile math, entry bundles and the authenticating tile hash reader."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_vectors import load

from provenance.errors import InputError, ProofError, ProvenanceError
from provenance.log.merkle import (
    MemoryTree,
    Node,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from provenance.log.tiles import (
    MAX_ENTRY_SIZE,
    Tile,
    TileError,
    TileHashReader,
    encode_tile_index,
    format_entry_bundle,
    format_sumdb_tile_path,
    hash_from_tile,
    new_tiles,
    parse_entries_path,
    parse_entry_bundle,
    parse_sumdb_tile_path,
    parse_tile,
    parse_tile_index,
    parse_tile_path,
    read_tile_data,
    tile_for_node,
    tile_hash,
    tiles_for_size,
)


@pytest.fixture(scope="module")
def vectors() -> dict[str, object]:
    data: dict[str, object] = load("tiles/tiles.json")
    return data


# ----------------------------------------------------------------------- vectors


def test_c2sp_index_encoding(vectors: dict[str, object]) -> None:
    cases = vectors["c2sp_index_encoding"]
    assert isinstance(cases, list) and cases
    for case in cases:
        assert encode_tile_index(case["n"]) == case["path_elem"]
        assert parse_tile_index(case["path_elem"]) == case["n"]
        tile = Tile(0, case["n"])
        assert tile.path() == f"tile/0/{case['path_elem']}"
        assert parse_tile_path(tile.path()) == tile


def test_c2sp_tiles_for_size(vectors: dict[str, object]) -> None:
    sizes = vectors["c2sp_tiles_for_size"]
    assert isinstance(sizes, dict)
    spec = sizes["70000"]
    tiles = tiles_for_size(70_000)
    full = [t for t in tiles if t.is_full]
    partial = [t for t in tiles if not t.is_full]
    assert sum(1 for t in full if t.level == 0) == spec["full_level0"]
    assert sum(1 for t in full if t.level == 1) == spec["full_level1"]
    assert [(t.level, t.width) for t in partial] == [
        (p["level"], p["width"]) for p in spec["partials"]
    ]
    assert [t.path() for t in partial] == spec["partial_paths"]
    for size in ("256", "300"):
        assert [t.path() for t in tiles_for_size(int(size))] == sizes[size]


def test_c2sp_entry_bundle_paths(vectors: dict[str, object]) -> None:
    bundles = vectors["c2sp_entry_bundle_paths"]
    assert isinstance(bundles, dict)
    level0 = [t for t in tiles_for_size(300) if t.level == 0]
    assert [t.entries_path() for t in level0] == bundles["300"]
    for path, tile in zip(bundles["300"], level0, strict=True):
        assert parse_entries_path(path) == tile


def test_sumdb_tile_paths(vectors: dict[str, object]) -> None:
    cases = vectors["sumdb_tile_paths"]
    assert isinstance(cases, list) and len(cases) == 8
    for case in cases:
        if case.get("invalid"):
            with pytest.raises(TileError):
                parse_sumdb_tile_path(case["path"])
            continue
        coords = (case["H"], case["L"], case["N"], case["W"])
        assert parse_sumdb_tile_path(case["path"]) == coords
        assert format_sumdb_tile_path(*coords) == case["path"]


# ---------------------------------------------------------------------- path rules


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1234067",  # needs x-prefixed elements
        "tile/0/x001/x234/067/",
        "tile/0/x000/123",  # non-canonical leading element
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/000.p/",
        "tile/0/12",
        "tile/0/0000",
        "tile/0/x01/000",
        "tile/entries/000",
        "tile/data/000",
        "tiles/0/000",
        "tile/0/\u0661\u0662\u0663",  # non-ASCII digits
        "tile/0/" + "x999/" * 10 + "999",
        "",
    ],
)
def test_bad_tile_paths(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_bad_entries_paths() -> None:
    for path in ["tile/entries/000.p/256", "tile/entries/x1/000", "tile/0/000", "entries/000"]:
        with pytest.raises(TileError):
            parse_entries_path(path)
    with pytest.raises(TileError):
        Tile(1, 0).entries_path()


@settings(max_examples=300)
@given(
    level=st.integers(0, 63),
    index=st.integers(0, (1 << 63) - 1),
    width=st.integers(1, 256),
)
def test_tile_path_roundtrip(level: int, index: int, width: int) -> None:
    tile = Tile(level, index, width)
    assert parse_tile_path(tile.path()) == tile
    if level == 0:
        assert parse_entries_path(tile.entries_path()) == tile


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_tile_path_parser_only_raises_tile_error(path: str) -> None:
    for parse in (parse_tile_path, parse_entries_path, parse_sumdb_tile_path):
        with contextlib.suppress(TileError):
            parse(path)


def test_tile_constructor_bounds() -> None:
    for args in [(-1, 0, 1), (64, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(TileError):
            Tile(*args)


# ----------------------------------------------------------------------- tile math


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 1 << 40), data=st.data())
def test_tile_for_node(size: int, data: st.DataObject) -> None:
    level = data.draw(st.integers(0, size.bit_length() - 1))
    index = data.draw(st.integers(0, (size >> level) - 1))
    tile, start, end = tile_for_node(Node(level, index), size)
    assert tile.level == level // 8
    assert end - start == 1 << (level % 8)
    assert 0 <= start < end <= tile.width
    # The covered hashes of tree level 8*L are exactly the node's span.
    first = tile.index * 256 + start
    assert first << (8 * tile.level) == index << level
    if size < 1 << 20:  # listing the tiles of huge trees is slow
        assert tile in tiles_for_size(size)


def test_tile_for_node_outside_tree() -> None:
    with pytest.raises(ProofError):
        tile_for_node(Node(0, 10), 10)
    with pytest.raises(ProofError):
        tile_for_node(Node(2, 2), 11)


@settings(max_examples=100, deadline=None)
@given(old=st.integers(0, 1 << 24), grow=st.integers(0, 1 << 20))
def test_new_tiles_are_the_difference(old: int, grow: int) -> None:
    new = old + grow
    before = set(tiles_for_size(old)) if old < 1 << 18 else None
    published = new_tiles(old, new)
    assert len(published) == len(set(published))
    for t in published:
        assert t.index * 256 + t.width <= new >> (8 * t.level)
    if before is not None and new < 1 << 18:
        after = set(tiles_for_size(new))
        assert set(published) == after - before


def test_new_tiles_rejects_shrinking() -> None:
    with pytest.raises(InputError):
        new_tiles(5, 4)


# ------------------------------------------------------------------ tiles from a tree

SIZE = 70_000


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree(leaf_hash(b"record %d" % i) for i in range(SIZE))


class TileStore(dict[Tile, bytes]):
    """Published tiles; a short repr keeps hypothesis reports readable."""

    def __repr__(self) -> str:
        return f"<{len(self)} tiles>"

    def serve(self, tile: Tile) -> bytes:
        """The tile's data; partial tiles of older sizes are prefixes of later ones."""
        if tile in self:
            return self[tile]
        wider = [
            t for t in (Tile(tile.level, tile.index, w) for w in range(256, 0, -1)) if t in self
        ]
        return self[wider[0]][: tile.data_size]


@pytest.fixture(scope="module")
def tile_store(tree: MemoryTree) -> TileStore:
    """Every tile of the tree at SIZE, as a log would publish them."""
    return TileStore({t: read_tile_data(t, tree) for t in tiles_for_size(SIZE)})


class DictTiles:
    """A TileReader over a TileStore; records what was fetched and can corrupt a tile."""

    def __init__(self, store: TileStore, tamper: Tile | None = None) -> None:
        self.store = store
        self.tamper = tamper
        self.fetched: list[list[Tile]] = []

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        self.fetched.append(list(tiles))
        out = []
        for t in tiles:
            data = self.store.serve(t)
            if t == self.tamper:
                data = bytes([data[0] ^ 1]) + data[1:]
            out.append(data)
        return out


def test_tile_contents(tree: MemoryTree, tile_store: TileStore) -> None:
    t = Tile(1, 0)
    assert tile_hash(tile_store[t]) == tree.read_hashes([Node(16, 0)])[0]
    hashes = parse_tile(Tile(0, 273, 112), tile_store[Tile(0, 273, 112)])
    assert hashes == tree.read_hashes([Node(0, 273 * 256 + i) for i in range(112)])
    node = Node(5, 100)
    tile, _, _ = tile_for_node(node, SIZE)
    assert hash_from_tile(tile, tile_store[tile], node, SIZE) == tree.read_hashes([node])[0]
    with pytest.raises(TileError):
        parse_tile(Tile(0, 0), b"\x00" * 31)
    with pytest.raises(TileError):
        tile_hash(b"")


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_proofs_from_tiles_match_memory(
    tree: MemoryTree, tile_store: TileStore, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, SIZE), label="size")
    root = tree.root(size)
    reader = TileHashReader(size, root, DictTiles(tile_store))
    assert tree_hash(size, reader) == root
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, reader)
    assert proof == inclusion_proof(index, size, tree)
    verify_inclusion(index, size, tree.read_hashes([Node(0, index)])[0], proof, root)
    size1 = data.draw(st.integers(1, size), label="size1")
    proof = consistency_proof(size1, size, reader)
    assert proof == consistency_proof(size1, size, tree)
    verify_consistency(size1, size, proof, tree.root(size1), root)


def test_tile_reader_caches_and_bounds_fetches(tree: MemoryTree, tile_store: TileStore) -> None:
    source = DictTiles(tile_store)
    reader = TileHashReader(SIZE, tree.root(), source)
    inclusion_proof(1234, SIZE, reader)
    first = len(source.fetched[0])
    assert first <= 8  # leaf tile, its parents and the partial tiles: O(log n)
    inclusion_proof(1235, SIZE, reader)
    assert len(source.fetched) == 1  # everything came from the cache
    untrusted = DictTiles(tile_store)
    inclusion_proof(1234, SIZE, TileHashReader(SIZE, None, untrusted))
    assert len(untrusted.fetched[0]) < first  # no authentication: only the tiles used


@pytest.mark.parametrize(
    "tamper",
    [Tile(0, 4), Tile(1, 0), Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)],
    ids=lambda t: t.path(),
)
def test_tampered_tiles_are_detected(tree: MemoryTree, tile_store: TileStore, tamper: Tile) -> None:
    reader = TileHashReader(SIZE, tree.root(), DictTiles(tile_store, tamper=tamper))
    index = 4 * 256 + 7 if tamper.is_full else SIZE - 1
    with pytest.raises(ProofError, match="inconsistent"):
        inclusion_proof(index, SIZE, reader)


def test_tile_reader_rejects_bad_data(tree: MemoryTree, tile_store: TileStore) -> None:
    class Short(DictTiles):
        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            return [d[:-1] for d in super().read_tiles(tiles)]

    with pytest.raises(ProofError, match="bytes, expected"):
        inclusion_proof(0, SIZE, TileHashReader(SIZE, tree.root(), Short(tile_store)))
    with pytest.raises(ProofError, match="inconsistent"):
        tree_hash(SIZE, TileHashReader(SIZE, tree.root(SIZE - 1), DictTiles(tile_store)))
    with pytest.raises(InputError):
        TileHashReader(SIZE, b"short", DictTiles(tile_store))
    with pytest.raises(ProofError):
        TileHashReader(SIZE, None, DictTiles(tile_store)).read_hashes([Node(0, SIZE)])


# ------------------------------------------------------------------- entry bundles


def test_entry_bundle_roundtrip() -> None:
    entries = [b"", b"a", b"record", b"\x00" * MAX_ENTRY_SIZE]
    data = format_entry_bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x01"
    assert parse_entry_bundle(data) == entries
    assert parse_entry_bundle(data, count=4) == entries
    leaves = [leaf_hash(b"record %d" % i) for i in range(300)]
    bundle = format_entry_bundle(b"record %d" % i for i in range(256, 300))
    assert [leaf_hash(e) for e in parse_entry_bundle(bundle, 44)] == leaves[256:]


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"\x00", None),  # truncated length
        (b"\x00\x05abc", None),  # truncated entry
        (b"\x00\x01a\x00", None),
        (b"\x00\x00" * 257, None),  # too many entries
        (b"\x00\x00" * 3, 2),  # more than the tile width
        (b"\x00\x00" * 3, 4),  # fewer than the tile width
        (b"", 1),
        (b"\x00\x00", 0),
        (b"\xff\xff" + b"x" * 10, None),
    ],
)
def test_malformed_entry_bundles(data: bytes, count: int | None) -> None:
    with pytest.raises(TileError):
        parse_entry_bundle(data, count)


def test_entry_bundle_limits() -> None:
    with pytest.raises(TileError):
        format_entry_bundle([b"x" * (MAX_ENTRY_SIZE + 1)])
    with pytest.raises(TileError):
        format_entry_bundle([b""] * 257)


@settings(max_examples=300)
@given(st.binary(max_size=600), st.none() | st.integers(-5, 300))
def test_entry_bundle_parser_only_raises_tile_error(data: bytes, count: int | None) -> None:
    try:
        entries = parse_entry_bundle(data, count)
    except ProvenanceError as e:
        assert isinstance(e, TileError)
    else:
        assert format_entry_bundle(entries) == data


def test_tile_edge_cases(tree: MemoryTree, tile_store: TileStore) -> None:
    with pytest.raises(TileError):
        encode_tile_index(-1)
    with pytest.raises(TileError):
        format_sumdb_tile_path(0, 0, 0, 1)
    with pytest.raises(TileError):
        parse_sumdb_tile_path("tile/8/x/000")
    node = Node(3, 5)
    tile, _, _ = tile_for_node(node, SIZE)
    with pytest.raises(ProofError):
        hash_from_tile(Tile(0, 1), tile_store.serve(Tile(0, 1)), node, SIZE)
    with pytest.raises(ProofError):
        hash_from_tile(tile, b"", node, SIZE)

    class Broken:
        def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
            return [b""]

    with pytest.raises(ProofError):
        read_tile_data(Tile(0, 0), Broken())
    with pytest.raises(InputError):
        TileHashReader(-1, None, DictTiles(tile_store))
    with pytest.raises(ProofError):
        TileHashReader(0, tree.root(), DictTiles(tile_store))
    assert tree_hash(0, TileHashReader(0, tree.root(0), DictTiles(tile_store))) == tree.root(0)

    class Dropping(DictTiles):
        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            return super().read_tiles(tiles)[1:]

    with pytest.raises(ProofError, match="returned"):
        inclusion_proof(0, SIZE, TileHashReader(SIZE, tree.root(), Dropping(tile_store)))


def test_tile_cache_is_bounded(tree: MemoryTree, tile_store: TileStore) -> None:
    source = DictTiles(tile_store)
    uncached = TileHashReader(SIZE, tree.root(), source, cache_tiles=0)
    inclusion_proof(0, SIZE, uncached)
    inclusion_proof(0, SIZE, uncached)
    assert len(source.fetched) == 2
    source = DictTiles(tile_store)
    small = TileHashReader(SIZE, tree.root(), source, cache_tiles=2)
    for i in range(0, SIZE, 4096):
        inclusion_proof(i, SIZE, small)
    assert len(small._cache) == 2


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, (1 << 63) - 1), data=st.data())
def test_tile_reader_in_huge_trees(size: int, data: st.DataObject) -> None:
    """A tree of equal leaves has uniform tiles, so any size can be served."""
    by_level = [leaf_hash(b"same")]
    for _ in range(64):
        by_level.append(node_hash(by_level[-1], by_level[-1]))

    class UniformTiles:
        fetched = 0

        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            UniformTiles.fetched += len(tiles)
            return [by_level[8 * t.level] * t.width for t in tiles]

    root = merkle_root_of_uniform(size, by_level)
    reader = TileHashReader(size, root, UniformTiles())
    assert tree_hash(size, reader) == root
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, reader)
    verify_inclusion(index, size, by_level[0], proof, root)
    assert UniformTiles.fetched <= 2 * 8 + 8  # tiles per level on the two paths


def merkle_root_of_uniform(size: int, by_level: list[bytes]) -> bytes:
    parts = [by_level[b] for b in range(size.bit_length()) if size >> b & 1]
    root = parts[0]
    for left in parts[1:]:
        root = node_hash(left, root)
    return root
