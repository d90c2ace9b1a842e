#!/usr/bin/env python3
"""apkprov's APK verifier side by side with Debian's apksigner 31.0.2, in one run.

Sections (see bench/README.md):

  (a) corpus  every APK of the apksig corpus (expected.tsv, primary min/max SDK):
              apkprov in ONE process (library loop; and one ``apkprov verify --json
              f1 f2 ...``) vs apksigner run once per APK (a sample, extrapolated).
  (b) small   one APK, one process each: ``apkprov verify`` vs ``apksigner verify``
              (median of --repeat runs).
  (c) large   a ~88 MiB APK (bench/make_large_apk.py): apkprov vs apksigner wall time,
              next to the floors measured in the same run: one SHA-256 pass over the
              file, inflating every deflated entry, and v1's per-entry digests.
  (d) memory  peak RSS of each process (wait4 rusage of exactly that child).

Prints a table and writes JSON to bench/out/. Works without apkprov's verifier (the
reference side is still measured, the apkprov columns say why they are empty).

    python bench/verify_bench.py                 # default: sample 40, repeat 5
    python bench/verify_bench.py --all           # apksigner on every corpus APK
    python bench/verify_bench.py --quick         # smoke run: small sample, small APK
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import mmap
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
for _p in (REPO_ROOT / "tests", BENCH_DIR, REPO_ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import make_large_apk  # noqa: E402
import reference  # noqa: E402  (tests/reference.py)

SMALL_APK = "original.apk"


# ------------------------------------------------------------------ processes


@dataclass
class Run:
    """One measured child process."""

    argv: list[str]
    wall: float
    rc: int
    max_rss_kb: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)


def run_measured(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900.0
) -> Run:
    """Run ``argv``; wall time and the peak RSS of exactly this child (wait4 rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            argv=list(argv),
            wall=wall,
            rc=proc.returncode,
            max_rss_kb=int(usage.ru_maxrss),  # KiB on Linux
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def apkprov_status() -> tuple[list[str] | None, str | None]:
    """(argv prefix for the apkprov CLI, None) or (None, why apkprov cannot run)."""
    try:
        from provenance.apk.verify import verify_apk  # noqa: F401
    except Exception as exc:  # any import failure means: not ready yet
        return None, (
            f"apkprov's verifier is not importable yet "
            f"({type(exc).__name__}: {exc}); measuring the reference side only"
        )
    script = Path(sys.executable).parent / "apkprov"
    if script.is_file():
        return [str(script)], None
    found = shutil.which("apkprov")
    if found:
        return [found], None
    return [
        sys.executable,
        "-c",
        "import sys; from provenance.cli import main; sys.exit(main())",
    ], (None)


# ------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class CorpusRow:
    file: str
    expected: str
    min_sdk: int | None
    max_sdk: int | None
    v4_file: str | None


def corpus_rows() -> list[CorpusRow]:
    """Every APK row of expected.tsv with its primary configuration."""
    path = reference.corpus_dir() / "expected.tsv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        CorpusRow(
            file=r["file"],
            expected=r["expected"],
            min_sdk=int(r["min_sdk"]) if r["min_sdk"] else None,
            max_sdk=int(r["max_sdk"]) if r["max_sdk"] else None,
            v4_file=r["v4_file"] or None,
        )
        for r in rows
        if r["file"].endswith(".apk") and not r["expected"].startswith("n/a")
    ]


def _expected_outcome(expected: str) -> str:
    return "error" if expected.startswith("error") else expected  # verifies|fails|error


def child_corpus(jobs_file: str) -> int:
    """(child process) Verify every row in one process; print a JSON summary."""
    t0 = time.perf_counter()
    from provenance.apk.verify import verify_apk
    from provenance.errors import ApkFormatError, InputError

    t_import = time.perf_counter() - t0
    rows = [CorpusRow(**r) for r in json.loads(Path(jobs_file).read_text())]
    base = reference.corpus_dir()
    outcomes: dict[str, int] = {"verifies": 0, "fails": 0, "error": 0, "crash": 0}
    agree = 0
    crashes: list[str] = []
    per_apk: list[float] = []
    t1 = time.perf_counter()
    for row in rows:
        s = time.perf_counter()
        try:
            res = verify_apk(
                str(base / row.file),
                min_sdk=row.min_sdk,
                max_sdk=row.max_sdk,
                v4_signature_file=str(base / row.v4_file) if row.v4_file else None,
            )
            outcome = "verifies" if res.verified else "fails"
        except (ApkFormatError, InputError):
            outcome = "error"
        except Exception as exc:  # a bug in the verifier: count it, keep going
            outcome = "crash"
            crashes.append(f"{row.file}: {type(exc).__name__}: {exc}"[:300])
        per_apk.append(time.perf_counter() - s)
        outcomes[outcome] += 1
        agree += outcome == _expected_outcome(row.expected)
    loop = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "apks": len(rows),
                "import_seconds": t_import,
                "loop_seconds": loop,
                "per_apk_median_ms": statistics.median(per_apk) * 1000 if per_apk else 0,
                "per_apk_max_ms": max(per_apk) * 1000 if per_apk else 0,
                "outcomes": outcomes,
                "agree_with_expected": agree,
                "crashes": crashes[:20],
            }
        )
    )
    return 0


def bench_corpus(
    ns: argparse.Namespace, apkprov: list[str] | None, log: Callable[[str], None]
) -> dict[str, Any]:
    rows = corpus_rows()
    if ns.corpus_limit:
        rows = rows[: ns.corpus_limit]
    base = reference.corpus_dir()
    out: dict[str, Any] = {"apks": len(rows)}

    if apkprov is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump([asdict(r) for r in rows], fh)
            jobs = fh.name
        try:
            log(f"(a) apkprov: library loop over {len(rows)} APKs in one process")
            run = run_measured([sys.executable, __file__, "--child-corpus", jobs], env=child_env())
        finally:
            os.unlink(jobs)
        lib: dict[str, Any] = {"wall": run.wall, "rc": run.rc, "max_rss_kb": run.max_rss_kb}
        if run.rc == 0:
            try:
                lib.update(json.loads(run.stdout.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                lib["error"] = "unparsable child output"
        else:
            lib["error"] = run.stderr.strip()[-2000:]
        out["apkprov_library"] = lib

        files = [str(base / r.file) for r in rows]
        log(f"(a) apkprov: one `apkprov verify --json` process over {len(files)} APKs")
        run = run_measured([*apkprov, "verify", "--json", *files], env=child_env())
        cli: dict[str, Any] = {
            "wall": run.wall,
            "rc": run.rc,
            "max_rss_kb": run.max_rss_kb,
            "config": "no --min/--max-sdk-version (one set of flags for all files)",
        }
        cli["results"] = count_json_results(run.stdout)
        if cli["results"] != len(files):
            cli["stderr_tail"] = run.stderr.strip()[-1000:]
        out["apkprov_cli"] = cli

    if reference.available():
        sample = rows if ns.all else _spread(rows, ns.sample)
        log(f"(a) apksigner: {len(sample)} of {len(rows)} APKs, one JVM each")
        times: list[float] = []
        agree = 0
        for row in sample:
            res = reference.verify(
                base / row.file,
                min_sdk=row.min_sdk,
                max_sdk=row.max_sdk,
                v4_signature_file=base / row.v4_file if row.v4_file else None,
            )
            times.append(res.seconds)
            outcome = "error" if res.is_format_error else ("verifies" if res.ok else "fails")
            agree += outcome == _expected_outcome(row.expected)
        mean = statistics.fmean(times)
        out["apksigner"] = {
            "measured_apks": len(sample),
            "measured_seconds": sum(times),
            "per_apk_median": statistics.median(times),
            "per_apk_mean": mean,
            "per_apk_max": max(times),
            "estimated_total": mean * len(rows) if not ns.all else sum(times),
            "extrapolated": not ns.all,
            "agree_with_expected": agree,
        }
    return out


def count_json_results(stdout: str) -> int | None:
    """Results in ``apkprov verify --json`` output: a JSON list, or one object per line."""
    try:
        parsed = json.loads(stdout)
    except ValueError:
        parsed = None
    else:
        if isinstance(parsed, list):
            return len(parsed)
        if isinstance(parsed, dict):
            inner = parsed.get("results")
            return len(inner) if isinstance(inner, list) else 1
        return None
    count = 0
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                return None
        except ValueError:
            return None
        count += 1
    return count


def _spread(rows: Sequence[CorpusRow], n: int) -> list[CorpusRow]:
    """n rows evenly spread over the list (deterministic)."""
    if n >= len(rows):
        return list(rows)
    return [rows[i * len(rows) // n] for i in range(n)]


# ------------------------------------------------------------------ single APKs


def _medians(runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "median": statistics.median(r.wall for r in runs),
        "min": min(r.wall for r in runs),
        "runs": len(runs),
        "rc": sorted({r.rc for r in runs}),
        "max_rss_kb": max(r.max_rss_kb for r in runs),
    }


def bench_small(
    ns: argparse.Namespace, apkprov: list[str] | None, log: Callable[[str], None]
) -> dict[str, Any]:
    apk = reference.corpus_dir() / SMALL_APK
    out: dict[str, Any] = {"apk": SMALL_APK, "bytes": apk.stat().st_size}
    log(f"(b) {SMALL_APK}: {ns.repeat} runs of each process")
    if apkprov is not None:
        runs = [
            run_measured([*apkprov, "verify", str(apk)], env=child_env()) for _ in range(ns.repeat)
        ]
        out["apkprov"] = _medians(runs)
        runs = [
            run_measured([sys.executable, "-c", "import provenance.apk.verify"], env=child_env())
            for _ in range(ns.repeat)
        ]
        out["apkprov_import_only"] = _medians(runs)
    if reference.available():
        argv = [*reference.command(), *reference.verify_args([apk])]
        out["apksigner"] = _medians([run_measured(argv) for _ in range(ns.repeat)])
        stock = shutil.which("apksigner")
        if stock:  # Debian's own launcher script, without BouncyCastle
            runs = [run_measured([stock, "verify", "-v", str(apk)]) for _ in range(ns.repeat)]
            out["apksigner_stock_script"] = _medians(runs)
    return out


def sha256_pass(path: Path) -> float:
    """Seconds for one SHA-256 pass over the whole file (hashlib over mmap)."""
    start = time.perf_counter()
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        hashlib.sha256(mm).digest()
    return time.perf_counter() - start


def _entry_spans(path: Path) -> list[tuple[int, int, int, int]]:
    """(data offset, compressed size, method, uncompressed size) for each entry."""
    import struct
    import zipfile

    spans = []
    with zipfile.ZipFile(path) as zf, path.open("rb") as fh:
        for info in zf.infolist():
            fh.seek(info.header_offset)
            header = fh.read(30)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            offset = info.header_offset + 30 + name_len + extra_len
            spans.append((offset, info.compress_size, info.compress_type, info.file_size))
    return spans


def inflate_all(path: Path, *, digest: bool = False) -> float:
    """Seconds to inflate every deflated entry (and, with digest, SHA-256 every entry)."""
    spans = _entry_spans(path)
    start = time.perf_counter()
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            for offset, csize, method, _usize in spans:
                raw = view[offset : offset + csize]
                if method == 8:
                    d = zlib.decompressobj(-15)
                    h = hashlib.sha256() if digest else None
                    pos = 0
                    while pos < csize:  # 1 MiB at a time: bounded memory, like a verifier
                        chunk = d.decompress(raw[pos : pos + (1 << 20)])
                        if h is not None:
                            h.update(chunk)
                        pos += 1 << 20
                    tail = d.flush()
                    if h is not None:
                        h.update(tail)
                elif digest:
                    hashlib.sha256(raw).digest()
                del raw
        finally:
            view.release()
    return time.perf_counter() - start


def bench_large(
    ns: argparse.Namespace, apkprov: list[str] | None, log: Callable[[str], None]
) -> dict[str, Any]:
    params = make_large_apk.Params(ns.size_mb, ns.files, ns.seed)
    log(f"(c) large APK: {params.default_name()} (built once, then cached)")
    try:
        apk = make_large_apk.build(params, quiet=False)
    except (RuntimeError, reference.ApksignerError) as exc:
        return {"error": f"cannot build the large APK: {exc}"}
    meta = json.loads(apk.with_name(apk.name + ".json").read_text())
    out: dict[str, Any] = {
        "apk": str(apk.relative_to(REPO_ROOT)) if apk.is_relative_to(REPO_ROOT) else str(apk),
        "bytes": apk.stat().st_size,
        "composition": meta.get("composition"),
    }
    apk.read_bytes()  # warm the page cache so every contender reads from memory
    r = ns.large_repeat
    log(f"(c) floors: SHA-256 pass, inflate, v1 entry digests ({r} runs each)")
    out["floor_sha256_pass"] = statistics.median(sha256_pass(apk) for _ in range(r))
    out["floor_inflate_all"] = statistics.median(inflate_all(apk) for _ in range(r))
    out["floor_v1_entry_digests"] = statistics.median(
        inflate_all(apk, digest=True) for _ in range(r)
    )
    if apkprov is not None:
        log(f"(c) apkprov verify: {r} runs")
        runs = [run_measured([*apkprov, "verify", str(apk)], env=child_env()) for _ in range(r)]
        out["apkprov"] = _medians(runs)
        if any(x.rc != 0 for x in runs):
            out["apkprov"]["stderr_tail"] = runs[-1].stderr.strip()[-1000:]
    if reference.available():
        log(f"(c) apksigner verify: {r} runs")
        argv = [*reference.command(), *reference.verify_args([apk])]
        runs = [run_measured(argv) for _ in range(r)]
        out["apksigner"] = _medians(runs)
        out["apksigner"]["output"] = reference.parse_verify_output(
            runs[-1].stdout, runs[-1].stderr, runs[-1].rc
        ).summary()
    return out


# ------------------------------------------------------------------ report


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 0.01:
        return f"{v * 1000:.2f} ms"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def _fmt_mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f} MiB"


def _ratio(ref: float | None, ours: float | None) -> str:
    if not ref or not ours:
        return "-"
    r = ref / ours
    return f"apkprov {r:.1f}x faster" if r >= 1 else f"apkprov {1 / r:.1f}x slower"


def _get(d: dict[str, Any], *keys: str) -> Any:
    cur: Any = d
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _rc_check(section: dict[str, Any], who: str, want: int = 0) -> str:
    rcs = _get(section, who, "rc")
    if rcs is None:
        return ""
    return f"{who} ok" if rcs == [want] else f"{who} exit {rcs} (want {want}): INVALID"


def _corpus_checks(c: dict[str, Any]) -> tuple[str, str, str]:
    n = c.get("apks")
    lib = c.get("apkprov_library") or {}
    if lib.get("error"):
        lib_check = "apkprov child failed: INVALID"
    elif "outcomes" in lib:
        crashes = lib["outcomes"].get("crash", 0)
        lib_check = f"agree {lib['agree_with_expected']}/{n}" + (
            f", {crashes} crashed: INVALID" if crashes else ""
        )
    else:
        lib_check = ""
    cli = c.get("apkprov_cli") or {}
    cli_check = ""
    if cli:
        got = cli.get("results")
        cli_check = f"exit {cli['rc']}, {got if got is not None else 'no'} JSON results"
        # Exit 2 is right when some corpus APKs are malformed (the library raises).
        if got != n:
            cli_check += ": INVALID"
    ref = c.get("apksigner") or {}
    ref_check = (
        f"apksigner agree {ref['agree_with_expected']}/{ref['measured_apks']}" if ref else ""
    )
    return lib_check, cli_check, ref_check


def report(results: dict[str, Any]) -> str:
    """The side-by-side table; a check column flags runs whose answers were wrong."""
    rows: list[tuple[str, ...]] = []
    c = results.get("corpus") or {}
    if c:
        n = c.get("apks")
        ref_total = _get(c, "apksigner", "estimated_total")
        ref_cell = _fmt_s(ref_total) + (" (est.)" if _get(c, "apksigner", "extrapolated") else "")
        lib_wall = _get(c, "apkprov_library", "wall")
        cli_wall = _get(c, "apkprov_cli", "wall")
        lib_check, cli_check, ref_check = _corpus_checks(c)
        rows.append(
            (
                f"(a) corpus, {n} APKs: library loop, 1 process",
                _fmt_s(lib_wall),
                ref_cell,
                _ratio(ref_total, lib_wall),
                lib_check,
            )
        )
        rows.append(
            (
                f"(a) corpus, {n} APKs: `apkprov verify --json` x1",
                _fmt_s(cli_wall),
                ref_cell,
                _ratio(ref_total, cli_wall),
                cli_check,
            )
        )
        loop = _get(c, "apkprov_library", "loop_seconds")
        per_ref = _get(c, "apksigner", "per_apk_median")
        per_ours = loop / n if loop is not None and n else None
        rows.append(
            (
                "(a) per APK: apkprov in-loop mean, apksigner median",
                _fmt_s(per_ours),
                _fmt_s(per_ref),
                _ratio(per_ref, per_ours),
                ref_check,
            )
        )
    s = results.get("small") or {}
    if s:
        ours, ref = _get(s, "apkprov", "median"), _get(s, "apksigner", "median")
        check = "; ".join(x for x in (_rc_check(s, "apkprov"), _rc_check(s, "apksigner")) if x)
        rows.append(
            (
                f"(b) {s.get('apk')}: one process, median",
                _fmt_s(ours),
                _fmt_s(ref),
                _ratio(ref, ours),
                check,
            )
        )
        imp = _get(s, "apkprov_import_only", "median")
        if imp is not None:
            rows.append(("(b)   python + import provenance.apk.verify only", _fmt_s(imp)))
        stock = _get(s, "apksigner_stock_script", "median")
        if stock is not None:
            rows.append(("(b)   /usr/bin/apksigner (Debian script, no BC)", "", _fmt_s(stock)))
    lg = results.get("large") or {}
    if lg.get("error"):
        rows.append(("(c) large APK", lg["error"]))
    elif lg:
        mib = lg["bytes"] / 2**20
        ours, ref = _get(lg, "apkprov", "median"), _get(lg, "apksigner", "median")
        check = "; ".join(x for x in (_rc_check(lg, "apkprov"), _rc_check(lg, "apksigner")) if x)
        rows.append(
            (
                f"(c) large APK {mib:.0f} MiB v1+v2+v3, median",
                _fmt_s(ours),
                _fmt_s(ref),
                _ratio(ref, ours),
                check,
            )
        )
        floors = (
            ("one SHA-256 pass over the file", "floor_sha256_pass"),
            ("inflate all deflated entries", "floor_inflate_all"),
            ("inflate + SHA-256 every entry (v1 work)", "floor_v1_entry_digests"),
        )
        for label, key in floors:
            floor = lg.get(key)
            rel = f"apkprov = {ours / floor:.1f}x this" if ours and floor else ""
            rows.append((f"(c)   floor: {label}", f"[{_fmt_s(floor)}]", "", rel))
        rows.append(
            (
                "(d) large APK: peak RSS",
                _fmt_mb(_get(lg, "apkprov", "max_rss_kb")),
                _fmt_mb(_get(lg, "apksigner", "max_rss_kb")),
            )
        )
    if s:
        rows.append(
            (
                "(d) small APK: peak RSS",
                _fmt_mb(_get(s, "apkprov", "max_rss_kb")),
                _fmt_mb(_get(s, "apksigner", "max_rss_kb")),
            )
        )
    header = ("case", "apkprov", "apksigner", "ratio", "check")
    table = [header, *(tuple(r) + ("",) * (len(header) - len(r)) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = list(results.get("notes") or [])
    if lg and not lg.get("error"):
        notes.append("[floors] are Python hashlib/zlib in the bench process, page cache warm")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    if reference.available():
        env["apksigner"] = reference.version()
        java = subprocess.run(
            [reference.command()[0], "-version"], capture_output=True, text=True, check=False
        )
        env["java"] = (java.stderr.splitlines() or [""])[0]
    return env


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="apkprov vs apksigner verification benchmark")
    ap.add_argument("--sample", type=int, default=40, help="apksigner corpus sample (40)")
    ap.add_argument("--all", action="store_true", help="run apksigner on every corpus APK")
    ap.add_argument("--repeat", type=int, default=5, help="runs per small-APK process (5)")
    ap.add_argument("--large-repeat", type=int, default=3, help="runs for the large APK (3)")
    ap.add_argument("--size-mb", type=int, default=88, help="large APK size in MiB (88)")
    ap.add_argument("--files", type=int, default=3000, help="large APK entries (3000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus-limit", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument(
        "--only",
        choices=("corpus", "small", "large"),
        action="append",
        help="run only these sections (repeatable)",
    )
    ap.add_argument("--no-apkprov", action="store_true", help="measure the reference only")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: sample 5, repeat 2, 8 MiB APK with 400 entries",
    )
    ap.add_argument("--json-out", type=Path, help="JSON path (default bench/out/...)")
    ap.add_argument("--child-corpus", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child_corpus:
        return child_corpus(ns.child_corpus)
    if ns.quick:
        ns.sample, ns.repeat, ns.large_repeat, ns.size_mb, ns.files = 5, 2, 1, 8, 400

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not (reference.corpus_dir() / "expected.tsv").is_file():
        log(f"verify_bench: corpus not found at {reference.corpus_dir()} (set APKPROV_SHARED)")
        return 2
    notes: list[str] = []
    apkprov: list[str] | None = None
    if ns.no_apkprov:
        notes.append("apkprov not measured (--no-apkprov)")
    else:
        apkprov, why = apkprov_status()
        if why:
            log(f"verify_bench: {why}")
            notes.append(why)
    if not reference.available():
        why = f"apksigner not measured: {reference.unavailable_reason()}"
        log(f"verify_bench: {why}")
        notes.append(why)
    if apkprov is None and not reference.available():
        log("verify_bench: nothing to measure")
        return 2
    notes.append(
        "apksigner = Debian's 31.0.2 run as java -cp apksigner+apksig+bcprov "
        "(-Xmx1024M as /usr/bin/apksigner), one JVM per APK"
    )

    sections = set(ns.only or ("corpus", "small", "large"))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": _environment(),
        "settings": {k: v for k, v in vars(ns).items() if k != "child_corpus"},
        "notes": notes,
    }
    t0 = time.perf_counter()
    if "corpus" in sections:
        results["corpus"] = bench_corpus(ns, apkprov, log)
    if "small" in sections:
        results["small"] = bench_small(ns, apkprov, log)
    if "large" in sections:
        results["large"] = bench_large(ns, apkprov, log)
    results["bench_seconds"] = time.perf_counter() - t0

    print(report(results))
    out = ns.json_out or OUT_DIR / f"verify_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=str) + "\n"
    out.write_text(text)
    if ns.json_out is None:
        (OUT_DIR / "verify_bench-latest.json").write_text(text)
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
