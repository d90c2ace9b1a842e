"""The whole story (``scripts/demo``): every step's outcome, checked from outside too.

The story runs once per test module (about 5 s) in a temp folder; each test then
asserts one step's outcome from the result and, where it can, again from the data
the story left behind -- with every server already stopped.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from provenance.demo import StoryResult, run_story
from provenance.demo.apks import edit_manifest, rebuild_apk, sign_with
from provenance.demo.story import ACCESS_PROVIDER, SHARED, TINY, repo_root
from provenance.errors import InputError

if TYPE_CHECKING:
    from provenance.trace import Trust
    from provenance.trace.verify import VerifiedStatement

REPO = repo_root()
KEYS = REPO / "examples" / "story" / "keys"


@dataclass
class Played:
    result: StoryResult
    transcript: str

    @property
    def data(self) -> Path:
        return self.result.directory


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    out = io.StringIO()
    result = run_story(tmp_path_factory.mktemp("story") / "data", out)
    yield Played(result, out.getvalue())


def test_the_story_behaves_as_expected(story: Played) -> None:
    r = story.result
    assert r.error is None, story.transcript
    assert r.skipped == []
    failed = [c for c in r.checks if not c.ok]
    assert not failed, failed
    assert r.ok and len(r.checks) >= 25
    assert r.seconds < 60
    assert "The whole story behaved as expected." in story.transcript


def test_review_verdicts_for_each_variant(story: Played) -> None:
    assert story.result.reviews == {
        "tiny-app": "clean",
        "shared-one": "clean",
        "counterfeit": "counterfeit",
        "repackaged": "repackaged",
        "hot-swapped": "hot_swapped",
    }
    # every review is an inspection statement in the log, in order
    entries = story.result.inspection_entries
    assert len(set(entries.values())) == 5
    assert entries["counterfeit"] < entries["repackaged"] < entries["hot-swapped"]


def test_inspections_are_in_the_log(story: Played) -> None:
    statements = _trace(story.data, TINY)
    inspections = {s.index: s for s in statements if s.predicate_type.endswith("/inspection/v1")}
    for name, kind in [
        ("counterfeit", "counterfeit"),
        ("repackaged", "repackaged"),
        ("hot-swapped", "hot_swapped"),
    ]:
        s = inspections[story.result.inspection_entries[name]]
        assert s.signer == "demo-store"
        assert s.predicate["verdict"] == "fail"
        assert s.predicate["findings"][0]["id"] == f"verdict:{kind}"


def test_witness_cosignatures(story: Played) -> None:
    from provenance.log.policy import load_policy

    r = story.result
    assert r.cosigners == ["witness.story.example/w1", "witness.story.example/w2"]
    assert r.checkpoint_size > 0
    # the checkpoint the story left behind meets the 2-of-2 policy on its own
    policy = load_policy(story.data / "witnesses.policy")
    note = (story.data / "log" / "public" / "checkpoint").read_bytes()
    signed = policy.verify_checkpoint(note)
    assert len(signed.cosigners) == 2


def test_terminal_verdicts_before_the_takedown(story: Played) -> None:
    assert story.result.terminal_before == {
        "tiny-app": "trusted",
        "shared-one": "trusted",
        "counterfeit": "counterfeit",
        "repackaged": "repackaged",
        "hot-swapped": "hot_swapped",
    }
    assert story.result.terminal_offline
    assert story.result.online_verdicts["hot-swapped"] == "hot_swapped"


def test_terminal_verdicts_after_the_takedown(story: Played) -> None:
    after = story.result.terminal_after
    assert after["tiny-app"] == "taken_down"
    assert after["hot-swapped"] == "taken_down"
    assert after["shared-one"] == "trusted"  # the other app of the developer stays
    assert story.result.online_verdicts["tiny-app"] == "taken_down"


def test_terminal_works_offline_after_everything_stopped(story: Played) -> None:
    from provenance.feed import FeedClient

    cache = story.data / "terminal" / "cache"
    apks = story.data / "terminal" / "apks"
    client = FeedClient(cache, offline=True)
    taken = client.check(apks / "tiny-app.apk")
    assert taken.verdict.value == "taken_down" and taken.exit_code == 1
    assert taken.feed["offline"] is True
    assert any(ACCESS_PROVIDER in reason for reason in taken.reasons)
    kept = FeedClient(cache, offline=True).check(apks / "shared-one.apk")
    assert kept.verdict.value == "trusted" and kept.exit_code == 0


def test_takedown_is_logged_and_evidence_verifies(story: Played) -> None:
    r = story.result
    assert r.evidence_ok and r.evidence_reverified
    assert r.takedown_index is not None
    statements = _trace(story.data, TINY)
    takedown = next(s for s in statements if s.index == r.takedown_index)
    assert takedown.predicate_type.endswith("/takedown/v1")
    assert takedown.signer == ACCESS_PROVIDER
    assert takedown.predicate["scope"] == {"kind": "app", "package": TINY}
    cited = [e["index"] for e in takedown.predicate["evidence"]]
    assert cited == [r.inspection_entries["hot-swapped"]]
    # the bundle still verifies, from the file alone
    from provenance.takedown import read_bundle, verify_bundle

    bundle = read_bundle(story.data / "access-provider" / "evidence.json")
    assert verify_bundle(bundle, _trust(story.data)).checklist.ok


def test_web_view_was_served(story: Played) -> None:
    assert story.result.web["status"] == 200
    assert TINY in story.result.web["path"]


def test_no_server_is_left_running(story: Played) -> None:
    ports = []
    for line in (story.data / "witnesses.policy").read_text().splitlines():
        if line.startswith("witness "):
            ports.append(int(line.rsplit(":", 1)[1]))
    assert len(ports) == 2
    for port in ports:
        with socket.socket() as s, pytest.raises(OSError):
            s.connect(("127.0.0.1", port))


def test_transcript_names_every_party(story: Played) -> None:
    text = story.transcript
    for heading in [
        "Registry root and regulator",
        "Platform (Demo Store)",
        "Developer (Tiny Apps)",
        "Uploads that fail review",
        "Witnesses",
        "Feed publisher",
        "Terminal",
        "Access provider (NetCo)",
        "Web view",
    ]:
        assert f". {heading}: " in text, heading
    assert "apkprov serve --dir" in text and "/ui/?kind=package&q=" + TINY in text
    assert str(story.data) not in text.split("== 1.")[1].split("== Summary")[0]  # DATA/ instead


def test_folder_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        run_story(tmp_path, io.StringIO())
    done = subprocess.run(
        [sys.executable, "-m", "provenance.demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "not empty" in done.stderr


# ------------------------------------------------------------------ the APK edits


def test_edit_manifest_adds_permissions_and_renames(tmp_path: Path) -> None:
    from provenance.inspect import inspect_apk

    source = REPO / "examples" / "apks" / "v1-only-no-uses-sdk.apk"
    with zipfile.ZipFile(source) as z:
        manifest = z.read("AndroidManifest.xml")
    edited = edit_manifest(
        manifest,
        package=TINY,
        add_permissions=["android.permission.READ_SMS", "android.permission.CAMERA"],
    )
    unsigned = rebuild_apk(source, tmp_path / "u.apk", replace={"AndroidManifest.xml": edited})
    signed = sign_with(
        unsigned,
        tmp_path / "s.apk",
        KEYS / "copycat-release.pk8",
        KEYS / "copycat-release.x509.pem",
    )
    facts = inspect_apk(signed)
    assert facts.signing.verified
    assert facts.manifest.package == TINY
    assert [p.name for p in facts.manifest.uses_permissions] == [
        "android.permission.READ_SMS",
        "android.permission.CAMERA",
    ]
    # everything else of the manifest is as it was (relative class names now resolve
    # against the new package, as Android would resolve them)
    assert facts.manifest.version_code == 1
    assert [c.name for c in facts.manifest.components] == [f"{TINY}.Shared1Activity"]
    assert SHARED not in edited.decode("utf-16-le", "ignore")


def test_signing_is_deterministic(tmp_path: Path) -> None:
    source = REPO / "examples" / "apks" / "golden-aligned-v1v2v3-out.apk"
    key = (KEYS / "tinyapps-release.pk8", KEYS / "tinyapps-release.x509.pem")
    a = sign_with(rebuild_apk(source, tmp_path / "a-u.apk"), tmp_path / "a.apk", *key)
    b = sign_with(rebuild_apk(source, tmp_path / "b-u.apk"), tmp_path / "b.apk", *key)
    assert a.read_bytes() == b.read_bytes()


# ---------------------------------------------------------------------- helpers


def _trust(data: Path) -> Trust:
    from provenance.log.note import parse_verifier_key
    from provenance.log.policy import load_policy
    from provenance.trace import Trust
    from provenance.trace.trust import load_root_keys

    vkey = (data / "log.vkey").read_text().strip()
    return Trust(
        parse_verifier_key(vkey),
        load_root_keys(None, [REPO / "keys" / "statements-dev" / "registry-root.pub.pem"]),
        load_policy(data / "witnesses.policy"),
    )


def _trace(data: Path, package: str) -> list[VerifiedStatement]:
    """The verified statements about ``package``, read from the data folder."""
    from provenance.log.log import Log
    from provenance.service.runtime import open_service_db
    from provenance.trace.index import TraceIndex
    from provenance.trace.indexer import Indexer
    from provenance.trace.sources import LocalTraceSource
    from provenance.trace.verify import TraceVerifier

    db = open_service_db(data / "log")
    log = Log.open(data / "log")
    try:
        index = TraceIndex(db, log.origin)
        Indexer(log, index).catch_up()
        result = TraceVerifier(LocalTraceSource(log, index), _trust(data)).run(
            [("package", package)]
        )
        assert result.ok, result.problems
        return list(result.statements)
    finally:
        log.close(integrate=False)
        db.close()
