"""``apkprov feed`` and ``apkprov terminal check`` as an operator and a terminal use them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from corpus import require, shared_dir
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_feed import Server
from verdicts.verdict_world import LogWorld, now

from provenance.apk.verify import verify_apk
from provenance.cli import main
from provenance.statements import KeySigner


def _apk(name: str) -> Path:
    return require(shared_dir() / "corpus" / "fdroid" / "apks" / name)


def test_operator_and_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = _apk("repo__com.politedroid_6.apk"), _apk("repo__com.politedroid_4.apk")
    world = LogWorld(tmp_path / "world")
    cert = verify_apk(good).signer_certs[0].sha256
    dev = world.register_developer([cert], "com.politedroid")
    world.release(good, dev)
    rel, pred = world.release(bad, dev)
    world.inspect(rel, pred["apk"]["sha256"], "com.politedroid", "hot_swapped", "loads DEX")
    world.integrate()
    (tmp_path / "root.pem").write_bytes(world.root_keys_pem())
    (tmp_path / "w.policy").write_text(world.policy_text(quorum=1))
    service = KeySigner.generate()
    (tmp_path / "verdict.pem").write_bytes(
        service.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    repo, offline = tmp_path / "repo", tmp_path / "offline"
    common = [
        "--offline-keys", str(offline),
        "--log-vkey", world.log.config.vkey,
        "--witness-policy", str(tmp_path / "w.policy"),
        "--registry-root", str(tmp_path / "root.pem"),
        "--verdict-key", str(tmp_path / "verdict.pem"),
    ]  # fmt: skip
    assert main(["feed", "init", "--dir", str(repo), *common, "--timestamp-expiry", "2h"]) == 0
    assert "move" in capsys.readouterr().err
    assert sorted(p.name for p in offline.iterdir()) == ["root.key", "targets.key"]
    assert sorted(p.name for p in (repo / "keys").iterdir()) == [
        "feed.key",
        "snapshot.key",
        "timestamp.key",
    ]
    assert not (repo / "public" / "keys").exists()
    world.close()

    db = tmp_path / "verdicts.db"
    args = ["feed", "publish", "--dir", str(repo), "--verdicts", str(db)]
    assert main([*args, "--log", str(tmp_path / "world" / "log"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feed_version"] == 2 and out["new_files"] >= 3
    assert main(["feed", "publish", "--dir", str(repo), "--refresh"]) == 0
    assert "re-publish before" in capsys.readouterr().out
    assert main(["feed", "status", "--dir", str(repo), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["roles"]
    assert status["feed"]["version"] == 3 and not status["timestamp"]["expired"]
    assert main(["feed", "roots", "--dir", str(repo), *common]) == 0
    assert main(["feed", "renew-root", "--dir", str(repo), "--offline-keys", str(offline)]) == 0
    rotate = ["feed", "rotate", "--dir", str(repo), "--offline-keys", str(offline)]
    assert main([*rotate, "--role", "snapshot"]) == 0
    assert main([*rotate, "--role", "feed"]) == 0
    capsys.readouterr()

    server = Server(repo / "public")
    try:
        cache = str(tmp_path / "cache")
        root = str(repo / "public" / "metadata" / "1.root.json")
        check = ["terminal", "check", "--cache", cache]
        assert main([*check, str(good), "--feed-url", server.url, "--root", root]) == 0
        text = capsys.readouterr().out
        assert text.startswith("OK: com.politedroid version 6 is trusted")
        assert "inclusion proven" in text
        assert main([*check, str(bad), "--json"]) == 1
        got = json.loads(capsys.readouterr().out)
        assert got["verdict"] == "hot_swapped" and got["warning"] is True
        assert any("loads DEX" in r for r in got["reasons"])
        # offline: the URL is remembered, the network is not needed
        server.close()
        assert main([*check, str(good), "--offline"]) == 0
        assert main([*check, str(bad), "--offline"]) == 1
        capsys.readouterr()
        assert main([*check, str(good)]) == 2  # online, but the server is gone
        assert "--offline" in capsys.readouterr().err
        not_apk = tmp_path / "x.apk"
        not_apk.write_bytes(b"not a zip")
        assert main([*check, str(not_apk), "--offline"]) == 2
    finally:
        server.close()
    assert now() - timedelta(minutes=1) < now()  # the world's clock helper stays usable
