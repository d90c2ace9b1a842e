"""``apkprov serve`` as a real process, and ``apkprov actor`` token administration,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from pg import shared_server
from serving import serve_process
from svc_world import ACTORS, ORIGIN, PACKAGE, T0

from provenance.cli import main
from provenance.log.log import Log
from provenance.service import TokenStore, open_service_db
from provenance.statements import (
    ACTOR_REGISTRATION,
    Actor,
    ActorKey,
    KeySigner,
    make_statement,
    sign_statement,
)

BACKENDS = ["sqlite", "postgres"]


def _new_log(backend: str, tmp_path: Path) -> tuple[Path, str | None]:
    dsn = shared_server().new_dsn() if backend == "postgres" else None
    directory = tmp_path / "data"
    Log.create(directory, ORIGIN, postgres=dsn, fsync=False).close()
    return directory, dsn


@pytest.mark.parametrize("backend", BACKENDS)
def test_actor_token_commands(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, dsn = _new_log(backend, tmp_path)
    pg = ["--postgres", dsn] if dsn else []
    assert main(["actor", "add-token", "acme", "--dir", str(directory), *pg, "--label", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("apkprov_")
    assert main(["actor", "add-token", "store", "--dir", str(directory), *pg, "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["actor"] == "store" and issued["token"].startswith("apkprov_")

    assert main(["actor", "list", "--dir", str(directory), *pg, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(t["actor"] for t in listed) == ["acme", "store"]
    assert all("token" not in t for t in listed)
    # stored hashed: neither token appears in the database
    db = open_service_db(directory, dsn)
    try:
        rows = db.query("SELECT token_id, token_hash, actor, label FROM svc_tokens")
        assert token not in repr(rows) and issued["token"] not in repr(rows)
        store = TokenStore(db)
        assert store.authenticate(token) is not None
        assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    finally:
        db.close()

    acme_id = token.split("_")[1]
    assert main(["actor", "revoke-token", acme_id, "--dir", str(directory), *pg]) == 0
    assert main(["actor", "revoke-token", acme_id, "--dir", str(directory), *pg]) == 1
    assert main(["actor", "list", "--dir", str(directory), *pg]) == 0
    out = capsys.readouterr().out
    assert f"{acme_id}  acme" in out and "revoked" in out
    # bad input: exit 2
    assert main(["actor", "add-token", "Not An Actor", "--dir", str(directory), *pg]) == 2
    assert main(["actor", "list", "--dir", str(tmp_path / "nowhere")]) == 2
    capsys.readouterr()


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_process(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory, dsn = _new_log(backend, tmp_path)
    pg = ["--postgres", dsn] if dsn else []
    root = KeySigner.generate()
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(
        root.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["actor", "add-token", "registry-root", "--dir", str(directory), *pg]) == 0
    token = capsys.readouterr().out.strip()
    with serve_process(
        directory,
        *pg,
        *("--root-key", str(root_pem), "--checkpoint-interval", "0.05"),
    ) as url:
        regulator = KeySigner.generate()
        actor = Actor(
            "regulator",
            "Regulator",
            frozenset(ACTORS["regulator"][0]),
            (ActorKey(regulator.public_key, T0),),
        )
        statement = make_statement(ACTOR_REGISTRATION, actor.registration("registry-root"))
        body = sign_statement(statement, [root]).to_json()
        resp = httpx.post(
            url + "/v1/statements", content=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["index"] == 0
        assert httpx.post(url + "/v1/statements", content=body).status_code == 401
        deadline = time.monotonic() + 10
        while httpx.get(url + "/v1/status").json()["tree_size"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(url + "/v1/actors").json()["entries"][0]["index"] == 0
        assert httpx.get(url + "/v1/trace", params={"package": PACKAGE}).json()["entries"] == []
    # stopped cleanly: the entry is integrated and indexed
    with Log.open(directory, postgres=dsn) as log:
        assert log.state.tree().size == 1
    db = open_service_db(directory, dsn)
    try:
        assert db.query("SELECT value FROM trace_meta WHERE key = 'size'")[0][0] == "1"
    finally:
        db.close()


def test_serve_refuses_bad_setups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = _new_log("sqlite", tmp_path)
    assert main(["serve", "--dir", str(directory)]) == 2  # no registry root
    assert "root key" in capsys.readouterr().err
    assert main(["serve", "--dir", str(tmp_path / "none"), "--root-key", "x"]) == 2
    assert main(["serve", "--dir", str(directory), "--root-key", str(directory / "log.json")]) == 2
    capsys.readouterr()


def test_serve_with_verdict_key(tmp_path: Path) -> None:
    """`apkprov serve --verdict-key`: terminals' signed verdicts come from the same process."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from provenance.verdicts import Query, verify_verdict

    directory, _ = _new_log("sqlite", tmp_path)
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(
        KeySigner.generate().public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "verdict.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with serve_process(
        directory, "--root-key", str(root_pem), "--verdict-key", f"file:{key_file}"
    ) as url:
        sha = "ab" * 32
        resp = httpx.get(url + "/v1/verdict", params={"sha256": sha})
        assert resp.status_code == 200, resp.text
        verdict = verify_verdict(resp.content, key.public_key(), query=Query(apk_sha256=sha))
        assert verdict.verdict == "unknown"
        assert httpx.get(url + "/v1/verdict", params={"sha256": "zz"}).status_code == 400
        assert httpx.get(url + "/v1/verdict-key").json()["keyid"]
        # the service's own API is still there
        assert httpx.get(url + "/v1/status").status_code == 200
    assert (directory / "verdicts.db").exists()
