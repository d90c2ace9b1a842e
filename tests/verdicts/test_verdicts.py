"""Signed verdicts, the verdict index over a real log, and the verdict API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus import require, shared_dir
from verdict_world import LogWorld, now

from provenance.apk.verify import verify_apk
from provenance.statements import KeySigner, LogRef
from provenance.statements.dsse import Envelope
from provenance.verdicts import (
    OTHER_CERT,
    ApkRecord,
    PackageRecord,
    Query,
    StaleVerdictError,
    Verdict,
    VerdictFormatError,
    VerdictIndex,
    VerdictKind,
    VerdictSignatureError,
    sign_verdict,
    verdict_app,
    verify_verdict,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHA = hashlib.sha256(b"apk").hexdigest()


def _apk(name: str) -> Path:
    return require(shared_dir() / "corpus" / "fdroid" / "apks" / name)


def _verdict(**changes: object) -> Verdict:
    v = Verdict(
        Query(apk_sha256=SHA),
        VerdictKind.COUNTERFEIT,
        ("Inspection by lab found it counterfeit: the signer is not the developer's.",),
        (LogRef(3, b"\x01" * 32),),
        T,
        T + timedelta(hours=1),
        "log.example.test/apk",
        10,
        {"package": "com.example"},
    )
    return replace(v, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------ signed verdicts


def test_signed_verdict_round_trip() -> None:
    key = KeySigner.generate()
    env = sign_verdict(_verdict(), key).to_json()
    got = verify_verdict(env, key.public_key, now=T, query=Query(apk_sha256=SHA))
    assert got == _verdict()
    assert got.warning and got.to_json() == _verdict().to_json()
    assert Verdict.from_json(got.to_json()) == got


def test_signed_verdict_tampering_is_refused() -> None:
    key = KeySigner.generate()
    env = sign_verdict(_verdict(), key)
    # a changed verdict under the old signature
    forged = Envelope(
        env.payload.replace(b'"counterfeit"', b'"trusted"'), env.payload_type, env.signatures
    )
    with pytest.raises(VerdictSignatureError):
        verify_verdict(forged.to_json(), key.public_key, now=T)
    # the right bytes, another key
    with pytest.raises(VerdictSignatureError):
        verify_verdict(env.to_json(), KeySigner.generate().public_key, now=T)
    # a statement's payload type is not a verdict
    relabelled = Envelope(env.payload, "application/vnd.in-toto+json", env.signatures)
    with pytest.raises(VerdictFormatError):
        verify_verdict(relabelled.to_json(), key.public_key, now=T)
    # expired, or answering another question
    with pytest.raises(StaleVerdictError):
        verify_verdict(env.to_json(), key.public_key, now=T + timedelta(hours=2))
    with pytest.raises(StaleVerdictError):
        verify_verdict(env.to_json(), key.public_key, now=T, query=Query(apk_sha256="00" * 32))
    with pytest.raises(VerdictFormatError):
        verify_verdict(b"{not json", key.public_key, now=T)


def test_query_validation() -> None:
    with pytest.raises(VerdictFormatError):
        Query()
    with pytest.raises(VerdictFormatError):
        Query(apk_sha256="xyz")
    with pytest.raises(VerdictFormatError):
        Query(apk_sha256=SHA, package="com.a.b", cert_sha256=SHA)
    with pytest.raises(VerdictFormatError):
        Query(package="not a package", cert_sha256=SHA)
    with pytest.raises(VerdictFormatError):
        Query(package="com.a.b", cert_sha256=SHA, version_code=-1)
    assert Query(apk_sha256=SHA.upper()).apk_sha256 == SHA
    assert Query(package="com.a.b", cert_sha256=OTHER_CERT).cert_sha256 == OTHER_CERT


# ----------------------------------------------------------------------- the index


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogWorld]:
    w = LogWorld(tmp_path_factory.mktemp("world"))
    yield w
    w.close()


def _sync(world: LogWorld, index: VerdictIndex) -> None:
    world.integrate()
    index.sync(world.log)


def test_index_follows_the_life_cycle(world: LogWorld, tmp_path: Path) -> None:
    """release → inspection (counterfeit) → takedown → restore → passing re-inspection."""
    apk = _apk("repo__com.politedroid_6.apk")
    cert = verify_apk(apk).signer_certs[0].sha256
    index = VerdictIndex.open(tmp_path / "verdicts.db")
    by_file = Query(apk_sha256=hashlib.sha256(apk.read_bytes()).hexdigest())
    by_app = Query(package="com.politedroid", cert_sha256=cert, version_code=6)
    other = Query(package="com.politedroid", cert_sha256="ee" * 32)

    assert index.lookup(by_file).verdict is VerdictKind.UNKNOWN  # empty index
    dev = world.register_developer([cert], "com.politedroid")
    rel, pred = world.release(apk, dev)
    shelf = world.shelve(rel, pred, sdks=["com.sdkco:analytics"])
    _sync(world, index)
    v = index.lookup(by_file)
    assert v.verdict is VerdictKind.TRUSTED
    assert {r.index for r in v.evidence} == {rel.index, shelf.index}
    assert any("Released by acme as com.politedroid version 6" in r for r in v.reasons)
    assert v.subject["signer_certificates"] == [cert]
    assert index.lookup(by_app).verdict is VerdictKind.TRUSTED
    assert index.lookup(replace(by_app, version_code=None)).verdict is VerdictKind.TRUSTED
    unknown_version = index.lookup(replace(by_app, version_code=99))
    assert unknown_version.verdict is VerdictKind.UNKNOWN
    assert "version 99" in unknown_version.reasons[0]
    fake = index.lookup(other)
    assert fake.verdict is VerdictKind.COUNTERFEIT
    assert "another certificate" in fake.reasons[0]
    assert rel in fake.evidence

    insp = world.inspect(rel, pred["apk"]["sha256"], "com.politedroid", "counterfeit", "key swap")
    _sync(world, index)
    v = index.lookup(by_file)
    assert v.verdict is VerdictKind.COUNTERFEIT
    assert v.evidence == (insp,)
    assert "counterfeit" in v.reasons[0] and "key swap" in v.reasons[0]
    assert index.lookup(by_app).verdict is VerdictKind.COUNTERFEIT  # the version's file

    scope = {
        "kind": "version",
        "package": "com.politedroid",
        "apk_sha256": pred["apk"]["sha256"],
    }
    t = now()
    down = world.takedown(scope, insp, effective=t - timedelta(minutes=1))
    _sync(world, index)
    v = index.lookup(by_file, t)
    assert v.verdict is VerdictKind.TAKEN_DOWN
    assert v.evidence[0] == down
    assert v.reasons[0].startswith("regulator took this version down on")
    assert "privacy" in v.reasons[0] and "contacts" in v.reasons[0]

    up = world.restore(scope, down, effective=t + timedelta(minutes=10))
    _sync(world, index)
    pending = index.lookup(by_file, t)
    assert pending.verdict is VerdictKind.TAKEN_DOWN  # the restore is not in force yet
    assert pending.expires == t + timedelta(minutes=10)  # ... and the verdict says when to ask
    after = index.lookup(by_file, t + timedelta(minutes=11))
    assert after.verdict is VerdictKind.COUNTERFEIT  # the inspection still stands
    record = index.apk_record(pred["apk"]["sha256"])
    assert record is not None and record.takedowns[0].lift_ref == up

    world.inspect(rel, pred["apk"]["sha256"], "com.politedroid", None)
    _sync(world, index)
    v = index.lookup(by_file, t + timedelta(minutes=11))
    assert v.verdict is VerdictKind.TRUSTED
    assert any("lifted" in r for r in v.reasons)
    assert index.size == len(world.entries)
    # rebuilding from scratch gives the same answers
    again = VerdictIndex.open(tmp_path / "again.db")
    again.sync(world.log)
    assert again.lookup(by_file, t + timedelta(minutes=11)).to_dict() == (
        index.lookup(by_file, t + timedelta(minutes=11)).to_dict()
    )


def test_index_app_and_sdk_takedowns(world: LogWorld, tmp_path: Path) -> None:
    apk = _apk("repo__com.politedroid_5.apk")
    cert = verify_apk(apk).signer_certs[0].sha256
    dev = world.register_developer([cert], "com.politedroid")
    rel, pred = world.release(apk, dev)
    world.shelve(rel, pred, sdks=["com.sdkco:analytics"])
    index = VerdictIndex.open(tmp_path / "verdicts.db")
    _sync(world, index)
    by_file = Query(apk_sha256=pred["apk"]["sha256"])
    t = now()
    assert index.lookup(by_file, t).verdict is VerdictKind.TRUSTED

    sdk = world.takedown({"kind": "sdk", "sdk_id": "com.sdkco:analytics"}, rel, effective=t)
    _sync(world, index)
    v = index.lookup(by_file, t + timedelta(seconds=1))
    assert v.verdict is VerdictKind.TAKEN_DOWN and v.evidence[0] == sdk
    assert "the SDK com.sdkco:analytics" in v.reasons[0]
    world.restore({"kind": "sdk", "sdk_id": "com.sdkco:analytics"}, sdk, effective=t)
    _sync(world, index)
    assert index.lookup(by_file, t + timedelta(seconds=1)).verdict is VerdictKind.TRUSTED

    later = t + timedelta(hours=2)
    app_scope = {"kind": "app", "package": "com.politedroid"}
    world.takedown(app_scope, rel, effective=later)
    _sync(world, index)
    soon = index.lookup(by_file, t + timedelta(seconds=1), ttl=timedelta(hours=6))
    assert soon.verdict is VerdictKind.TRUSTED and soon.expires == later  # pending takedown
    assert index.lookup(by_file, later).verdict is VerdictKind.TAKEN_DOWN
    by_app = Query(package="com.politedroid", cert_sha256=cert)
    assert index.lookup(by_app, later).verdict is VerdictKind.TAKEN_DOWN
    assert index.lookup(replace(by_app, cert_sha256="dd" * 32), later).verdict is (
        VerdictKind.TAKEN_DOWN
    )


# ------------------------------------------------- who may sign a package: registrations

STRANGER = "c0" * 32


def test_package_signers_are_keys_registered_for_the_package(tmp_path: Path) -> None:
    """A release vouches for its certificate on a package only if the releasing
    developer's registration lists that certificate for that package."""
    w = LogWorld(tmp_path / "w")
    w.add_actor("copycat", "developer")
    apk = _apk("repo__com.politedroid_6.apk")
    cert = verify_apk(apk).signer_certs[0].sha256
    rel, _ = w.release(apk, w.register_developer([cert], "com.politedroid"))
    # a registered stranger, whose registration names no app, releases the package
    stranger = w.register_developer([STRANGER], None, developer="copycat")
    fake_rel, fake = w.release(apk, stranger, "copycat", cert=STRANGER)
    # ... and with a certificate it never registered
    w.release(apk, stranger, "copycat", cert="c3" * 32)
    # the legitimate developer, with a certificate it did not register
    w.release(apk, w.register_developer([cert], "com.politedroid"), cert="ac" * 32)
    index = VerdictIndex.open(tmp_path / "v.db")
    w.integrate()
    index.sync(w.log)
    app = Query(package="com.politedroid", cert_sha256=cert)

    legit = index.lookup(app)
    assert legit.verdict is VerdictKind.TRUSTED
    assert "release by copycat" not in legit.reasons[0] and "acme" in legit.reasons[0]
    assert index.lookup(replace(app, version_code=6)).verdict is VerdictKind.TRUSTED

    fake_app = index.lookup(replace(app, cert_sha256=STRANGER))
    assert fake_app.verdict is VerdictKind.COUNTERFEIT
    assert fake_app.reasons[0].startswith(
        f"Signed by {STRANGER[:16]}…, not by a key registered for com.politedroid by acme"
    )
    assert fake_app.subject["signer_certificates"] == [cert]  # not the stranger's
    assert rel in fake_app.evidence and fake_rel not in fake_app.evidence
    assert index.lookup(replace(app, cert_sha256=STRANGER, version_code=6)).verdict is (
        VerdictKind.COUNTERFEIT
    )
    for other in ("c3" * 32, "ac" * 32):  # unregistered certificates, whoever released
        assert index.lookup(replace(app, cert_sha256=other)).verdict is VerdictKind.COUNTERFEIT

    record = index.package_record("com.politedroid")
    assert record is not None
    assert [s.cert for s in record.signers] == [cert]
    assert record.signers[0].developers == ("acme",)
    assert not any("copycat" in src for src in record.signers[0].sources)
    assert PackageRecord.from_dict(record.to_dict()) == record  # the feed carries it
    assert fake["apk"]["sha256"] not in {
        x for s in record.signers for v in s.versions.values() for x in v
    }
    w.close()


def test_registrations_that_name_no_package(tmp_path: Path) -> None:
    """A certificate registered without packages vouches for its developer's releases of
    a package nobody registered by name; once someone does, only theirs count."""
    w = LogWorld(tmp_path / "w")
    w.add_actor("copycat", "developer")
    w.add_actor("other", "developer")
    apk = _apk("repo__com.politedroid_6.apk")
    cert = verify_apk(apk).signer_certs[0].sha256
    index = VerdictIndex.open(tmp_path / "v.db")
    app = Query(package="com.politedroid", cert_sha256=cert)

    def verdict(c: str) -> VerdictKind:
        w.integrate()
        index.sync(w.log)
        return index.lookup(replace(app, cert_sha256=c)).verdict

    # registered for another app only: its release of this one vouches for nothing
    elsewhere = w.register_developer(["c1" * 32], "org.other.app", developer="other")
    w.release(apk, elsewhere, "other", cert="c1" * 32)
    assert verdict("c1" * 32) is VerdictKind.UNKNOWN
    # registered without naming apps, and nobody names com.politedroid: trusted
    w.release(
        apk, w.register_developer([STRANGER], None, developer="copycat"), "copycat", cert=STRANGER
    )
    assert verdict(STRANGER) is VerdictKind.TRUSTED
    assert verdict("c1" * 32) is VerdictKind.COUNTERFEIT
    # a registration that names the package takes over
    w.release(apk, w.register_developer([cert], "com.politedroid"))
    assert verdict(cert) is VerdictKind.TRUSTED
    assert verdict(STRANGER) is VerdictKind.COUNTERFEIT
    assert "com.politedroid" in list(index.packages()) and "" not in list(index.packages())
    w.close()


def test_file_verdict_needs_a_registered_signer(tmp_path: Path) -> None:
    """By file hash, a release makes its file trusted only if its certificate is
    registered for the package to the developer who released it; a stranger's
    release of the package, with its own certificate, is counterfeit."""
    w = LogWorld(tmp_path / "w")
    w.add_actor("copycat", "developer")
    apk = _apk("repo__com.politedroid_6.apk")
    cert = verify_apk(apk).signer_certs[0].sha256
    acme = w.register_developer([cert], "com.politedroid")
    _, legit = w.release(apk, acme)
    stranger = w.register_developer([STRANGER], None, developer="copycat")
    fake_rel, fake = w.release(apk, stranger, "copycat", cert=STRANGER)
    stolen_rel, stolen = w.release(apk, stranger, "copycat", cert=cert)  # acme's cert
    index = VerdictIndex.open(tmp_path / "v.db")
    w.integrate()
    index.sync(w.log)

    def by_file(pred: dict[str, Any]) -> Verdict:
        return index.lookup(Query(apk_sha256=pred["apk"]["sha256"]))

    ok = by_file(legit)
    assert ok.verdict is VerdictKind.TRUSTED
    assert ok.reasons[0].startswith("Released by acme as com.politedroid version 6")
    assert f"Signed with {cert[:16]}…, a key registered for com.politedroid" in ok.reasons[1]
    record = index.apk_record(legit["apk"]["sha256"])
    assert record is not None and [s.cert for s in record.signers] == [cert]
    assert record.signers[0].developers == ("acme",)
    assert acme in record.signer_refs()
    assert ApkRecord.from_dict(record.to_dict()) == record  # the feed carries it

    bad = by_file(fake)
    assert bad.verdict is VerdictKind.COUNTERFEIT
    assert bad.reasons[0].startswith(
        f"Signed by {STRANGER[:16]}…, not by a key registered for com.politedroid by acme"
    )
    assert "Released by copycat as com.politedroid" in bad.reasons[2]
    assert fake_rel in bad.evidence and acme in bad.evidence
    bad_record = index.apk_record(fake["apk"]["sha256"])
    assert bad_record is not None and acme in bad_record.signer_refs()

    taken = by_file(stolen)
    assert taken.verdict is VerdictKind.COUNTERFEIT
    assert taken.reasons[0].startswith(
        f"Released by copycat, but certificate {cert[:16]}… is registered for "
        "com.politedroid by acme, not by copycat"
    )
    assert stolen_rel in taken.evidence

    # an inspector's own word still names the kind; a takedown still comes first
    w.inspect(fake_rel, fake["apk"]["sha256"], "com.politedroid", "repackaged")
    w.integrate()
    index.sync(w.log)
    assert by_file(fake).verdict is VerdictKind.REPACKAGED
    # package level agrees with file level on the stranger's certificate
    app = Query(package="com.politedroid", cert_sha256=STRANGER)
    assert index.lookup(app).verdict is VerdictKind.COUNTERFEIT
    w.close()


def test_file_verdict_without_registered_signers(tmp_path: Path) -> None:
    """No registration names a signer for the package: a release alone vouches for
    nothing (unknown, not counterfeit); a platform's shelving still does."""
    w = LogWorld(tmp_path / "w")
    apk = _apk("repo__com.politedroid_6.apk")
    elsewhere = w.register_developer(["c1" * 32], "org.other.app")
    rel, pred = w.release(apk, elsewhere, cert="c1" * 32)
    index = VerdictIndex.open(tmp_path / "v.db")
    by_file = Query(apk_sha256=pred["apk"]["sha256"])
    w.integrate()
    index.sync(w.log)
    alone = index.lookup(by_file)
    assert alone.verdict is VerdictKind.UNKNOWN
    assert (
        "no developer registration registers a signing key for com.politedroid"
        in (alone.reasons[0])
    )
    w.shelve(rel, pred)
    w.integrate()
    index.sync(w.log)
    shelved = index.lookup(by_file)
    assert shelved.verdict is VerdictKind.TRUSTED
    assert shelved.reasons[0].startswith("Offered by store")
    # registered without naming packages, and nobody names it: the release counts
    _, other = w.release(apk, w.register_developer([STRANGER], None), cert=STRANGER)
    w.integrate()
    index.sync(w.log)
    assert index.lookup(Query(apk_sha256=other["apk"]["sha256"])).verdict is VerdictKind.TRUSTED
    record = index.apk_record(other["apk"]["sha256"])
    assert record is not None and record.signers[0].developers == ("acme",)
    assert len(record.signer_refs()) == 2  # the registration and the release by acme
    # ... which makes the file signed with c1 counterfeit now that signers are known
    assert index.lookup(by_file).verdict is VerdictKind.COUNTERFEIT
    w.close()


def test_index_skips_what_it_does_not_understand(tmp_path: Path) -> None:
    index = VerdictIndex.open(tmp_path / "v.db")
    assert (
        index.ingest_many([(0, b"not an envelope"), (1, b'{"payload":"","payloadType":"x"}')]) == 0
    )
    assert index.stats()["skipped"] == 2 and index.size == 2
    with pytest.raises(Exception, match="expects log entry 2"):
        index.ingest(5, b"x")


# ------------------------------------------------------------------------- the API


class _Client:
    """Requests to an ASGI app in this thread (the index's connections are per thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get(path, params=params)

        return asyncio.run(go())


def test_verdict_app(world: LogWorld, tmp_path: Path) -> None:
    apk = _apk("repo__com.politedroid_6.apk")
    sha = hashlib.sha256(apk.read_bytes()).hexdigest()
    cert = verify_apk(apk).signer_certs[0].sha256
    writer = VerdictIndex.open(tmp_path / "v.db")
    _sync(world, writer)
    if writer.apk_record(sha) is None:  # run alone (or on another xdist worker)
        world.release(apk, world.register_developer([cert], "com.politedroid"))
        _sync(world, writer)
    reader = VerdictIndex.open(tmp_path / "v.db", readonly=True)
    key = KeySigner.generate()
    client = _Client(verdict_app(reader, key, cache_seconds=60))

    r = client.get("/v1/verdict", params={"sha256": sha})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    v = verify_verdict(r.content, key.public_key, query=Query(apk_sha256=sha))
    assert v.log_origin == "log.example.test/apk" and v.log_size == len(world.entries)
    r2 = client.get(
        "/v1/verdict", params={"package": "com.politedroid", "cert": cert, "version_code": "6"}
    )
    v2 = verify_verdict(r2.content, key.public_key)
    assert v2.query == Query(package="com.politedroid", cert_sha256=cert, version_code=6)
    unknown = client.get("/v1/verdict", params={"sha256": "0" * 64})
    assert verify_verdict(unknown.content, key.public_key).verdict is VerdictKind.UNKNOWN
    for bad in (
        {},
        {"sha256": "zz"},
        {"package": "com.politedroid"},
        {"package": "com.politedroid", "cert": cert, "version_code": "x"},
        {"package": "com.politedroid", "cert": "*"},
        {"sha256": sha, "extra": "1"},
    ):
        resp = client.get("/v1/verdict", params=bad)
        assert resp.status_code == 400, bad
        assert "error" in resp.json()
    keydoc = client.get("/v1/verdict-key").json()
    assert keydoc["keyid"] == key.key_id

    # cached answers are dropped as soon as the index changes
    assert client.get("/v1/verdict", params={"sha256": sha}).content == r.content
    world.takedown({"kind": "app", "package": "com.politedroid"}, LogRef(0, b"\0" * 32))
    _sync(world, writer)
    fresh = verify_verdict(
        client.get("/v1/verdict", params={"sha256": sha}).content, key.public_key
    )
    assert fresh.verdict is VerdictKind.TAKEN_DOWN


def test_fast_encoding_is_the_canonical_encoding() -> None:
    from provenance.statements.canonical import canonical_json
    from provenance.verdicts.signing import signed_verdict_json

    v = _verdict(reasons=('Entfernt wegen Datenschutz: «Kontakte» – 联系人 "quoted" \\ ok',))
    assert v.to_json() == canonical_json(v.to_dict())
    key = KeySigner.generate()
    assert signed_verdict_json(v, key) == sign_verdict(v, key).to_json()
    assert verify_verdict(signed_verdict_json(v, key), key.public_key, now=T) == v


def test_verdict_bench_plumbing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/verdict_bench.py: its synthetic index and its uvicorn app factory work."""
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    import verdict_bench

    queries = verdict_bench.build_index(tmp_path / "v.db", 40, seed=3)
    assert len(queries) == 84
    key = KeySigner.generate()
    (tmp_path / "k.pem").write_bytes(key.private_pem())
    (tmp_path / "k.pem").chmod(0o600)
    monkeypatch.setenv("VERDICT_DB", str(tmp_path / "v.db"))
    monkeypatch.setenv("VERDICT_KEY", str(tmp_path / "k.pem"))
    client = _Client(verdict_bench.make_app())
    kinds = set()
    for q in queries:
        r = client.get(q)
        assert r.status_code == 200, q
        kinds.add(verify_verdict(r.content, key.public_key).verdict)
    assert VerdictKind.TRUSTED in kinds and VerdictKind.UNKNOWN in kinds
    sys.modules.pop("verdict_bench", None)
