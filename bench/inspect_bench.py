#!/usr/bin/env python3
"""apkprov's APK inspection side by side with androguard, in one run.

Sections:

  (a) corpus   every APK of both corpora (apksig, F-Droid): ``inspect_apk`` in one
               process vs androguard's ``AnalyzeAPK`` in one process; per APK the class
               set (every class defined in any DEX) and the permission set must be
               identical -- differences are listed with the APK.
  (b) typical  a typical 2-3 MB APK (the corpus's SystemWebView-repack.apk, 2.8 MB, mostly
               resources) and a generated DEX-heavy APK (1.8 MB: 6,000 classes, 48,000
               methods, 3.8 MB of DEX): each tool in a fresh process, analysis time
               (first run and warm median) and peak RSS of that process (wait4).

androguard (AGPL, pip ``androguard``) is not a project dependency: it runs in the Python
given by ``--androguard-python`` (default: this one), e.g. a separate virtualenv::

    python -m venv /tmp/ag && /tmp/ag/bin/pip install androguard==4.1.4
    .venv/bin/python bench/inspect_bench.py --androguard-python /tmp/ag/bin/python

apkprov's side inspects with signature verification (the full facts) and reports the
time without it too, since androguard does not verify signatures. Writes a table to
stdout and JSON to ``bench/out/inspect_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
for _p in (REPO_ROOT / "tests" / "inspect", REPO_ROOT / "tests", REPO_ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from corpus import shared_dir  # noqa: E402

TYPICAL = "SystemWebView-repack.apk"

_AG_WORKER = r"""
import json, sys, time, resource
from loguru import logger
logger.remove()
from androguard.misc import AnalyzeAPK
mode = sys.argv[1]
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def facts(path):
    a, d, dx = AnalyzeAPK(path)
    classes = sorted({c.get_name() for dd in d for c in dd.get_classes()})
    return classes, sorted(set(a.get_permissions()))
if mode == "corpus":
    for line in sys.stdin:
        path = line.strip()
        t = time.perf_counter()
        try:
            classes, perms = facts(path)
            row = {"file": path, "classes": classes, "permissions": perms}
        except Exception as e:
            row = {"file": path, "error": f"{type(e).__name__}: {e}"[:300]}
        row["seconds"] = time.perf_counter() - t
        print(json.dumps(row), flush=True)
else:
    path, repeat = sys.argv[2], int(sys.argv[3])
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        classes, perms = facts(path)
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "classes": len(classes), "hwm": hwm()}))
"""

_APKPROV_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
from provenance.inspect import inspect_apk
imported = time.perf_counter() - t0
path, repeat, verify = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
times = []
for _ in range(repeat):
    t = time.perf_counter()
    f = inspect_apk(path, verify=verify)
    times.append(time.perf_counter() - t)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
print(json.dumps({"times": times, "classes": f.class_count, "import": imported, "hwm": hwm()}))
"""


def _run_measured(cmd: list[str], stdin: str | None = None) -> tuple[str, float, float]:
    """Run ``cmd``; return (stdout, wall seconds, wait4's ru_maxrss in MiB).

    ru_maxrss counts the pages the child shared with this process between fork and
    exec, so the workers report their own peak (``VmHWM`` of /proc/self/status) too,
    and that is the number printed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.stdin is not None and proc.stdout is not None
    if stdin:
        proc.stdin.write(stdin)
    proc.stdin.close()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}")
    return out, wall, usage.ru_maxrss / 1024


def corpus_apks() -> list[Path]:
    base = shared_dir() / "corpus"
    return sorted([*base.glob("apksig/*.apk"), *base.glob("fdroid/apks/*.apk")])


def make_dex_heavy(path: Path) -> Path:
    """A 1.8 MB APK with 3.8 MB of DEX: a real manifest, 6,000 classes, 48,000 methods."""
    if path.exists():
        return path
    import random
    import zipfile

    from inspect_dexgen import ClassSpec, Insn, Method, build_dex, const_string, invoke

    rng = random.Random(1)
    packages = [
        "Lcom/example/app/",
        "Landroidx/core/",
        "Lcom/google/android/gms/common/",
        "Lokhttp3/",
        "Lkotlin/collections/",
        "Lcom/squareup/picasso/",
        "Lio/reactivex/",
    ]
    names = [f"{rng.choice(packages)}p{i % 50}/C{i};" for i in range(6000)]
    s = "Ljava/lang/String;"
    common = [
        ("Ljava/lang/String;", "valueOf", (s, ("I",))),
        ("Ljava/lang/StringBuilder;", "append", ("Ljava/lang/StringBuilder;", (s,))),
    ]
    rare = [
        ("Ldalvik/system/DexClassLoader;", "<init>", ("V", (s, s, s, "Ljava/lang/ClassLoader;"))),
        ("Ljava/lang/Class;", "forName", ("Ljava/lang/Class;", (s,))),
    ]
    classes = []
    for name in names:
        methods = []
        for j in range(8):
            code = []
            for _ in range(6):
                r = rng.random()
                if r < 0.5:
                    code.append(invoke(names[rng.randrange(len(names))], f"m{rng.randrange(8)}"))
                elif r < 0.8:
                    code.append(invoke(*rng.choice(common)))
                elif r < 0.995:
                    code.append(const_string(f"s{rng.randrange(20000)}"))
                else:
                    code.append(invoke(*rng.choice(rare)))
            methods.append(Method(f"m{j}", code=[*code, Insn("return-void")]))
        classes.append(ClassSpec(name, methods=methods))
    dex = build_dex(classes)
    base = shared_dir() / "corpus" / "fdroid" / "apks" / "repo__com.politedroid_6.apk"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith(".dex") or info.filename.startswith("META-INF/"):
                continue
            dst.writestr(info, src.read(info))
        dst.writestr("classes.dex", dex, compress_type=zipfile.ZIP_DEFLATED)
        for i in range(200):
            dst.writestr(f"res/drawable/img{i}.png", rng.randbytes(3000))
    return path


def section_corpus(ag_python: str) -> dict[str, Any]:
    from provenance.errors import ProvenanceError
    from provenance.inspect import inspect_apk

    apks = corpus_apks()
    ours: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for apk in apks:
        t = time.perf_counter()
        try:
            f = inspect_apk(apk)
            ours[str(apk)] = {
                "classes": sorted(f.class_names()),
                # androguard's get_permissions() lists <uses-permission> only
                "permissions": sorted({p.name for p in f.manifest.uses_permissions if not p.sdk23}),
                "seconds": time.perf_counter() - t,
            }
        except ProvenanceError as e:
            ours[str(apk)] = {"error": str(e), "seconds": time.perf_counter() - t}
    ours_total = time.perf_counter() - t_all
    out, ag_wall, _ = _run_measured(
        [ag_python, "-c", _AG_WORKER, "corpus"], "\n".join(str(a) for a in apks) + "\n"
    )
    theirs = {row["file"]: row for row in map(json.loads, out.splitlines())}
    same = 0
    differences: list[dict[str, Any]] = []
    both_failed = only_ours_failed = only_theirs_failed = 0
    for apk in apks:
        a, b = ours[str(apk)], theirs.get(str(apk), {"error": "missing"})
        if "error" in a or "error" in b:
            if "error" in a and "error" in b:
                both_failed += 1
            elif "error" in a:
                only_ours_failed += 1
                differences.append({"apk": apk.name, "apkprov": a["error"], "androguard": "ok"})
            else:
                only_theirs_failed += 1
                differences.append({"apk": apk.name, "apkprov": "ok", "androguard": b["error"]})
            continue
        if a["classes"] == b["classes"] and a["permissions"] == b["permissions"]:
            same += 1
        else:
            differences.append(
                {
                    "apk": apk.name,
                    "classes_only_apkprov": sorted(set(a["classes"]) - set(b["classes"]))[:5],
                    "classes_only_androguard": sorted(set(b["classes"]) - set(a["classes"]))[:5],
                    "permissions_only_apkprov": sorted(
                        set(a["permissions"]) - set(b["permissions"])
                    ),
                    "permissions_only_androguard": sorted(
                        set(b["permissions"]) - set(a["permissions"])
                    ),
                }
            )
    ag_total = sum(r["seconds"] for r in theirs.values())
    return {
        "apks": len(apks),
        "identical_classes_and_permissions": same,
        "both_rejected": both_failed,
        "rejected_only_by_apkprov": only_ours_failed,
        "rejected_only_by_androguard": only_theirs_failed,
        "differences": differences,
        "apkprov_seconds": ours_total,
        "androguard_seconds": ag_total,
        "androguard_process_wall": ag_wall,
        "ratio": ag_total / ours_total if ours_total else None,
    }


def section_typical(ag_python: str, apk: Path, repeat: int) -> dict[str, Any]:
    def ours(verify: bool) -> dict[str, Any]:
        out, wall, _rss = _run_measured(
            [sys.executable, "-c", _APKPROV_WORKER, str(apk), str(repeat), "1" if verify else "0"]
        )
        r = json.loads(out)
        return {
            "first": r["times"][0],
            "warm_median": statistics.median(r["times"][1:] or r["times"]),
            "import": r["import"],
            "process_wall": wall,
            "peak_rss_mib": r["hwm"],
            "classes": r["classes"],
        }

    full = ours(True)
    noverify = ours(False)
    out, wall, _rss = _run_measured([ag_python, "-c", _AG_WORKER, "one", str(apk), str(repeat)])
    r = json.loads(out)
    ag = {
        "first": r["times"][0],
        "warm_median": statistics.median(r["times"][1:] or r["times"]),
        "process_wall": wall,
        "peak_rss_mib": r["hwm"],
        "classes": r["classes"],
    }
    return {
        "apk": apk.name,
        "size": apk.stat().st_size,
        "apkprov": full,
        "apkprov_no_verify": noverify,
        "androguard": ag,
        "ratio_first": ag["first"] / full["first"],
        "ratio_warm": ag["warm_median"] / full["warm_median"],
        "ratio_warm_no_verify": ag["warm_median"] / noverify["warm_median"],
        "ratio_process": ag["process_wall"] / full["process_wall"],
    }


def _ag_ok(python: str) -> str | None:
    try:
        subprocess.run(
            [python, "-c", "import androguard.misc, loguru"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"androguard not importable with {python}: {e}"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--androguard-python", default=sys.executable, metavar="PYTHON")
    p.add_argument("--repeat", type=int, default=5, help="runs per tool on the typical APKs")
    p.add_argument("--quick", action="store_true", help="typical APKs only, 3 runs")
    args = p.parse_args()
    why = _ag_ok(args.androguard_python)
    if why:
        print(f"inspect_bench: {why}", file=sys.stderr)
        return 2
    repeat = 3 if args.quick else args.repeat
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    typical = shared_dir() / "corpus" / "fdroid" / "apks" / TYPICAL
    heavy = make_dex_heavy(OUT_DIR / "dex-heavy-6000c.apk")
    result["typical"] = [
        section_typical(args.androguard_python, a, repeat) for a in (typical, heavy)
    ]
    if not args.quick:
        result["corpus"] = section_corpus(args.androguard_python)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "inspect_bench.json").write_text(json.dumps(result, indent=1))
    _print(result)
    return 0


def _print(r: dict[str, Any]) -> None:
    print("== (b) typical APKs: analysis seconds (fresh process each), peak RSS")
    hdr = f"{'apk':34} {'tool':22} {'first':>8} {'warm':>8} {'process':>8} {'RSS MiB':>8}"
    print(hdr)
    for t in r["typical"]:
        for key, label in (
            ("apkprov", "apkprov (verify)"),
            ("apkprov_no_verify", "apkprov (no verify)"),
            ("androguard", "androguard AnalyzeAPK"),
        ):
            x = t[key]
            print(
                f"{t['apk'][:34]:34} {label:22} {x['first']:8.3f} {x['warm_median']:8.3f} "
                f"{x['process_wall']:8.3f} {x['peak_rss_mib']:8.1f}"
            )
        print(
            f"{'':34} speed-up: first {t['ratio_first']:.1f}x, warm {t['ratio_warm']:.1f}x "
            f"(no verify {t['ratio_warm_no_verify']:.1f}x), whole process {t['ratio_process']:.1f}x"
        )
    c = r.get("corpus")
    if c:
        print("== (a) corpus: every APK of both corpora, one process per tool")
        print(
            f"{c['apks']} APKs: identical class+permission sets "
            f"{c['identical_classes_and_permissions']}, "
            f"both rejected {c['both_rejected']}, only apkprov rejected "
            f"{c['rejected_only_by_apkprov']}, only androguard rejected "
            f"{c['rejected_only_by_androguard']}"
        )
        print(
            f"apkprov {c['apkprov_seconds']:.2f} s, androguard {c['androguard_seconds']:.2f} s "
            f"({c['ratio']:.1f}x)"
        )
        for d in c["differences"]:
            print("  difference:", json.dumps(d)[:300])


if __name__ == "__main__":
    sys.exit(main())
