"""Build provenance: real Sigstore bundles and a private trust root, verified offline."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus import require, shared_dir
from sigstore_forge import IDENTITY, ISSUER, PrivateSigstore
from stmt_helpers import NOW, POLICY, World, statement

from provenance.statements import (
    RELEASE,
    BuildIdentity,
    BuildProvenanceError,
    SigstorePolicy,
    accept,
    verify_build_provenance,
)

pytest.importorskip("sigstore")

A_TXT_SHA = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"


def corpus(name: str) -> Path:
    return require(shared_dir() / "corpus" / "tlog" / "sigstore" / name)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to reach the network fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def staging(**kw: Any) -> SigstorePolicy:
    kw.setdefault("identities", (BuildIdentity(GITHUB_ACTIONS, BEACON),))
    return SigstorePolicy(corpus("staging_trusted_root.json"), **kw)


# ------------------------------------------------------------- real bundles


def test_real_dsse_slsa_bundle_rekor_v2() -> None:
    bundle = corpus("a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    got = verify_build_provenance(bundle, A_TXT_SHA, staging())
    assert got.kind == "dsse" and got.predicate_type == "https://slsa.dev/provenance/v1"
    assert got.issuer == GITHUB_ACTIONS and got.identities == (BEACON,)
    assert got.log_index == 4026478


@pytest.mark.parametrize(
    "name,identity",
    [
        ("staging-rekor-v2.txt", "jku@goto.fi"),  # Rekor v2, RFC 3161 timestamp
        ("bundle_v3.txt", "william@yossarian.net"),  # Rekor v1, SET + inclusion proof
    ],
)
def test_real_message_signature_bundles(name: str, identity: str) -> None:
    suffix = ".sigstore.json" if "rekor" in name else ".sigstore"
    digest = hashlib.sha256(corpus(name).read_bytes()).hexdigest()
    policy = staging(identities=(BuildIdentity("https://github.com/login/oauth", identity),))
    got = verify_build_provenance(corpus(name + suffix).read_bytes(), digest, policy)
    assert got.kind == "message_signature" and got.identities == (identity,)
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        verify_build_provenance(corpus(name + suffix).read_bytes(), "00" * 32, policy)


def test_real_bundle_refusals() -> None:
    bundle = corpus("a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    with pytest.raises(BuildProvenanceError, match="not an accepted build identity"):
        verify_build_provenance(
            bundle, A_TXT_SHA, staging(identities=(BuildIdentity(GITHUB_ACTIONS, "https://other"),))
        )
    with pytest.raises(BuildProvenanceError, match="not an accepted build identity"):
        verify_build_provenance(
            bundle,
            A_TXT_SHA,
            staging(identities=(BuildIdentity("https://accounts.google.com", BEACON),)),
        )
    with pytest.raises(BuildProvenanceError, match="does not name the APK"):
        verify_build_provenance(bundle, "ab" * 32, staging())
    production = SigstorePolicy(corpus("production_trusted_root.json"), allow_any_identity=True)
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        verify_build_provenance(
            corpus("bundle_v3.txt.sigstore").read_bytes(),
            hashlib.sha256(corpus("bundle_v3.txt").read_bytes()).hexdigest(),
            production,
        )
    doc = json.loads(bundle)
    doc["dsseEnvelope"]["payload"] = doc["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
    with pytest.raises(BuildProvenanceError):
        verify_build_provenance(json.dumps(doc).encode(), A_TXT_SHA, staging())
    with pytest.raises(BuildProvenanceError, match="malformed"):
        verify_build_provenance(b'{"mediaType": "nope"}', A_TXT_SHA, staging())


# ------------------------------------------------------------- private root


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> tuple[PrivateSigstore, Path]:
    ps = PrivateSigstore()
    path = tmp_path_factory.mktemp("sigstore") / "trusted_root.json"
    path.write_text(json.dumps(ps.trusted_root()))
    return ps, path


def test_private_root_verifies_offline(private: tuple[PrivateSigstore, Path]) -> None:
    ps, root = private
    apk = "cd" * 32
    policy = SigstorePolicy(root, (BuildIdentity(ISSUER, IDENTITY),))
    got = verify_build_provenance(ps.dsse_bundle(apk), apk, policy)
    assert got.kind == "dsse" and got.issuer == ISSUER and got.identities == (IDENTITY,)
    assert got.log_index == 1 and got.log_id == ps.rekor_log_id.hex()


@pytest.mark.parametrize(
    "change,match",
    [
        ({"identity": "https://ci.build.test/mallory"}, "not an accepted build identity"),
        ({"issuer": "https://issuer.evil.test"}, "not an accepted build identity"),
        ({"tamper_payload": True}, "does not verify"),
        ({"predicate_type": "https://example.test/not-slsa"}, "predicate type"),
        ({"subject": "ef" * 32}, "does not name the APK"),
    ],
)
def test_private_root_refusals(
    private: tuple[PrivateSigstore, Path], change: dict[str, Any], match: str
) -> None:
    ps, root = private
    apk = "cd" * 32
    subject = change.pop("subject", apk)
    policy = SigstorePolicy(root, (BuildIdentity(ISSUER, IDENTITY),))
    with pytest.raises(BuildProvenanceError, match=match):
        verify_build_provenance(ps.dsse_bundle(subject, **change), apk, policy)


def test_roots_do_not_mix(private: tuple[PrivateSigstore, Path]) -> None:
    ps, root = private
    apk = "cd" * 32
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        verify_build_provenance(
            ps.dsse_bundle(apk), apk, staging(allow_any_identity=True, identities=())
        )
    other = PrivateSigstore()
    other_root = root.parent / "other_root.json"
    other_root.write_text(json.dumps(other.trusted_root()))
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        verify_build_provenance(
            ps.dsse_bundle(apk), apk, SigstorePolicy(other_root, allow_any_identity=True)
        )
    real = corpus("a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        verify_build_provenance(real, A_TXT_SHA, SigstorePolicy(root, allow_any_identity=True))


def test_policy_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="identities"):
        SigstorePolicy(tmp_path / "root.json")
    with pytest.raises(BuildProvenanceError, match="cannot read trusted root"):
        SigstorePolicy(tmp_path / "root.json", allow_any_identity=True).verifier()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(BuildProvenanceError, match="not usable"):
        SigstorePolicy(tmp_path / "bad.json", allow_any_identity=True).verifier()


# ------------------------------------------------------------- through accept()


def _release(world: World, apk_sha: str, bundle: dict[str, Any] | None) -> bytes:
    changes: dict[str, Any] = {"apk": {"sha256": apk_sha}}
    if bundle is not None:
        changes["build_provenance"] = {"sigstore_bundle": bundle}
    return world.sign(statement(RELEASE, **changes), "acme")


def test_accept_release_with_real_build_provenance() -> None:
    world = World()
    bundle = json.loads(corpus("a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes())
    body = _release(world, A_TXT_SHA, bundle)
    acc = accept(body, world.registry, set(), policy=POLICY, now=NOW, sigstore=staging())
    assert acc.build_provenance is not None and acc.build_provenance.identities == (BEACON,)
    # The bundle survives canonical re-encoding inside the statement.
    assert (
        json.loads(json.dumps(acc.statement.predicate["build_provenance"]["sigstore_bundle"]))
        == bundle
    )
    with pytest.raises(BuildProvenanceError, match="does not name the APK"):
        accept(
            _release(world, "ab" * 32, bundle),
            world.registry,
            set(),
            policy=POLICY,
            now=NOW,
            sigstore=staging(),
        )


def test_accept_release_with_private_build_provenance(
    private: tuple[PrivateSigstore, Path],
) -> None:
    ps, root = private
    world = World()
    apk = "cd" * 32
    policy = SigstorePolicy(root, (BuildIdentity(ISSUER, IDENTITY),), require=True)
    acc = accept(
        _release(world, apk, ps.dsse_bundle(apk)),
        world.registry,
        set(),
        policy=POLICY,
        now=NOW,
        sigstore=policy,
    )
    assert acc.build_provenance is not None and acc.build_provenance.issuer == ISSUER
    with pytest.raises(BuildProvenanceError, match="does not verify"):
        accept(
            _release(world, apk, ps.dsse_bundle(apk, tamper_payload=True)),
            world.registry,
            set(),
            policy=POLICY,
            now=NOW,
            sigstore=policy,
        )
    with pytest.raises(BuildProvenanceError, match="must carry"):
        accept(
            _release(world, apk, None),
            world.registry,
            set(),
            policy=POLICY,
            now=NOW,
            sigstore=policy,
        )
    relaxed = SigstorePolicy(root, (BuildIdentity(ISSUER, IDENTITY),))
    assert (
        accept(
            _release(world, apk, None),
            world.registry,
            set(),
            policy=POLICY,
            now=NOW,
            sigstore=relaxed,
        ).build_provenance
        is None
    )
