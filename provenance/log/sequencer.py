"""The sequencer: durable appends, batched integration, signed checkpoints.

An append is acknowledged once its entry has an index in the state store (one
transaction per batch: *group commit*). Integration, later and in batches, turns
the sequenced entries into tiles and entry bundles, signs a checkpoint over the
new tree and publishes it, in an order that survives a crash at any point:

1. tiles and entry bundles are written and fsynced (immutable, so rewriting them
   after a crash is harmless: the same indices give the same bytes);
2. the new tree (size, root, signed checkpoint) replaces the old one by
   compare-and-swap in the state store, which also drops the now-integrated
   pending entries;
3. the ``checkpoint`` file is written; a crash before that is repaired at the next
   integration, which republishes the state's checkpoint.

Before signing, the tiles on disk must reproduce the recorded root and the new
tree must be provably consistent with it, so a damaged store stops the log instead
of making it sign a fork.

Memory is bounded by the batch, not by the log: the only tree data kept between
batches is :class:`TreeEdge`, the rightmost tile of each level (at most 64 tiles).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType

from provenance.errors import InputError, ProofError, ProvenanceError
from provenance.log.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from provenance.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
)
from provenance.log.note import Ed25519Signer, Signer, Verifier, parse_note
from provenance.log.store.errors import ConflictError, NotFoundError, StoreError
from provenance.log.store.state import DEFAULT_LOCK_TIMEOUT, Sequenced, StateStore, TreeState
from provenance.log.store.tile_store import TileSource, TileStore
from provenance.log.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    TileHashReader,
    format_entry_bundle,
    new_tiles,
    parse_tile_path,
    tile_hash,
)

__all__ = [
    "Cosigner",
    "Sequencer",
    "SequencerStats",
    "TreeEdge",
    "check_entry",
]

logger = logging.getLogger(__name__)

Cosigner = Callable[[bytes], bytes | None]
"""Witness hook: takes the log-signed checkpoint note, returns it with cosignature
lines added, or None to publish it as is. Raising aborts the integration (nothing is
published; the entries stay sequenced and the next integration tries again)."""

_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE


def check_entry(entry: bytes) -> bytes:
    """Return ``entry`` as bytes if it fits in an entry bundle (at most 65,535 bytes)."""
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise InputError(f"a log entry must be bytes, not {type(entry).__name__}")
    entry = bytes(entry)
    if len(entry) > MAX_ENTRY_SIZE:
        raise InputError(
            f"entry of {len(entry):,} bytes is larger than the {MAX_ENTRY_SIZE:,}-byte limit"
            " of tlog-tiles entry bundles"
        )
    return entry


# ------------------------------------------------------------------- tree edge


class TreeEdge:
    """The right edge of a tiled tree: enough to extend it and compute its root.

    Holds the hashes of the rightmost incomplete tile at each tile level and the
    entries of the incomplete entry bundle (together at most 64 tiles). Full tiles
    are emitted as the tree grows and then forgotten, so memory stays flat however
    large the log gets. Verifiers use it too: extending an empty edge with a log's
    entry bundles must reproduce every tile the log serves.
    """

    __slots__ = ("_bundle", "_rows", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._rows: list[bytearray] = []
        self._bundle: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def copy(self) -> TreeEdge:
        """An independent copy (to extend tentatively)."""
        other = TreeEdge()
        other._size = self._size
        other._rows = [bytearray(r) for r in self._rows]
        other._bundle = list(self._bundle)
        return other

    @classmethod
    def load(cls, source: TileSource, size: int, root_hash: bytes | None = None) -> TreeEdge:
        """Read the edge of the tree of ``size`` from its partial tiles and bundle.

        With ``root_hash``, the edge must reproduce it (and the partial bundle its
        level-0 tile), or :class:`StoreError` says the store is damaged.
        """
        edge = cls()
        edge._size = size
        level = 0
        while size >> (TILE_HEIGHT * level) > 0:
            hashes = size >> (TILE_HEIGHT * level)
            width = hashes % TILE_WIDTH
            row = bytearray()
            if width:
                row += source.read_tile(Tile(level, hashes // TILE_WIDTH, width))
            edge._rows.append(row)
            level += 1
        if size % TILE_WIDTH:
            bundle_tile = Tile(0, size // TILE_WIDTH, size % TILE_WIDTH)
            edge._bundle = source.read_entries(bundle_tile)
            if b"".join(leaf_hash(e) for e in edge._bundle) != edge._rows[0]:
                raise StoreError(
                    f"{bundle_tile.entries_path()} does not match {bundle_tile.path()}"
                )
        if root_hash is not None and edge.root_hash() != root_hash:
            raise StoreError(f"the tiles of tree size {size} do not match the recorded root hash")
        return edge

    def extend(self, entries: Iterable[bytes]) -> dict[str, bytes]:
        """Append entries; return the full tiles and full entry bundles completed,
        by path. Partial ones are :meth:`partial_files`."""
        out: dict[str, bytes] = {}
        rows = self._rows
        bundle = self._bundle
        i = self._size
        if not rows:
            rows.append(bytearray())
        for entry in entries:
            if len(entry) > MAX_ENTRY_SIZE:
                check_entry(entry)
            bundle.append(entry)
            row = rows[0]
            row += leaf_hash(entry)
            if len(row) == _FULL_TILE_BYTES:
                self._complete(i, out)
                out[Tile(0, i >> TILE_HEIGHT).entries_path()] = format_entry_bundle(bundle)
                bundle.clear()
            i += 1
            self._size = i
        return out

    def _complete(self, i: int, out: dict[str, bytes]) -> None:
        """Leaf ``i`` filled the level-0 row: emit full tiles up the levels."""
        rows = self._rows
        level = 0
        while len(rows[level]) == _FULL_TILE_BYTES:
            data = bytes(rows[level])
            out[Tile(level, i >> (TILE_HEIGHT * (level + 1))).path()] = data
            rows[level] = bytearray()
            level += 1
            if level == len(rows):
                rows.append(bytearray())
            rows[level] += tile_hash(data)

    def partial_files(self, since: int = 0) -> dict[str, bytes]:
        """The partial tiles (and partial entry bundle) of the current size that a tree
        of ``since`` leaves did not have, by path."""
        out: dict[str, bytes] = {}
        for tile in new_tiles(min(since, self._size), self._size):
            if tile.is_full:
                continue
            data = bytes(self._rows[tile.level])
            assert len(data) == tile.data_size, (tile, len(data))
            out[tile.path()] = data
            if tile.level == 0:
                out[tile.entries_path()] = format_entry_bundle(self._bundle)
        return out

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        """The edge's partial tiles (a ``TileReader`` for the root computation)."""
        out = []
        for tile in tiles:
            hashes = self._size >> (TILE_HEIGHT * tile.level)
            width = hashes % TILE_WIDTH
            if not width or tile != Tile(tile.level, hashes // TILE_WIDTH, width):
                raise ProofError(f"{tile.path()} is not on the edge of tree size {self._size}")
            out.append(bytes(self._rows[tile.level]))
        return out

    def root_hash(self) -> bytes:
        """The root hash of the tree (from at most 63 edge hashes)."""
        if self._size == 0:
            return EMPTY_ROOT
        return tree_hash(self._size, TileHashReader(self._size, None, self, cache_tiles=0))


class _Overlay(TileSource):
    """Freshly computed files in front of a store, before they are written."""

    def __init__(self, files: dict[str, bytes], store: TileSource) -> None:
        self._files = files
        self._store = store

    def read(self, path: str) -> bytes:
        data = self._files.get(path)
        return data if data is not None else self._store.read(path)


# -------------------------------------------------------------------- sequencer


@dataclass(frozen=True)
class SequencerStats:
    """What a running sequencer has done (for status pages and tests)."""

    sequenced: int
    integrations: int
    last_error: str | None


class Sequencer:
    """Sequences entries durably and integrates them into a signed, tiled tree.

    ``tiles`` holds the public files, ``state`` the sequence and the integrated
    tree; both may be shared with other processes running their own sequencer on
    the same log (appends interleave; integrations take turns under the state's
    integration lock). ``signer`` signs checkpoints for ``origin``; ``cosigner`` is
    the witness hook (see :data:`Cosigner`).

    Batching: :meth:`submit` queues an entry; a background thread commits up to
    ``max_batch`` entries per transaction, waiting at most ``max_delay`` seconds for
    a batch to fill. A second thread integrates every ``checkpoint_interval``
    seconds, or as soon as ``checkpoint_entries`` entries are waiting, at most
    ``integrate_entries`` entries / ``integrate_bytes`` bytes per checkpoint.
    With ``background=False`` nothing integrates until :meth:`integrate` is called.
    """

    def __init__(
        self,
        tiles: TileStore,
        state: StateStore,
        signer: Signer,
        origin: str,
        *,
        verifier: Verifier | None = None,
        cosigner: Cosigner | None = None,
        max_batch: int = 4096,
        max_delay: float = 0.002,
        checkpoint_interval: float = 1.0,
        checkpoint_entries: int = 16384,
        integrate_entries: int = 65536,
        integrate_bytes: int = 64 << 20,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        background: bool = True,
    ) -> None:
        if max_batch < 1 or integrate_entries < 1 or integrate_bytes < 1:
            raise ValueError("batch sizes must be positive")
        self.tiles = tiles
        self.state = state
        self.signer = signer
        self.origin = origin
        if verifier is None and isinstance(signer, Ed25519Signer):
            verifier = signer.verifier()
        self.verifier = verifier
        self.cosigner = cosigner
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_entries = checkpoint_entries
        self.integrate_entries = integrate_entries
        self.integrate_bytes = integrate_bytes
        self.lock_timeout = lock_timeout
        self.background = background

        self._cv = threading.Condition()
        self._queue: deque[tuple[bytes, Future[Sequenced]]] = deque()
        self._closing = False
        self._closed = False
        self._batcher: threading.Thread | None = None
        self._integrator: threading.Thread | None = None
        self._unintegrated = 0  # sequenced here since the last integration started
        self._sequenced = 0
        self._integrations = 0
        self._last_error: str | None = None
        self._integrate_mutex = threading.Lock()
        self._edge: TreeEdge | None = None
        self._published = threading.Condition()

    def __repr__(self) -> str:
        return f"Sequencer({self.origin!r}, {self.tiles!r}, {self.state!r})"

    def __enter__(self) -> Sequencer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(integrate=exc_type is None)

    # ------------------------------------------------------------------ appends

    def submit(self, entry: bytes) -> Future[Sequenced]:
        """Queue ``entry``; the future resolves once it is durably sequenced."""
        entry = check_entry(entry)
        future: Future[Sequenced] = Future()
        with self._cv:
            if self._closing:
                raise StoreError("the sequencer is closed")
            self._start_threads()
            self._queue.append((entry, future))
            n = len(self._queue)
            if n == 1 or n >= self.max_batch:
                self._cv.notify_all()
        return future

    def append(self, entry: bytes) -> int:
        """Append one entry; return its index once durable (existing index if a duplicate)."""
        return self.submit(entry).result().index

    async def append_async(self, entry: bytes) -> int:
        """:meth:`append` for event loops: awaits the batch without blocking the loop."""
        import asyncio  # only servers need it; keeps CLI start-up lean

        result = await asyncio.wrap_future(self.submit(entry))
        return result.index

    def append_many(self, entries: Iterable[bytes]) -> list[Sequenced]:
        """Sequence entries in the calling thread, ``max_batch`` per transaction."""
        out: list[Sequenced] = []
        batch: list[tuple[bytes, bytes]] = []
        for entry in entries:
            entry = check_entry(entry)
            batch.append((leaf_hash(entry), entry))
            if len(batch) >= self.max_batch:
                out += self._sequence(batch)
                batch = []
        if batch:
            out += self._sequence(batch)
        return out

    def _sequence(self, batch: list[tuple[bytes, bytes]]) -> list[Sequenced]:
        results = self.state.sequence(batch)
        new = sum(not r.duplicate for r in results)
        with self._cv:
            self._sequenced += new
            self._unintegrated += new
            if self._unintegrated >= self.checkpoint_entries:
                self._cv.notify_all()
        return results

    def _start_threads(self) -> None:
        if self._batcher is None:
            self._batcher = threading.Thread(
                target=self._batch_loop, name="tlog-sequencer", daemon=True
            )
            self._batcher.start()
        if self.background and self._integrator is None:
            self._integrator = threading.Thread(
                target=self._integrate_loop, name="tlog-integrator", daemon=True
            )
            self._integrator.start()

    def start(self) -> None:
        """Start the background threads now (they also start on the first submit)."""
        with self._cv:
            if self._closing:
                raise StoreError("the sequencer is closed")
            self._start_threads()

    def _batch_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return  # closing, and everything is committed
                if self.max_delay > 0 and len(self._queue) < self.max_batch:
                    deadline = time.monotonic() + self.max_delay
                    while len(self._queue) < self.max_batch and not self._closing:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cv.wait(remaining)
                take = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(take)]
            futures = [f for _, f in batch]
            try:
                results = self._sequence([(leaf_hash(e), e) for e, _ in batch])
            except BaseException as e:  # every waiter must hear about the failure
                for f in futures:
                    f.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                continue
            for f, r in zip(futures, results, strict=True):
                f.set_result(r)

    # -------------------------------------------------------------- integration

    def _integrate_loop(self) -> None:
        failures = 0
        next_run = time.monotonic() + self.checkpoint_interval
        while True:
            with self._cv:
                while (
                    not self._closing
                    and self._unintegrated < self.checkpoint_entries
                    and time.monotonic() < next_run
                ):
                    self._cv.wait(max(0.0, next_run - time.monotonic()))
                if self._closing:
                    return
            try:
                if self._unintegrated or self.state.pending_count():
                    self.integrate()
                failures = 0
                next_run = time.monotonic() + self.checkpoint_interval
            except Exception as e:
                failures += 1
                self._last_error = str(e)
                logger.error("integration failed (attempt %d): %s", failures, e)
                next_run = time.monotonic() + min(30.0, self.checkpoint_interval * 2**failures)

    def integrate(self) -> TreeState | None:
        """Integrate every entry sequenced so far and publish a checkpoint.

        Returns the new tree, or None if there was nothing to integrate (the
        published checkpoint is still repaired if a crash left it behind).
        """
        with self._integrate_mutex, self.state.integration_lock(self.lock_timeout):
            with self._cv:
                self._unintegrated = 0
            tree = self._recover()
            target = self.state.sequenced_size()
            result = None
            while tree.size < target:
                tree = self._integrate_batch(tree)
                result = tree
            return result

    def _recover(self) -> TreeState:
        """The state's tree, with the published checkpoint brought in line with it.

        A checkpoint file *ahead* of the state means the state was lost or rolled
        back: continuing would sign a fork, so this refuses.
        """
        tree = self.state.tree()
        published = self.tiles.read_checkpoint()
        if published == tree.checkpoint:
            return tree
        if published is not None:
            try:
                cp = parse_checkpoint(parse_note(published).text)
            except ProvenanceError as e:
                raise StoreError(f"the published checkpoint is malformed: {e}") from None
            if cp.origin != self.origin:
                raise StoreError(f"the published checkpoint is for origin {cp.origin!r}")
            if cp.size > tree.size or (cp.size == tree.size and cp.root_hash != tree.root_hash):
                raise StoreError(
                    f"the published checkpoint (size {cp.size}) is ahead of or different from"
                    f" the state store (size {tree.size}): the state was lost or rolled back;"
                    " refusing to sign a fork"
                )
        self.tiles.write_checkpoint(tree.checkpoint)
        return tree

    def _integrate_batch(self, tree: TreeState) -> TreeState:
        edge = self._edge
        self._edge = None  # only a successful integration leaves a trusted edge behind
        if edge is None or edge.size != tree.size:
            edge = TreeEdge.load(self.tiles, tree.size, tree.root_hash)
        entries = self.state.read_pending(tree.size, self.integrate_entries, self.integrate_bytes)
        if not entries:
            raise StoreError(f"pending entry {tree.size} is missing from the state store")
        files = edge.extend(entries)
        files.update(edge.partial_files(since=tree.size))
        root = edge.root_hash()
        self._check_consistency(tree, edge.size, root, files)
        self.tiles.write_many(files)

        note = sign_checkpoint(Checkpoint(self.origin, edge.size, root), [self.signer])
        if self.cosigner is not None:
            note = self._cosign(note)
        new_tree = TreeState(edge.size, root, note)
        try:
            self.state.swap_tree(tree.size, new_tree)
        except ConflictError:
            raise StoreError(
                "another integrator moved the tree while this one held the lock; stopping"
            ) from None
        self.tiles.write_checkpoint(note)
        self._edge = edge
        self._integrations += 1
        for path in files:
            tile = _full_tile(path)
            if tile is not None:
                self.tiles.delete_partials(tile)
        with self._published:
            self._published.notify_all()
        return new_tree

    def _check_consistency(
        self, tree: TreeState, size: int, root: bytes, files: dict[str, bytes]
    ) -> None:
        """The new tree must extend the recorded one, proven from the tiles."""
        if tree.size == 0:
            return
        reader = TileHashReader(size, None, _Overlay(files, self.tiles))
        try:
            proof = consistency_proof(tree.size, size, reader)
            verify_consistency(tree.size, size, proof, tree.root_hash, root)
        except (ProofError, NotFoundError) as e:
            raise StoreError(
                f"tree size {size} would not be consistent with the recorded size {tree.size}"
                f" ({e}); refusing to sign"
            ) from None

    def _cosign(self, note: bytes) -> bytes:
        assert self.cosigner is not None
        cosigned = self.cosigner(note)
        if cosigned is None:
            return note
        cosigned = bytes(cosigned)
        try:
            if parse_note(cosigned).text != parse_note(note).text:
                raise StoreError("the cosigner changed the checkpoint text")
            if self.verifier is not None:
                open_checkpoint(cosigned, [self.verifier], origin=self.origin)
        except ProvenanceError as e:
            raise StoreError(f"the cosigner returned a bad checkpoint: {e}") from None
        return cosigned

    # ------------------------------------------------------------------ waiting

    def wait_for(self, index: int, timeout: float | None = None) -> TreeState:
        """Block until a checkpoint covers entry ``index``; return that tree.

        Integrations in other processes are noticed by polling the state store.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            tree = self.state.tree()
            if tree.size > index:
                return tree
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise StoreError(f"entry {index} is not in a checkpoint after {timeout:g} s")
            with self._published:
                self._published.wait(0.05 if remaining is None else min(0.05, remaining))

    def stats(self) -> SequencerStats:
        """Counters of this sequencer (not of other processes on the same log)."""
        return SequencerStats(self._sequenced, self._integrations, self._last_error)

    def close(self, *, integrate: bool = True) -> None:
        """Commit everything queued, stop the threads and, by default, integrate."""
        with self._cv:
            if self._closed:
                return
            self._closing = True
            self._cv.notify_all()
        for thread in (self._batcher, self._integrator):
            if thread is not None:
                thread.join()
        self._closed = True
        if integrate:
            self.integrate()


def _full_tile(path: str) -> Tile | None:
    """The full hash tile at ``path``, or None for bundles and partial tiles."""
    if path.startswith("tile/entries/") or ".p/" in path:
        return None
    return parse_tile_path(path)
