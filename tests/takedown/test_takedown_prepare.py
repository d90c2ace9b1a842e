"""``takedown prepare`` and ``verify-evidence``: a complete chain passes; missing
steps, a lying source and tampered bundles are reported, and exit 1."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from svc_world import PACKAGE, World, running_world
from td_world import Files, build_chain, sha_of, write_files

from provenance.cli import main
from provenance.statements import SHELVING, KeySigner
from provenance.takedown import (
    MISSING,
    UNVERIFIED,
    VERIFIED,
    Subject,
    bundle_document,
    prepare,
    read_bundle,
    verify_bundle,
)
from provenance.trace import HttpTraceSource, Trust
from provenance.trace.sources import TraceSource


@pytest.fixture(scope="module")
def chained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Files]]:
    tmp = tmp_path_factory.mktemp("chain")
    with running_world("sqlite", tmp) as w:
        build_chain(w)
        w.wait_integrated()
        yield w, write_files(w, tmp / "files")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _trust_args(files: Files) -> list[str]:
    return ["--vkey", str(files.vkey), "--root-key", str(files.root)]


# ------------------------------------------------------------------ complete


def test_complete_chain_library(chained: tuple[World, Files]) -> None:
    w, _ = chained
    source = HttpTraceSource(w.url)
    try:
        prepared = prepare(source, w.trust(), Subject(package=PACKAGE))
    finally:
        source.close()
    c = prepared.checklist
    assert c.ok and c.complete and c.verified, c.problems
    assert [s.status for s in c.steps] == [VERIFIED] * 4
    assert [s.index for s in c.step("registration").verified] == [
        w.entries["developer-registration"][0]
    ]
    assert len(c.step("release").verified) == 2
    assert [s.index for s in c.step("inspection").verified] == [w.entries["inspection-v1"][0]]
    assert c.takedowns == []
    assert c.targets.packages == {PACKAGE}


def test_complete_chain_cli_and_bundle(
    chained: tuple[World, Files], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w, files = chained
    bundle = tmp_path / "evidence.json"
    rc, out, err = _cli(
        capsys, "takedown", "prepare", PACKAGE, "--url", w.url, *_trust_args(files),
        "--out", str(bundle),
    )  # fmt: skip
    assert rc == 0, out + err
    assert out.startswith(f"COMPLETE AND VERIFIED: chain of package {PACKAGE}")
    for title in ("Developer registration", "Release", "Shelving", "Inspection"):
        assert any(line.startswith(f"  [x] {title}") for line in out.splitlines()), out
    assert "standing: available" in out
    assert f"log key {w.verifier.name}+{w.verifier.key_id:08x}" in out
    assert f"evidence bundle: {bundle}" in out

    doc = json.loads(bundle.read_text())
    assert doc["format"] == "apkprov-takedown-evidence/1"
    assert doc["subject"] == {"package": PACKAGE}
    assert doc["queries"] == [{"package": PACKAGE}]
    assert doc["log"]["checkpoint"].startswith(w.service.log.origin + "\n")
    traced = doc["answers"]["trace"][0]["answer"]
    assert all("proof" in e and "envelope" in e for e in traced["entries"])

    # offline: the service is not asked (a bundle carries everything)
    rc, out, err = _cli(capsys, "takedown", "verify-evidence", str(bundle), *_trust_args(files))
    assert rc == 0, out + err
    assert out.startswith("COMPLETE AND VERIFIED")

    rc, out, _ = _cli(
        capsys, "takedown", "verify-evidence", str(bundle), *_trust_args(files), "--json"
    )
    report = json.loads(out)
    assert report["ok"] and report["complete"] and report["verified"]
    assert [s["status"] for s in report["steps"]] == ["verified"] * 4
    assert report["trust"]["registry_root_keys"] == [w.root.key_id]
    assert {c["name"] for c in report["checks"]} >= {"checkpoint", "inclusion", "signatures"}


def test_prepare_by_apk_digest(
    chained: tuple[World, Files], capsys: pytest.CaptureFixture[str]
) -> None:
    w, files = chained
    sha2 = sha_of(w, "release-v2")
    rc, out, _ = _cli(
        capsys, "takedown", "prepare", "--sha256", sha2.upper(), "--url", w.url,
        *_trust_args(files), "--json",
    )  # fmt: skip
    report = json.loads(out)
    # version 2 was shelved but never inspected
    assert rc == 1
    assert report["verified"] and not report["complete"]
    assert report["apks"] == [sha2] and report["packages"] == [PACKAGE]
    status = {s["step"]: s["status"] for s in report["steps"]}
    assert status == {
        "registration": "verified",
        "release": "verified",
        "shelving": "verified",
        "inspection": "missing",
    }


def test_prepare_from_data_folder(
    chained: tuple[World, Files], capsys: pytest.CaptureFixture[str]
) -> None:
    w, files = chained
    sha1 = sha_of(w, "release-v1")
    rc, out, err = _cli(
        capsys, "takedown", "prepare", "--sha256", sha1, "--dir", str(w.directory),
        *_trust_args(files),
    )  # fmt: skip
    assert rc == 0, out + err
    assert out.startswith(f"COMPLETE AND VERIFIED: chain of APK {sha1}")


# ---------------------------------------------------------------- incomplete


def test_incomplete_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_world("sqlite", tmp_path) as w:
        build_chain(w, shelve=False, inspect=False)
        w.wait_integrated()
        files = write_files(w, tmp_path / "files")
        rc, out, err = _cli(
            capsys, "takedown", "prepare", PACKAGE, "--url", w.url, *_trust_args(files)
        )
    assert rc == 1, out + err
    assert out.startswith("INCOMPLETE: chain of package")
    lines = out.splitlines()
    assert any(line.startswith("  [ ] Shelving") and "MISSING" in line for line in lines)
    assert any(line.startswith("  [ ] Inspection") and "MISSING" in line for line in lines)
    assert any(line.startswith("  [x] Release") for line in lines)
    assert "problems:" not in out


def test_unknown_package_is_all_missing(
    chained: tuple[World, Files], capsys: pytest.CaptureFixture[str]
) -> None:
    w, files = chained
    rc, out, _ = _cli(
        capsys, "takedown", "prepare", "org.example.nothing", "--url", w.url,
        *_trust_args(files), "--json",
    )  # fmt: skip
    assert rc == 1
    assert [s["status"] for s in json.loads(out)["steps"]] == ["missing"] * 4


def test_usage_errors(chained: tuple[World, Files], capsys: pytest.CaptureFixture[str]) -> None:
    w, files = chained
    args = ["--url", w.url, *_trust_args(files)]
    assert _cli(capsys, "takedown", "prepare", *args)[0] == 2  # no subject
    assert _cli(capsys, "takedown", "prepare", PACKAGE, "--sha256", "ab" * 32, *args)[0] == 2
    assert _cli(capsys, "takedown", "prepare", "--sha256", "xyz", *args)[0] == 2
    assert _cli(capsys, "takedown", "prepare", "not a package", *args)[0] == 2
    rc, _, err = _cli(capsys, "takedown", "verify-evidence", str(files.vkey), *_trust_args(files))
    assert rc == 2 and "not JSON" in err
    assert _cli(capsys, "takedown")[0] == 2


# ------------------------------------------------------------------ tampered


class _Lying:
    """A source that alters what the real one answers."""

    def __init__(self, inner: TraceSource, edit: Any) -> None:
        self.inner = inner
        self.edit = edit

    def actors(self, after: int) -> dict[str, Any]:
        return self.inner.actors(after)

    def trace(self, param: str, value: str, after: int) -> dict[str, Any]:
        answer = copy.deepcopy(self.inner.trace(param, value, after))
        self.edit(answer)
        return answer

    def entry(self, index: int) -> dict[str, Any] | None:
        return self.inner.entry(index)

    def tiles(self) -> Any:
        return self.inner.tiles()

    def close(self) -> None:
        self.inner.close()


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(item["envelope"]["payload"]))
    return doc


def _set_payload(item: dict[str, Any], doc: dict[str, Any]) -> None:
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    item["envelope"]["payload"] = base64.b64encode(raw.encode()).decode()


def _inspection_of(answer: dict[str, Any], w: World) -> dict[str, Any]:
    index = w.entries["inspection-v1"][0]
    item: dict[str, Any] = next(e for e in answer["entries"] if e["index"] == index)
    return item


def test_lying_source_altered_inspection(chained: tuple[World, Files]) -> None:
    w, _ = chained

    def soften(answer: dict[str, Any]) -> None:
        item = _inspection_of(answer, w)
        doc = _payload(item)
        doc["predicate"]["verdict"] = "pass"
        _set_payload(item, doc)

    source = _Lying(HttpTraceSource(w.url), soften)
    try:
        prepared = prepare(source, w.trust(), Subject(package=PACKAGE))
    finally:
        source.close()
    c = prepared.checklist
    assert not c.ok and not c.verified
    inspection = c.step("inspection")
    assert inspection.status == UNVERIFIED
    assert inspection.unverified == [w.entries["inspection-v1"][0]]
    assert any("inclusion proof does not verify" in p for p in c.problems)
    # the other steps still verified
    assert c.step("release").status == VERIFIED


def test_lying_source_hides_inspection(chained: tuple[World, Files]) -> None:
    w, _ = chained
    index = w.entries["inspection-v1"][0]

    def hide(answer: dict[str, Any]) -> None:
        answer["entries"] = [e for e in answer["entries"] if e["index"] != index]

    source = _Lying(HttpTraceSource(w.url), hide)
    try:
        prepared = prepare(source, w.trust(), Subject(package=PACKAGE))
    finally:
        source.close()
    # nothing cites the inspection, so the verifier cannot see the omission; the
    # checklist does: the chain is incomplete and no takedown can default to it
    assert prepared.checklist.verified
    assert prepared.checklist.step("inspection").status == MISSING
    assert not prepared.ok


def _write_bundle(w: World, path: Path) -> dict[str, Any]:
    source = HttpTraceSource(w.url)
    try:
        prepared = prepare(source, w.trust(), Subject(package=PACKAGE))
    finally:
        source.close()
    doc = bundle_document(prepared, w.vkey)
    path.write_text(json.dumps(doc))
    return doc


def test_tampered_bundles(
    chained: tuple[World, Files], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w, files = chained
    good = _write_bundle(w, tmp_path / "good.json")
    assert verify_bundle(read_bundle(tmp_path / "good.json"), w.trust()).ok

    # an envelope altered: its inclusion proof fails
    doc = copy.deepcopy(good)
    item = _inspection_of(doc["answers"]["trace"][0]["answer"], w)
    payload = _payload(item)
    payload["predicate"]["findings"][0]["severity"] = "critical"
    _set_payload(item, payload)
    (tmp_path / "altered.json").write_text(json.dumps(doc))
    rc, out, _ = _cli(
        capsys, "takedown", "verify-evidence", str(tmp_path / "altered.json"), *_trust_args(files)
    )
    assert rc == 1
    assert out.startswith("NOT VERIFIED")
    assert "[!] Inspection" in out and "inclusion proof does not verify" in out
    assert "FAIL  Inclusion proofs" in out
    assert "the bundle says the chain was complete and verified" in out

    # an entry dropped: the chain is no longer complete
    doc = copy.deepcopy(good)
    answer = doc["answers"]["trace"][0]["answer"]
    answer["entries"] = [e for e in answer["entries"] if e is not _inspection_of(answer, w)]
    (tmp_path / "dropped.json").write_text(json.dumps(doc))
    rc, out, _ = _cli(
        capsys, "takedown", "verify-evidence", str(tmp_path / "dropped.json"), *_trust_args(files)
    )
    assert rc == 1 and out.startswith("INCOMPLETE")

    # a checkpoint with another tree size: the log's signature no longer holds
    doc = copy.deepcopy(good)
    for page in doc["answers"]["actors"]:
        origin, size, rest = page["answer"]["checkpoint"].split("\n", 2)
        page["answer"]["checkpoint"] = f"{origin}\n{int(size) + 1}\n{rest}"
    (tmp_path / "note.json").write_text(json.dumps(doc))
    rc, out, _ = _cli(
        capsys, "takedown", "verify-evidence", str(tmp_path / "note.json"), *_trust_args(files)
    )
    assert rc == 1 and "FAIL  Log checkpoint" in out
    assert "checkpoint does not verify" in out

    # the right bundle, but the wrong registry root: signatures and roles fail
    other = tmp_path / "other-root.pem"
    from cryptography.hazmat.primitives import serialization

    other.write_bytes(
        KeySigner.generate().public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rc, out, _ = _cli(
        capsys, "takedown", "verify-evidence", str(tmp_path / "good.json"),
        "--vkey", str(files.vkey), "--root-key", str(other),
    )  # fmt: skip
    assert rc == 1 and "FAIL  Signatures and roles" in out

    # a bundle that is not one
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something-else"}))
    assert _cli(capsys, "takedown", "verify-evidence", str(tmp_path / "bad.json"),
                *_trust_args(files))[0] == 2  # fmt: skip
    doc = copy.deepcopy(good)
    doc["queries"] = [{"package": "org.example.other"}]
    (tmp_path / "queries.json").write_text(json.dumps(doc))
    rc, _, err = _cli(
        capsys, "takedown", "verify-evidence", str(tmp_path / "queries.json"), *_trust_args(files)
    )
    assert rc == 2 and "subject" in err


def test_bundle_trusts_nothing_it_carries(chained: tuple[World, Files], tmp_path: Path) -> None:
    """The vkey inside the bundle is a hint; a forged bundle with its own log key and
    root does not verify against the real anchors."""
    w, _ = chained
    doc = _write_bundle(w, tmp_path / "b.json")
    assert doc["log"]["vkey"] == w.vkey
    bundle = read_bundle(tmp_path / "b.json")
    from provenance.log.note import Ed25519Signer, parse_verifier_key

    impostor = Ed25519Signer.generate(w.verifier.name)
    trust = Trust(parse_verifier_key(impostor.vkey), w.root_keys)
    prepared = verify_bundle(bundle, trust)
    assert not prepared.ok
    assert any("checkpoint" in p for p in prepared.checklist.problems)


def test_bundle_across_two_checkpoints(tmp_path: Path) -> None:
    """The log grows between two answers: the verifier proves the checkpoints
    consistent from the log's tiles, and the bundle keeps those tiles, so the same
    proof is made offline."""
    with running_world("sqlite", tmp_path) as w:
        build_chain(w)
        w.wait_integrated()

        class Growing(HttpTraceSource):
            grown = False

            def actors(self, after: int) -> dict[str, Any]:
                answer = super().actors(after)
                if not self.grown:
                    self.grown = True
                    w.submit("shelving-again", SHELVING, w.shelving("store", "release-v1"), "store")
                    w.wait_integrated()
                return answer

        source = Growing(w.url)
        try:
            prepared = prepare(source, w.trust(), Subject(package=PACKAGE))
        finally:
            source.close()
        trust = w.trust()
    assert prepared.ok, prepared.checklist.problems
    sizes = {a["tree_size"] for a in prepared.recording.answers()}
    assert len(sizes) == 2
    assert prepared.recording.tiles  # read for the consistency proof
    path = tmp_path / "grown.json"
    path.write_text(json.dumps(bundle_document(prepared)))
    # the service is gone: everything comes from the bundle
    assert verify_bundle(read_bundle(path), trust).ok
    doc = json.loads(path.read_text())
    doc["tiles"] = {}
    path.write_text(json.dumps(doc))
    again = verify_bundle(read_bundle(path), trust)
    assert not again.ok
    assert any("not consistent" in p for p in again.checklist.problems)
