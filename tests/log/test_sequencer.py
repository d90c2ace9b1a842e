"""The sequencer on SQLite and PostgreSQL: durable appends, dedup, batching,
integration into tiles and signed checkpoints, the witness hook, crash repair."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pg import StateBackend

from provenance.errors import InputError
from provenance.log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from provenance.log.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)
from provenance.log.note import CosignatureV1Signer, Ed25519Signer, sign_note
from provenance.log.proof import build_tlog_proof, verify_tlog_proof
from provenance.log.sequencer import Sequencer, TreeEdge, check_entry
from provenance.log.store import DirTileStore, StateStore, StoreError, TreeState
from provenance.log.tiles import (
    MAX_ENTRY_SIZE,
    TileHashReader,
    parse_entry_bundle,
    read_tile_data,
    tiles_for_size,
)

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "example.com/seq"
SIGNER = Ed25519Signer("example.com/seq", bytes(range(32)))
WITNESS = CosignatureV1Signer("witness.example", bytes(range(1, 33)), clock=lambda: 1_700_000_000)


class Rig:
    """A log on one backend: tiles in a directory, state in SQLite or PostgreSQL."""

    def __init__(self, backend: StateBackend, tmp_path: Path) -> None:
        self.backend = backend
        self.tiles = DirTileStore(tmp_path / "public", fsync=False)
        self.state = backend.open()
        note = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [SIGNER])
        self.state.initialize(ORIGIN, note, EMPTY_ROOT)
        self.tiles.write_checkpoint(note)
        self.sequencers: list[Sequencer] = []

    def sequencer(self, state: StateStore | None = None, **options: object) -> Sequencer:
        options.setdefault("background", False)
        s = Sequencer(self.tiles, state or self.state, SIGNER, ORIGIN, **options)  # type: ignore[arg-type]
        self.sequencers.append(s)
        return s

    def close(self) -> None:
        for s in self.sequencers:
            s.close(integrate=False)
        self.tiles.close()


@pytest.fixture(params=["sqlite", "postgres"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    backend = StateBackend(request.param, tmp_path)
    r = Rig(backend, tmp_path)
    yield r
    r.close()
    backend.close_all()


def published(rig: Rig) -> TreeState:
    note = rig.tiles.read_checkpoint()
    assert note is not None
    cp = open_checkpoint(note, [SIGNER.verifier()], origin=ORIGIN).checkpoint
    return TreeState(cp.size, cp.root_hash, note)


def check_tree(rig: Rig, entries: Sequence[bytes]) -> None:
    """Tiles, bundles, checkpoint and proofs all match a reference tree of ``entries``."""
    tree = MemoryTree(leaf_hash(e) for e in entries)
    state = rig.state.tree()
    assert state.size == len(entries)
    assert state.root_hash == tree.root()
    assert published(rig) == state
    for tile in tiles_for_size(len(entries)):
        assert rig.tiles.read_tile(tile) == read_tile_data(tile, tree), tile.path()
        if tile.level == 0:
            got = parse_entry_bundle(rig.tiles.read_entry_bundle(tile), tile.width)
            assert got == list(entries[tile.index * 256 : tile.index * 256 + tile.width])
    reader = TileHashReader(state.size, state.root_hash, rig.tiles)
    for i in {0, len(entries) // 2, len(entries) - 1}:
        proof = build_tlog_proof(i, state.checkpoint, reader)
        verify_tlog_proof(proof, leaf_hash(entries[i]), [SIGNER.verifier()])


# --------------------------------------------------------------------- appends


def test_append_is_durable_before_it_returns(rig: Rig) -> None:
    s = rig.sequencer()
    assert s.append(b"first") == 0
    assert s.append(b"second") == 1
    other = rig.backend.open()  # a new connection sees the sequence at once
    assert other.sequenced_size() == 2
    assert other.lookup([leaf_hash(b"second")]) == {leaf_hash(b"second"): 1}
    assert rig.state.tree().size == 0  # not integrated yet


def test_duplicates_return_the_existing_index(rig: Rig) -> None:
    s = rig.sequencer()
    assert [r.index for r in s.append_many([b"a", b"b", b"a"])] == [0, 1, 0]
    assert s.append(b"b") == 1
    s.integrate()
    futures = [s.submit(b"a"), s.submit(b"c"), s.submit(b"c")]
    results = [f.result() for f in futures]
    assert [(r.index, r.duplicate) for r in results] == [(0, True), (2, False), (2, True)]
    s.integrate()
    check_tree(rig, [b"a", b"b", b"c"])


def test_entry_size_limit(rig: Rig) -> None:
    s = rig.sequencer()
    assert s.append(b"x" * MAX_ENTRY_SIZE) == 0
    with pytest.raises(InputError, match="65,535"):
        s.append(b"x" * (MAX_ENTRY_SIZE + 1))
    with pytest.raises(InputError, match="65,535"):
        s.append_many([b"ok", b"x" * 70000])
    with pytest.raises(InputError):
        check_entry("text")  # type: ignore[arg-type]
    s.integrate()
    check_tree(rig, [b"x" * MAX_ENTRY_SIZE])


# ----------------------------------------------------------------- integration


@pytest.mark.parametrize("sizes", [[1], [255, 1], [256], [3, 300, 70000 - 303], [1000] * 3])
def test_integration_matches_a_reference_tree(rig: Rig, sizes: list[int]) -> None:
    if rig.backend.kind == "postgres" and sum(sizes) > 5000:
        pytest.skip("the large tree runs on SQLite only (same code path)")
    s = rig.sequencer()
    entries: list[bytes] = []
    checkpoints: list[TreeState] = []
    for n in sizes:
        batch = [b"entry %d" % (len(entries) + i) for i in range(n)]
        s.append_many(batch)
        entries += batch
        tree = s.integrate()
        assert tree is not None and tree.size == len(entries)
        checkpoints.append(tree)
    check_tree(rig, entries)
    assert s.integrate() is None  # nothing new
    final = checkpoints[-1]
    reader = TileHashReader(final.size, final.root_hash, rig.tiles)
    for old in checkpoints[:-1]:
        proof = consistency_proof(old.size, final.size, reader)
        verify_consistency(old.size, final.size, proof, old.root_hash, final.root_hash)


def test_integration_is_chunked_by_count_and_bytes(rig: Rig) -> None:
    s = rig.sequencer(integrate_entries=100, integrate_bytes=1000)
    entries = [b"%05d" % i for i in range(600)]
    s.append_many(entries)
    s.append_many([b"big-%d" % i + b"y" * 600 for i in range(3)])
    seen = []
    original = rig.state.swap_tree

    def spy(old: int, new: TreeState) -> None:
        seen.append(new.size)
        original(old, new)

    rig.state.swap_tree = spy  # type: ignore[method-assign]
    s.integrate()
    assert seen[:6] == [100, 200, 300, 400, 500, 600]
    assert seen[6:] == [602, 603]  # the byte bound splits the big entries
    check_tree(rig, entries + [b"big-%d" % i + b"y" * 600 for i in range(3)])


def test_partial_tiles_are_replaced_by_full_ones(rig: Rig) -> None:
    s = rig.sequencer()
    s.append_many([b"e%d" % i for i in range(100)])
    old = s.integrate()
    assert old is not None
    assert (rig.tiles.root / "tile/0/000.p/100").exists()
    s.append_many([b"e%d" % i for i in range(100, 300)])
    s.integrate()
    assert not (rig.tiles.root / "tile/0/000.p").exists()
    # A client still holding the old checkpoint can prove against it.
    reader = TileHashReader(old.size, old.root_hash, rig.tiles)
    verify_tlog_proof(
        build_tlog_proof(7, old.checkpoint, reader), leaf_hash(b"e7"), [SIGNER.verifier()]
    )


def test_tree_edge_memory_is_bounded() -> None:
    edge = TreeEdge()
    for start in range(0, 300_000, 50_000):
        edge.extend(b"%d" % i for i in range(start, start + 50_000))
    assert sum(len(r) for r in edge._rows) <= 64 * 8192
    assert len(edge._bundle) < 256


def test_memory_stays_flat_while_the_log_grows(rig: Rig) -> None:
    """What the sequencer keeps between batches does not grow with the log.

    Counts only memory allocated by provenance code and still held after each
    batch (tracemalloc is process-wide; other tests' threads must not count).
    """
    if rig.backend.kind == "postgres":
        pytest.skip("the sequencer's memory does not depend on the backend")
    s = rig.sequencer(integrate_entries=4096)

    def grow(n: int) -> int:
        base = rig.state.sequenced_size()
        s.append_many(b"entry %d" % (base + i) for i in range(n))
        s.integrate()
        gc.collect()
        ours = tracemalloc.Filter(True, str(REPO / "provenance" / "*"))
        snapshot = tracemalloc.take_snapshot().filter_traces([ours])
        return sum(stat.size for stat in snapshot.statistics("filename"))

    tracemalloc.start()
    try:
        grow(5_000)
        held = [grow(10_000) for _ in range(4)]
    finally:
        tracemalloc.stop()
    assert max(held) < 1024 * 1024, held  # the tree edge and friends: well under 1 MiB
    assert held[-1] < held[0] + 64 * 1024, held  # and no growth from 15,000 to 45,000


# -------------------------------------------------------------------- batching


def test_batching_by_count(rig: Rig) -> None:
    calls: list[int] = []
    original = rig.state.sequence

    def spy(batch: Sequence[tuple[bytes, bytes]]) -> list[object]:
        calls.append(len(batch))
        return original(batch)  # type: ignore[return-value]

    rig.state.sequence = spy  # type: ignore[method-assign,assignment]
    s = rig.sequencer(max_batch=50, max_delay=1.0)
    futures = [s.submit(b"%d" % i) for i in range(200)]
    assert [f.result(timeout=10).index for f in futures] == list(range(200))
    assert calls == [50, 50, 50, 50]


def test_batching_by_time(rig: Rig) -> None:
    s = rig.sequencer(max_batch=1000, max_delay=0.2)
    started = time.monotonic()
    future = s.submit(b"lonely")
    assert future.result(timeout=10).index == 0
    assert time.monotonic() - started >= 0.15  # waited for company, then committed alone


def test_background_integration_by_count_and_time(rig: Rig) -> None:
    s = rig.sequencer(background=True, checkpoint_interval=30, checkpoint_entries=100)
    futures = [s.submit(b"%d" % i) for i in range(100)]
    last = futures[-1].result(timeout=10).index
    assert s.wait_for(last, timeout=10).size >= 100  # by count, long before 30 s
    s2 = rig.sequencer(background=True, checkpoint_interval=0.1, checkpoint_entries=10**6)
    index = s2.append(b"timed")
    assert s2.wait_for(index, timeout=10).size == 101
    with pytest.raises(StoreError, match="not in a checkpoint"):
        s2.wait_for(10**6, timeout=0.1)


def test_concurrent_sequencers_share_one_log(rig: Rig) -> None:
    a = rig.sequencer(background=True, checkpoint_interval=0.05)
    b = rig.sequencer(rig.backend.open(), background=True, checkpoint_interval=0.05)
    results: dict[bytes, int] = {}
    lock = threading.Lock()

    def worker(s: Sequencer, k: int) -> None:
        for i in range(300):
            entry = b"%d-%d" % (k, i) if i % 3 else b"shared-%d" % i
            index = s.append(entry)
            with lock:
                assert results.setdefault(entry, index) == index

    threads = [threading.Thread(target=worker, args=(s, k)) for k, s in enumerate([a, b, a, b])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    b.close()
    ordered = sorted(results, key=results.__getitem__)
    assert [results[e] for e in ordered] == list(range(len(results)))
    check_tree(rig, ordered)


# ---------------------------------------------------------------- witness hook


def test_cosigner_adds_cosignatures_to_the_published_checkpoint(rig: Rig) -> None:
    seen: list[bytes] = []

    def cosign(note: bytes) -> bytes:
        seen.append(note)
        open_checkpoint(note, [SIGNER.verifier()])
        return sign_note(open_checkpoint(note, [SIGNER.verifier()]).note, [WITNESS])

    s = rig.sequencer(cosigner=cosign)
    s.append(b"witnessed")
    tree = s.integrate()
    assert tree is not None and len(seen) == 1
    signed = open_checkpoint(published(rig).checkpoint, [SIGNER.verifier()], [WITNESS.verifier()])
    assert signed.cosigners == {("witness.example", WITNESS.key_id)}
    assert rig.state.tree().checkpoint == tree.checkpoint == published(rig).checkpoint


def test_cosigner_none_publishes_log_signature_only(rig: Rig) -> None:
    s = rig.sequencer(cosigner=lambda note: None)
    s.append(b"x")
    s.integrate()
    signed = open_checkpoint(published(rig).checkpoint, [SIGNER.verifier()], [WITNESS.verifier()])
    assert not signed.cosigners


def test_failing_or_lying_cosigner_publishes_nothing(rig: Rig) -> None:
    def boom(note: bytes) -> bytes:
        raise RuntimeError("witnesses unreachable")

    s = rig.sequencer(cosigner=boom)
    s.append(b"x")
    with pytest.raises(RuntimeError):
        s.integrate()
    assert rig.state.tree().size == 0 and published(rig).size == 0

    def liar(note: bytes) -> bytes:
        return sign_checkpoint(Checkpoint(ORIGIN, 1, b"\x00" * 32), [SIGNER])

    s.cosigner = liar
    with pytest.raises(StoreError, match="cosigner"):
        s.integrate()
    assert rig.state.tree().size == 0
    s.cosigner = None
    assert s.integrate() is not None
    check_tree(rig, [b"x"])


# ---------------------------------------------------------------- crash repair


def test_interrupted_integration_is_redone_identically(rig: Rig) -> None:
    s = rig.sequencer()
    entries = [b"e%d" % i for i in range(700)]
    s.append_many(entries[:300])
    s.integrate()
    s.append_many(entries[300:])

    def crash(old: int, new: TreeState) -> None:
        raise KeyboardInterrupt  # the process dies after writing tiles, before the swap

    real = rig.state.swap_tree
    rig.state.swap_tree = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        s.integrate()
    rig.state.swap_tree = real  # type: ignore[method-assign]
    assert rig.state.tree().size == 300 and published(rig).size == 300
    fresh = rig.sequencer(rig.backend.open())
    assert fresh.integrate() is not None
    check_tree(rig, entries)


def test_missing_checkpoint_file_is_republished(rig: Rig) -> None:
    s = rig.sequencer()
    s.append_many([b"a", b"b"])
    tree = s.integrate()
    assert tree is not None
    old = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [SIGNER])
    rig.tiles.write_checkpoint(old)  # as if we crashed between the swap and the file
    assert rig.sequencer().integrate() is None
    assert published(rig) == tree


def test_refuses_to_sign_when_the_state_is_behind_the_published_log(
    rig: Rig, tmp_path: Path
) -> None:
    s = rig.sequencer()
    s.append_many([b"a", b"b"])
    s.integrate()
    # The state store is lost and recreated; the public checkpoint still says size 2.
    lost = StateBackend(rig.backend.kind, tmp_path / "lost")
    (tmp_path / "lost").mkdir()
    fresh = lost.open()
    fresh.initialize(
        ORIGIN, sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [SIGNER]), EMPTY_ROOT
    )
    forked = rig.sequencer(fresh)
    forked.append(b"other")
    with pytest.raises(StoreError, match="fork"):
        forked.integrate()
    assert published(rig).size == 2
    lost.close_all()


def test_refuses_to_sign_over_damaged_tiles(rig: Rig) -> None:
    s = rig.sequencer()
    s.append_many([b"e%d" % i for i in range(10)])
    s.integrate()
    path = rig.tiles.root / "tile/0/000.p/10"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    s2 = rig.sequencer()  # no cached edge: must read the damaged tile
    s2.append(b"more")
    with pytest.raises(StoreError):
        s2.integrate()
    assert published(rig).size == 10


def test_close_integrates_what_was_queued(rig: Rig) -> None:
    with rig.sequencer(background=True, checkpoint_interval=60) as s:
        futures = [s.submit(b"%d" % i) for i in range(50)]
    assert all(f.done() for f in futures)
    assert published(rig).size == 50
    with pytest.raises(StoreError, match="closed"):
        s.submit(b"late")
