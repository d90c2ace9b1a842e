#!/usr/bin/env python3
"""apkprov's APK signer side by side with Debian's apksigner 31.0.2.

Signs the large APK of the verify benchmark (``bench/make_large_apk.py``, ~88 MiB,
3000 entries; built into ``bench/out/`` if missing) with the same key (rsa-2048 of the
apksig corpus) and apksigner's default schemes (v1, v2, v3 and v4 with ``.idsig``):

* ``apkprov sign`` as one process (interpreter start-up and imports included), and the
  library call alone (``sign_apk`` in this process, file in the page cache);
* ``apksigner sign`` as one JVM process (``tests/reference.py``).

Median of ``--repeat`` runs each, peak RSS of each child, and the ratio. Both outputs
are checked with apkprov's verifier. Writes JSON to ``bench/out/sign_bench-latest.json``.

    python bench/sign_bench.py               # 88 MiB APK, 5 runs each
    python bench/sign_bench.py --quick       # 8 MiB APK, 2 runs each (smoke run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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
from verify_bench import apkprov_status, child_env, run_measured  # noqa: E402


def _key_args(corpus: Path) -> list[str]:
    return ["--key", str(corpus / "rsa-2048.pk8"), "--cert", str(corpus / "rsa-2048.x509.pem")]


def bench_apkprov_cli(apk: Path, repeat: int, tmp: Path) -> dict[str, Any]:
    """``apkprov sign`` processes: median wall time and peak RSS."""
    prefix, why = apkprov_status()
    if prefix is None:
        return {"error": why}
    corpus = reference.corpus_dir()
    runs = []
    for i in range(repeat):
        out = tmp / f"apkprov-{i}.apk"
        r = run_measured(
            [*prefix, "sign", *_key_args(corpus), "--out", str(out), str(apk)], env=child_env()
        )
        if r.rc != 0:
            return {"error": f"apkprov sign failed (rc={r.rc}): {r.stderr.strip()[:300]}"}
        runs.append(r)
    return {
        "median_s": statistics.median(r.wall for r in runs),
        "runs_s": [round(r.wall, 3) for r in runs],
        "max_rss_mb": max(r.max_rss_kb for r in runs) / 1024,
        "output": str(tmp / "apkprov-0.apk"),
    }


def bench_apkprov_library(apk: Path, repeat: int, tmp: Path) -> dict[str, Any]:
    """``sign_apk`` in this process (no start-up), keys loaded once."""
    try:
        from provenance.apk.sign import sign_apk
        from provenance.cli.sign import KeyLoader
    except Exception as exc:  # not importable yet: report, do not crash
        return {"error": f"{type(exc).__name__}: {exc}"}
    corpus = reference.corpus_dir()
    loader = KeyLoader()
    key = loader.load(
        {"key": str(corpus / "rsa-2048.pk8"), "cert": str(corpus / "rsa-2048.x509.pem")}, "s"
    )
    loader.close()
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        sign_apk(apk, tmp / f"lib-{i}.apk", [key])
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "runs_s": [round(t, 3) for t in times]}


def bench_apksigner(apk: Path, repeat: int, tmp: Path) -> dict[str, Any]:
    """``apksigner sign`` JVM processes with the same key and default schemes."""
    if not reference.available():
        return {"error": reference.unavailable_reason()}
    corpus = reference.corpus_dir()
    runs = []
    for i in range(repeat):
        out = tmp / f"apksigner-{i}.apk"
        argv = [*reference.command(), "sign", *_key_args(corpus), "--out", str(out), str(apk)]
        r = run_measured(argv)
        if r.rc != 0:
            return {"error": f"apksigner failed (rc={r.rc}): {r.stderr.strip()[:300]}"}
        runs.append(r)
    return {
        "median_s": statistics.median(r.wall for r in runs),
        "runs_s": [round(r.wall, 3) for r in runs],
        "max_rss_mb": max(r.max_rss_kb for r in runs) / 1024,
        "output": str(tmp / "apksigner-0.apk"),
    }


def _verified(path: str | None) -> str:
    if not path:
        return "-"
    try:
        from provenance.apk.verify import verify_apk

        idsig = Path(path + ".idsig")
        res = verify_apk(path, v4_signature_file=idsig if idsig.is_file() else None)
    except Exception as exc:
        return f"error: {exc}"
    return ",".join(res.verified_schemes) if res.verified else "DOES NOT VERIFY"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per tool (default 5)")
    ap.add_argument("--quick", action="store_true", help="8 MiB APK, 2 runs (smoke run)")
    ap.add_argument("--apk", type=Path, help="sign this APK instead of the generated one")
    ns = ap.parse_args(argv)
    repeat = 2 if ns.quick else max(1, ns.repeat)
    if ns.apk is not None:
        apk = ns.apk
    else:
        params = (
            make_large_apk.Params(size_mb=8, files=400, seed=1)
            if ns.quick
            else make_large_apk.Params(size_mb=88, files=3000, seed=1)
        )
        try:
            apk = make_large_apk.build(params, quiet=True)
        except (RuntimeError, reference.ApksignerError) as exc:
            print(f"sign_bench: cannot build the large APK: {exc}", file=sys.stderr)
            return 1
    size = apk.stat().st_size
    print(f"APK: {apk} ({size / 2**20:.1f} MiB); {repeat} run(s) per tool", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="sign-bench-") as tmp_name:
        tmp = Path(tmp_name)
        apksigner = bench_apksigner(apk, repeat, tmp)
        cli = bench_apkprov_cli(apk, repeat, tmp)
        lib = bench_apkprov_library(apk, repeat, tmp)
        apksigner["verifies"] = _verified(apksigner.get("output"))
        cli["verifies"] = _verified(cli.get("output"))
    ratio = None
    if "median_s" in apksigner and "median_s" in cli:
        ratio = apksigner["median_s"] / cli["median_s"]
    rows = [
        ("apksigner sign (JVM)", apksigner),
        ("apkprov sign (CLI)", cli),
        ("apkprov sign_apk (library)", lib),
    ]
    print(f"{'tool':30} {'median s':>9} {'peak RSS MiB':>13}  verifies")
    for name, r in rows:
        if "error" in r:
            print(f"{name:30} {'-':>9} {'-':>13}  {r['error']}")
            continue
        rss = f"{r['max_rss_mb']:.0f}" if "max_rss_mb" in r else "-"
        print(f"{name:30} {r['median_s']:9.3f} {rss:>13}  {r.get('verifies', '')}")
    if ratio is not None:
        print(f"apkprov sign is {ratio:.2f}x as fast as apksigner (target >= 2x)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "apk": str(apk),
        "size": size,
        "repeat": repeat,
        "apksigner": apksigner,
        "apkprov_cli": cli,
        "apkprov_library": lib,
        "ratio": ratio,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for name in ("sign_bench-latest.json", f"sign_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"):
        (OUT_DIR / name).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
