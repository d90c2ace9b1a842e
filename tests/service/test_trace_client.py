"""Tracing with a client that trusts only the log's vkey and the registry's root key,
over HTTP and from a data folder, on SQLite and PostgreSQL; a lying index is caught
or can only omit; the index follows the log across a crash gap and rebuilds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from svc_world import APK_V1, PACKAGE, World, apk, running_world

from provenance.cli import main
from provenance.log.note import generate_key
from provenance.service import ServiceSettings
from provenance.statements import DEVELOPER_REGISTRATION, KeySigner, canonical_json
from provenance.trace import Indexer, registry_document

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="module", params=BACKENDS)
def lived(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with running_world(request.param, tmp_path_factory.mktemp("lived")) as w:
        w.life_cycle()
        w.wait_integrated()
        yield w


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with running_world(request.param, tmp_path) as w:
        w.life_cycle()
        w.wait_integrated()
        yield w


def _trust_files(w: World, tmp_path: Path) -> tuple[Path, Path]:
    """What a terminal holds: the log's vkey and the registry root's public key."""
    vkey = tmp_path / "log.vkey"
    vkey.write_text(w.vkey + "\n")
    root = tmp_path / "root.pub.pem"
    root.write_bytes(
        w.root.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return vkey, root


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------- the CLI, verified


def test_cli_trace_over_http(
    lived: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey, root = _trust_files(lived, tmp_path)
    rc, out, err = _cli(
        capsys, "trace", PACKAGE, "--url", lived.url, "--vkey", str(vkey), "--root-key", str(root)
    )
    assert rc == 0, out + err
    assert out.startswith("VERIFIED: 8 statements")
    lines = out.splitlines()
    # the life cycle, in order: registration, then per version release -> takedown
    order = [
        next(i for i, line in enumerate(lines) if word in line)
        for word in (
            "registration",
            "developer-registration",
            "release",
            "shelving",
            "inspection",
            "takedown",
            "restore",
        )
    ]
    assert order == sorted(order)
    assert sum("version 10" in line for line in lines) == 2
    assert f"{PACKAGE}  [available]" in out

    rc, out, _ = _cli(
        capsys,
        "trace",
        PACKAGE,
        "--url",
        lived.url,
        "--vkey",
        lived.vkey,
        "--root-key",
        str(root),
        "--json",
    )
    doc = json.loads(out)
    assert rc == 0 and doc["verified"] and doc["problems"] == []
    (app,) = doc["apps"]
    assert app["package"] == PACKAGE and len(app["versions"]) == 2
    v1 = next(v for v in app["versions"] if v["takedowns_restores"])
    assert len(v1["takedowns_restores"]) == 2 and v1["standing"] == "available"
    assert len(doc["actors"]) == 5


def test_cli_trace_by_apk_and_digest(
    lived: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey, _ = _trust_files(lived, tmp_path)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(registry_document(lived.root_keys)))
    common = ["--url", lived.url, "--vkey", str(vkey), "--registry", str(registry)]
    rc, out, err = _cli(capsys, "trace", "--apk", str(apk(APK_V1)), *common)
    assert rc == 0, out + err
    assert "<== this APK" in out
    sha = World._predicate(lived.entries["release-v1"][1])["apk"]["sha256"]
    rc, out2, _ = _cli(capsys, "trace", "--sha256", sha.upper(), *common, "--json")
    assert rc == 0 and json.loads(out2)["verified"]
    rc, out3, _ = _cli(capsys, "trace", "--sha256", "0" * 64, *common)
    assert rc == 0 and "no statements found" in out3


def test_cli_trace_from_the_data_folder(
    lived: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey, root = _trust_files(lived, tmp_path)
    pg = ["--postgres", lived.dsn] if lived.dsn else []
    rc, out, err = _cli(
        capsys,
        "trace",
        PACKAGE,
        "--dir",
        str(lived.directory),
        *pg,
        "--vkey",
        str(vkey),
        "--root-key",
        str(root),
    )
    assert rc == 0, out + err
    assert out.startswith("VERIFIED: 8 statements")


def test_cli_trace_with_wrong_trust(
    lived: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey, root = _trust_files(lived, tmp_path)
    other_root = tmp_path / "other.pem"
    other_root.write_bytes(
        KeySigner.generate().public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rc, out, _ = _cli(
        capsys,
        "trace",
        PACKAGE,
        "--url",
        lived.url,
        "--vkey",
        str(vkey),
        "--root-key",
        str(other_root),
    )
    assert rc == 1 and out.startswith("NOT VERIFIED") and "does not verify" in out
    _, other_vkey = generate_key(lived.service.log.origin)
    rc, out, _ = _cli(
        capsys, "trace", PACKAGE, "--url", lived.url, "--vkey", other_vkey, "--root-key", str(root)
    )
    assert rc == 1 and "checkpoint does not verify" in out
    # a witness policy whose quorum the (uncosigned) checkpoints do not meet
    _, witness = generate_key("witness.example.test", alg=0x04)
    policy = tmp_path / "policy"
    policy.write_text(f"log {lived.vkey}\nwitness w1 {witness}\nquorum w1\n")
    rc, out, _ = _cli(
        capsys,
        "trace",
        PACKAGE,
        "--url",
        lived.url,
        "--vkey",
        str(vkey),
        "--root-key",
        str(root),
        "--policy",
        str(policy),
    )
    assert rc == 1 and "quorum" in out
    policy.write_text(f"log {lived.vkey}\nquorum none\n")
    rc, out, _ = _cli(
        capsys,
        "trace",
        PACKAGE,
        "--url",
        lived.url,
        "--vkey",
        str(vkey),
        "--root-key",
        str(root),
        "--policy",
        str(policy),
    )
    assert rc == 0, out
    # usage errors
    assert main(["trace", "--url", lived.url, "--vkey", str(vkey), "--root-key", str(root)]) == 2
    assert main(["trace", PACKAGE, "--url", lived.url, "--vkey", str(vkey)]) == 2
    capsys.readouterr()


# ------------------------------------------------------------- a lying index


def _sql(w: World, sql: str, params: tuple[object, ...] = ()) -> None:
    with w.service.db.transaction() as tx:
        tx.execute(sql, params)


def _rebuild(w: World) -> None:
    w.service.index.reset()
    Indexer(w.service.log, w.service.index).catch_up()


def test_lying_index_is_caught_or_only_omits(world: World) -> None:
    w = world
    assert w.trace().ok
    rel1, _ = w.entries["release-v1"]
    takedown, _ = w.entries["takedown-v1"]
    restore, _ = w.entries["restore-v1"]
    reg_acme, _ = w.entries["actor:acme"]

    # 1. altered entry bytes: the inclusion proof fails
    _, other = w.entries["release-v2"]
    _sql(w, "UPDATE trace_entries SET entry = ? WHERE idx = ?", (other, rel1))
    result = w.trace()
    assert not result.ok
    assert any(f"entry {rel1}: inclusion proof does not verify" in p for p in result.problems)
    _rebuild(w)
    assert w.trace().ok

    # 2. a release left out of the package query: its shelving cites it
    _sql(w, "DELETE FROM trace_keys WHERE idx = ? AND kind = 'package'", (rel1,))
    result = w.trace()
    assert any(f"entry {rel1} (release) matches package" in p for p in result.problems)

    # 3. the takedown removed from the index altogether: the restore cites it, and
    #    the service reads it from the log itself
    _sql(w, "DELETE FROM trace_keys WHERE idx = ?", (takedown,))
    _sql(w, "DELETE FROM trace_entries WHERE idx = ?", (takedown,))
    result = w.trace()
    assert any(f"entry {takedown} (takedown) matches package" in p for p in result.problems)
    _rebuild(w)

    # 4. an unrelated statement passed off as matching
    _sql(
        w, "INSERT INTO trace_keys (kind, value, idx) VALUES ('package', ?, ?)", (PACKAGE, reg_acme)
    )
    result = w.trace()
    assert any(f"entry {reg_acme} (actor-registration) was returned" in p for p in result.problems)
    _rebuild(w)

    # 5. the last restore, which nothing cites, omitted: undetectable, but only an
    #    omission -- what is shown still verifies
    _sql(w, "DELETE FROM trace_keys WHERE idx = ?", (restore,))
    result = w.trace()
    assert result.ok
    assert restore not in {s.index for s in result.statements}
    _rebuild(w)

    # 6. an actor registration hidden from /v1/actors: that actor's statements fail
    _sql(w, "DELETE FROM trace_keys WHERE idx = ? AND kind = 'type'", (reg_acme,))
    result = w.trace()
    assert any(f"entry {rel1} does not verify" in p for p in result.problems)
    _rebuild(w)
    assert w.trace().ok


def test_index_rebuilds_identically_and_catches_up_after_a_crash_gap(world: World) -> None:
    w = world

    def answer() -> list[object]:
        doc = w.http.get("/v1/trace", params={"package": PACKAGE}).json()
        return [doc["entries"], doc["references"]]

    before = answer()
    _rebuild(w)
    assert answer() == before

    # A crash between the log's commit and the index's: the entry is in the log only.
    body = w.sign(DEVELOPER_REGISTRATION, w.developer_registration(), "store")
    index = w.service.log.sequencer.append(body)
    assert w.service.index.size() == index  # the index is behind the log
    # the next submission catches the index up first -- so the gap's statement is
    # "seen" (a replay of it is refused) and traceable
    assert w.post(body, "store").status_code == 409
    assert w.service.index.size() == index + 1
    result = w.trace(("actor", "acme"))
    assert result.ok and index in {s.index for s in result.statements if s.matched}
    # a log entry that is not a statement is skipped, not indexed, not fatal
    junk = w.service.log.sequencer.append(b"not a statement")
    w.submit("again", DEVELOPER_REGISTRATION, w.developer_registration(), "store")
    assert w.service.index.size() == junk + 2
    assert w.http.get(f"/v1/entries/{junk}").json()["entry"]["predicate_type"] is None
    assert w.trace().ok


def test_pending_entries_are_listed_without_proof(tmp_path: Path) -> None:
    settings = ServiceSettings(log_options={"background": False, "fsync": False})
    with running_world("sqlite", tmp_path, settings) as w:
        w.register_actors()  # sequenced, not integrated: no checkpoint covers them
        body = w.sign(DEVELOPER_REGISTRATION, w.developer_registration(), "store")
        resp = w.post(body, "store")
        assert resp.status_code == 201
        index = resp.json()["index"]
        doc = w.http.get("/v1/trace", params={"actor": "acme"}).json()
        assert doc["tree_size"] == 0 and doc["entries"] == []
        assert [p["index"] for p in doc["pending"]] == [w.entries["actor:acme"][0], index]
        assert all("proof" not in p for p in doc["pending"])
        entry = w.http.get(f"/v1/entries/{index}").json()
        assert entry["pending"] and "proof" not in entry["entry"]
        assert canonical_json(entry["entry"]["envelope"]) == body
        w.service.log.sequencer.integrate()
        doc = w.http.get("/v1/trace", params={"actor": "acme"}).json()
        assert doc["pending"] == [] and doc["entries"][-1]["index"] == index
        assert w.trace(("actor", "acme")).ok
