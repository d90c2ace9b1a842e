"""Benchmark the transparency log side by side with pymerkle's SQLite tree.

Measured in one run, at ``--entries`` (default 1,000,000):

* **durable append throughput** through :class:`~provenance.log.sequencer.Sequencer`
  with batching (group commit; SQLite WAL with ``synchronous=FULL``; tiles fsynced),
  until every entry is acknowledged, and until a signed checkpoint covers all;
  the same with PostgreSQL (``--postgres DSN``, or a throwaway durable cluster
  from Debian's ``postgresql`` when installed);
* pymerkle 6 ``SqliteTree``: ``append_entries`` in chunks of the same batch size
  (one transaction per chunk, so just as durable), and both sides one commit per
  entry for a few seconds (``append`` vs ``append_entry``);
* **inclusion proof latency** at full size, random indices: our complete
  tlog-proof@v1 (tiles read from disk, proof checked against the checkpoint) and
  the bare audit path, vs pymerkle's ``prove_inclusion``;
* **memory**: RSS at the 1,000th and at the last acknowledged append.

Usage::

    .venv/bin/python bench/log_bench.py                 # 1,000,000 entries, ~3 min
    .venv/bin/python bench/log_bench.py --entries 100000 --no-postgres
    .venv/bin/python bench/log_bench.py --quick         # smoke run, seconds

Results are printed as a table and written to ``bench/out/log_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provenance.log.log import Log  # noqa: E402
from provenance.log.merkle import inclusion_proof, leaf_hash, tree_hash  # noqa: E402
from provenance.log.proof import verify_tlog_proof  # noqa: E402
from provenance.log.store.state import Sequenced  # noqa: E402

OUT = ROOT / "bench" / "out"
ENTRY_SIZE = 128


def entry(i: int) -> bytes:
    """A distinct 128-byte entry (the size of a small signed statement digest line)."""
    head = b"apkprov bench entry %d " % i
    return head + b"." * (ENTRY_SIZE - len(head))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


# ------------------------------------------------------------------------- ours


def bench_ours(
    directory: Path, n: int, postgres: str | None, batch: int, window: int
) -> dict[str, Any]:
    """Append ``n`` entries through the sequencer with at most ``window`` in flight."""
    log = Log.create(directory, "bench.example/log", postgres=postgres)
    log.close()
    log = Log.open(directory, postgres=postgres, max_batch=batch, checkpoint_interval=1.0)
    sequencer = log.sequencer
    in_flight: deque[Future[Sequenced]] = deque()
    rss: dict[str, float] = {}
    acked = 0

    marks = {1000, 10_000, 100_000, 250_000, 500_000, 750_000}

    def settle(keep: int) -> None:
        nonlocal acked
        while len(in_flight) > keep:
            in_flight.popleft().result()
            acked += 1
            if acked in marks:
                rss[f"at_{acked}"] = rss_mib()

    start = time.perf_counter()
    for i in range(n):
        in_flight.append(sequencer.submit(entry(i)))
        if len(in_flight) >= window:
            settle(window // 2)
    settle(0)
    acked_at = time.perf_counter() - start
    rss["at_last"] = rss_mib()
    log.close()  # integrates the rest and publishes the final checkpoint
    integrated_at = time.perf_counter() - start
    rss.setdefault("at_1000", rss["at_last"])

    # One commit per entry, sequentially: what a lone client waiting on each append sees.
    log = Log.open(directory, postgres=postgres, max_delay=0.0, background=False)
    single = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        log.sequencer.append(entry(n + single))
        single += 1
    single_rate = single / (time.perf_counter() - t0)
    log.close()
    return {
        "entries": n,
        "seconds_acknowledged": acked_at,
        "seconds_checkpointed": integrated_at,
        "rate_acknowledged": n / acked_at,
        "rate_checkpointed": n / integrated_at,
        "rate_one_commit_per_entry": single_rate,
        "rss_mib_at_1000": rss["at_1000"],
        "rss_mib_at_last": rss["at_last"],
        "rss_mib": rss,
        "final_size": n + single,
    }


def bench_our_proofs(
    directory: Path, postgres: str | None, proofs: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    with Log.open(directory, postgres=postgres) as log:
        size = log.tree().size
        indices = [rng.randrange(size) for _ in range(proofs)]
        t0 = time.perf_counter()
        first = log.prove(indices[0])
        cold = time.perf_counter() - t0
        verify_tlog_proof(first, leaf_hash(log.entry(indices[0])), [log.verifier])
        full: list[float] = []
        for i in indices:
            t0 = time.perf_counter()
            log.prove(i).encode()
            full.append(time.perf_counter() - t0)
        reader = log.hash_reader(size)
        bare: list[float] = []
        for i in indices:
            t0 = time.perf_counter()
            inclusion_proof(i, size, reader)
            bare.append(time.perf_counter() - t0)
    return {
        "size": size,
        "proofs": proofs,
        "cold": cold,
        "tlog_proof_median": statistics.median(full),
        "tlog_proof_p99": percentile(full, 0.99),
        "audit_path_median": statistics.median(bare),
        "audit_path_p99": percentile(bare, 0.99),
    }


# --------------------------------------------------------------------- pymerkle


def bench_pymerkle(path: Path, n: int, batch: int, proofs: int, seed: int) -> dict[str, Any]:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    start = time.perf_counter()
    for lo in range(0, n, batch):
        tree.append_entries([entry(i) for i in range(lo, min(n, lo + batch))], chunksize=batch)
    bulk = time.perf_counter() - start
    rss_last = rss_mib()
    single = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        tree.append_entry(entry(n + single))
        single += 1
    single_rate = single / (time.perf_counter() - t0)
    size = n + single

    rng = random.Random(seed)
    indices = [rng.randrange(size) for _ in range(proofs)]
    t0 = time.perf_counter()
    tree.prove_inclusion(indices[0] + 1, size)
    cold = time.perf_counter() - t0
    times: list[float] = []
    budget = time.perf_counter() + 60.0
    for i in indices:
        t0 = time.perf_counter()
        tree.prove_inclusion(i + 1, size)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > budget:
            break
    root = tree.get_state(n)  # to compare with ours at the same size
    tree.con.close()
    return {
        "entries": n,
        "seconds_bulk": bulk,
        "rate_bulk": n / bulk,
        "rate_one_commit_per_entry": single_rate,
        "rss_mib_at_last": rss_last,
        "size": size,
        "proofs": len(times),
        "cold": cold,
        "proof_median": statistics.median(times),
        "proof_p99": percentile(times, 0.99),
        "root": root.hex(),
    }


# ----------------------------------------------------------------------- driver


def throwaway_postgres() -> tuple[str | None, Callable[[], None]]:
    """A durable PostgreSQL cluster from tests/pg.py, or None if not installed."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import pg  # type: ignore[import-not-found]
    except ImportError:
        return None, lambda: None
    bin_dir = pg.find_bin_dir()
    if bin_dir is None:
        return None, lambda: None
    server = pg.PostgresServer(bin_dir, durable=True)
    try:
        server.start()
    except Exception as e:
        print(f"cannot start PostgreSQL: {e}", file=sys.stderr)
        server.stop()
        return None, lambda: None
    return server.dsn(), server.stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--pg-entries", type=int, help="entries for PostgreSQL (default: --entries)")
    p.add_argument("--proofs", type=int, default=1000)
    p.add_argument("--batch", type=int, default=4096, help="most entries per commit")
    p.add_argument("--window", type=int, default=16384, help="appends in flight")
    p.add_argument("--postgres", metavar="DSN", help="PostgreSQL to use (default: throwaway)")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--no-pymerkle", action="store_true")
    p.add_argument("--quick", action="store_true", help="10,000 entries, 100 proofs")
    p.add_argument("--dir", type=Path, help="work directory (default: a temp dir in bench/out)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.entries, args.proofs = 10_000, 100
    pg_entries = args.pg_entries or args.entries
    OUT.mkdir(parents=True, exist_ok=True)
    work = args.dir or Path(tempfile.mkdtemp(prefix="log-bench-", dir=OUT))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "entry_bytes": ENTRY_SIZE}
    stop_pg: Callable[[], None] = lambda: None  # noqa: E731
    try:
        print(f"== ours, SQLite: {args.entries:,} entries", file=sys.stderr)
        results["sqlite"] = bench_ours(work / "sqlite", args.entries, None, args.batch, args.window)
        results["sqlite_proofs"] = bench_our_proofs(work / "sqlite", None, args.proofs, args.seed)
        if not args.no_pymerkle:
            print(f"== pymerkle SqliteTree: {args.entries:,} entries", file=sys.stderr)
            results["pymerkle"] = bench_pymerkle(
                work / "pymerkle.db", args.entries, args.batch, args.proofs, args.seed
            )
            with Log.open(work / "sqlite") as log:
                ours_root = tree_hash(args.entries, log.hash_reader()).hex()
            results["same_root"] = results["pymerkle"]["root"] == ours_root
        if not args.no_postgres:
            dsn = args.postgres
            if dsn is None:
                dsn, stop_pg = throwaway_postgres()
            if dsn is None:
                print("== PostgreSQL: not available (apt-get install postgresql)", file=sys.stderr)
            else:
                print(f"== ours, PostgreSQL: {pg_entries:,} entries", file=sys.stderr)
                results["postgres"] = bench_ours(
                    work / "pg", pg_entries, dsn, args.batch, args.window
                )
                results["postgres_proofs"] = bench_our_proofs(
                    work / "pg", dsn, args.proofs, args.seed
                )
    finally:
        stop_pg()
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(results)
    (OUT / "log_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def report(r: dict[str, Any]) -> None:
    s, sp = r["sqlite"], r["sqlite_proofs"]
    pm = r.get("pymerkle")
    out = [
        f"\nlog benchmark: {s['entries']:,} entries of {r['entry_bytes']} bytes, {r['cpus']} CPUs"
    ]
    out.append("\ndurable appends (entries/s)")
    rows = [
        ("ours, SQLite, batched: acknowledged", s["rate_acknowledged"]),
        ("ours, SQLite, batched: checkpointed", s["rate_checkpointed"]),
    ]
    if "postgres" in r:
        rows.append(("ours, PostgreSQL, batched: acknowledged", r["postgres"]["rate_acknowledged"]))
        rows.append(("ours, PostgreSQL, batched: checkpointed", r["postgres"]["rate_checkpointed"]))
    if pm:
        rows.append(("pymerkle SqliteTree, append_entries in batches", pm["rate_bulk"]))
    rows.append(("ours, SQLite, one commit per entry", s["rate_one_commit_per_entry"]))
    if pm:
        rows.append(("pymerkle, append_entry (one commit each)", pm["rate_one_commit_per_entry"]))
    out += [f"  {name:<52} {rate:>10,.0f}" for name, rate in rows]
    if pm:
        batched = s["rate_acknowledged"] / pm["rate_bulk"]
        single = s["rate_one_commit_per_entry"] / pm["rate_one_commit_per_entry"]
        out.append(
            f"  ratio ours / pymerkle: batched {batched:.2f}x, one commit each {single:.2f}x"
        )

    out.append(f"\ninclusion proofs at {sp['size']:,} entries ({sp['proofs']} random indices)")

    def line(name: str, median: float, p99: float, first: float | None = None) -> str:
        text = f"  {name:<22} median {fmt_us(median)}, p99 {fmt_us(p99)}"
        return text + (f", first {fmt_us(first)}" if first is not None else "")

    out.append(
        line("ours, tlog-proof@v1:", sp["tlog_proof_median"], sp["tlog_proof_p99"], sp["cold"])
    )
    out.append(line("ours, audit path:", sp["audit_path_median"], sp["audit_path_p99"]))
    if "postgres_proofs" in r:
        pp = r["postgres_proofs"]
        out.append(line("ours (PostgreSQL):", pp["tlog_proof_median"], pp["tlog_proof_p99"]))
    if pm:
        out.append(line("pymerkle:", pm["proof_median"], pm["proof_p99"], pm["cold"]))
        ratio = pm["proof_median"] / sp["tlog_proof_median"]
        out.append(f"  ratio pymerkle / ours (tlog-proof medians): {ratio:.0f}x")
        out.append(f"  same root as pymerkle at {s['entries']:,} entries: {r['same_root']}")
    out.append("\nmemory (RSS, MiB)")
    out.append(
        f"  ours, SQLite: {s['rss_mib_at_1000']:.0f} at the 1,000th append, "
        f"{s['rss_mib_at_last']:.0f} at the last"
    )
    out.append("    after " + ", ".join(f"{k[3:]}: {v:.0f}" for k, v in s["rss_mib"].items()))
    if "postgres" in r:
        pg = r["postgres"]
        out.append(
            f"  ours, PostgreSQL: {pg['rss_mib_at_1000']:.0f} at the 1,000th, "
            f"{pg['rss_mib_at_last']:.0f} at the last"
        )
    if pm:
        out.append(f"  pymerkle after its bulk appends: {pm['rss_mib_at_last']:.0f}")
    out.append(f"  process peak: {r['max_rss_mib']:.0f}")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
