"""``apkprov check``: exit codes, text and JSON output, folder scans, signed indexes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from apk_variants import FDROID, key_sha256, resign

from provenance.cli import main
from provenance.cli.check import _Progress
from provenance.metadata import Catalog, load_index

APKS = FDROID / "apks"
INDEX = FDROID / "index" / "index-v2.json"
CLEAN = APKS / "repo__com.politedroid_6.apk"
FAKE = APKS / "repo__obb.mainpatch.current_1619_another-release-key.apk"
GUARDIAN = "b7c2eefd8dac7806af67dfcd92eb18126bc08312a7f2d6f3862e46013c7a6135"


@pytest.fixture(autouse=True)
def _corpus() -> None:
    if not INDEX.exists():
        pytest.skip(f"corpus not found: {FDROID}")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["check", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_clean_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "--index", str(INDEX), str(CLEAN))
    assert rc == 0, err
    assert out.startswith(f"{CLEAN}: clean (com.politedroid 6)")
    assert "matched by sha256" in out


def test_counterfeit_exits_1_with_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "--index", str(INDEX), str(FAKE))
    assert rc == 1
    assert "COUNTERFEIT" in out
    assert "[critical] signer.not-allowed" in out
    assert "signer: ce9e200667f02d96d49891a2e08a3c178870e91853d61bdd33ef5f0b54701aa5" in out


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "--index", str(INDEX), "--json", str(CLEAN), str(FAKE))
    assert rc == 1
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["verdict"] for x in lines] == ["clean", "counterfeit"]
    fake = lines[1]
    assert fake["file"] == str(FAKE)
    assert fake["package"] == "obb.mainpatch.current"
    assert fake["listing"]["matched_by"] == "sha256"
    assert fake["findings"][0]["id"] == "signer.not-allowed"
    assert fake["findings"][0]["evidence"][0]["kind"] == "signer"
    assert fake["scores"]["counterfeit"] == 1.0
    assert fake["catalog"] == {"source": str(INDEX), "authenticated_by": None}


def test_folder_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shelf = tmp_path / "shelf"
    (shelf / "sub").mkdir(parents=True)
    shutil.copy(CLEAN, shelf / "a.apk")
    shutil.copy(FAKE, shelf / "sub" / "b.apk")
    (shelf / "readme.txt").write_text("not an apk")
    rc, out, _ = _run(capsys, "--index", str(INDEX), "--json", str(shelf))
    assert rc == 1
    assert [json.loads(x)["verdict"] for x in out.splitlines()] == ["clean", "counterfeit"]
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _run(capsys, "--index", str(INDEX), str(empty))
    assert rc == 2 and "no .apk files" in err


def test_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.apk"
    junk.write_bytes(b"not a zip")
    rc, out, err = _run(capsys, "--index", str(INDEX), "--json", str(junk), str(CLEAN))
    assert rc == 2  # the clean APK is still checked
    first, second = (json.loads(x) for x in out.splitlines())
    assert first["verdict"] is None and "input_error" in first
    assert second["verdict"] == "clean"
    assert "Traceback" not in err
    bad_index = tmp_path / "index.json"
    bad_index.write_text('{"repo": {}, "packages": {"a b": {}}}')
    rc, _, err = _run(capsys, "--index", str(bad_index), str(CLEAN))
    assert rc == 2 and "not a valid package name" in err
    policy = tmp_path / "p.toml"
    policy.write_text('schema = "nope"\n')
    rc, _, err = _run(capsys, "--index", str(INDEX), "--policy", str(policy), str(CLEAN))
    assert rc == 2 and "schema must be" in err
    rc, _, err = _run(capsys, "--listing", str(INDEX), "--repo-fingerprint", GUARDIAN, str(CLEAN))
    assert rc == 2 and "go with --index" in err
    with pytest.raises(SystemExit) as e:
        main(["check", str(CLEAN)])  # neither --listing nor --index
    assert e.value.code == 2


def test_signed_index_v1_jar(capsys: pytest.CaptureFixture[str]) -> None:
    jar = FDROID / "jars" / "guardianproject-v1.jar"
    rc, out, _ = _run(
        capsys, "--index", str(jar), "--repo-fingerprint", GUARDIAN, "--json", str(CLEAN)
    )
    assert rc == 0
    doc = json.loads(out)
    assert doc["catalog"]["authenticated_by"] == GUARDIAN
    rc, _, err = _run(capsys, "--index", str(jar), "--repo-fingerprint", "00" * 32, str(CLEAN))
    assert rc == 2 and "not by the pinned repository key" in err


def test_listing_json_history_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store listing in the apkprov JSON form, a history folder and a terminal report."""
    published = resign(CLEAN, tmp_path / "published.apk", "rsa-2048")
    cat = load_index(INDEX)
    (listing,) = cat.by_package("com.politedroid")
    store = Catalog((listing,), "store").to_json()
    store["listings"][0]["signers"] = {"example-store": [key_sha256("rsa-2048")]}
    (tmp_path / "store.json").write_text(json.dumps(store))
    history = tmp_path / "history"
    history.mkdir()
    shutil.copy(APKS / "repo__com.politedroid_5.apk", history)
    args = ["--listing", str(tmp_path / "store.json"), "--history", str(history)]
    rc, out, _ = _run(capsys, *args, "--channel", "example-store", str(published))
    assert rc == 0, out  # re-signed by the developer's (registered) key, newer than history
    report = {
        "schema": "apkprov.runtime-report/1",
        "package": "com.politedroid",
        "loaded": [{"kind": "dex", "path": "/data/data/com.politedroid/p.dex"}],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    rc, out, _ = _run(capsys, *args, "--report", str(tmp_path / "report.json"), str(published))
    assert rc == 1
    assert "HOT_SWAPPED" in out and "code.runtime-report" in out
    # listings merge: the F-Droid index (key 32a2…) next to the store's (rsa-2048)
    rc, out, _ = _run(capsys, "--listing", str(INDEX), "--listing", str(tmp_path / "store.json"),
                      "--json", str(published), str(CLEAN))  # fmt: skip
    assert rc == 0
    assert [json.loads(x)["verdict"] for x in out.splitlines()] == ["clean", "clean"]
    rc, out, _ = _run(capsys, "--listing", str(INDEX), "--listing", str(tmp_path / "store.json"),
                      "--channel", "fdroid", str(published))  # fmt: skip
    assert rc == 1 and "signer.not-allowed" in out


def test_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain = io.StringIO()
    p = _Progress(4, plain)
    p.show(1, "a.apk")
    p.clear()
    assert plain.getvalue() == ""
    tty = Tty()
    p = _Progress(4, tty)
    p.show(2, "b.apk")
    assert "[###############---------------] 2/4 b.apk" in tty.getvalue()
    p.clear()
    assert tty.getvalue().endswith("\r")
