"""``apkprov statement``: make, release, sign, verify offline, submit to a real
``apkprov serve`` (refusals keep the service's reason code and exit 1)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from serving import serve_process

# the service fixtures (svc_world, test_serve_cli), as tests/takedown/conftest.py does
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from stmt_helpers import predicate as example_predicate
from svc_world import APK_V1, PACKAGE, T0, apk
from test_serve_cli import _new_log

from provenance.cli import main
from provenance.log.merkle import leaf_hash
from provenance.statements import (
    DEVELOPER_REGISTRATION,
    SDK_REGISTRATION,
    Actor,
    ActorKey,
    KeySigner,
)


def _keys(tmp: Path, name: str, alg: str = "ed25519") -> tuple[KeySigner, Path, Path]:
    """A dev key pair on disk: (signer, private key file, public key file)."""
    signer = KeySigner.generate(alg)
    private = tmp / f"{name}.key.pem"
    private.write_bytes(signer.private_pem())
    public = tmp / f"{name}.pub.pem"
    public.write_bytes(
        signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return signer, private, public


def _write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), "utf-8")
    return path


def _registration(
    actor_id: str, roles: list[str], signer: KeySigner, registrar: str
) -> dict[str, Any]:
    actor = Actor(actor_id, actor_id.title(), frozenset(roles), (ActorKey(signer.public_key, T0),))
    return actor.registration(registrar)


def test_make_sign_verify_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, store_key, store_pub = _keys(tmp_path, "store", "ecdsa-p256-sha256")
    _, _, other_pub = _keys(tmp_path, "other")
    pred = _write_json(tmp_path / "dev.json", example_predicate(DEVELOPER_REGISTRATION))
    stmt = tmp_path / "sdk.stmt.json"
    env = tmp_path / "dev.dsse.json"

    assert main(["statement", "make", "developer-registration", "--predicate", str(pred)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["predicateType"] == DEVELOPER_REGISTRATION
    assert len(printed["predicate"]["statement_id"]) == 32 and printed["predicate"]["issued_at"]
    assert {s["name"] for s in printed["subject"]} >= {"actor:acme"}

    argv = ["statement", "make", "developer-registration", "--predicate", str(pred)]
    assert main([*argv, "--out", str(stmt)]) == 0
    assert str(stmt) in capsys.readouterr().out
    assert main(["statement", "sign", str(stmt), "--key", f"file:{store_key}"]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["signatures"][0]["keyid"] == store.key_id
    assert base64.b64decode(signed["payload"]) == stmt.read_bytes().strip()
    assert main(["statement", "sign", str(stmt), "--key", str(store_key), "--out", str(env)]) == 0
    capsys.readouterr()

    assert main(["statement", "verify", str(env), "--key-file", str(store_pub), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["keyids"] == [store.key_id]
    assert report["signer"] == "store" and report["predicate_type"] == DEVELOPER_REGISTRATION
    assert main(["statement", "verify", str(env), "--key-file", str(store_pub)]) == 0
    assert "verified: developer-registration statement" in capsys.readouterr().out

    # another key, or a flipped signature: the check runs and fails (exit 1)
    assert main(["statement", "verify", str(env), "--key-file", str(other_pub)]) == 1
    doc = json.loads(env.read_bytes())
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[-1] ^= 1
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    bad = _write_json(tmp_path / "bad.dsse.json", doc)
    assert main(["statement", "verify", str(bad), "--key-file", str(store_pub)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "apkprov:" in err

    # input errors: one line, exit 2
    broken = example_predicate(DEVELOPER_REGISTRATION)
    del broken["developer"]
    bad_pred = _write_json(tmp_path / "broken.json", broken)
    for argv in (
        ["statement", "make", "publication", "--predicate", str(pred)],
        ["statement", "make", "developer-registration", "--predicate", str(bad_pred)],
        ["statement", "make", "release", "--predicate", str(pred)],
        ["statement", "make", "release", "--predicate", str(tmp_path / "missing.json")],
        ["statement", "sign", str(stmt), "--key", f"file:{tmp_path / 'missing.pem'}"],
        ["statement", "sign", str(pred), "--key", str(store_key)],
        ["statement", "sign", str(stmt), "--key", "gcpkms:projects/p/keys/k"],
        ["statement", "verify", str(stmt), "--key-file", str(store_pub)],
        ["statement", "verify", str(env), "--key-file", str(pred)],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("apkprov: ") and err.count("\n") == 1, (argv, err)
    assert main(["statement"]) == 2
    capsys.readouterr()


def test_release_statement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = apk(APK_V1)
    reg = f"3:{'ab' * 32}"
    out = tmp_path / "release.stmt.json"
    argv = ["statement", "release", str(path), "--developer", "acme", "--registration", reg]
    assert main([*argv, "--out", str(out)]) == 0
    assert PACKAGE in capsys.readouterr().out
    stmt = json.loads(out.read_bytes())
    p = stmt["predicate"]
    assert p["package"] == PACKAGE and p["developer"] == "acme"
    assert p["developer_registration"] == {"index": 3, "leaf_hash": "ab" * 32}
    assert p["verification"]["verified"] is True
    assert {s["name"] for s in stmt["subject"]} >= {f"apk:{PACKAGE}"}
    # the statement signs as it is
    _, key, pub = _keys(tmp_path, "acme")
    env = tmp_path / "release.dsse.json"
    assert main(["statement", "sign", str(out), "--key", str(key), "--out", str(env)]) == 0
    assert main(["statement", "verify", str(env), "--key-file", str(pub)]) == 0
    capsys.readouterr()

    not_apk = tmp_path / "not.apk"
    not_apk.write_bytes(b"PK not really")
    for bad in (
        [*argv[:-1], "3"],
        [*argv[:-1], f"x:{'ab' * 32}"],
        [*argv[:-1], f"3:{'zz' * 32}"],
        ["statement", "release", str(tmp_path / "none.apk"), *argv[3:]],
        ["statement", "release", str(not_apk), *argv[3:]],
    ):
        assert main(bad) == 2, bad
        assert capsys.readouterr().err.count("\n") == 1


@pytest.fixture
def served(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    """``apkprov serve`` on 127.0.0.1 (registry root key in ``root.key.pem``), with the
    tokens of the root and the regulator in the environment."""
    directory, _ = _new_log("sqlite", tmp_path)
    _keys(tmp_path, "root")
    tokens = {}
    for actor in ("registry-root", "regulator"):
        assert main(["actor", "add-token", actor, "--dir", str(directory)]) == 0
        tokens[actor] = capsys.readouterr().out.strip()
    with (
        serve_process(
            directory,
            *("--root-key", str(tmp_path / "root.pub.pem"), "--checkpoint-interval", "0.05"),
        ) as url,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("ROOT_TOKEN", tokens["registry-root"])
        mp.setenv("REGULATOR_TOKEN", tokens["regulator"])
        yield url


def _make_and_sign(tmp: Path, name: str, ptype: str, predicate: dict[str, Any], key: Path) -> Path:
    pred = _write_json(tmp / f"{name}.json", predicate)
    stmt, env = tmp / f"{name}.stmt.json", tmp / f"{name}.dsse.json"
    assert main(["statement", "make", ptype, "--predicate", str(pred), "--out", str(stmt)]) == 0
    assert main(["statement", "sign", str(stmt), "--key", f"file:{key}", "--out", str(env)]) == 0
    return env


def test_submit_to_serve(served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = served
    root_key = tmp_path / "root.key.pem"
    regulator, regulator_key, _ = _keys(tmp_path, "regulator", "ecdsa-p256-sha256")
    store, _, _ = _keys(tmp_path, "store")

    # the root registers the regulator: index 0, the receipt's leaf hash is the body's
    env = _make_and_sign(
        tmp_path,
        "reg-regulator",
        "actor-registration",
        _registration("regulator", ["regulator"], regulator, "registry-root"),
        root_key,
    )
    capsys.readouterr()
    submit = ["statement", "submit", str(env), "--url", url]
    assert main([*submit, "--token", "env:ROOT_TOKEN"]) == 0
    out = capsys.readouterr().out
    body = json.dumps(json.loads(env.read_bytes()), separators=(",", ":"), sort_keys=True)
    assert "actor-registration submitted: log entry 0" in out
    assert leaf_hash(body.encode()).hex() in out

    # the regulator registers a platform (--json receipt)
    env = _make_and_sign(
        tmp_path,
        "reg-store",
        "actor-registration",
        _registration("store", ["platform"], store, "regulator"),
        regulator_key,
    )
    capsys.readouterr()
    argv = ["statement", "submit", str(env), "--url", url, "--token", "env:REGULATOR_TOKEN"]
    assert main([*argv, "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["index"] == 1 and receipt["signer"] == "regulator"

    # sent again: the service refuses it as a replay (exit 1, reason code kept)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "replay" in err and err.count("\n") == 1

    # a regulator may not register an SDK as its provider: wrong-role, exit 1
    sdk = example_predicate(SDK_REGISTRATION)
    sdk["provider"] = "regulator"
    env = _make_and_sign(tmp_path, "sdk", "sdk-registration", sdk, regulator_key)
    capsys.readouterr()
    argv = ["statement", "submit", str(env), "--url", url, "--token", "env:REGULATOR_TOKEN"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("apkprov: ") and "wrong-role" in err and err.count("\n") == 1
    assert main([*argv, "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["error"] == "wrong-role" and refused["status"] == 403

    # a good statement of the regulator sent with the root's token: wrong-actor
    store2, _, _ = _keys(tmp_path, "store2")
    env2 = _make_and_sign(
        tmp_path,
        "reg-store2",
        "actor-registration",
        _registration("store2", ["platform"], store2, "regulator"),
        regulator_key,
    )
    capsys.readouterr()
    assert main(["statement", "submit", str(env2), "--url", url, "--token", "env:ROOT_TOKEN"]) == 1
    assert "wrong-actor" in capsys.readouterr().err

    # input errors: exit 2, nothing sent
    stmt = tmp_path / "sdk.stmt.json"
    for bad in (
        [*argv[:-1], "env:NO_SUCH_TOKEN_VARIABLE"],
        ["statement", "submit", str(stmt), "--url", url, "--token", "env:ROOT_TOKEN"],
        ["statement", "submit", str(env), "--url", "ftp://x", "--token", "env:ROOT_TOKEN"],
    ):
        assert main(bad) == 2, bad
        assert capsys.readouterr().err.count("\n") == 1
    assert httpx.get(url + "/v1/status").json()["sequenced"] == 2
