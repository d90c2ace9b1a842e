"""The TUF feed end to end over HTTP on 127.0.0.1, the terminal on corpus APKs, attacks."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from corpus import require, shared_dir
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from verdicts.verdict_world import LogWorld, now

from provenance.apk.verify import verify_apk
from provenance.feed import (
    EvidenceError,
    FeedClient,
    FeedFrozen,
    FeedRepository,
    FeedRollback,
    FeedTampered,
    FeedUnavailable,
    TrustRoots,
    build_feed,
    publish_index,
)
from provenance.feed.layout import apk_shard
from provenance.statements import KeySigner
from provenance.verdicts import Query, VerdictIndex, VerdictKind


def _apk(name: str) -> Path:
    return require(shared_dir() / "corpus" / "fdroid" / "apks" / name)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    """A static HTTP server for one directory, on 127.0.0.1 in a thread."""

    root: Path

    def __post_init__(self) -> None:
        handler = functools.partial(_Quiet, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Setup:
    world: LogWorld
    index: VerdictIndex
    repo: FeedRepository
    offline: Path
    server: Server
    shas: dict[str, str]

    @property
    def root_json(self) -> Path:
        return self.repo.public / "metadata" / "1.root.json"

    def client(self, cache: Path, **kw: Any) -> FeedClient:
        kw.setdefault("url", self.server.url)
        return FeedClient(cache, root=self.root_json, **kw)


def _roots(world: LogWorld, tmp: Path) -> TrustRoots:
    (tmp / "registry-root.pem").write_bytes(world.root_keys_pem())
    (tmp / "witnesses.policy").write_text(world.policy_text())
    service = KeySigner.generate()
    (tmp / "verdict.pem").write_bytes(
        service.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return TrustRoots.build(
        world.log.config.vkey,
        [tmp / "registry-root.pem"],
        tmp / "verdict.pem",
        tmp / "witnesses.policy",
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("feed")
    world = LogWorld(tmp / "world")
    shas: dict[str, str] = {}
    polite = verify_apk(_apk("repo__com.politedroid_6.apk")).signer_certs[0].sha256
    obb = verify_apk(_apk("repo__obb.mainpatch.current_1619.apk")).signer_certs[0].sha256
    dev = world.register_developer([polite], "com.politedroid")
    dev_obb = world.register_developer([obb], "obb.mainpatch.current")
    for name in ("repo__com.politedroid_6.apk", "repo__com.politedroid_5.apk"):
        rel, pred = world.release(_apk(name), dev)
        world.shelve(rel, pred)
        shas[name] = pred["apk"]["sha256"]
    _rel_obb, pred_obb = world.release(_apk("repo__obb.mainpatch.current_1619.apk"), dev_obb)
    shas["obb"] = pred_obb["apk"]["sha256"]
    down_scope = {
        "kind": "version",
        "package": "com.politedroid",
        "apk_sha256": shas["repo__com.politedroid_5.apk"],
    }
    world.takedown(down_scope, rel, effective=now() - timedelta(minutes=5))
    world.integrate()
    index = VerdictIndex.open(tmp / "verdicts.db")
    offline = tmp / "offline-keys"
    repo = FeedRepository.init(tmp / "repo", offline, _roots(world, tmp))
    publish_index(repo, index, world.log)
    server = Server(repo.public)
    yield Setup(world, index, repo, offline, server, shas)
    server.close()
    world.close()


def _clone(setup: Setup, tmp: Path) -> tuple[FeedRepository, Server]:
    shutil.copytree(setup.repo.directory, tmp / "repo")
    repo = FeedRepository(tmp / "repo")
    return repo, Server(repo.public)


# --------------------------------------------------------------------- the terminal


@pytest.mark.parametrize(
    ("name", "verdict", "source"),
    [
        ("repo__com.politedroid_6.apk", VerdictKind.TRUSTED, "feed-file"),
        ("repo__com.politedroid_5.apk", VerdictKind.TAKEN_DOWN, "feed-file"),
        ("repo__obb.mainpatch.current_1619.apk", VerdictKind.TRUSTED, "feed-file"),
        # same package, another key: not the developer's
        (
            "repo__obb.mainpatch.current_1619_another-release-key.apk",
            VerdictKind.COUNTERFEIT,
            "feed-package",
        ),
        # the developer's key, a version the log does not know
        ("repo__com.politedroid_3.apk", VerdictKind.UNKNOWN, "feed-package"),
        ("org.dyndns.fules.ck_20.apk", VerdictKind.UNKNOWN, "none"),
        # a broken signature is a warning whatever the feed says
        ("urzip-badcert.apk", VerdictKind.COUNTERFEIT, "none"),
    ],
)
def test_terminal_on_corpus_apks(
    setup: Setup, tmp_path: Path, name: str, verdict: VerdictKind, source: str
) -> None:
    result = setup.client(tmp_path / "cache").check(_apk(name))
    assert (result.verdict, result.source) == (verdict, source), result.render()
    assert result.exit_code == (1 if verdict.warning else 0)
    assert result.reasons
    assert result.feed["witnesses"] == ["witness.example.test/w0", "witness.example.test/w1"]
    text = result.render()
    if verdict.warning:
        assert text.startswith("WARNING: ")
    if verdict is VerdictKind.TAKEN_DOWN:
        assert "regulator took this version down" in text and result.evidence


def test_terminal_downloads_only_the_shards_it_needs(setup: Setup, tmp_path: Path) -> None:
    client = setup.client(tmp_path / "cache")
    client.check(_apk("repo__com.politedroid_6.apk"))
    cached = sorted(p.name for p in (tmp_path / "cache" / "targets").iterdir())
    shards = [c for c in cached if c.startswith("feed%2Fapk") or c.startswith("feed%2Fpkg")]
    assert shards == ["feed%2Fapk%2F" + setup.shas["repo__com.politedroid_6.apk"][:2] + ".json"]
    published = list((setup.repo.public / "targets" / "feed" / "apk").iterdir())
    assert len(published) > 1  # there are other shards it did not fetch


def test_offline_after_refresh(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    online = setup.client(cache).check(_apk("repo__com.politedroid_5.apk"))
    # no network at all: a URL nobody listens on, and offline mode
    offline = FeedClient(cache, "http://127.0.0.1:9", offline=True).check(
        _apk("repo__com.politedroid_5.apk")
    )
    assert offline.verdict is online.verdict is VerdictKind.TAKEN_DOWN
    assert offline.feed["offline"] is True
    # a shard never downloaded cannot be used offline
    with pytest.raises(FeedUnavailable, match="not cached"):
        FeedClient(cache, offline=True).check(_apk("repo__obb.mainpatch.current_1619.apk"))
    # online without a reachable server is a clear input error, not a verdict
    with pytest.raises(FeedUnavailable, match="cannot download"):
        FeedClient(cache, "http://127.0.0.1:9").check(_apk("repo__com.politedroid_5.apk"))
    # seven hours later the cached timestamp (6 h) has expired: offline refuses it
    later = datetime.now(UTC) + timedelta(hours=7)

    class _Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> _Later:
            return cls.fromtimestamp(later.timestamp(), tz)

    import tuf.ngclient._internal.trusted_metadata_set as tms

    monkeypatch.setattr(
        tms, "datetime", type("M", (), {"datetime": _Later, "timezone": dt.timezone})
    )
    with pytest.raises(FeedFrozen, match="expired"):
        FeedClient(cache, offline=True).check(_apk("repo__com.politedroid_5.apk"))


# ------------------------------------------------------------------------- attacks


def test_rollback_is_refused(setup: Setup, tmp_path: Path) -> None:
    repo, server = _clone(setup, tmp_path)
    try:
        cache = tmp_path / "cache"
        old_ts = (repo.public / "metadata" / "timestamp.json").read_bytes()
        old_snapshot = sorted((repo.public / "metadata").glob("*.snapshot.json"))
        repo.publish(None)  # a newer state
        FeedClient(cache, server.url, root=setup.root_json).refresh()
        (repo.public / "metadata" / "timestamp.json").write_bytes(old_ts)  # the mirror rolls back
        assert old_snapshot
        with pytest.raises(FeedRollback, match="rollback"):
            FeedClient(cache, server.url).refresh()
    finally:
        server.close()


def test_freeze_is_refused(setup: Setup, tmp_path: Path) -> None:
    repo, server = _clone(setup, tmp_path)
    try:
        # validly signed, but seven hours old: whoever serves it hides newer warnings
        repo.publish(None, now=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=7))
        with pytest.raises(FeedFrozen, match="freeze"):
            FeedClient(tmp_path / "cache", server.url, root=setup.root_json).refresh()
    finally:
        server.close()


def test_tampered_target_is_refused(setup: Setup, tmp_path: Path) -> None:
    repo, server = _clone(setup, tmp_path)
    try:
        sha = setup.shas["repo__com.politedroid_5.apk"]
        shard = apk_shard(sha, repo.prefix_len)
        (f,) = (repo.public / "targets" / "feed" / "apk").glob("*." + shard.rsplit("/", 1)[1])
        doc = json.loads(f.read_bytes())
        doc["records"][sha]["takedowns"] = []
        f.write_bytes(json.dumps(doc).encode())
        with pytest.raises(FeedTampered, match="tampered"):
            FeedClient(tmp_path / "cache", server.url, root=setup.root_json).check(
                _apk("repo__com.politedroid_5.apk")
            )
    finally:
        server.close()


def test_tampered_metadata_is_refused(setup: Setup, tmp_path: Path) -> None:
    repo, server = _clone(setup, tmp_path)
    try:
        meta = max(
            (repo.public / "metadata").glob("*.feed.json"), key=lambda p: int(p.name.split(".")[0])
        )
        doc = json.loads(meta.read_bytes())
        for t in doc["signed"]["targets"].values():
            t["hashes"]["sha256"] = hashlib.sha256(b"forged").hexdigest()
        meta.write_bytes(json.dumps(doc).encode())
        with pytest.raises(FeedTampered, match="not signed by the trusted keys"):
            FeedClient(tmp_path / "cache", server.url, root=setup.root_json).check(
                _apk("repo__com.politedroid_6.apk")
            )
    finally:
        server.close()


def test_a_lying_feed_key_is_caught_by_the_evidence(setup: Setup, tmp_path: Path) -> None:
    """The online feed key signs a record the cited log entries contradict."""
    repo, server = _clone(setup, tmp_path)
    try:
        sha = setup.shas["repo__com.politedroid_5.apk"]
        files = build_feed(setup.index, setup.world.log, prefix_len=repo.prefix_len, now=now())
        path = apk_shard(sha, repo.prefix_len)
        doc = json.loads(files[path])
        doc["records"][sha]["takedowns"][0]["effective_at"] = "2999-01-01T00:00:00Z"
        files[path] = json.dumps(doc).encode()
        repo.publish(files)
        with pytest.raises(EvidenceError, match="the log entries it cites say taken_down"):
            FeedClient(tmp_path / "cache", server.url, root=setup.root_json).check(
                _apk("repo__com.politedroid_5.apk")
            )
    finally:
        server.close()


def test_root_is_needed_once_and_roots_can_change(setup: Setup, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no trusted root"):
        FeedClient(tmp_path / "nocache", setup.server.url)
    repo, server = _clone(setup, tmp_path)
    try:
        cache = tmp_path / "cache"
        FeedClient(cache, server.url, root=setup.root_json).refresh()
        version = repo.renew_root(setup.offline)
        new_key = KeySigner.generate().public_key
        roots = replace(
            repo.trust_roots(),
            verdict_key=new_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        )
        assert repo.set_roots(setup.offline, roots) == 2
        client = FeedClient(cache, server.url)
        client.refresh()
        assert client.updater._trusted_set.root.version == version == 2
        assert client.roots == roots
        assert client.roots.verdict_public_key() == new_key
        # online keys rotate with the offline keys; terminals follow on their next refresh
        for role in ("feed", "timestamp"):
            repo.rotate_key(setup.offline, role)
        assert len(list((repo.keys / "retired").iterdir())) == 2
        result = FeedClient(cache, server.url).check(_apk("repo__com.politedroid_5.apk"))
        assert result.verdict is VerdictKind.TAKEN_DOWN
        # ... and a state signed with a retired key is refused
        stale = repo.keys / "retired"
        (old_ts,) = stale.glob("timestamp.*.key")
        shutil.copyfile(old_ts, repo.keys / "timestamp.key")
        repo.publish(None)
        with pytest.raises(FeedTampered, match="not signed by the trusted keys"):
            FeedClient(cache, server.url).refresh()
    finally:
        server.close()


# ------------------------------------------------- who may sign a package, by file hash


def test_file_records_cite_the_registrations_of_allowed_signers(tmp_path: Path) -> None:
    """A stranger developer releasing a package with its own certificate is
    counterfeit by file hash, online and offline; the legitimate release is trusted,
    and the terminal reaches both from the entries the shard cites (the developer
    registrations included), refusing a record those entries contradict."""
    world = LogWorld(tmp_path / "world")
    world.add_actor("copycat", "developer")
    legit_apk = _apk("repo__obb.mainpatch.current_1619.apk")
    fake_apk = _apk("repo__obb.mainpatch.current_1619_another-release-key.apk")
    cert = verify_apk(legit_apk).signer_certs[0].sha256
    other = verify_apk(fake_apk).signer_certs[0].sha256
    acme = world.register_developer([cert], "obb.mainpatch.current")
    copycat = world.register_developer([other], None, developer="copycat")
    _, legit = world.release(legit_apk, acme)
    _, fake = world.release(fake_apk, copycat, "copycat")
    world.integrate()
    index = VerdictIndex.open(tmp_path / "verdicts.db")
    repo = FeedRepository.init(tmp_path / "repo", tmp_path / "offline", _roots(world, tmp_path))
    publish_index(repo, index, world.log)
    shas = {"legit": legit["apk"]["sha256"], "fake": fake["apk"]["sha256"]}

    online = {k: index.lookup(Query(apk_sha256=sha)) for k, sha in shas.items()}
    assert online["legit"].verdict is VerdictKind.TRUSTED
    assert online["fake"].verdict is VerdictKind.COUNTERFEIT
    assert (
        online["fake"]
        .reasons[0]
        .startswith(
            f"Signed by {other[:16]}…, not by a key registered for obb.mainpatch.current by acme"
        )
    )
    # the shards carry the registration entries, with their inclusion proofs
    files = build_feed(index, world.log, prefix_len=repo.prefix_len, now=now())
    for sha in shas.values():
        doc = json.loads(files[apk_shard(sha, repo.prefix_len)])
        assert acme.leaf_hash.hex() in doc["evidence"]
        assert [s["cert"] for s in doc["records"][sha]["signers"]] == [cert]

    server = Server(repo.public)
    try:
        cache = tmp_path / "cache"
        client = FeedClient(cache, server.url, root=repo.public / "metadata" / "1.root.json")
        for key, apk in (("legit", legit_apk), ("fake", fake_apk)):
            got = client.check(apk)
            assert (got.verdict, got.source) == (online[key].verdict, "feed-file"), got.render()
            assert got.reasons == online[key].reasons
        for key, apk in (("legit", legit_apk), ("fake", fake_apk)):
            got = FeedClient(cache, "http://127.0.0.1:9", offline=True).check(apk)
            assert (got.verdict, got.source) == (online[key].verdict, "feed-file")
            assert got.feed["offline"] is True
        assert "WARNING: counterfeit" in got.render()
    finally:
        server.close()

    # a feed key that lists the stranger's certificate as allowed is caught by the replay
    path = apk_shard(shas["fake"], repo.prefix_len)
    doc = json.loads(files[path])
    doc["records"][shas["fake"]]["signers"].append(
        {"cert": other, "versions": {}, "refs": [], "sources": [], "developers": ["copycat"]}
    )
    files[path] = json.dumps(doc).encode()
    repo.publish(files)
    server = Server(repo.public)
    try:
        with pytest.raises(EvidenceError, match="the log entries it cites say counterfeit"):
            FeedClient(
                tmp_path / "cache2", server.url, root=repo.public / "metadata" / "1.root.json"
            ).check(fake_apk)
    finally:
        server.close()
        world.close()
