"""tlog-tiles: tile coordinates and paths, tile contents, entry bundles.

A C2SP log publishes its Merkle tree as tiles of height 8: the tile ``(L, N)`` holds up
to 256 consecutive hashes of tree level ``8 * L``. This module maps tree nodes to
tiles and back, names tiles exactly as the spec (``tile/1/x001/234.p/17``), encodes and
parses entry bundles, and offers :class:`TileHashReader`, a
:class:`~provenance.log.merkle.HashReader` that serves proofs from tiles and, given the
checkpoint's root hash, authenticates every tile it uses the way Go's
``tlog.TileHashReader`` does.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from provenance.errors import InputError, ProofError
from provenance.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    HashReader,
    Node,
    node_hash,
    range_nodes,
)

__all__ = [
    "MAX_ENTRY_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileError",
    "TileHashReader",
    "TileReader",
    "encode_tile_index",
    "format_entry_bundle",
    "format_sumdb_tile_path",
    "hash_from_tile",
    "new_tiles",
    "parse_entries_path",
    "parse_entry_bundle",
    "parse_sumdb_tile_path",
    "parse_tile",
    "parse_tile_index",
    "parse_tile_path",
    "read_tile_data",
    "tile_for_node",
    "tile_hash",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""C2SP tiles always span 8 tree levels..."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""...so a full tile has 256 hashes (8,192 bytes)."""
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF
"""Entries in a bundle carry a uint16 length."""


class TileError(InputError):
    """A tile path, tile or entry bundle is malformed."""


@dataclass(frozen=True, order=True)
class Tile:
    """Tile ``index`` at tile level ``level``, holding ``width`` hashes of tree level
    ``8 * level`` starting at hash ``index * 256``. Width 256 means a full tile."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_TILE_LEVEL:
            raise TileError(f"tile level {self.level} is out of range [0, 63]")
        if not 0 <= self.index <= MAX_TREE_SIZE:
            raise TileError(f"tile index {self.index} is out of range")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} is out of range [1, 256]")

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def data_size(self) -> int:
        """Bytes in the tile (32 per hash); also the entry count of its entry bundle."""
        return self.width * HASH_SIZE

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return f"tile/{self.level}/{_encode_path_tail(self.index, self.width, TILE_WIDTH)}"

    def entries_path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``, the entry bundle matching a level-0 tile."""
        if self.level != 0:
            raise TileError("only level-0 tiles have entry bundles")
        return f"tile/entries/{_encode_path_tail(self.index, self.width, TILE_WIDTH)}"

    def parent(self, tree_size: int) -> Tile | None:
        """The tile one level up whose hash row includes this (full) tile's hash."""
        return _tile_at(self.level + 1, self.index >> TILE_HEIGHT, tree_size)


# ------------------------------------------------------------------------ paths


def encode_tile_index(n: int) -> str:
    """``1234067`` -> ``x001/x234/067``: three-digit elements, all but the last ``x``-ed."""
    if not 0 <= n <= MAX_TREE_SIZE:
        raise TileError(f"tile index {n} is out of range")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


_INDEX_ELEM = re.compile(r"x[0-9]{3}")
_LAST_ELEM = re.compile(r"[0-9]{3}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def parse_tile_index(s: str) -> int:
    """Inverse of :func:`encode_tile_index`; rejects any non-canonical spelling."""
    elems = s.split("/")
    if len(elems) > 7 or not all(_INDEX_ELEM.fullmatch(e) for e in elems[:-1]):
        raise TileError(f"malformed tile index {s!r}")
    if not _LAST_ELEM.fullmatch(elems[-1]):
        raise TileError(f"malformed tile index {s!r}")
    n = 0
    for e in elems:
        n = n * 1000 + int(e.lstrip("x"))
    if n > MAX_TREE_SIZE or encode_tile_index(n) != s:
        raise TileError(f"malformed tile index {s!r}")
    return n


def _encode_path_tail(index: int, width: int, full: int) -> str:
    tail = encode_tile_index(index)
    return tail if width == full else f"{tail}.p/{width}"


def _parse_path_tail(tail: str, full: int, path: str) -> tuple[int, int]:
    width = full
    if ".p/" in tail:
        tail, w = tail.rsplit(".p/", 1)
        if not _DECIMAL.fullmatch(w) or not 1 <= int(w) < full:
            raise TileError(f"malformed tile path {path!r}: bad partial width")
        width = int(w)
    try:
        index = parse_tile_index(tail)
    except TileError:
        raise TileError(f"malformed tile path {path!r}") from None
    return index, width


def _check_path_text(path: object) -> str:
    if not isinstance(path, str) or len(path) > 128 or not path.isascii():
        raise TileError(f"malformed tile path {path!r}")
    return path


def parse_tile_path(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` (not entry bundles; see :func:`parse_entries_path`)."""
    path = _check_path_text(path)
    prefix, _, rest = path.partition("/")
    level, _, tail = rest.partition("/")
    if prefix != "tile" or not _DECIMAL.fullmatch(level) or int(level) > MAX_TILE_LEVEL:
        raise TileError(f"malformed tile path {path!r}")
    index, width = _parse_path_tail(tail, TILE_WIDTH, path)
    return Tile(int(level), index, width)


def parse_entries_path(path: str) -> Tile:
    """Parse ``tile/entries/<N>[.p/<W>]`` into the level-0 tile it matches."""
    path = _check_path_text(path)
    if not path.startswith("tile/entries/"):
        raise TileError(f"malformed entry bundle path {path!r}")
    index, width = _parse_path_tail(path[len("tile/entries/") :], TILE_WIDTH, path)
    return Tile(0, index, width)


def format_sumdb_tile_path(height: int, level: int, index: int, width: int) -> str:
    """Go checksum-database path ``tile/<H>/<L>/<N>[.p/<W>]``; level -1 is ``data``."""
    if not 1 <= height <= 30 or not -1 <= level <= MAX_TILE_LEVEL or not 1 <= width <= 1 << height:
        raise TileError("invalid sumdb tile coordinates")
    lv = "data" if level == -1 else str(level)
    return f"tile/{height}/{lv}/{_encode_path_tail(index, width, 1 << height)}"


def parse_sumdb_tile_path(path: str) -> tuple[int, int, int, int]:
    """Parse a Go checksum-database tile path into ``(height, level, index, width)``."""
    path = _check_path_text(path)
    parts = path.split("/", 3)
    if len(parts) != 4 or parts[0] != "tile" or not _DECIMAL.fullmatch(parts[1]):
        raise TileError(f"malformed tile path {path!r}")
    height = int(parts[1])
    if not 1 <= height <= 30:
        raise TileError(f"malformed tile path {path!r}")
    if parts[2] == "data":
        level = -1
    elif _DECIMAL.fullmatch(parts[2]) and int(parts[2]) <= MAX_TILE_LEVEL:
        level = int(parts[2])
    else:
        raise TileError(f"malformed tile path {path!r}")
    index, width = _parse_path_tail(parts[3], 1 << height, path)
    return height, level, index, width


# ------------------------------------------------------------------------ tile math


def _tile_at(level: int, index: int, tree_size: int) -> Tile | None:
    """Tile ``(level, index)`` as it exists in a tree of ``tree_size``, or None."""
    if level > MAX_TILE_LEVEL:
        return None
    hashes = tree_size >> (TILE_HEIGHT * level)  # hashes at tree level 8*level
    width = min(TILE_WIDTH, hashes - index * TILE_WIDTH)
    return Tile(level, index, width) if width > 0 else None


def tile_for_node(node: Node, tree_size: int) -> tuple[Tile, int, int]:
    """The tile holding ``node`` in a tree of ``tree_size``, and the hash offsets
    ``[start, end)`` within it whose subtree hash is the node's hash."""
    level, index = node.level, node.index
    if level < 0 or index < 0 or (index + 1) << level > tree_size:
        raise ProofError(f"node ({level}, {index}) is not in a tree of size {tree_size}")
    tile_level, sub = divmod(level, TILE_HEIGHT)
    first = index << sub  # first covered hash at tree level 8 * tile_level
    tile = _tile_at(tile_level, first >> TILE_HEIGHT, tree_size)
    assert tile is not None  # the node is complete, so its tile exists
    start = first & (TILE_WIDTH - 1)
    return tile, start, start + (1 << sub)


def tiles_for_size(tree_size: int) -> list[Tile]:
    """Every tile of a tree of ``tree_size``: full tiles and the partial ones."""
    return new_tiles(0, tree_size)


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """Tiles to publish when the tree grows from ``old_size`` to ``new_size`` (Go's
    ``tlog.NewTiles``): newly full tiles and the new partial tiles, by level."""
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE:
        raise InputError(f"cannot grow a tree from size {old_size} to {new_size}")
    out: list[Tile] = []
    level = 0
    while new_size >> (TILE_HEIGHT * level) > 0:
        old_n = old_size >> (TILE_HEIGHT * level)
        new_n = new_size >> (TILE_HEIGHT * level)
        if old_n != new_n:
            for n in range(old_n >> TILE_HEIGHT, new_n >> TILE_HEIGHT):
                out.append(Tile(level, n))
            width = new_n & (TILE_WIDTH - 1)
            if width:
                out.append(Tile(level, new_n >> TILE_HEIGHT, width))
        level += 1
    return out


def parse_tile(tile: Tile, data: bytes) -> list[bytes]:
    """Split tile data into its hashes, checking the size against the tile width."""
    if len(data) != tile.data_size:
        raise TileError(f"{tile.path()} has {len(data)} bytes, expected {tile.data_size}")
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def _perfect_hash(data: bytes, start: int, end: int) -> bytes:
    """MTH of the power-of-two run of hashes ``data[start:end]`` (hash offsets)."""
    row = [bytes(data[i * HASH_SIZE : (i + 1) * HASH_SIZE]) for i in range(start, end)]
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def tile_hash(data: bytes) -> bytes:
    """Hash of a full tile: the tree node one tile level up that it spans."""
    if len(data) != TILE_WIDTH * HASH_SIZE:
        raise TileError(f"a full tile has {TILE_WIDTH * HASH_SIZE} bytes, got {len(data)}")
    return _perfect_hash(data, 0, TILE_WIDTH)


def hash_from_tile(tile: Tile, data: bytes, node: Node, tree_size: int) -> bytes:
    """Hash of ``node`` computed from the data of the tile that holds it."""
    where, start, end = tile_for_node(node, tree_size)
    if (where.level, where.index) != (tile.level, tile.index) or end > tile.width:
        raise ProofError(
            f"node ({node.level}, {node.index}) is in {where.path()}, not {tile.path()}"
        )
    if len(data) != tile.data_size:
        raise ProofError(f"{tile.path()} has {len(data)} bytes, expected {tile.data_size}")
    return _perfect_hash(data, start, end)


def read_tile_data(tile: Tile, reader: HashReader) -> bytes:
    """Assemble a tile from stored hashes (what a log writes after sequencing)."""
    level = tile.level * TILE_HEIGHT
    first = tile.index * TILE_WIDTH
    nodes = [Node(level, first + i) for i in range(tile.width)]
    hashes = reader.read_hashes(nodes)
    if len(hashes) != len(nodes) or any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"hash reader returned bad hashes for {tile.path()}")
    return b"".join(hashes)


# --------------------------------------------------------------------- entry bundles


def format_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Concatenate entries as ``uint16be(len) || entry``; at most 256 entries."""
    out = bytearray()
    for count, entry in enumerate(entries, 1):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry of {len(entry)} bytes exceeds {MAX_ENTRY_SIZE}")
        if count > TILE_WIDTH:
            raise TileError(f"an entry bundle holds at most {TILE_WIDTH} entries")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def parse_entry_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """Split an entry bundle; if ``count`` is given (the tile width) it must match."""
    if count is not None and not 1 <= count <= TILE_WIDTH:
        raise TileError(f"an entry bundle has 1 to {TILE_WIDTH} entries, not {count}")
    limit = TILE_WIDTH if count is None else count
    entries: list[bytes] = []
    pos = 0
    view = memoryview(data)
    while pos < len(view):
        if len(entries) == limit:
            raise TileError(f"entry bundle has more than {limit} entries")
        if pos + 2 > len(view):
            raise TileError(f"entry bundle truncated in the length of entry {len(entries)}")
        size = int.from_bytes(view[pos : pos + 2], "big")
        pos += 2
        if pos + size > len(view):
            raise TileError(
                f"entry {len(entries)} claims {size} bytes, only {len(view) - pos} remain"
            )
        entries.append(bytes(view[pos : pos + size]))
        pos += size
    if count is not None and len(entries) != count:
        raise TileError(f"entry bundle has {len(entries)} entries, expected {count}")
    return entries


# ----------------------------------------------------------------- tile hash reader


class TileReader(Protocol):
    """Fetches tile data (from a directory, an object store or over HTTP)."""

    def read_tiles(self, tiles: Sequence[Tile]) -> Sequence[bytes]:
        """Return the data of each tile, in order; partial tiles at their width."""
        ...


class _TileNodes:
    """A tile's hashes plus the subtree hashes computed from them so far, so repeated
    proofs from a cached tile cost lookups instead of up to 255 hashes."""

    __slots__ = ("_memo", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._memo: dict[tuple[int, int], bytes] = {}

    def hash(self, start: int, end: int) -> bytes:
        """MTH of the aligned power-of-two run of hashes ``[start, end)``."""
        if end - start == 1:
            return self.data[start * HASH_SIZE : end * HASH_SIZE]
        h = self._memo.get((start, end))
        if h is None:
            mid = (start + end) // 2
            h = node_hash(self.hash(start, mid), self.hash(mid, end))
            self._memo[(start, end)] = h
        return h


class TileHashReader:
    """A :class:`HashReader` over tiles of the tree ``(tree_size, root_hash)``.

    With a root hash, every tile used is authenticated before a hash is returned:
    partial tiles by recomputing the root, full tiles against their parent's row.
    Authenticated tiles are cached (LRU, ``cache_tiles`` entries). Pass ``None`` as
    the root only for storage the caller already trusts, such as the log's own.
    """

    def __init__(
        self,
        tree_size: int,
        root_hash: bytes | None,
        tiles: TileReader,
        *,
        cache_tiles: int = 256,
    ) -> None:
        if not 0 <= tree_size <= MAX_TREE_SIZE:
            raise InputError(f"tree size {tree_size} is out of range")
        if root_hash is not None and len(root_hash) != HASH_SIZE:
            raise InputError(f"root hash must be {HASH_SIZE} bytes")
        if tree_size == 0 and root_hash is not None and root_hash != EMPTY_ROOT:
            raise ProofError("the empty tree's root hash is SHA-256 of nothing")
        self.tree_size = tree_size
        self.root_hash = root_hash
        self._reader = tiles
        self._cache: OrderedDict[Tile, _TileNodes] = OrderedDict()
        self._cache_tiles = max(cache_tiles, 0)

    def read_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        located = [tile_for_node(n, self.tree_size) for n in nodes]
        have: dict[Tile, _TileNodes] = {}
        fetch: list[Tile] = []

        def want(tile: Tile) -> bool:
            """Plan ``tile``; True if it is cached (hence already authenticated)."""
            if tile in have or tile in fetch:
                return True
            cached = self._cache.get(tile)
            if cached is not None:
                self._cache.move_to_end(tile)
                have[tile] = cached
                return True
            fetch.append(tile)
            return False

        anchor_needed = False
        for tile, _, _ in located:
            if want(tile) or self.root_hash is None:
                continue
            # Walk up through full tiles until a tile already cached or planned; if
            # the walk ends at an uncached partial tile, the root hash must anchor it.
            t = tile
            while t.is_full:
                parent = t.parent(self.tree_size)
                assert parent is not None  # a full tile's hash is in the level above
                if want(parent):
                    break
                t = parent
            else:
                anchor_needed = True
        if anchor_needed:
            for node in range_nodes(0, self.tree_size):
                want(tile_for_node(node, self.tree_size)[0])

        if fetch:
            data = list(self._reader.read_tiles(fetch))
            if len(data) != len(fetch):
                raise ProofError(f"tile reader returned {len(data)} tiles for {len(fetch)}")
            for tile, d in zip(fetch, data, strict=True):
                if len(d) != tile.data_size:
                    raise ProofError(f"{tile.path()} has {len(d)} bytes, expected {tile.data_size}")
                have[tile] = _TileNodes(bytes(d))
            if self.root_hash is not None:
                self._authenticate(fetch, have)
            for tile in fetch:
                self._remember(tile, have[tile])

        return [have[tile].hash(start, end) for tile, start, end in located]

    def _authenticate(self, fetched: list[Tile], have: dict[Tile, _TileNodes]) -> None:
        if any(not t.is_full for t in fetched):
            hashes = []
            for node in range_nodes(0, self.tree_size):
                tile, start, end = tile_for_node(node, self.tree_size)
                hashes.append(have[tile].hash(start, end))
            root = hashes[-1]
            for left in reversed(hashes[:-1]):
                root = node_hash(left, root)
            if root != self.root_hash:
                raise ProofError(
                    f"tiles are inconsistent with the root hash of tree size {self.tree_size}"
                )
        for tile in fetched:
            if not tile.is_full:
                continue
            parent = tile.parent(self.tree_size)
            assert parent is not None and parent in have  # planned in read_hashes
            offset = tile.index & (TILE_WIDTH - 1)
            if have[parent].hash(offset, offset + 1) != have[tile].hash(0, TILE_WIDTH):
                raise ProofError(f"{tile.path()} is inconsistent with {parent.path()}")

    def _remember(self, tile: Tile, data: _TileNodes) -> None:
        if self._cache_tiles == 0:
            return
        self._cache[tile] = data
        self._cache.move_to_end(tile)
        while len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)
