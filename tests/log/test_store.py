"""Tile stores and state stores: the same semantics on SQLite and PostgreSQL."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from pg import StateBackend

from provenance.errors import InputError
from provenance.log.merkle import EMPTY_ROOT, leaf_hash
from provenance.log.store import (
    ConflictError,
    DirTileStore,
    NotFoundError,
    StateStore,
    StoreError,
    TreeState,
    check_path,
)
from provenance.log.store.http import HttpTileSource
from provenance.log.tiles import Tile, format_entry_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateBackend]:
    b = StateBackend(request.param, tmp_path)
    yield b
    b.close_all()


@pytest.fixture
def state(backend: StateBackend) -> StateStore:
    s = backend.open()
    s.initialize("example.com/log", b"cp0", EMPTY_ROOT)
    return s


def entries(*names: str) -> list[tuple[bytes, bytes]]:
    return [(leaf_hash(n.encode()), n.encode()) for n in names]


# ------------------------------------------------------------------ state store


def test_initialize_once(backend: StateBackend) -> None:
    s = backend.open()
    assert s.origin() is None
    with pytest.raises(StoreError, match="not initialized"):
        s.tree()
    s.initialize("example.com/log", b"cp0", EMPTY_ROOT)
    assert s.origin() == "example.com/log"
    assert s.tree() == TreeState(0, EMPTY_ROOT, b"cp0")
    assert s.sequenced_size() == 0
    with pytest.raises(ConflictError):
        backend.open().initialize("example.com/other", b"cp", EMPTY_ROOT)


def test_sequence_assigns_consecutive_indices_and_dedups(state: StateStore) -> None:
    r = state.sequence(entries("a", "b", "c"))
    assert [(x.index, x.duplicate) for x in r] == [(0, False), (1, False), (2, False)]
    r = state.sequence(entries("d", "b", "d", "e"))
    assert [(x.index, x.duplicate) for x in r] == [(3, False), (1, True), (3, True), (4, False)]
    assert state.sequenced_size() == 5
    assert state.sequence([]) == []
    found = state.lookup([leaf_hash(b"e"), leaf_hash(b"a"), leaf_hash(b"zz")])
    assert found == {leaf_hash(b"e"): 4, leaf_hash(b"a"): 0}
    assert state.pending_count() == 5


def test_sequence_rejects_bad_hashes(state: StateStore) -> None:
    with pytest.raises(ValueError):
        state.sequence([(b"short", b"x")])


def test_sequence_is_durable_across_reopen(backend: StateBackend, state: StateStore) -> None:
    state.sequence(entries("a", "b"))
    state.close()
    again = backend.open()
    assert again.sequenced_size() == 2
    assert again.read_pending(0, 10, 1 << 20) == [b"a", b"b"]
    assert again.sequence(entries("b"))[0].duplicate


def test_read_pending_bounds(state: StateStore) -> None:
    state.sequence(entries(*(f"entry-{i:03}" for i in range(600))))
    assert state.read_pending(0, 3, 1 << 20) == [b"entry-000", b"entry-001", b"entry-002"]
    assert len(state.read_pending(10, 1000, 1 << 20)) == 590
    assert state.read_pending(598, 10, 1 << 20) == [b"entry-598", b"entry-599"]
    assert state.read_pending(600, 10, 1 << 20) == []
    # max_bytes stops after the entry reaching it, but always returns one.
    assert len(state.read_pending(0, 100, 20)) == 3
    assert len(state.read_pending(0, 100, 1)) == 1


def test_swap_tree_is_compare_and_swap(state: StateStore) -> None:
    state.sequence(entries("a", "b", "c", "d"))
    root2, root3 = b"\x02" * 32, b"\x03" * 32
    state.swap_tree(0, TreeState(2, root2, b"cp2"))
    assert state.tree() == TreeState(2, root2, b"cp2")
    with pytest.raises(StoreError, match="missing"):
        state.read_pending(0, 10, 1 << 20)  # integrated entries live in bundles now
    assert state.read_pending(2, 10, 1 << 20) == [b"c", b"d"]
    with pytest.raises(ConflictError, match="moved"):
        state.swap_tree(0, TreeState(3, root3, b"cp3"))  # stale expectation
    with pytest.raises(ConflictError):
        state.swap_tree(2, TreeState(1, root3, b"cp1"))  # backwards
    with pytest.raises(ConflictError):
        state.swap_tree(2, TreeState(2, root3, b"cp2'"))  # same size, other root: a fork
    with pytest.raises(ConflictError, match="beyond"):
        state.swap_tree(2, TreeState(5, root3, b"cp5"))  # more than sequenced
    # Same size, same root: new cosignatures on the same tree are fine.
    state.swap_tree(2, TreeState(2, root2, b"cp2 cosigned"))
    assert state.tree().checkpoint == b"cp2 cosigned"
    assert state.pending_count() == 2
    # Dedup survives integration.
    assert state.sequence(entries("a"))[0].index == 0


def test_concurrent_sequencing_from_threads(backend: StateBackend, state: StateStore) -> None:
    names = [f"e{i}" for i in range(400)]
    shared = [f"shared{i}" for i in range(50)]
    results: dict[int, list[tuple[bytes, int]]] = {}

    def worker(k: int) -> None:
        store = backend.open()
        mine = names[k::4] + shared
        out = []
        for i in range(0, len(mine), 13):
            batch = entries(*mine[i : i + 13])
            for (leaf, _), r in zip(batch, store.sequence(batch), strict=True):
                out.append((leaf, r.index))
        results[k] = out

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(names) + len(shared)
    assert state.sequenced_size() == total
    final = state.lookup([leaf_hash(n.encode()) for n in names + shared])
    assert sorted(final.values()) == list(range(total))
    for out in results.values():
        for leaf, index in out:
            assert final[leaf] == index


_CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from pg import open_state
from provenance.log.merkle import leaf_hash
store = open_state(sys.argv[1], sys.argv[2])
names = json.loads(sys.argv[3])
out = {{}}
for i in range(0, len(names), 7):
    batch = [(leaf_hash(n.encode()), n.encode()) for n in names[i:i + 7]]
    for n, r in zip(names[i:i + 7], store.sequence(batch)):
        out[n] = r.index
print(json.dumps(out))
"""


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def test_concurrent_sequencing_from_processes(backend: StateBackend, state: StateStore) -> None:
    shared = [f"shared{i}" for i in range(30)]
    lists = [[f"p{k}-{i}" for i in range(150)] + shared for k in range(3)]
    code = _CHILD.format(tests=str(REPO / "tests"))
    procs = [_child(code, backend.kind, backend.location, json.dumps(lst)) for lst in lists]
    outs = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        outs.append(json.loads(stdout))
    total = 3 * 150 + len(shared)
    assert state.sequenced_size() == total
    seen: dict[str, int] = {}
    for out in outs:
        for name, index in out.items():
            assert seen.setdefault(name, index) == index  # one index per entry
    assert sorted(seen.values()) == list(range(total))


def test_integration_lock_is_exclusive(backend: StateBackend, state: StateStore) -> None:
    other = backend.open()
    with (
        state.integration_lock(),
        pytest.raises(StoreError, match="held the lock"),
        other.integration_lock(timeout=0.2),
    ):
        pass
    with other.integration_lock(timeout=1):
        pass


_LOCKER = """
import sys, time
sys.path.insert(0, {tests!r})
from pg import open_state
store = open_state(sys.argv[1], sys.argv[2])
with store.integration_lock():
    print("locked", flush=True)
    time.sleep(60)
"""


def test_integration_lock_dies_with_its_holder(backend: StateBackend, state: StateStore) -> None:
    proc = _child(_LOCKER.format(tests=str(REPO / "tests")), backend.kind, backend.location)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError), state.integration_lock(timeout=0.2):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        with state.integration_lock(timeout=10):
            pass
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------- tile store


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "/etc/passwd",
        "tile/0/../../x",
        "tile/0/1",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/x000/001",
        "tile/entries/01",
        "tile/64/000",
        "checkpoint/",
        "tile//0/000",
        "log.key",
    ],
)
def test_check_path_rejects_anything_but_canonical_paths(path: str) -> None:
    with pytest.raises(InputError):
        check_path(path)


@pytest.mark.parametrize(
    "path", ["checkpoint", "tile/0/000", "tile/1/x001/234.p/17", "tile/entries/x002/000.p/1"]
)
def test_check_path_accepts_tlog_paths(path: str) -> None:
    assert check_path(path) == path


def test_dir_store_round_trip_and_layout(tmp_path: Path) -> None:
    store = DirTileStore(tmp_path)
    tile = Tile(0, 1234067, 3)
    store.write_many({tile.path(): b"\x01" * 96, "checkpoint": b"cp\n"})
    assert (tmp_path / "tile/0/x001/x234/067.p/3").read_bytes() == b"\x01" * 96
    assert store.read_tile(tile) == b"\x01" * 96
    assert store.read_checkpoint() == b"cp\n"
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # no temp files left
    store.write("checkpoint", b"cp2\n")
    assert store.read_checkpoint() == b"cp2\n"
    with pytest.raises(NotFoundError):
        store.read("tile/0/000")
    with pytest.raises(InputError):
        store.read("../secret")
    assert DirTileStore(tmp_path / "empty").read_checkpoint() is None
    store.close()


def test_dir_store_rejects_wrong_sizes(tmp_path: Path) -> None:
    store = DirTileStore(tmp_path, fsync=False)
    store.write("tile/0/000.p/2", b"\x00" * 63)
    with pytest.raises(StoreError, match="expected 64"):
        store.read_tile(Tile(0, 0, 2))
    (tmp_path / "tile/1").mkdir(parents=True)
    (tmp_path / "tile/1/000").write_bytes(b"\x00" * 9000)
    with pytest.raises(StoreError, match="larger"):
        store.read_tile(Tile(1, 0))


def test_partials_fall_back_to_the_full_tile(tmp_path: Path) -> None:
    store = DirTileStore(tmp_path, fsync=False)
    full = bytes(range(256)) * 32
    bundle = [b"e%d" % i for i in range(256)]
    store.write_many(
        {
            "tile/0/000.p/5": full[:160],
            "tile/entries/000.p/5": format_entry_bundle(bundle[:5]),
            "tile/0/000": full,
            "tile/entries/000": format_entry_bundle(bundle),
        }
    )
    store.delete_partials(Tile(0, 0))
    assert not (tmp_path / "tile/0/000.p").exists()
    assert not (tmp_path / "tile/entries/000.p").exists()
    assert store.read_tile(Tile(0, 0, 7)) == full[: 7 * 32]
    assert store.read_entries(Tile(0, 0, 7)) == bundle[:7]
    with pytest.raises(NotFoundError):
        store.read_tile(Tile(0, 1, 7))
    with pytest.raises(InputError):
        store.delete_partials(Tile(0, 0, 5))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_source_reads_a_served_directory(tmp_path: Path) -> None:
    store = DirTileStore(tmp_path, fsync=False)
    store.write_many({"checkpoint": b"cp\n", "tile/0/000.p/1": b"\x07" * 32})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with HttpTileSource(f"http://127.0.0.1:{server.server_address[1]}/") as src:
            assert src.read_checkpoint() == b"cp\n"
            assert src.read_tiles([Tile(0, 0, 1)]) == [b"\x07" * 32]
            with pytest.raises(NotFoundError):
                src.read("tile/0/001")
            with pytest.raises(InputError):
                src.read("../etc/passwd")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(StoreError):
        HttpTileSource("ftp://example.com/log")
