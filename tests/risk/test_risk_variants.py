"""Counterfeit, repackaged and hot-swapped variants of a corpus app, made with real tools.

The app is ``com.politedroid`` version 6 from the F-Droid corpus. Two registrations
are used: the F-Droid index itself (key ``32a2…``), and a store listing that registers
the same app under the test key ``rsa-2048`` (so that variants signed by the
*developer's* key can be made: hot swaps). Variants:

=====================================  =================  ==========================
variant                                against            verdict (deciding finding)
=====================================  =================  ==========================
re-signed, other key                   index              counterfeit (signer.not-allowed)
re-signed, other key + history         index              repackaged (repackage.content-shared,
                                                          repackage.identical-resources)
apktool +READ_SMS +class, other key    index + history    repackaged (content-shared by classes,
                                                          added-permissions, added-classes)
apktool +READ_SMS, developer key       store              hot_swapped (permission.undeclared)
same, scanned after the published one  store + history    hot_swapped (+ drift.same-version)
apktool +DexClassLoader, version 7     store + history    hot_swapped (code.dynamic-loading,
                                                          drift.new-code-loading)
published file + terminal report       store + report     hot_swapped (code.runtime-report)
=====================================  =================  ==========================
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import reference
from apk_variants import (
    LOADER_SMALI,
    PAYLOAD_SMALI,
    POLITEDROID_6,
    assess,
    corpus_apk,
    decode,
    fdroid_catalog,
    key_paths,
    key_sha256,
    rebuild,
    resign,
)

from provenance.inspect import inspect_apk
from provenance.inspect.model import ApkFacts
from provenance.metadata import Catalog, DeclaredPermission, Developer, Listing, Release
from provenance.risk import Verdict
from provenance.risk.reports import LoadedCode, RuntimeReport

READ_SMS = "android.permission.READ_SMS"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def original() -> ApkFacts:
    return inspect_apk(corpus_apk(POLITEDROID_6))


@pytest.fixture(scope="module")
def published(work: Path) -> Path:
    """politedroid 6 as the developer publishes it on the store: signed with rsa-2048."""
    return resign(corpus_apk(POLITEDROID_6), work / "published.apk", "rsa-2048")


@pytest.fixture(scope="module")
def store(published: Path, original: ApkFacts) -> Catalog:
    """The store's listing: the developer's key, the published file, its permissions."""
    release = Release(
        version_code=6,
        version_name="1.5",
        apk_sha256=hashlib.sha256(published.read_bytes()).hexdigest(),
        signers=(key_sha256("rsa-2048"),),
        permissions=tuple(
            DeclaredPermission(p, "calendar-based silent mode")
            for p in sorted(original.manifest.permission_names())
        ),
        sdks=(),
    )
    listing = Listing(
        platform="example-store",
        package="com.politedroid",
        app_name="Polite Droid",
        developer=Developer("Polite Droid developer", "dev-1"),
        signers={"example-store": (key_sha256("rsa-2048"),)},
        releases=(release,),
        privacy_policy_url="https://example.com/privacy",
    )
    return Catalog((listing,), "store.json")


@pytest.fixture(scope="module")
def decoded(work: Path) -> Path:
    return decode(corpus_apk(POLITEDROID_6), work)


def test_published_file_is_clean(published: Path, store: Catalog) -> None:
    a = assess(published, store)
    assert a.verdict is Verdict.CLEAN, a.finding_ids
    assert a.match is not None and a.match.how == "sha256"


def test_resigned_counterfeit_then_repackaged(work: Path, original: ApkFacts) -> None:
    fake = resign(corpus_apk(POLITEDROID_6), work / "resigned.apk", "rsa-2048_2")
    a = assess(fake, fdroid_catalog())
    assert a.verdict is Verdict.COUNTERFEIT
    assert "signer.not-allowed" in a.finding_ids
    assert "repackage.content-shared" not in a.finding_ids  # no content to compare with

    b = assess(fake, fdroid_catalog(), history=[original])
    assert b.verdict is Verdict.REPACKAGED
    shared = b.finding("repackage.content-shared")
    assert shared is not None and shared.confidence == 1.0
    assert {"repackage.identical-resources", "signer.not-allowed"} <= set(b.finding_ids)


@pytest.mark.apksigner
def test_resigned_by_apksigner_is_repackaged(work: Path, original: ApkFacts) -> None:
    if not reference.available():
        pytest.skip(reference.unavailable_reason() or "apksigner unavailable")
    pk8, pem = key_paths("rsa-3072")
    out = work / "apksigner.apk"
    reference.sign(corpus_apk(POLITEDROID_6), out, key=pk8, cert=pem, v4=False)
    a = assess(out, fdroid_catalog(), history=[original])
    assert a.verdict is Verdict.REPACKAGED
    assert {"repackage.content-shared", "repackage.identical-resources"} <= set(a.finding_ids)


def test_apktool_payload_other_key(work: Path, decoded: Path, original: ApkFacts) -> None:
    built = rebuild(
        decoded,
        work / "payload.apk",
        add_permissions=[READ_SMS],
        add_smali={"com/evil/Payload.smali": PAYLOAD_SMALI},
    )
    fake = resign(built, work / "payload-signed.apk", "rsa-2048_2")

    a = assess(fake, fdroid_catalog(), history=[original])
    assert a.verdict is Verdict.REPACKAGED
    shared = a.finding("repackage.content-shared")
    assert shared is not None
    assert ("similarity", "classes 1.00") in {(e.kind, e.value) for e in shared.evidence}
    added = a.finding("repackage.added-classes")
    assert added is not None and added.evidence[0].value == "Lcom/evil/Payload;"
    perms = a.finding("repackage.added-permissions")
    assert perms is not None and perms.evidence[0].value == READ_SMS

    b = assess(fake, fdroid_catalog())
    assert b.verdict is Verdict.COUNTERFEIT
    undeclared = b.finding("permission.undeclared")
    assert undeclared is not None and undeclared.evidence[0].value == READ_SMS


def test_apktool_permission_developer_key(
    work: Path, decoded: Path, store: Catalog, published: Path
) -> None:
    built = rebuild(decoded, work / "sms.apk", add_permissions=[READ_SMS])
    swapped = resign(built, work / "sms-signed.apk", "rsa-2048")

    a = assess(swapped, store)
    assert a.verdict is Verdict.HOT_SWAPPED
    assert "signer.not-allowed" not in a.finding_ids
    f = a.finding("permission.undeclared")
    assert f is not None and f.evidence[0].value == READ_SMS
    listing_field = next(e for e in f.evidence if e.kind == "listing-field")
    assert listing_field.value == "example-store com.politedroid release 6 permissions"

    # the published file was scanned before: the same version now has other content
    b = assess(swapped, store, history=[inspect_apk(published)])
    assert b.verdict is Verdict.HOT_SWAPPED
    drift = b.finding("drift.same-version")
    assert drift is not None
    assert ("permission", READ_SMS) in {(e.kind, e.value) for e in drift.evidence}
    assert "repackage.content-shared" not in b.finding_ids  # same developer, same key


def test_apktool_code_loading_next_version(
    work: Path, decoded: Path, store: Catalog, published: Path
) -> None:
    built = rebuild(
        decoded,
        work / "loader.apk",
        add_smali={"com/politedroid/Updater.smali": LOADER_SMALI},
        version_code=7,
    )
    v7 = resign(built, work / "loader-signed.apk", "rsa-2048")
    a = assess(v7, store, history=[inspect_apk(published)])
    assert a.verdict is Verdict.HOT_SWAPPED
    f = a.finding("code.dynamic-loading")
    assert f is not None
    sites = {e.value for e in f.evidence}
    assert any(
        s.startswith("Lcom/politedroid/Updater;->load(")
        and s.endswith("-> Ldalvik/system/DexClassLoader;-><init>")
        for s in sites
    ), sites
    assert "drift.new-code-loading" in a.finding_ids
    assert a.match is not None and a.match.how == "latest"
    assert "release.unpublished" in a.finding_ids


def test_runtime_report_on_published_file(published: Path, store: Catalog) -> None:
    report = RuntimeReport(
        package="com.politedroid",
        version_code=6,
        loaded=(
            LoadedCode(
                kind="dex",
                sha256="ab" * 32,
                path="/data/user/0/com.politedroid/files/patch.dex",
                source="https://cdn.example/patch.dex",
                loader="Ldalvik/system/DexClassLoader;",
            ),
        ),
        reporter="terminal-7",
        source="report.json",
    )
    a = assess(published, store, reports=[report])
    assert a.verdict is Verdict.HOT_SWAPPED
    f = a.finding("code.runtime-report")
    assert f is not None and f.evidence[0].value == "ab" * 32
    other = RuntimeReport(package="com.politedroid", version_code=5, loaded=report.loaded)
    assert assess(published, store, reports=[other]).verdict is Verdict.CLEAN


def test_channel_restricts_allowed_signers(published: Path, store: Catalog) -> None:
    (listing,) = store.listings
    two = Listing(
        platform=listing.platform,
        package=listing.package,
        app_name=listing.app_name,
        signers={"example-store": listing.signers["example-store"], "github": ("ab" * 32,)},
        releases=listing.releases,
    )
    cat = Catalog((two,), "two-channels")
    assert assess(published, cat).verdict is Verdict.CLEAN
    assert assess(published, cat, channel="example-store").verdict is Verdict.CLEAN
    a = assess(published, cat, channel="github")
    assert a.verdict is Verdict.COUNTERFEIT
    assert a.finding_ids[0] == "signer.not-allowed"


def test_key_of_another_developer(work: Path, store: Catalog) -> None:
    """obb.main.oldversion re-signed with the key registered to com.politedroid's developer."""
    apk = corpus_apk(POLITEDROID_6.parent / "repo__obb.main.oldversion_1444412523.apk")
    fake = resign(apk, work / "obb-by-politedroid-key.apk", "rsa-2048")
    a = assess(fake, fdroid_catalog().merged(store))
    assert a.verdict is Verdict.COUNTERFEIT
    f = a.finding("signer.not-allowed")
    assert f is not None
    owners = [e for e in f.evidence if e.kind == "signer-owner"]
    assert [(e.value, e.detail) for e in owners] == [
        (key_sha256("rsa-2048"), "allowed for com.politedroid (Polite Droid developer)")
    ]
