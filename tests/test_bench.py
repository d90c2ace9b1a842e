"""Smoke tests of bench/: the large-APK builder and the benchmark's plumbing."""

from __future__ import annotations

import struct
import sys
import zipfile
from pathlib import Path

import pytest
import reference

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import make_large_apk  # noqa: E402
import verify_bench  # noqa: E402

CORPUS = reference.corpus_dir()
needs_corpus = pytest.mark.skipif(
    not (CORPUS / "golden-aligned-in.apk").is_file(),
    reason=f"apksig corpus not found at {CORPUS} (set APKPROV_SHARED)",
)

SMALL = make_large_apk.Params(size_mb=1, files=300, seed=7)


def _data_offsets(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    with zipfile.ZipFile(path) as zf, path.open("rb") as fh:
        for info in zf.infolist():
            fh.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", fh.read(30)[26:30])
            out[info.filename] = (
                info.header_offset + 30 + name_len + extra_len,
                info.compress_type,
            )
    return out


@needs_corpus
def test_unsigned_build_is_deterministic_and_aligned(tmp_path: Path) -> None:
    a = make_large_apk.build(SMALL, tmp_path / "a.apk", sign=False, quiet=True)
    b = make_large_apk.build(SMALL, tmp_path / "b.apk", sign=False, quiet=True)
    assert a.read_bytes() == b.read_bytes()
    offsets = _data_offsets(a)
    assert len(offsets) == SMALL.files
    assert "AndroidManifest.xml" in offsets
    methods = {m for _, m in offsets.values()}
    assert methods == {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
    for name, (offset, method) in offsets.items():
        if method == zipfile.ZIP_STORED:
            assert offset % (4096 if name.endswith(".so") else 4) == 0, name
    with zipfile.ZipFile(a) as zf:
        assert zf.testzip() is None
    # The cache: a second call with the same parameters reuses the file.
    before = a.stat().st_mtime_ns
    assert make_large_apk.build(SMALL, a, sign=False, quiet=True) == a
    assert a.stat().st_mtime_ns == before


@needs_corpus
@pytest.mark.apksigner
@pytest.mark.skipif(not reference.available(), reason=f"{reference.unavailable_reason()}")
def test_signed_build_verifies_v1_v2_v3(tmp_path: Path) -> None:
    apk = make_large_apk.build(SMALL, tmp_path / "s.apk", quiet=True)
    res = reference.verify(apk)
    assert res.ok, res.summary()
    assert res.schemes == ["v1", "v2", "v3"]


def test_run_measured_reports_exit_code_and_rss() -> None:
    run = verify_bench.run_measured([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"])
    assert run.rc == 3
    assert run.stdout.strip() == "hi"
    assert run.max_rss_kb > 1000
    assert run.wall > 0


def test_report_flags_wrong_answers() -> None:
    results = {
        "corpus": {
            "apks": 2,
            "apkprov_library": {
                "wall": 0.5,
                "loop_seconds": 0.2,
                "outcomes": {"verifies": 1, "crash": 1},
                "agree_with_expected": 1,
            },
            "apksigner": {
                "estimated_total": 0.5,
                "extrapolated": True,
                "per_apk_median": 0.25,
                "measured_apks": 1,
                "agree_with_expected": 1,
            },
        },
        "small": {
            "apk": "original.apk",
            "apkprov": {"median": 0.1, "rc": [0], "max_rss_kb": 30000},
            "apksigner": {"median": 0.3, "rc": [0], "max_rss_kb": 50000},
        },
    }
    text = verify_bench.report(results)
    assert "1 crashed: INVALID" in text
    assert "apkprov 3.0x faster" in text
    assert "apkprov ok; apksigner ok" in text


def test_count_json_results_accepts_list_or_lines() -> None:
    assert verify_bench.count_json_results('[{"a": 1}, {"a": 2}]') == 2
    assert verify_bench.count_json_results('{"verified": true}\n{"verified": false}\n') == 2
    assert verify_bench.count_json_results("Verifies\n") is None


def test_log_bench_quick_runs(tmp_path: Path) -> None:
    """The log benchmark's plumbing works end to end on a small log (not a timing)."""
    import subprocess

    r = subprocess.run(
        [
            sys.executable,
            str(BENCH / "log_bench.py"),
            "--quick",
            "--no-postgres",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "entries/s" in r.stdout
