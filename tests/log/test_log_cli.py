"""``apkprov log``: init, append, prove, verify (local and over HTTP), status."""

from __future__ import annotations

import http.server
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from pg import shared_server

from provenance.cli import main
from provenance.log.checkpoint import Checkpoint, sign_checkpoint
from provenance.log.log import Log
from provenance.log.merkle import leaf_hash
from provenance.log.note import parse_signer_key, parse_verifier_key
from provenance.log.proof import parse_tlog_proof, verify_tlog_proof

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "log.example/cli"


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``apkprov`` in-process; return (exit code, stdout, stderr)."""
    old = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    d = tmp_path / "data"
    rc, out, _ = run(capsys, "log", "init", "--dir", str(d), "--origin", ORIGIN)
    assert rc == 0
    (d / "vkey").write_text(out)
    return d


def vkey(data: Path) -> str:
    return (data / "vkey").read_text().strip()


def append(capsys: pytest.CaptureFixture[str], data: Path, *lines: bytes) -> list[int]:
    rc, out, err = run(
        capsys, "log", "append", "--dir", str(data), stdin=b"".join(x + b"\n" for x in lines)
    )
    assert rc == 0, err
    return [int(x) for x in out.split()]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[partial[str]]:
    """Serve a directory over HTTP on 127.0.0.1 with Python's http.server."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_Quiet, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield partial(start)
    for s in servers:
        s.shutdown()
        s.server_close()


# ------------------------------------------------------------------------ init


def test_init_creates_key_state_and_empty_checkpoint(data: Path) -> None:
    verifier = parse_verifier_key(vkey(data))
    assert verifier.name == ORIGIN
    key = data / "log.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert parse_signer_key(key.read_text().strip()).key_id == verifier.key_id
    assert json.loads((data / "log.json").read_text())["vkey"] == vkey(data)
    checkpoint = (data / "public" / "checkpoint").read_bytes()
    assert checkpoint.startswith(f"{ORIGIN}\n0\n".encode())
    assert not (data / "public" / "log.key").exists()


def test_init_refuses_bad_input(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "log", "init", "--dir", str(data), "--origin", ORIGIN)
    assert rc == 2 and "already holds a log" in err
    rc, _, err = run(capsys, "log", "init", "--dir", str(tmp_path / "x"), "--origin", "a b")
    assert rc == 2 and "origin" in err and "Traceback" not in err
    rc, _, err = run(capsys, "log", "init", "--dir", str(tmp_path / "y"))
    assert rc == 2 and "--origin" in err
    rc, _, err = run(capsys, "log")
    assert rc == 2


def test_init_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(
        capsys, "log", "init", "--dir", str(tmp_path / "d"), "--origin", ORIGIN, "--json"
    )
    assert rc == 0
    info = json.loads(out)
    assert info["origin"] == ORIGIN and info["state"] == "sqlite"
    assert info["public"].endswith("public")


# ---------------------------------------------------------------------- append


def test_append_prints_indices_and_dedups(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert append(capsys, data, b"alpha", b"beta", b"", b"alpha", b"gamma") == [0, 1, 0, 2]
    assert append(capsys, data, b"beta", b"delta") == [1, 3]
    _, out, _ = run(capsys, "log", "status", "--dir", str(data), "--json")
    status = json.loads(out)
    assert (status["size"], status["sequenced"], status["pending"]) == (4, 4, 0)


def test_append_from_file_with_json(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "entries.txt"
    f.write_bytes(b"one\r\ntwo\n\nthree")
    rc, out, _ = run(capsys, "log", "append", "--dir", str(data), str(f), "--json")
    assert rc == 0
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [
        {"line": 1, "index": 0, "duplicate": False},
        {"line": 2, "index": 1, "duplicate": False},
        {"line": 4, "index": 2, "duplicate": False},
    ]
    with Log.open(data) as log:
        assert [log.entry(i) for i in range(3)] == [b"one", b"two", b"three"]


def test_append_rejects_oversized_entries(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(
        capsys,
        "log",
        "append",
        "--dir",
        str(data),
        stdin=b"ok\n" + b"x" * 65535 + b"\n" + b"y" * 65536 + b"\nnever\n",
    )
    assert rc == 2
    assert "line 3" in err and "65,535" in err and "Traceback" not in err
    assert out.split() == ["0", "1"]  # what came before is durable and reported
    with Log.open(data) as log:
        assert log.tree().size == 2
    rc, _, err = run(capsys, "log", "append", "--dir", str(data), str(tmp_path / "nope"))
    assert rc == 2 and "cannot read" in err
    rc, _, err = run(capsys, "log", "append", "--dir", str(tmp_path / "nodata"), stdin=b"x\n")
    assert rc == 2 and "not a log data folder" in err


def test_concurrent_append_processes(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    inputs = [b"".join(b"p%d-%d\n" % (k, i) for i in range(2000)) for k in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "provenance", "log", "append", "--dir", str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in inputs
    ]
    indices = []
    for p, text in zip(procs, inputs, strict=True):
        out, err = p.communicate(text, timeout=120)
        assert p.returncode == 0, err
        indices += [int(x) for x in out.split()]
    assert sorted(indices) == list(range(6000))
    rc, out, err = run(capsys, "log", "verify", "--dir", str(data), "--vkey", vkey(data))
    assert rc == 0, err
    assert "size 6000" in out


# ----------------------------------------------------------------------- prove


def test_prove_by_index_and_by_entry_file(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    append(capsys, data, *(b"entry %d" % i for i in range(300)))
    verifier = parse_verifier_key(vkey(data))
    rc, out, _ = run(capsys, "log", "prove", "--dir", str(data), "123")
    assert rc == 0
    verified = verify_tlog_proof(out.encode(), leaf_hash(b"entry 123"), [verifier])
    assert verified.index == 123 and verified.checkpoint.size == 300

    f = tmp_path / "entry"
    f.write_bytes(b"entry 7\n")
    proof_file = tmp_path / "7.tlog-proof"
    rc, out, _ = run(
        capsys,
        "log",
        "prove",
        "--dir",
        str(data),
        "--entry-file",
        str(f),
        "-o",
        str(proof_file),
    )
    assert rc == 0 and out == ""
    assert parse_tlog_proof(proof_file.read_bytes()).index == 7
    rc, out, _ = run(capsys, "log", "prove", "--dir", str(data), "299", "--json")
    assert json.loads(out)["index"] == 299


def test_prove_failures(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append(capsys, data, b"a")
    rc, _, err = run(capsys, "log", "prove", "--dir", str(data), "1")
    assert rc == 1 and "no entry 1" in err
    f = tmp_path / "missing"
    f.write_bytes(b"not there")
    rc, _, err = run(capsys, "log", "prove", "--dir", str(data), "--entry-file", str(f))
    assert rc == 1 and "not in the log" in err
    rc, _, err = run(capsys, "log", "prove", "--dir", str(data), "-3")
    assert rc == 2
    rc, _, err = run(capsys, "log", "prove", "--dir", str(data))
    assert rc == 2
    # Sequenced but not integrated (an appender died before its checkpoint).
    log = Log.open(data, background=False)
    log.sequencer.append(b"pending")
    log.close(integrate=False)
    rc, _, err = run(capsys, "log", "prove", "--dir", str(data), "1")
    assert rc == 1 and "no checkpoint covers it yet" in err
    assert append(capsys, data) == []  # an empty append integrates it
    rc, _, _ = run(capsys, "log", "prove", "--dir", str(data), "1")
    assert rc == 0


# ---------------------------------------------------------------------- verify


def test_verify_dir_and_url(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str], serve: partial[str]
) -> None:
    append(capsys, data, *(b"e%d" % i for i in range(1000)))
    rc, out, err = run(capsys, "log", "verify", "--dir", str(data), "--vkey", vkey(data))
    assert rc == 0, err
    assert "Verifies" in out and "size 1000" in out and "1000 entries" in out
    url = serve(data / "public")
    rc, out, err = run(
        capsys, "log", "verify", "--url", url, "--vkey", str(data / "vkey"), "--json"
    )
    assert rc == 0, err
    report = json.loads(out)
    assert report["verified"] and report["size"] == 1000 and report["tiles_checked"] >= 4
    # Serving the whole data folder works too, at its public/ prefix.
    rc, _, err = run(
        capsys, "log", "verify", "--url", serve(data) + "/public", "--vkey", vkey(data)
    )
    assert rc == 0, err


def test_verify_detects_tampering(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str], serve: partial[str]
) -> None:
    append(capsys, data, *(b"e%d" % i for i in range(600)))
    bundle = data / "public" / "tile" / "entries" / "001"
    original = bundle.read_bytes()
    bundle.write_bytes(original.replace(b"e300", b"E300"))
    for where in (["--dir", str(data)], ["--url", serve(data / "public")]):
        rc, out, err = run(capsys, "log", "verify", *where, "--vkey", vkey(data))
        assert rc == 1
        assert "DOES NOT VERIFY" in out and "tile/0/001 does not match" in err
    bundle.write_bytes(original)
    other = Log.create(tmp_path / "other", ORIGIN)
    other.close()
    rc, out, err = run(capsys, "log", "verify", "--dir", str(data), "--vkey", other.config.vkey)
    assert rc == 1 and "checkpoint does not verify" in err
    rc, _, err = run(capsys, "log", "verify", "--dir", str(data), "--vkey", "garbage")
    assert rc == 2 and "Traceback" not in err
    rc, _, err = run(
        capsys, "log", "verify", "--url", serve(tmp_path / "nothing"), "--vkey", vkey(data)
    )
    assert rc == 1 and "no checkpoint" in err


def test_verify_old_checkpoint(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    append(capsys, data, *(b"e%d" % i for i in range(100)))
    old = tmp_path / "old-checkpoint"
    old.write_bytes((data / "public" / "checkpoint").read_bytes())
    append(capsys, data, *(b"f%d" % i for i in range(500)))
    args = ["log", "verify", "--dir", str(data), "--vkey", vkey(data), "--old-checkpoint"]
    rc, out, err = run(capsys, *args, str(old))
    assert rc == 0, err
    assert "Consistent with the old checkpoint of size 100" in out
    # A checkpoint the log signed for a different tree at size 100: a fork.
    signer = parse_signer_key((data / "log.key").read_text().strip())
    fork = tmp_path / "fork"
    fork.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 100, b"\x01" * 32), [signer]))
    rc, out, err = run(capsys, *args, str(fork))
    assert rc == 1 and "not consistent with the old checkpoint" in err
    ahead = tmp_path / "ahead"
    ahead.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 10**6, b"\x01" * 32), [signer]))
    rc, out, err = run(capsys, *args, str(ahead))
    assert rc == 1 and "back in time" in err
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a checkpoint")
    rc, _, err = run(capsys, *args, str(bad))
    assert rc == 2 and "old checkpoint" in err


# ---------------------------------------------------------------------- status


def test_status(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append(capsys, data, b"x", b"y")
    rc, out, _ = run(capsys, "log", "status", "--dir", str(data))
    assert rc == 0
    assert f"origin: {ORIGIN}" in out and "tree size: 2" in out and "pending: 0" in out


# ------------------------------------------------------------------ postgresql


def test_postgres_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = shared_server().new_dsn()
    d = tmp_path / "pgdata"
    rc, out, _ = run(
        capsys, "log", "init", "--dir", str(d), "--origin", ORIGIN, "--postgres", dsn, "--json"
    )
    assert rc == 0 and json.loads(out)["state"] == "postgres"
    assert not (d / "state.db").exists()
    rc, out, err = run(
        capsys, "log", "append", "--dir", str(d), "--postgres", dsn, stdin=b"a\nb\na\n"
    )
    assert rc == 0, err
    assert out.split() == ["0", "1", "0"]
    rc, out, _ = run(capsys, "log", "status", "--dir", str(d), "--postgres", dsn, "--json")
    assert json.loads(out)["size"] == 2
    rc, _, err = run(capsys, "log", "status", "--dir", str(d))
    assert rc == 2 and "PostgreSQL" in err
    rc, out, _ = run(capsys, "log", "prove", "--dir", str(d), "--postgres", dsn, "1")
    assert rc == 0 and out.startswith("c2sp.org/tlog-proof@v1\nindex 1\n")


# ------------------------------------------------------- the library underneath


def test_key_must_stay_private(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data / "log.key").chmod(0o644)
    rc, _, err = run(capsys, "log", "append", "--dir", str(data), stdin=b"x\n")
    assert rc == 2 and "chmod 600" in err
    rc, _, _ = run(capsys, "log", "status", "--dir", str(data))  # reading needs no key
    assert rc == 0


def test_facade_for_the_http_service(data: Path) -> None:
    import asyncio

    from provenance.log.merkle import verify_consistency

    with Log.open(data, checkpoint_interval=0.05) as log:
        first = log.sequencer.append(b"one")
        second = asyncio.run(log.sequencer.append_async(b"two"))
        assert (first, second) == (0, 1)
        old = log.sequencer.wait_for(1, timeout=10)
        assert log.find(b"two") == 1 and log.find(b"three") is None
        log.sequencer.append_many([b"three", b"four", b"five"])
        new = log.sequencer.integrate()
        assert new is not None and new.size == 5
        proof = log.consistency_proof(old.size, new.size)
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
        assert log.entry(4) == b"five"
        assert log.checkpoint() == (data / "public" / "checkpoint").read_bytes()
