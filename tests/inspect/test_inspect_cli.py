"""``apkprov inspect``: exit codes, one-line errors, JSON lines for folders, summaries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from corpus import shared_dir

from provenance.cli import main
from provenance.inspect import ApkFacts


def _fdroid() -> Path:
    path = shared_dir() / "corpus" / "fdroid" / "apks"
    if not path.exists():
        pytest.skip("corpus not found")
    return path


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    apk = _fdroid() / "org.dyndns.fules.ck_20.apk"
    assert main(["inspect", str(apk)]) == 0
    out = capsys.readouterr().out
    assert "Package: org.dyndns.fules.ck versionCode 20" in out
    assert "Signature: verified (v1)" in out
    assert "Code loading [app, weak]: Ljava/lang/System;->loadLibrary" in out


def test_json_is_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    apk = _fdroid() / "repo__souch.smsbypass_9.apk"
    assert main(["inspect", "--json", str(apk)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    facts = ApkFacts.from_json(json.loads(lines[0]))
    assert facts.manifest.package == "souch.smsbypass"
    assert facts.dex[0].classes


def test_folder_scan_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _fdroid()
    for name in ("repo__com.politedroid_3.apk", "repo__com.politedroid_4.apk"):
        shutil.copy(src / name, tmp_path / name)
    (tmp_path / "sub").mkdir()
    shutil.copy(src / "v2.only.sig_2.apk", tmp_path / "sub" / "x.apk")
    (tmp_path / "notes.txt").write_text("not an apk")
    assert main(["inspect", "--json", "--summary", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"]["name"] for r in rows] == [
        "repo__com.politedroid_3.apk",
        "repo__com.politedroid_4.apk",
        "x.apk",
    ]
    assert all(d["classes"] == [] and d["method_refs"] == [] for r in rows for d in r["dex"])
    assert all(r["dex"][0]["class_count"] > 0 for r in rows)
    assert captured.err == ""  # no progress bar when stderr is not a terminal


def test_bad_input_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.apk"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"apkprov: {bad}: not a ZIP archive")
    assert main(["inspect", str(tmp_path / "missing.apk")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_folder_with_a_bad_apk_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(_fdroid() / "repo__com.politedroid_3.apk", tmp_path / "a.apk")
    (tmp_path / "b.apk").write_bytes(b"junk")
    assert main(["inspect", "--json", str(tmp_path)]) == 2
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0]["manifest"]["package"] == "com.politedroid"
    assert out[1]["input_error"].startswith(str(tmp_path / "b.apk"))


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no APK found" in capsys.readouterr().err


def test_progress_bar_on_a_terminal() -> None:
    import io

    from provenance.cli.inspect import _Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = _Progress(4, stream)
    bar.update(2, "a.apk")
    bar.close()
    text = stream.getvalue()
    assert "[###############...............] 2/4" in text and "a.apk" in text
    quiet = io.StringIO()
    _Progress(4, quiet).update(1, "x")
    assert quiet.getvalue() == ""


def test_symlink_loops_are_not_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(_fdroid() / "repo__com.politedroid_3.apk", tmp_path / "a.apk")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert main(["inspect", "--json", "--summary", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
