"""Risk-engine inputs: history folders (facts JSON and APKs) and terminal runtime reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apk_variants import FDROID, corpus_apk

from provenance.errors import InputError
from provenance.inspect import inspect_apk
from provenance.risk import load_history, load_reports
from provenance.risk.history import HistoryError, save_facts
from provenance.risk.reports import SCHEMA, ReportError

APKS = FDROID / "apks"


def test_history_folder_of_facts_and_apks(tmp_path: Path) -> None:
    v5 = inspect_apk(corpus_apk(APKS / "repo__com.politedroid_5.apk"))
    save_facts(v5, tmp_path / "a-politedroid-5.json")
    (tmp_path / "b-politedroid-6.apk").write_bytes(
        corpus_apk(APKS / "repo__com.politedroid_6.apk").read_bytes()
    )
    (tmp_path / "notes.txt").write_text("ignored")
    wrapped = {"facts": v5.to_json(), "verdict": "clean"}
    (tmp_path / "c-wrapped.json").write_text(json.dumps(wrapped))
    h = load_history(tmp_path)
    assert [x.manifest.version_code for x in h] == [5, 6, 5]
    assert h[0] == v5
    assert load_history(tmp_path / "a-politedroid-5.json") == [v5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"facts_version": 99}', "facts_version 99 not supported"),
        ("[1]", "expected an ApkFacts JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_history_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(HistoryError, match=message):
        load_history(tmp_path)
    with pytest.raises(HistoryError, match="no such history"):
        load_history(tmp_path / "missing")


def _report(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "package": "com.politedroid",
        "version_code": 6,
        "reporter": "terminal-7",
        "reported_at": "2025-01-02T03:04:05Z",
        "loaded": [{"kind": "dex", "sha256": "AB" * 32, "source": "https://cdn.example/p.dex"}],
    }
    doc.update(over)
    return doc


def test_reports_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(_report()))
    (tmp_path / "many.json").write_text(json.dumps([_report(), _report(version_code=7)]))
    reports = load_reports(tmp_path)
    assert len(reports) == 3
    r = load_reports(tmp_path / "one.json")[0]
    assert r.loaded[0].sha256 == "ab" * 32
    assert r.applies_to("com.politedroid", 6, "00" * 32)
    assert not r.applies_to("com.politedroid", 5, "00" * 32)
    assert not r.applies_to("other", 6, "00" * 32)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"schema": "apkprov.runtime-report/2"}, "unsupported report schema"),
        ({"loaded": []}, "at least one piece"),
        ({"loaded": [{"kind": "virus"}]}, "kind must be one of"),
        ({"device": "x"}, "unknown field"),
        ({"version_code": "6"}, "expected an integer"),
    ],
)
def test_malformed_reports(tmp_path: Path, over: dict[str, Any], message: str) -> None:
    (tmp_path / "r.json").write_text(json.dumps(_report(**over)))
    with pytest.raises(ReportError, match=message):
        load_reports(tmp_path / "r.json")
    assert issubclass(ReportError, InputError)
