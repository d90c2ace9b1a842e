"""Crash safety: ``kill -9`` appenders at random moments, over and over.

Each round starts two ``apkprov log append --json`` processes on the same log, feeds
them entries (some shared between them, to race the dedup index) and kills each at
a random moment: while starting, sequencing, integrating or publishing. Meanwhile
a watcher keeps every ``checkpoint`` the log ever published. At the end one more
``append`` without input integrates what the killed ones left pending, and then:

* every acknowledged entry (its index was printed before the kill) is in the log
  at that index, and no entry is in the log twice;
* every published checkpoint is signed, and consistent with every later one
  (proven against the final tree; same size means same root);
* the whole log verifies from its public files.

Most kills wait until the process has acknowledged entries, so they land while it
sequences, integrates or publishes; some land during start-up. The default run is
bounded for CI; the ``slow`` variant (``-m slow`` or ``APKPROV_SLOW=1``) kills 60
times per backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pg import StateBackend

from provenance.log.checkpoint import Checkpoint, open_checkpoint
from provenance.log.log import Log, verify_log
from provenance.log.merkle import consistency_proof, verify_consistency
from provenance.log.tiles import TILE_WIDTH, Tile, TileHashReader

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Crashes:
    data: Path
    postgres: str | None
    rng: random.Random
    acked: dict[bytes, int] = field(default_factory=dict)
    notes: set[bytes] = field(default_factory=set)
    kills: int = 0
    clean_exits: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _working: list[threading.Event] = field(default_factory=list)

    def command(self, *extra: str) -> list[str]:
        cmd = [sys.executable, "-m", "provenance", "log", "append", "--dir", str(self.data)]
        if self.postgres:
            cmd += ["--postgres", self.postgres]
        return [*cmd, *extra]

    def ack(self, entry: bytes, index: int) -> None:
        with self.lock:
            if self.acked.setdefault(entry, index) != index:
                self.problems.append(f"{entry!r} acknowledged at {self.acked[entry]} and {index}")

    def round(self, number: int) -> None:
        procs = []
        threads = []
        shared = [b"shared-%d-%d" % (number, i) for i in range(5000)]
        for k in range(2):
            entries = [
                b"r%d-p%d-%d" % (number, k, i) for i in range(self.rng.randrange(500, 60000))
            ]
            for i, s in enumerate(shared[: len(entries) // 10]):
                entries.insert(i * 10, s)
            proc = subprocess.Popen(
                self.command(
                    "--json",
                    "--checkpoint-interval",
                    str(self.rng.choice([0.01, 0.05, 0.2])),
                    "--checkpoint-entries",
                    str(self.rng.choice([100, 1000, 5000])),
                    "--batch",
                    str(self.rng.choice([16, 256, 1024])),
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            procs.append(proc)
            working = threading.Event()
            self._working.append(working)
            threads.append(threading.Thread(target=self._feed, args=(proc, entries), daemon=True))
            threads.append(
                threading.Thread(target=self._read, args=(proc, entries, working), daemon=True)
            )
        for t in threads:
            t.start()
        for proc, working in sorted(
            zip(procs, self._working, strict=True), key=lambda _: self.rng.random()
        ):
            if self.rng.random() < 0.2:
                delay = self.rng.uniform(0.0, 0.4)  # while starting up, maybe
            else:
                working.wait(timeout=20)  # once it has acknowledged something
                delay = self.rng.uniform(0.0, 0.6)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                self.kills += 1
            else:
                self.clean_exits += 1
            proc.wait()
        self._working.clear()
        for t in threads:
            t.join(timeout=30)

    def _feed(self, proc: subprocess.Popen[bytes], entries: list[bytes]) -> None:
        assert proc.stdin is not None
        try:
            for i in range(0, len(entries), 200):
                proc.stdin.write(b"".join(e + b"\n" for e in entries[i : i + 200]))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _read(
        self, proc: subprocess.Popen[bytes], entries: list[bytes], working: threading.Event
    ) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.endswith(b"\n"):
                break  # cut off by the kill: not acknowledged
            result = json.loads(line)
            self.ack(entries[result["line"] - 1], result["index"])
            working.set()
        working.set()

    def watch(self, stop: threading.Event) -> None:
        path = self.data / "public" / "checkpoint"
        while not stop.is_set():
            with contextlib.suppress(OSError):
                self.notes.add(path.read_bytes())
            stop.wait(0.005)


def run(tmp_path: Path, kind: str, rounds: int, seed: int) -> Crashes:
    postgres = StateBackend(kind, tmp_path).location if kind == "postgres" else None
    data = tmp_path / "data"
    Log.create(data, "crash.example/log", postgres=postgres).close()
    crashes = Crashes(data, postgres, random.Random(seed))
    stop = threading.Event()
    watcher = threading.Thread(target=crashes.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        for number in range(rounds):
            crashes.round(number)
    finally:
        stop.set()
        watcher.join()
    # Recovery: an append without input integrates whatever was left pending.
    done = subprocess.run(
        crashes.command(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    crashes.notes.add((data / "public" / "checkpoint").read_bytes())
    check(crashes)
    return crashes


def check(crashes: Crashes) -> None:
    assert not crashes.problems, crashes.problems[:5]
    with Log.open(crashes.data, postgres=crashes.postgres) as log:
        tree = log.tree()
        assert log.state.sequenced_size() == tree.size  # nothing left pending

        # Every acknowledged entry is at its index; no entry is there twice.
        seen: set[bytes] = set()
        at: dict[int, bytes] = {}
        wanted = {index: entry for entry, index in crashes.acked.items()}
        for n in range(-(-tree.size // TILE_WIDTH)):
            width = min(TILE_WIDTH, tree.size - n * TILE_WIDTH)
            for i, entry in enumerate(log.tiles.read_entries(Tile(0, n, width))):
                assert entry not in seen, f"{entry!r} is in the log twice"
                seen.add(entry)
                if n * TILE_WIDTH + i in wanted:
                    at[n * TILE_WIDTH + i] = entry
        lost = {i: e for i, e in wanted.items() if at.get(i) != e}
        assert not lost, f"{len(lost)} acknowledged entries lost, e.g. {list(lost.items())[:3]}"

        # Every published checkpoint is consistent with every later one.
        checkpoints: dict[int, Checkpoint] = {}
        for note in crashes.notes:
            cp = open_checkpoint(note, [log.verifier], origin=log.origin).checkpoint
            other = checkpoints.setdefault(cp.size, cp)
            assert other.root_hash == cp.root_hash, f"two roots for size {cp.size}"
        sizes = sorted(checkpoints)
        assert sizes[-1] == tree.size
        final = TileHashReader(tree.size, tree.root_hash, log.tiles)
        for i, size in enumerate(sizes):
            old = checkpoints[size]
            later = sizes[i + 1 :] if len(sizes) <= 40 else [*sizes[i + 1 : i + 3], sizes[-1]]
            for new_size in later:
                new = checkpoints[new_size]
                reader = (
                    final
                    if new_size == tree.size
                    else TileHashReader(new.size, new.root_hash, log.tiles)
                )
                if old.size == 0:
                    continue  # the empty tree is a prefix of every tree
                proof = consistency_proof(old.size, new.size, reader)
                verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)

        report = verify_log(log.tiles, log.verifier)
        assert report.ok, report.problems
        assert report.entries == tree.size


@pytest.mark.parametrize(("kind", "rounds"), [("sqlite", 8), ("postgres", 4)])
def test_kill_9_loses_no_acknowledged_entry(tmp_path: Path, kind: str, rounds: int) -> None:
    crashes = run(tmp_path, kind, rounds, seed=rounds)
    assert crashes.kills >= rounds  # most processes die mid-stream
    assert crashes.acked and len(crashes.notes) >= rounds


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_kill_9_many_times(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """60 kills per backend (about 30 s each); run with ``-m slow`` or APKPROV_SLOW=1."""
    if "slow" not in (request.config.option.markexpr or "") and not os.environ.get("APKPROV_SLOW"):
        pytest.skip("slow: run with -m slow or APKPROV_SLOW=1")
    seed = int(os.environ.get("APKPROV_CRASH_SEED", time.time()))
    print(f"seed {seed}")
    crashes = run(tmp_path, kind, 30, seed=seed)
    assert crashes.kills >= 30
