"""The log's HTTP read and write path over real HTTP: tlog-tiles paths, content types
and cache headers, strict paths and hostile requests, POST /add, and a data folder
whose sequencer gathers a 2-of-3 witness quorum through the policy hook."""

from __future__ import annotations

import gzip
import http.client
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from provenance.errors import InputError, ProvenanceError
from provenance.log.checkpoint import open_checkpoint
from provenance.log.log import Log, verify_log
from provenance.log.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from provenance.log.note import CosignatureV1Signer
from provenance.log.policy import (
    PolicyCosigner,
    QuorumError,
    parse_policy,
    verify_tlog_proof_with_policy,
)
from provenance.log.server import (
    CHECKPOINT_CACHE,
    FULL_TILE_CACHE,
    PARTIAL_TILE_CACHE,
    data_folder_app,
    log_app,
)
from provenance.log.store.errors import StoreError
from provenance.log.store.http import HttpTileSource
from provenance.log.store.tile_store import DirTileStore
from provenance.log.tiles import (
    TILE_WIDTH,
    Tile,
    TileHashReader,
    format_entry_bundle,
    read_tile_data,
)
from provenance.log.witness import (
    KnownLog,
    Witness,
    WitnessStore,
    tile_proof_provider,
    witness_app,
)


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def client(base_url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=base_url, timeout=20, transport=transport)


ORIGIN = "example.com/served"
FIRST, SIZE = 300, 3 * TILE_WIDTH + 17  # two checkpoints; the second makes tile 0/001 full


def entry(i: int) -> bytes:
    return b"entry %d " % i + bytes([i % 251]) * (i % 700)


class Served:
    def __init__(self, log: Log, url: str, first_checkpoint: bytes) -> None:
        self.log = log
        self.url = url
        self.http = client(url)
        self.tree = MemoryTree(leaf_hash(entry(i)) for i in range(SIZE))
        self.first_checkpoint = first_checkpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    d = tmp_path_factory.mktemp("data") / "log"
    log = Log.create(d, ORIGIN, fsync=False)
    log.sequencer.append_many(entry(i) for i in range(FIRST))
    log.sequencer.integrate()
    first = log.checkpoint()
    log.sequencer.append_many(entry(i) for i in range(FIRST, SIZE))
    log.sequencer.integrate()
    with serve(log_app(log.tiles)) as url:
        s = Served(log, url, first)
        yield s
        s.http.close()
    log.close()


# ---------------------------------------------------------------- read path


def test_checkpoint(served: Served) -> None:
    r = served.http.get("/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == CHECKPOINT_CACHE
    assert r.content == served.log.checkpoint()
    cp = open_checkpoint(r.content, [served.log.verifier], origin=ORIGIN).checkpoint
    assert cp.size == SIZE and cp.root_hash == served.tree.root()
    h = served.http.head("/checkpoint")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == str(len(r.content))
    assert h.headers["cache-control"] == CHECKPOINT_CACHE


def test_full_and_partial_tiles(served: Served) -> None:
    tree = served.tree
    cases = [
        (Tile(0, 0), FULL_TILE_CACHE),
        (Tile(0, 2), FULL_TILE_CACHE),
        (Tile(0, 3, 17), PARTIAL_TILE_CACHE),
        (Tile(1, 0, 3), PARTIAL_TILE_CACHE),
        # The first checkpoint's partial tile; the log deleted it when tile 0/001
        # filled up, so it is cut from the full tile.
        (Tile(0, 1, FIRST - TILE_WIDTH), PARTIAL_TILE_CACHE),
        (Tile(1, 0, 1), PARTIAL_TILE_CACHE),
    ]
    assert not (served.log.public_dir / "tile/0/001.p").exists()
    for tile, cache in cases:
        r = served.http.get("/" + tile.path())
        assert r.status_code == 200, tile.path()
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["cache-control"] == cache
        assert "content-encoding" not in r.headers
        assert r.content == read_tile_data(tile, tree), tile.path()
        h = served.http.head("/" + tile.path())
        assert h.status_code == 200 and h.content == b""
        assert h.headers["content-length"] == str(tile.data_size)


def test_entry_bundles(served: Served) -> None:
    full = format_entry_bundle(entry(i) for i in range(TILE_WIDTH))
    r = served.http.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.headers["cache-control"] == FULL_TILE_CACHE
    assert r.content == full  # httpx decoded it
    assert int(r.headers["content-length"]) < len(full)

    r = served.http.get("/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers and r.content == full
    r = served.http.get("/tile/entries/000", headers={"Accept-Encoding": "gzip;q=0, br"})
    assert "content-encoding" not in r.headers and r.content == full

    conn = http.client.HTTPConnection(served.url.removeprefix("http://"))
    conn.request("GET", "/tile/entries/003.p/17", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200 and resp.getheader("Cache-Control") == PARTIAL_TILE_CACHE
    expected = format_entry_bundle(entry(i) for i in range(3 * TILE_WIDTH, SIZE))
    assert gzip.decompress(body) == expected

    # A partial bundle of an earlier checkpoint, cut from the full bundle.
    r = served.http.get(f"/tile/entries/001.p/{FIRST - TILE_WIDTH}")
    assert r.status_code == 200
    assert r.content == format_entry_bundle(entry(i) for i in range(TILE_WIDTH, FIRST))


def test_a_client_verifies_the_served_log(served: Served) -> None:
    """Everything a verifier needs comes over HTTP and checks out."""
    source = HttpTileSource(served.url)
    try:
        result = verify_log(
            source, served.log.verifier, old_checkpoint=served.first_checkpoint, origin=ORIGIN
        )
        assert result.ok, result.problems
        assert result.entries == SIZE and result.old_size == FIRST
        reader = TileHashReader(SIZE, served.tree.root(), source)
        for i in (0, 255, 256, FIRST, SIZE - 1):
            proof = inclusion_proof(i, SIZE, reader)
            verify_inclusion(i, SIZE, leaf_hash(entry(i)), proof, served.tree.root())
        proof = consistency_proof(FIRST, SIZE, reader)
        verify_consistency(FIRST, SIZE, proof, served.tree.root(FIRST), served.tree.root())
    finally:
        source.close()


def test_missing_resources_are_404(served: Served) -> None:
    for path in (
        "/tile/0/004",
        "/tile/0/003",  # not full yet
        "/tile/0/003.p/18",  # wider than the tree
        "/tile/1/000",
        "/tile/2/000.p/1",
        "/tile/63/000",
        "/tile/entries/004",
        "/tile/entries/x001/000",
    ):
        r = served.http.get(path)
        assert r.status_code == 404, path
        assert r.headers["cache-control"] == "no-cache", path


def _raw(url: str, method: str, path: str | bytes) -> int:
    """Send the request line byte for byte (clients would normalise or refuse it)."""
    host, port = url.removeprefix("http://").split(":")
    target = path if isinstance(path, bytes) else path.encode("ascii")
    request = b"%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request % (method.encode(), target, host.encode()))
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


HOSTILE_PATHS: list[str | bytes] = [
    "/tile/0/0",
    "/tile/0/00",
    "/tile/0/0000",
    "/tile/0/x000/000",
    "/tile/0/x000",
    "/tile/00/000",
    "/tile/01/000",
    "/tile/64/000",
    "/tile/-1/000",
    "/tile/0/000.p/0",
    "/tile/0/000.p/256",
    "/tile/0/000.p/017",
    "/tile/0/000.p/",
    "/tile/0/000.p",
    "/tile/0/000.p/1/2",
    "/tile/0/000/",
    "/tile/0/-01",
    "/tile/0/+01",
    "/tile/0/0x1",
    "/tile/entries/000.p/abc",
    "/tile/entries/",
    "/tile/entries",
    "/tile/entries/0",
    "/tile/entries/entries/000",
    "/tile/",
    "/tile",
    "/tile/0/..",
    "/tile/0/../../checkpoint",
    "/tile/../../../etc/passwd",
    "/tile/0/%2e%2e/%2e%2e/checkpoint",
    "/tile/0/..%2f..%2fcheckpoint",
    "/tile/%00",
    "/tile/0/000%00",
    "/tile/0/%ff%fe",
    "/tile/0/\u00e9".encode(),
    "/tile/0/" + "x000/" * 50 + "000",
    "/tile/0/x001/x002/x003/x004/x005/x006/x007/000",
    "/tile/0/x999/x999/x999/x999/x999/x999/999",  # beyond 2**63
    "/tile/" + "9" * 5000,
    "/log.key",
    "/state.db",
    "/public/checkpoint",
    "//checkpoint/",
    "/checkpoint/",
    "/add",
]


def test_hostile_paths_never_500(served: Served) -> None:
    for path in HOSTILE_PATHS:
        status = _raw(served.url, "GET", path)
        assert status in (400, 404), (path[:80], status)  # 400: the HTTP parser refused
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert _raw(served.url, method, "/checkpoint") == 405
        assert _raw(served.url, method, "/tile/0/000") == 405


def test_random_paths_never_500(served: Served) -> None:
    rng = random.Random(1729)
    alphabet = "tile/entries/0123456789xp./%2e"
    with client(served.url) as c:
        for _ in range(300):
            tail = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
            r = c.get("/tile/" + tail)
            assert r.status_code in (200, 404), (tail, r.status_code)


def test_damaged_storage_is_500_not_data(tmp_path: Path) -> None:
    store = DirTileStore(tmp_path, fsync=False)
    store.write("tile/0/000", b"\x00" * 100)  # a tile of the wrong size
    with serve(log_app(store)) as url, client(url) as c:
        assert c.get("/tile/0/000").status_code == 500
        assert c.get("/checkpoint").status_code == 404


# --------------------------------------------------------------- write path


class Appender:
    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def __call__(self, entry: bytes) -> int:
        if entry == b"bad":
            raise InputError("not an entry")
        if entry == b"down":
            raise StoreError("database is gone")
        self.entries.append(entry)
        return len(self.entries) - 1


def test_add_with_token_and_limits(tmp_path: Path) -> None:
    appender = Appender()
    app = log_app(DirTileStore(tmp_path, fsync=False), appender=appender, token="s3cret")
    with serve(app) as url, client(url) as c:
        auth = {"Authorization": "Bearer s3cret"}
        assert c.post("/add", content=b"x").status_code == 401
        r = c.post("/add", content=b"x", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/add", content=b"x", headers={"Authorization": "s3cret"}).status_code == 401
        r = c.post("/add", content=b"hello", headers=auth)
        assert r.status_code == 200 and r.text == "0\n"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        r = c.post("/add", content=b"y" * 65535, headers=auth)
        assert r.status_code == 200 and r.text == "1\n"
        assert c.post("/add", content=b"y" * 65536, headers=auth).status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(9):
                yield b"z" * 8000

        assert c.post("/add", content=chunks(), headers=auth).status_code == 413
        assert c.post("/add", content=b"bad", headers=auth).status_code == 400
        r = c.post("/add", content=b"down", headers=auth)
        assert r.status_code == 503 and "database" not in r.text
        assert c.get("/add", headers=auth).status_code == 405
        assert appender.entries == [b"hello", b"y" * 65535]


def test_no_appender_no_write_path(served: Served) -> None:
    assert served.http.post("/add", content=b"x").status_code in (404, 405)


def test_async_appender(tmp_path: Path) -> None:
    async def append(entry: bytes) -> int:
        return len(entry)

    with serve(log_app(DirTileStore(tmp_path), appender=append)) as url, client(url) as c:
        assert c.post("/add", content=b"four").text == "4\n"
    with pytest.raises(InputError):
        log_app(DirTileStore(tmp_path), appender=append, token="")
    with pytest.raises(InputError):
        log_app(DirTileStore(tmp_path), max_entry_size=70000)


def test_append_through_the_sequencer(tmp_path: Path) -> None:
    Log.create(tmp_path / "log", "example.com/appended", fsync=False).close()
    log = Log.open(tmp_path / "log", fsync=False, checkpoint_interval=0.05)
    try:
        with serve(data_folder_app(log)) as url, client(url) as c:
            indexes = [int(c.post("/add", content=b"e%d" % i).text) for i in range(5)]
            assert indexes == [0, 1, 2, 3, 4]
            assert int(c.post("/add", content=b"e2").text) == 2  # duplicates keep their index
            log.sequencer.wait_for(4, timeout=10)
            cp = open_checkpoint(c.get("/checkpoint").content, [log.verifier]).checkpoint
            assert cp.size == 5
            bundle = c.get("/tile/entries/000.p/5").content
            assert bundle == format_entry_bundle(b"e%d" % i for i in range(5))
    finally:
        log.close()


# ------------------------------------------------- witnesses through the policy


def _fleet(tmp_path: Path, log: Log) -> tuple[list[Witness], Starlette]:
    known = {log.origin: KnownLog.from_vkeys(log.origin, [log.config.vkey])}
    witnesses = [
        Witness(
            CosignatureV1Signer.generate(f"witness{i}.example/w"),
            known,
            WitnessStore(tmp_path / f"w{i}.db"),
        )
        for i in range(3)
    ]
    return witnesses, Starlette(
        routes=[Mount(f"/w{i}", witness_app(w)) for i, w in enumerate(witnesses)]
    )


def test_sequencer_gathers_a_two_of_three_quorum(tmp_path: Path) -> None:
    d = tmp_path / "log"
    Log.create(d, "example.com/witnessed", fsync=False).close()
    log = Log.open(d, fsync=False, background=False)
    witnesses, app = _fleet(tmp_path, log)
    try:
        with serve(app) as wurl:
            policy = parse_policy(
                f"log {log.config.vkey}\n"
                f"witness A {witnesses[0].vkey} {wurl}/w0\n"
                f"witness B {witnesses[1].vkey} {wurl}/w1\n"
                f"witness C {witnesses[2].vkey} http://127.0.0.1:9/down\n"
                "group two 2 A B C\n"
                "quorum two\n"
            )
            hook = PolicyCosigner(policy, tile_proof_provider(log.tiles), timeout=10)
            log.sequencer.cosigner = hook
            with serve(data_folder_app(log)) as lurl, client(lurl) as c:
                for rnd, count in enumerate((10, 300)):
                    base = log.tree().size
                    for i in range(count):
                        c.post("/add", content=b"r%d-%d" % (rnd, i))
                    log.sequencer.integrate()
                    note = c.get("/checkpoint").content
                    signed = policy.verify_checkpoint(note)
                    assert signed.checkpoint.size == base + count
                    assert len(signed.cosignatures) == 2
                    assert hook.sizes == {"A": base + count, "B": base + count}
                    assert hook.last is not None and "C" in hook.last.errors
                    proof = log.prove(base + 3)
                    verify_tlog_proof_with_policy(
                        proof.encode(), leaf_hash(b"r%d-3" % rnd), policy, origin=log.origin
                    )
            # The hook remembered sizes; a fresh hook learns them from 409s instead.
            fresh = PolicyCosigner(policy, tile_proof_provider(log.tiles))
            log.sequencer.cosigner = fresh
            log.sequencer.append_many([b"late"])
            log.sequencer.integrate()
            assert fresh.sizes == {"A": 311, "B": 311}
            policy.verify_checkpoint(log.checkpoint())
    finally:
        log.close()


def test_required_quorum_stops_publication(tmp_path: Path) -> None:
    d = tmp_path / "log"
    Log.create(d, "example.com/strict", fsync=False).close()
    log = Log.open(d, fsync=False, background=False)
    try:
        witnesses, _ = _fleet(tmp_path, log)
        policy = parse_policy(
            f"log {log.config.vkey}\nwitness A {witnesses[0].vkey} http://127.0.0.1:9/\nquorum A\n"
        )
        before = log.checkpoint()
        log.sequencer.cosigner = PolicyCosigner(
            policy, tile_proof_provider(log.tiles), timeout=2, require_quorum=True
        )
        log.sequencer.append_many([b"x"])
        with pytest.raises(QuorumError) as e:
            log.sequencer.integrate()
        assert "A:" in str(e.value) and isinstance(e.value, ProvenanceError)
        assert log.checkpoint() == before
        # Not required: published without cosignatures, with a warning.
        log.sequencer.cosigner = PolicyCosigner(policy, tile_proof_provider(log.tiles), timeout=2)
        log.sequencer.integrate()
        assert log.tree().size == 1
        with pytest.raises(QuorumError):
            policy.verify_checkpoint(log.checkpoint())
    finally:
        log.close(integrate=False)


# ---------------------------------------------------------------- the command

_SHIM = (
    "import argparse, sys\n"
    "from provenance.cli import log_serve\n"
    "p = argparse.ArgumentParser()\n"
    "log_serve.register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


def test_log_serve_command(tmp_path: Path) -> None:
    """``log serve`` in a subprocess: appends with a token, then SIGTERM integrates."""
    d = tmp_path / "log"
    Log.create(d, "example.com/cli", fsync=False).close()
    (tmp_path / "token").write_text("t0ken\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["serve", "--dir", str(d), "--port", str(port), "--log-level", "warning"]
    args += ["--token-file", str(tmp_path / "token"), "--checkpoint-interval", "3600"]
    proc = subprocess.Popen([sys.executable, "-c", _SHIM, *args], stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        with client(url) as c:
            while True:
                try:
                    c.get("/checkpoint")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
            auth = {"Authorization": "Bearer t0ken"}
            assert c.post("/add", content=b"a").status_code == 401
            assert c.post("/add", content=b"a", headers=auth).text == "0\n"
            assert c.post("/add", content=b"b", headers=auth).text == "1\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        # uvicorn shuts down gracefully, then re-raises SIGTERM to end the process.
        assert proc.returncode in (0, -signal.SIGTERM), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Log.open(d, fsync=False) as log:
        assert log.tree().size == 2  # integrated on the way out
