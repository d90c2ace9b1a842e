"""``takedown issue`` and ``restore`` end to end against a real ``apkprov serve``
process on 127.0.0.1: an access provider takes a version down on verified evidence,
what may not be signed is refused before anything is sent, a regulator restores;
the log and the trace client agree at every step. Also the role-policy change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from svc_world import PACKAGE, running_world
from td_world import Files, build_chain, serve_process, sha_of, wait_integrated, write_files

from provenance.cli import main
from provenance.log.note import parse_verifier_key
from provenance.statements import (
    INSPECTION,
    RESTORE,
    TAKEDOWN,
    ActorKey,
    Envelope,
    RoleError,
    RolePolicy,
    Statement,
    accept,
    make_statement,
    rebuild_registry,
    sign_statement,
)
from provenance.takedown import Prepared, Subject, prepare
from provenance.trace import HttpTraceSource, Trust, build_chains

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    files: Files
    tokens: dict[str, str]
    entries: dict[str, int]
    sha1: str
    sha2: str
    root_keys: list[ActorKey]
    vkey: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A chain built through the in-process service, then served by `apkprov serve`."""
    tmp = tmp_path_factory.mktemp("issue")
    with running_world("sqlite", tmp) as w:
        build_chain(w)
        w.wait_integrated()
        files = write_files(w, tmp / "files")
        tokens = dict(w.tokens)
        entries = {name: index for name, (index, _) in w.entries.items()}
        sha1, sha2 = sha_of(w, "release-v1"), sha_of(w, "release-v2")
        root_keys, vkey, directory = w.root_keys, w.vkey, w.directory
    with serve_process(directory, files.root) as url:
        yield Served(url, files, tokens, entries, sha1, sha2, root_keys, vkey)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _common(s: Served, actor: str) -> list[str]:
    return [
        "--key", f"file:{s.files.keys[actor]}",
        "--token", f"env:APKPROV_TEST_TOKEN_{actor.upper()}",
        "--url", s.url,
        "--vkey", str(s.files.vkey),
        "--root-key", str(s.files.root),
    ]  # fmt: skip


def _sequenced(s: Served) -> int:
    size: int = httpx.get(s.url + "/v1/status").json()["sequenced"]
    return size


def _prepared(s: Served, subject: Subject) -> Prepared:
    """The chain as a client holding only the vkey and the root key sees it."""
    source = HttpTraceSource(s.url)
    try:
        return prepare(source, Trust(parse_verifier_key(s.vkey), s.root_keys), subject)
    finally:
        source.close()


@pytest.fixture(autouse=True)
def _tokens(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    for actor, token in served.tokens.items():
        monkeypatch.setenv(f"APKPROV_TEST_TOKEN_{actor.upper().replace('-', '_')}", token)


def test_issue_and_restore_end_to_end(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    s = served
    inspection = s.entries["inspection-v1"]

    # the access provider takes version 1 down; evidence defaults to its inspection
    rc, out, err = _cli(
        capsys, "takedown", "issue", "--sha256", s.sha1, "--scope", "version",
        "--reason", "privacy", "--legal-basis", "PIPL art. 13", *_common(s, "isp"), "--json",
    )  # fmt: skip
    assert rc == 0, out + err
    issued = json.loads(out)
    index = issued["index"]
    assert issued["signer"] == "isp" and issued["predicate_type"] == TAKEDOWN
    assert issued["evidence"] == [inspection]
    p = issued["predicate"]
    assert p["scope"] == {
        "kind": "version",
        "package": PACKAGE,
        "apk_sha256": s.sha1,
        "version_code": 10,
    }
    assert p["reason"]["legal_basis"] == "PIPL art. 13"
    assert p["reason"]["text"] == (
        f"Privacy violation; evidence: inspection #{inspection} by lab (verdict warn)"
    )
    wait_integrated(s.url, index)

    # the log has it, the trace client verifies it, the chain shows it taken down
    prepared = _prepared(s, Subject(sha256=s.sha1))
    assert prepared.checklist.problems == []
    assert [t.index for t in prepared.checklist.takedowns] == [index]
    chain = build_chains(prepared.result)[0]
    assert chain.standing(chain.versions[s.sha1]) == "taken down"
    assert chain.standing(chain.versions[s.sha2]) == "available"
    rc, out, _ = _cli(
        capsys, "takedown", "prepare", "--sha256", s.sha1, "--url", s.url,
        "--vkey", str(s.files.vkey), "--root-key", str(s.files.root),
    )  # fmt: skip
    assert rc == 0 and "standing: TAKEN DOWN" in out
    assert f"#{index} version takedown by isp: privacy" in out

    # the same authority cannot take the same thing down twice
    before = _sequenced(s)
    rc, _, err = _cli(
        capsys, "takedown", "issue", "--sha256", s.sha1, "--scope", "version",
        "--reason", "privacy", *_common(s, "isp"),
    )  # fmt: skip
    assert rc == 1 and f"already took this down (log entry {index})" in err
    # the access provider may not restore (role policy): refused before sending
    rc, _, err = _cli(
        capsys, "takedown", "restore", "--sha256", s.sha1, "--reason", "resolved",
        *_common(s, "isp"),
    )  # fmt: skip
    assert rc == 1 and "may not sign restore statements" in err
    assert _sequenced(s) == before

    # the regulator restores it: the restore cites the takedown, the version is back
    rc, out, err = _cli(
        capsys, "takedown", "restore", "--sha256", s.sha1, "--reason", "appeal_granted",
        "--text", "the developer removed the contacts upload", *_common(s, "regulator"),
    )  # fmt: skip
    assert rc == 0, out + err
    assert out.startswith("restore submitted: log entry ")
    restored = int(out.split()[4])
    assert "authority  regulator" in out and "evidence   none" in out
    assert "lifting a takedown by isp as regulator" in err
    wait_integrated(s.url, restored)
    prepared = _prepared(s, Subject(sha256=s.sha1))
    assert prepared.checklist.problems == []
    assert prepared.checklist.takedowns == []
    entry = httpx.get(f"{s.url}/v1/entries/{restored}").json()["entry"]
    restore = Statement.from_json(Envelope.from_dict(entry["envelope"]).payload)
    assert restore.predicate_type == RESTORE
    assert restore.predicate["takedown"]["index"] == index
    assert restore.predicate["reason"]["text"] == "the developer removed the contacts upload"

    # nothing left to restore
    rc, _, err = _cli(
        capsys, "takedown", "restore", "--sha256", s.sha1, "--reason", "resolved",
        *_common(s, "regulator"),
    )  # fmt: skip
    assert rc == 1 and "no verified takedown" in err


def test_refusals_before_sending(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    s = served
    before = _sequenced(s)
    base = ["takedown", "issue", PACKAGE, "--reason", "fraud"]
    # a developer may not take anything down
    rc, _, err = _cli(capsys, *base, "--scope", "app", *_common(s, "acme"))
    assert rc == 1 and "actor acme (roles: developer) may not sign takedown" in err
    # evidence must be a verified entry of this chain
    rc, _, err = _cli(capsys, *base, "--scope", "app", "--evidence", "9999", *_common(s, "isp"))
    assert rc == 1 and "entry 9999 is not a verified statement of this chain" in err
    # a package with two versions: --scope version needs the APK
    rc, _, err = _cli(capsys, *base, "--scope", "version", *_common(s, "isp"))
    assert rc == 2 and "--scope version needs one APK" in err
    # no inspection of version 2 to default to
    rc, _, err = _cli(
        capsys, "takedown", "issue", "--sha256", s.sha2, "--scope", "version",
        "--reason", "fraud", *_common(s, "isp"),
    )  # fmt: skip
    assert rc == 1 and "no verified inspection to cite" in err
    # a token that is not the signer's: the service refuses (403 wrong-actor)
    common = _common(s, "isp")
    common[common.index("--token") + 1] = "env:APKPROV_TEST_TOKEN_REGULATOR"
    rc, _, err = _cli(capsys, *base, "--scope", "app", *common)
    assert rc == 1 and "HTTP 403 wrong-actor" in err
    # a missing token variable is a usage error
    common[common.index("--token") + 1] = "env:APKPROV_TEST_NO_SUCH_TOKEN"
    assert _cli(capsys, *base, "--scope", "app", *common)[0] == 2
    assert _sequenced(s) == before


def test_dry_run_and_explicit_evidence(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    s = served
    before = _sequenced(s)
    shelving = s.entries["shelving-v2"]
    rc, out, err = _cli(
        capsys, "takedown", "issue", PACKAGE, "--scope", "app", "--reason", "unfiled",
        "--evidence", str(shelving), "--effective-at", "2030-01-01T00:00:00Z",
        *_common(s, "isp"), "--dry-run",
    )  # fmt: skip
    assert rc == 0, err
    envelope = Envelope.from_json(out.strip().encode())
    p = Statement.from_json(envelope.payload).predicate
    assert p["scope"] == {"kind": "app", "package": PACKAGE}
    assert [e["index"] for e in p["evidence"]] == [shelving]
    assert p["effective_at"] == "2030-01-01T00:00:00Z"
    assert _sequenced(s) == before


def test_sdk_takedown_by_platform(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    s = served
    rc, out, err = _cli(
        capsys, "takedown", "issue", PACKAGE, "--scope", "sdk", "--sdk", "com.example:tracker",
        "--sdk-version", "1.2.3", "--reason", "malware", *_common(s, "store"), "--json",
    )  # fmt: skip
    assert rc == 0, out + err
    issued = json.loads(out)
    assert issued["predicate"]["scope"] == {
        "kind": "sdk",
        "sdk_id": "com.example:tracker",
        "sdk_version": "1.2.3",
    }
    assert issued["evidence"] == [s.entries["inspection-v1"]]
    wait_integrated(s.url, issued["index"])
    prepared = _prepared(s, Subject(package=PACKAGE, sdk="com.example:tracker"))
    assert prepared.checklist.problems == []
    assert [t.index for t in prepared.checklist.takedowns] == [issued["index"]]


# --------------------------------------------------------------- role policy


def test_role_policy_lets_access_providers_take_down_only() -> None:
    """policies/roles.toml: access providers sign takedowns, not restores."""
    policy = RolePolicy.load(REPO / "policies" / "roles.toml")
    assert "access_provider" in policy.allowed(TAKEDOWN)
    assert "access_provider" not in policy.allowed(RESTORE)
    assert "access_provider" not in policy.allowed(INSPECTION)


def test_accept_applies_the_access_provider_rule(tmp_path: Path) -> None:
    """The same decision at the log's gate, with the repository policy."""
    with running_world("sqlite", tmp_path) as w:
        build_chain(w, shelve=False)
        inspection = w.ref("inspection-v1")
        actors = [body for name, (_, body) in w.entries.items() if name.startswith("actor:")]
    registry = rebuild_registry(w.root_keys, actors)
    takedown = make_statement(
        TAKEDOWN,
        {
            "authority": "isp",
            "scope": {"kind": "app", "package": PACKAGE},
            "reason": {"code": "privacy", "text": "t"},
            "evidence": [inspection],
            "effective_at": "2026-01-01T00:00:00Z",
        },
    )
    accepted = accept(sign_statement(takedown, [w.signers["isp"]]).to_json(), registry, ())
    assert accepted.signer.id == "isp"
    restore = make_statement(
        RESTORE,
        {
            "authority": "isp",
            "scope": {"kind": "app", "package": PACKAGE},
            "takedown": inspection,
            "reason": {"code": "resolved", "text": "t"},
            "evidence": [],
            "effective_at": "2026-01-01T00:00:00Z",
        },
    )
    with pytest.raises(RoleError, match="may not sign"):
        accept(sign_statement(restore, [w.signers["isp"]]).to_json(), registry, ())


def test_reason_codes_match_the_schema() -> None:
    """The CLI's choices (kept there for start-up time) and the library's lists are
    exactly what the takedown and restore schemas accept."""
    from provenance.cli.takedown import _RESTORE_REASONS, _TAKEDOWN_REASONS
    from provenance.errors import InputError
    from provenance.statements import LogRef, StatementFormatError
    from provenance.takedown import RESTORE_REASONS, TAKEDOWN_REASONS

    assert _TAKEDOWN_REASONS == TAKEDOWN_REASONS and _RESTORE_REASONS == RESTORE_REASONS
    ref = LogRef(0, bytes(32)).to_dict()
    base = {
        "authority": "isp",
        "scope": {"kind": "app", "package": PACKAGE},
        "evidence": [ref],
        "effective_at": "2026-01-01T00:00:00Z",
    }
    for code in TAKEDOWN_REASONS:
        make_statement(TAKEDOWN, {**base, "reason": {"code": code, "text": "t"}})
    for code in RESTORE_REASONS:
        make_statement(RESTORE, {**base, "takedown": ref, "reason": {"code": code, "text": "t"}})
    with pytest.raises(StatementFormatError):
        make_statement(TAKEDOWN, {**base, "reason": {"code": "resolved", "text": "t"}})
    assert issubclass(StatementFormatError, InputError)
