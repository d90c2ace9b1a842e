"""tlog-witness over real HTTP: every add-checkpoint status, the compare-and-swap under
concurrent requests, the monitoring endpoint, and the log-side client gathering a
quorum."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from provenance.errors import InputError, NoteError
from provenance.log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from provenance.log.merkle import EMPTY_ROOT, MemoryTree, consistency_proof, leaf_hash
from provenance.log.note import (
    CosignatureV1Signer,
    Ed25519Signer,
    cosignature_timestamp,
    open_note,
    sign_note,
)
from provenance.log.policy import cosign_with_policy, cosign_with_policy_sync, parse_policy
from provenance.log.witness import (
    MAX_ADD_CHECKPOINT_BODY,
    SIZE_CONTENT_TYPE,
    KnownLog,
    LatestCheckpoint,
    LogRegistry,
    Witness,
    WitnessEndpoint,
    WitnessRejection,
    WitnessStore,
    add_log,
    format_add_checkpoint_request,
    gather_cosignatures,
    gather_cosignatures_sync,
    init_witness,
    open_witness,
    origin_hash,
    parse_add_checkpoint_request,
    witness_app,
)

# ------------------------------------------------------------------ helpers


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1)
    )
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


def client(base_url: str = "", timeout: float = 20) -> httpx.Client:
    """An httpx client with TCP_NODELAY (else each POST waits 40 ms for a delayed ACK)."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    transport = httpx.HTTPTransport(socket_options=nodelay)
    return httpx.Client(base_url=base_url, timeout=timeout, transport=transport)


class Log:
    """A test log: a Merkle tree and its signing key."""

    def __init__(self, origin: str, size: int = 300) -> None:
        self.origin = origin
        self.signer = Ed25519Signer.generate(origin)
        self.tree = MemoryTree(leaf_hash(b"%s %d" % (origin.encode(), i)) for i in range(size))

    def checkpoint(self, size: int, root: bytes | None = None) -> bytes:
        root = self.tree.root(size) if root is None else root
        return sign_checkpoint(Checkpoint(self.origin, size, root), [self.signer])

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.tree)

    def request(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = [] if old == 0 else self.proof(old, size)
        return format_add_checkpoint_request(old, proof, self.checkpoint(size))

    @property
    def known(self) -> KnownLog:
        return KnownLog.from_vkeys(self.origin, [self.signer.vkey])


_counter = iter(range(1_000_000))


def new_origin() -> str:
    return f"example.com/log{next(_counter)}"


class WitnessServer:
    def __init__(self, witness: Witness, logs: dict[str, KnownLog], url: str) -> None:
        self.witness = witness
        self.logs = logs
        self.url = url
        self.client = client(url)

    def new_log(self, size: int = 300) -> Log:
        log = Log(new_origin(), size)
        self.logs[log.origin] = log.known
        return log

    def post(self, body: bytes) -> httpx.Response:
        return self.client.post("/add-checkpoint", content=body)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessServer]:
    d = tmp_path_factory.mktemp("witness")
    signer = CosignatureV1Signer.generate("witness.example/w1")
    logs: dict[str, KnownLog] = {}
    witness = Witness(signer, logs, WitnessStore(d / "state.db"))
    with serve(witness_app(witness)) as url:
        s = WitnessServer(witness, logs, url)
        yield s
        s.client.close()


def cosigned(ws: WitnessServer, log: Log, size: int, body: bytes) -> str:
    """The response lines verified as a cosignature on the checkpoint."""
    text = Checkpoint(log.origin, size, log.tree.root(size)).text()
    note = open_note(text + "\n" + body.decode(), [ws.witness.signer.verifier()])
    assert len(note.signatures) == 1
    return text


# ------------------------------------------------------------- request format


def test_request_format_round_trip() -> None:
    log = Log(new_origin(), 20)
    body = log.request(7, 20)
    req = parse_add_checkpoint_request(body)
    assert req.old_size == 7 and list(req.proof) == log.proof(7, 20)
    assert req.checkpoint == log.checkpoint(20)
    assert body.startswith(b"old 7\n") and b"\n\n" + log.checkpoint(20) in body
    assert parse_add_checkpoint_request(log.request(0, 20)).proof == ()
    with pytest.raises(InputError):
        format_add_checkpoint_request(1, [b"short"], log.checkpoint(20))
    with pytest.raises(InputError):
        format_add_checkpoint_request(-1, [], log.checkpoint(20))


def test_spec_example_request_parses() -> None:
    body = (
        b"old 20852014\n"
        b"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        b"jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
        b"5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
        b"/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
        b"\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        b"\n"
    ) + (
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
        "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    ).encode()
    req = parse_add_checkpoint_request(body)
    assert req.old_size == 20852014 and len(req.proof) == 4
    assert req.checkpoint.startswith(b"example.com/behind-the-sofa\n")


# ------------------------------------------------------------ status codes


def test_first_checkpoint_is_cosigned(ws: WitnessServer) -> None:
    log = ws.new_log()
    before = int(time.time())
    r = ws.post(log.request(0, 10))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.content.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 2 and lines[0].startswith("— witness.example/w1 ")
    cosigned(ws, log, 10, r.content)
    note = open_note(
        Checkpoint(log.origin, 10, log.tree.root(10)).text() + "\n" + r.text,
        [ws.witness.signer.verifier()],
    )
    ts = cosignature_timestamp(note.signatures[0])
    assert before <= ts <= time.time() + 1  # never zero


def test_growth_with_consistency_proof_and_monitoring(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 10)).status_code == 200
    r = ws.post(log.request(10, 250))
    assert r.status_code == 200, r.text
    cosigned(ws, log, 250, r.content)
    latest = ws.witness.store.latest(log.origin)
    assert latest is not None and latest.size == 250

    m = ws.client.get(f"/{origin_hash(log.origin)}/checkpoint")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    signed = open_checkpoint(m.content, [log.signer.verifier()], [ws.witness.signer.verifier()])
    assert signed.checkpoint.size == 250 and len(signed.cosignatures) == 1
    assert m.content.decode().split("\n")[4].startswith(f"— {log.origin} ")  # log first
    assert ws.client.head(f"/{origin_hash(log.origin)}/checkpoint").status_code == 200


def test_same_size_same_root_is_cosigned_again(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 50)).status_code == 200
    r = ws.post(log.request(50, 50))
    assert r.status_code == 200, r.text
    cosigned(ws, log, 50, r.content)


def test_same_size_different_root_is_422(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 50)).status_code == 200
    fork = format_add_checkpoint_request(50, [], log.checkpoint(50, root=b"\x01" * 32))
    r = ws.post(fork)
    assert r.status_code == 422
    latest = ws.witness.store.latest(log.origin)
    assert latest is not None and latest.root_hash == log.tree.root(50)


def test_conflict_returns_the_witness_size(ws: WitnessServer) -> None:
    log = ws.new_log()
    r = ws.post(log.request(5, 10))  # witness has never seen the log: it is at 0
    assert r.status_code == 409
    assert r.headers["content-type"] == SIZE_CONTENT_TYPE
    assert r.content == b"0\n"
    assert ws.post(log.request(0, 10)).status_code == 200
    for old in (0, 9, 11):
        r = ws.post(log.request(old, 20))
        assert r.status_code == 409, old
        assert r.headers["content-type"] == SIZE_CONTENT_TYPE
        assert r.content == b"10\n"


def test_old_size_above_checkpoint_size_is_400(ws: WitnessServer) -> None:
    log = ws.new_log()
    r = ws.post(format_add_checkpoint_request(11, [], log.checkpoint(10)))
    assert r.status_code == 400


def test_unknown_origin_is_404(ws: WitnessServer) -> None:
    stranger = Log(new_origin())
    assert ws.post(stranger.request(0, 10)).status_code == 404


def test_signatures_that_do_not_count_are_403(ws: WitnessServer) -> None:
    log = ws.new_log()
    # Signed only by another key (same name, other key ID): ignored, so unsigned.
    impostor = Ed25519Signer.generate(log.origin)
    other = sign_checkpoint(Checkpoint(log.origin, 10, log.tree.root(10)), [impostor])
    assert ws.post(format_add_checkpoint_request(0, [], other)).status_code == 403
    # Signed only by a witness key: still no log signature.
    w = CosignatureV1Signer.generate("witness.example/other")
    only_w = sign_checkpoint(Checkpoint(log.origin, 10, log.tree.root(10)), [w])
    assert ws.post(format_add_checkpoint_request(0, [], only_w)).status_code == 403
    # The log's key name and ID, but the signature does not verify: the note is bad.
    good = log.checkpoint(10).decode()
    text, sig = good.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    bad = f"{text} {base64.b64encode(bytes(raw)).decode()}\n"
    assert ws.post(format_add_checkpoint_request(0, [], bad)).status_code == 403
    # Text changed after signing.
    tampered = good.replace("\n10\n", "\n11\n", 1)
    assert ws.post(format_add_checkpoint_request(0, [], tampered)).status_code == 403
    # A valid log signature next to a bad one from the same key is still rejected.
    both = good + bad.split("\n\n", 1)[1]
    assert ws.post(format_add_checkpoint_request(0, [], both)).status_code == 403
    assert ws.witness.store.latest(log.origin) is None


def test_extra_unknown_signatures_are_ignored(ws: WitnessServer) -> None:
    log = ws.new_log()
    other = CosignatureV1Signer.generate("witness.example/elsewhere")
    note = sign_note(Checkpoint(log.origin, 10, log.tree.root(10)).text(), [log.signer, other])
    r = ws.post(format_add_checkpoint_request(0, [], note))
    assert r.status_code == 200
    m = ws.client.get(f"/{origin_hash(log.origin)}/checkpoint").text
    assert "witness.example/elsewhere" not in m  # only the signatures the witness verified


def test_size_zero(ws: WitnessServer) -> None:
    log = ws.new_log()
    bad_empty = format_add_checkpoint_request(0, [], log.checkpoint(0, root=b"\x00" * 32))
    assert ws.post(bad_empty).status_code == 422
    r = ws.post(format_add_checkpoint_request(0, [], log.checkpoint(0, root=EMPTY_ROOT)))
    assert r.status_code == 200
    latest = ws.witness.store.latest(log.origin)
    assert latest is not None and latest.size == 0
    # From size 0 every tree is consistent: no proof, and a proof is refused.
    assert ws.post(log.request(0, 7, proof=[b"\x00" * 32])).status_code == 422
    assert ws.post(log.request(0, 7)).status_code == 200
    # Going back to 0 is a conflict, not a rollback.
    r = ws.post(format_add_checkpoint_request(0, [], log.checkpoint(0, root=EMPTY_ROOT)))
    assert r.status_code == 409 and r.content == b"7\n"


def test_proof_from_zero_must_be_empty_for_a_new_log(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 7, proof=[log.tree.root(3)])).status_code == 422
    assert ws.witness.store.latest(log.origin) is None


def test_bad_consistency_proofs_are_422(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 100)).status_code == 200
    good = log.proof(100, 200)
    for proof in (
        [b"\x00" * 32] * len(good),
        good[:-1],
        [*good, good[0]],
        [],
        log.proof(99, 200),
    ):
        assert ws.post(log.request(100, 200, proof=proof)).status_code == 422
    # Same size: the proof must be empty.
    assert ws.post(log.request(100, 100, proof=[log.tree.root(100)])).status_code == 422
    # A fork: validly signed, but not an extension of what the witness saw.
    forked = Log(log.origin, 0)
    forked.signer = log.signer
    forked.tree = MemoryTree(leaf_hash(b"fork %d" % i) for i in range(300))
    assert ws.post(forked.request(100, 200, proof=forked.proof(100, 200))).status_code == 422
    latest = ws.witness.store.latest(log.origin)
    assert latest is not None and latest.size == 100
    assert ws.post(log.request(100, 200)).status_code == 200


def test_malformed_requests_are_400(ws: WitnessServer) -> None:
    log = ws.new_log()
    cp = log.checkpoint(10)
    h = base64.b64encode(b"\x00" * 32)
    bodies = [
        b"",
        b"old 0\n",
        b"old 0\n" + cp,  # no blank line
        b"old 00\n\n" + cp,
        b"old 01\n\n" + cp,
        b"old -1\n\n" + cp,
        b"old +1\n\n" + cp,
        b"old  0\n\n" + cp,
        b"old 0 \n\n" + cp,
        b"Old 0\n\n" + cp,
        b"old\n\n" + cp,
        b"old 99999999999999999999\n\n" + cp,
        b"old 9223372036854775808\n\n" + cp,
        b"\nold 0\n\n" + cp,
        b"old 0\r\n\r\n" + cp,
        b"old 5\n" + h[:-1] + b"\n\n" + cp,  # not canonical base64
        b"old 5\n" + base64.b64encode(b"\x00" * 31) + b"\n\n" + cp,
        b"old 5\n" + base64.b64encode(b"\x00" * 33) + b"\n\n" + cp,
        b"old 5\n" + b"\n".join([h] * 64) + b"\n\n" + cp,  # 64 proof lines
        b"old 5\n" + h + b" \n\n" + cp,
        b"old 0\n\n" + cp[:-1],  # note without final newline
        b"old 0\n\n" + cp.replace(b"\xe2\x80\x94", b"--"),
        b"old 0\n\n" + b"\xff\xfe" + cp,  # not UTF-8
        b"old 0\n\n" + cp.replace(b"\n", b"\x01", 1),
        b"old 0\n\n\n\n",
    ]
    for body in bodies:
        r = ws.post(body)
        assert r.status_code == 400, (body[:60], r.status_code)
    # A log-signed note whose body is not a checkpoint is 400 too.
    for text in (f"{log.origin}\n010\n{'A' * 43}=\n", f"{log.origin}\n10\n", f"{log.origin}\n"):
        note = sign_note(text, [log.signer])
        assert ws.post(b"old 0\n\n" + note).status_code == 400, text


def test_63_proof_lines_are_allowed(ws: WitnessServer) -> None:
    log = ws.new_log()
    assert ws.post(log.request(0, 10)).status_code == 200
    body = log.request(10, 20, proof=[b"\x00" * 32] * 63)
    assert ws.post(body).status_code == 422  # parsed, then the proof fails


def test_oversized_requests_are_413(ws: WitnessServer) -> None:
    log = ws.new_log()
    big = log.request(0, 10) + b"x" * MAX_ADD_CHECKPOINT_BODY
    assert ws.post(big).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield log.request(0, 10)
        for _ in range(40):
            yield b"\xe2\x80\x94 x AAAA\n" * 512

    r = ws.client.post("/add-checkpoint", content=chunks())  # chunked, no Content-Length
    assert r.status_code == 413
    assert ws.witness.store.latest(log.origin) is None
    assert ws.post(log.request(0, 10)).status_code == 200


def test_wrong_methods_and_paths(ws: WitnessServer) -> None:
    assert ws.client.get("/add-checkpoint").status_code == 405
    assert ws.client.put("/add-checkpoint", content=b"x").status_code == 405
    assert ws.client.get("/").status_code == 404
    assert ws.client.get(f"/{'0' * 64}/checkpoint").status_code == 404
    assert ws.client.get(f"/{'A' * 64}/checkpoint").status_code == 404
    assert ws.client.get("/../checkpoint").status_code == 404
    assert ws.client.post(f"/{'0' * 64}/checkpoint").status_code == 405


# -------------------------------------------------------------- atomicity


def test_compare_and_swap(tmp_path: Path) -> None:
    a = WitnessStore(tmp_path / "s.db")
    b = WitnessStore(tmp_path / "s.db")  # a second handle, as another process would have
    first = LatestCheckpoint("o", 5, b"\x01" * 32, b"n5")
    assert a.compare_and_swap(None, first)
    assert not b.compare_and_swap(None, LatestCheckpoint("o", 9, b"\x02" * 32, b"n9"))
    assert b.compare_and_swap(first, LatestCheckpoint("o", 9, b"\x02" * 32, b"n9"))
    assert not a.compare_and_swap(first, LatestCheckpoint("o", 7, b"\x03" * 32, b"n7"))
    latest = a.latest("o")
    assert latest is not None and latest.size == 9
    assert a.latest_by_hash(origin_hash("o")) == latest


def test_check_then_swap_race_is_a_conflict(tmp_path: Path) -> None:
    """The spec's race, forced: request A checks against size 10, request B moves the
    witness to 200 before A writes. A must get 409 with 200, not roll back to 100."""
    log = Log(new_origin(), 300)
    signer = CosignatureV1Signer.generate("witness.example/race")
    store = WitnessStore(tmp_path / "state.db")
    witness = Witness(signer, {log.origin: log.known}, store)
    witness.add_checkpoint(log.request(0, 10))

    class Interleaved(WitnessStore):
        armed = True

        def latest(self, origin: str) -> LatestCheckpoint | None:
            seen = super().latest(origin)
            if self.armed:
                self.armed = False
                witness.add_checkpoint(log.request(10, 200))  # B, between A's read and write
            return seen

    witness.store = Interleaved(tmp_path / "state.db")
    with pytest.raises(WitnessRejection) as e:
        witness.add_checkpoint(log.request(10, 100))  # A
    assert e.value.status == 409 and e.value.latest_size == 200
    latest = store.latest(log.origin)
    assert latest is not None and latest.size == 200


def test_concurrent_requests_never_roll_back(tmp_path: Path) -> None:
    """Hammer one log from many threads through two servers sharing one state file;
    the stored size must only grow and end at the largest size ever cosigned."""
    log = Log(new_origin(), 2000)
    signer = CosignatureV1Signer.generate("witness.example/hammer")
    logs = {log.origin: log.known}
    db = tmp_path / "state.db"
    w1 = Witness(signer, logs, WitnessStore(db))
    w2 = Witness(signer, logs, WitnessStore(db))
    bodies: dict[tuple[int, int], bytes] = {}
    lock = threading.Lock()

    def body(old: int, new: int) -> bytes:
        with lock:
            if (old, new) not in bodies:
                bodies[(old, new)] = log.request(old, new)
            return bodies[(old, new)]

    cosigned_sizes: list[int] = []
    observed: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    with serve(witness_app(w1)) as url1, serve(witness_app(w2)) as url2:

        def worker(seed: int) -> None:
            url = (url1, url2)[seed % 2]
            with client(url) as c:
                known = 0
                for i in range(25):
                    new = min(2000, known + 1 + (seed * 37 + i * 53) % 97)
                    r = c.post("/add-checkpoint", content=body(known, new))
                    if r.status_code == 200:
                        with lock:
                            cosigned_sizes.append(new)
                        known = new
                    elif r.status_code == 409:
                        known = int(r.content)
                    else:
                        errors.append(f"{r.status_code} {r.text}")

        def monitor() -> None:
            with client(url1) as c:
                while not stop.is_set():
                    r = c.get(f"/{origin_hash(log.origin)}/checkpoint")
                    if r.status_code == 200:
                        observed.append(int(r.content.split(b"\n")[1]))
                    time.sleep(0.002)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        mon = threading.Thread(target=monitor)
        mon.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stop.set()
        mon.join(10)

    assert not errors
    assert len(cosigned_sizes) > 8
    latest = w1.store.latest(log.origin)
    assert latest is not None and latest.size == max(cosigned_sizes)
    assert observed == sorted(observed)
    assert latest.root_hash == log.tree.root(latest.size)


# ------------------------------------------------------------ configuration


def test_directory_init_add_log_and_reload(tmp_path: Path) -> None:
    d = tmp_path / "w"
    signer = init_witness(d, "witness.example/dir")
    with pytest.raises(InputError):
        init_witness(d, "witness.example/dir")
    assert (d / "witness.key").stat().st_mode & 0o077 == 0
    witness = open_witness(d)
    assert witness.vkey == signer.vkey
    log = Log(new_origin(), 20)
    with serve(witness_app(witness)) as url:
        r = httpx.post(url + "/add-checkpoint", content=log.request(0, 10))
        assert r.status_code == 404
        add_log(d, log.origin, [log.signer.vkey])  # picked up without a restart
        r = httpx.post(url + "/add-checkpoint", content=log.request(0, 10))
        assert r.status_code == 200
    with pytest.raises(NoteError):
        add_log(d, "x", ["not-a-vkey"])
    again = add_log(d, log.origin, [log.signer.vkey])
    assert again.vkeys == (log.signer.vkey,)
    # State survives a restart.
    latest = open_witness(d).store.latest(log.origin)
    assert latest is not None and latest.size == 10


def test_broken_log_configuration_keeps_the_last_good_one(tmp_path: Path) -> None:
    log = Log(new_origin(), 20)
    path = tmp_path / "logs.json"
    path.write_text(f'{{"logs": [{{"origin": "{log.origin}", "vkeys": ["{log.signer.vkey}"]}}]}}')
    reg = LogRegistry(path)
    assert reg.get(log.origin) is not None
    path.write_text("{broken")
    assert reg.get(log.origin) is not None
    assert reg.origins() == [log.origin]


def test_witness_rejection_carries_status() -> None:
    e = WitnessRejection(409, "x", 5)
    assert e.status == 409 and e.latest_size == 5


# ---------------------------------------------------------------- log side


class Fleet:
    """Three witnesses mounted under /w1 /w2 /w3 of one server, plus misbehaving ones."""

    def __init__(self, url: str, witnesses: list[Witness], logs: dict[str, KnownLog]) -> None:
        self.url = url
        self.witnesses = witnesses
        self.logs = logs

    def endpoint(self, i: int, path: str | None = None) -> WitnessEndpoint:
        w = self.witnesses[i]
        return WitnessEndpoint(
            f"w{i + 1}", f"{self.url}/{path or f'w{i + 1}'}", w.signer.verifier()
        )

    def policy(self, extra: str = "") -> str:
        lines = [
            f"witness w{i + 1} {w.vkey} {self.url}/w{i + 1}" for i, w in enumerate(self.witnesses)
        ]
        return "\n".join([*lines, extra, "group all3 2 w1 w2 w3", "quorum all3", ""])


async def _slow(request: Request) -> Response:
    await asyncio.sleep(30)
    return Response(b"")


async def _garbage(request: Request) -> Response:
    return Response(b"not a signature line\n")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    d = tmp_path_factory.mktemp("fleet")
    logs: dict[str, KnownLog] = {}
    witnesses = [
        Witness(
            CosignatureV1Signer.generate(f"witness.example/f{i}"), logs, WitnessStore(d / f"{i}.db")
        )
        for i in range(3)
    ]
    routes: list[BaseRoute] = [Mount(f"/w{i + 1}", witness_app(w)) for i, w in enumerate(witnesses)]
    routes += [
        Route("/slow/add-checkpoint", _slow, methods=["POST"]),
        Route("/garbage/add-checkpoint", _garbage, methods=["POST"]),
    ]
    with serve(Starlette(routes=routes)) as url:
        yield Fleet(url, witnesses, logs)


def test_gather_two_of_three(fleet: Fleet) -> None:
    log = Log(new_origin(), 100)
    fleet.logs[log.origin] = log.known
    cp = log.checkpoint(40)
    eps = [fleet.endpoint(0), fleet.endpoint(1), fleet.endpoint(2, "slow")]
    policy = parse_policy(
        "\n".join(
            [
                f"log {log.signer.vkey}",
                *(f"witness {e.name} {fleet.witnesses[i].vkey} {e.url}" for i, e in enumerate(eps)),
                "group q 2 w1 w2 w3",
                "quorum q",
            ]
        )
    )
    start = time.monotonic()
    result = cosign_with_policy_sync(cp, policy, {}, log.proof, timeout=20)
    assert time.monotonic() - start < 10  # did not wait for the slow witness
    assert result.complete
    assert set(result.sizes) == {"w1", "w2"} and result.sizes["w1"] == 40
    assert "w3" in result.errors
    signed = policy.verify_checkpoint(result.note)
    assert len(signed.cosignatures) == 2
    lines = result.note.decode().split("\n")
    assert lines[4].startswith(f"— {log.origin} ")  # the log's signature stays first
    assert lines[5].startswith("— witness.example/f0 ") and lines[6].startswith(
        "— witness.example/f1 "
    )

    # Next round: the log remembers the sizes; w3 is now the real witness and new.
    cp2 = log.checkpoint(90)
    policy2 = parse_policy(fleet.policy(f"log {log.signer.vkey}"))
    result2 = cosign_with_policy_sync(cp2, policy2, result.sizes, log.proof, timeout=20)
    assert result2.complete
    policy2.verify_checkpoint(result2.note)


def test_gather_follows_conflicts(fleet: Fleet) -> None:
    log = Log(new_origin(), 100)
    fleet.logs[log.origin] = log.known
    eps = [fleet.endpoint(0), fleet.endpoint(1)]
    assert gather_cosignatures_sync(log.checkpoint(30), eps, {}, log.proof).complete
    calls: list[tuple[int, int]] = []

    def provider(old: int, new: int) -> list[bytes]:
        calls.append((old, new))
        return log.proof(old, new)

    # The log forgot what the witnesses saw (0 and a wrong 12): each 409 teaches 30.
    result = gather_cosignatures_sync(log.checkpoint(60), eps, {"w2": 12}, provider)
    assert result.complete, result.errors
    assert result.sizes == {"w1": 60, "w2": 60}
    assert calls.count((30, 60)) == 1  # one proof, shared by both witnesses
    assert (12, 60) in calls


def test_gather_reports_failures(fleet: Fleet) -> None:
    log = Log(new_origin(), 100)
    fleet.logs[log.origin] = log.known
    stranger = Log(new_origin(), 10)  # not configured at the witnesses
    eps = [
        fleet.endpoint(0),
        WitnessEndpoint("garbage", f"{fleet.url}/garbage", fleet.witnesses[1].signer.verifier()),
        # The right URL, the wrong key: the cosignature does not count.
        WitnessEndpoint("wrongkey", f"{fleet.url}/w3", fleet.witnesses[1].signer.verifier()),
        WitnessEndpoint("down", "http://127.0.0.1:9", fleet.witnesses[1].signer.verifier()),
    ]
    result = gather_cosignatures_sync(log.checkpoint(10), eps, {}, log.proof, timeout=10)
    assert not result.complete
    assert result.cosigners == {(fleet.witnesses[0].signer.name, fleet.witnesses[0].signer.key_id)}
    assert set(result.errors) == {"garbage", "wrongkey", "down"}
    r2 = gather_cosignatures_sync(stranger.checkpoint(10), [fleet.endpoint(0)], {}, stranger.proof)
    assert "HTTP 404" in r2.errors["w1"]
    # Witness ahead of this checkpoint: nothing to ask.
    r3 = gather_cosignatures_sync(log.checkpoint(5), [fleet.endpoint(0)], {"w1": 10}, log.proof)
    assert "ahead" in r3.errors["w1"]
    # A witness that already has a newer checkpoint answers 409 with its size; stop.
    r4 = gather_cosignatures_sync(log.checkpoint(5), [fleet.endpoint(0)], {}, log.proof)
    assert "ahead" in r4.errors["w1"] and r4.sizes == {"w1": 10}
    # The note is unchanged when nobody cosigned.
    assert r3.note == log.checkpoint(5)


def test_gather_times_out(fleet: Fleet) -> None:
    log = Log(new_origin(), 10)
    eps = [fleet.endpoint(0, "slow")]
    start = time.monotonic()
    result = gather_cosignatures_sync(log.checkpoint(10), eps, {"w1": 3}, log.proof, timeout=0.5)
    assert time.monotonic() - start < 5
    assert not result.complete and result.errors["w1"] == "timed out"
    assert result.sizes == {"w1": 3}  # unknown outcome: keep what we knew


def test_gather_async_with_shared_client_and_quorum_none(fleet: Fleet) -> None:
    log = Log(new_origin(), 50)
    fleet.logs[log.origin] = log.known

    async def run() -> None:
        async def provider(old: int, new: int) -> list[bytes]:
            return log.proof(old, new)

        async with httpx.AsyncClient() as client:
            r = await gather_cosignatures(
                log.checkpoint(20), [fleet.endpoint(2)], {}, provider, client=client
            )
            assert r.complete and r.sizes == {"w3": 20}
            r = await gather_cosignatures(
                log.checkpoint(50), [fleet.endpoint(2)], r.sizes, provider, client=client
            )
            assert r.complete, r.errors
            none = parse_policy(f"log {log.signer.vkey}\nquorum none\n")
            r = await cosign_with_policy(log.checkpoint(50), none, {}, provider, client=client)
            assert r.complete and r.note == log.checkpoint(50) and not r.outcomes

    asyncio.run(run())


def test_gather_rejects_bad_input(fleet: Fleet) -> None:
    log = Log(new_origin(), 10)
    with pytest.raises(NoteError):
        gather_cosignatures_sync(b"not a note", [fleet.endpoint(0)], {}, log.proof)
    with pytest.raises(InputError):
        gather_cosignatures_sync(
            log.checkpoint(5), [fleet.endpoint(0), fleet.endpoint(0)], {}, log.proof
        )
