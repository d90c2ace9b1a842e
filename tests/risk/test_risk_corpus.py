"""Verdicts on the F-Droid corpus against its own published index (default policy).

Which finding flags which corpus APK:

* ``..._another-release-key``: published in the index for version 1619, but signed by
  ``ce9e…``, not the app's preferred signer ``32a2…`` → ``signer.not-allowed`` →
  counterfeit;
* ``urzip-badsig`` / ``urzip-badcert``: the v1 signature does not verify (a manifest
  section digest, resp. the signature block, was altered) → ``signature.not-verified``
  → counterfeit (plus ``release.file-differs``: version 100 was published as another
  file);
* ``janus``: a DEX prepended to a v1-signed APK; the signature still verifies →
  ``container.prefix-data`` → repackaged;
* ``SystemWebView-repack``: package ``com.revrobotics.webview`` shown as "Android
  System WebView", another app's name, under another key → ``name.impersonation`` →
  counterfeit (against a listing registering Google's WebView).
"""

from __future__ import annotations

import pytest
from apk_variants import FDROID, assess, corpus_apk, fdroid_catalog

from provenance.inspect import inspect_apk
from provenance.inspect.model import ApkFacts
from provenance.metadata import (
    Catalog,
    DeclaredPermission,
    DeclaredSdk,
    Developer,
    Listing,
    Release,
)
from provenance.risk import Verdict

APKS = FDROID / "apks"
INDEXED_CLEAN = [
    "repo__com.politedroid_3.apk",
    "repo__com.politedroid_4.apk",
    "repo__com.politedroid_5.apk",
    "repo__com.politedroid_6.apk",
    "repo__duplicate.permisssions_9999999.apk",
    "repo__info.zwanenburg.caffeinetile_4.apk",
    "repo__no.min.target.sdk_987.apk",
    "repo__obb.main.oldversion_1444412523.apk",
    "repo__obb.main.twoversions_1101613.apk",
    "repo__obb.main.twoversions_1101615.apk",
    "repo__obb.main.twoversions_1101617.apk",
    "repo__obb.mainpatch.current_1619.apk",
    "repo__org.maxsdkversion_4.apk",
    "repo__souch.smsbypass_9.apk",
]


@pytest.mark.parametrize("name", INDEXED_CLEAN)
def test_indexed_apks_are_clean(name: str) -> None:
    a = assess(corpus_apk(APKS / name), fdroid_catalog())
    assert a.verdict is Verdict.CLEAN, [f.to_json() for f in a.findings]
    assert a.findings == ()
    assert a.match is not None and a.match.how == "sha256"


def test_another_release_key_is_counterfeit() -> None:
    a = assess(
        corpus_apk(APKS / "repo__obb.mainpatch.current_1619_another-release-key.apk"),
        fdroid_catalog(),
    )
    assert a.verdict is Verdict.COUNTERFEIT
    assert a.finding_ids == ["signer.not-allowed"]
    f = a.finding("signer.not-allowed")
    assert f is not None
    values = {(e.kind, e.value) for e in f.evidence}
    assert ("signer", "ce9e200667f02d96d49891a2e08a3c178870e91853d61bdd33ef5f0b54701aa5") in values
    allowed = [e for e in f.evidence if e.kind == "listing-field"]
    assert allowed[0].detail == "32a23624c201b949f085996ba5ed53d40f703aca4989476949cae891022e0ed6"
    # the file itself is the one the repository published: matched by digest
    assert a.match is not None and a.match.how == "sha256"


@pytest.mark.parametrize(
    ("name", "issue"),
    [
        ("urzip-badsig.apk", "JAR_SIG_MANIFEST_SECTION_DIGEST_DID_NOT_VERIFY"),
        ("urzip-badcert.apk", "JAR_SIG_DID_NOT_VERIFY"),
    ],
)
def test_broken_signatures_are_counterfeit(name: str, issue: str) -> None:
    a = assess(corpus_apk(APKS / name), fdroid_catalog())
    assert a.verdict is Verdict.COUNTERFEIT
    f = a.finding("signature.not-verified")
    assert f is not None and f.severity.value == "critical"
    assert ("issue", issue) in {(e.kind, e.value) for e in f.evidence}
    assert "release.file-differs" in a.finding_ids


def test_janus_is_repackaged() -> None:
    a = assess(corpus_apk(APKS / "janus.apk"), fdroid_catalog())
    assert a.verdict is Verdict.REPACKAGED
    f = a.finding("container.prefix-data")
    assert f is not None
    assert f.evidence[0].value == "1032 bytes before the first entry"
    assert f.evidence[0].detail == "dex"


def _webview_catalog() -> Catalog:
    """Google's Android System WebView as a store registers it (the key is Google's
    published Chrome/WebView certificate; the test needs only that it differs)."""
    webview = Listing(
        platform="example-store",
        package="com.google.android.webview",
        app_name="Android System WebView",
        developer=Developer(name="Google LLC"),
        signers={
            "google_play_store": (
                "f0fd6c5b410f25cb25c3b53346c8972fae30f8ee7411df910480ad6b2d60db83",
            )
        },
        releases=(Release(version_code=451511500),),
    )
    return fdroid_catalog().merged(Catalog((webview,), "webview.json"))


def test_systemwebview_repack_impersonates_by_name() -> None:
    a = assess(corpus_apk(APKS / "SystemWebView-repack.apk"), _webview_catalog())
    assert a.verdict is Verdict.COUNTERFEIT
    f = a.finding("name.impersonation")
    assert f is not None
    ev = {(e.kind, e.value): e.detail for e in f.evidence}
    assert ev[("listing-field", "example-store com.google.android.webview app_name")] == (
        "Android System WebView"
    )
    assert ev[("package", "com.revrobotics.webview")] == "package of the checked APK"
    assert "package.unregistered" in a.finding_ids


def test_systemwebview_repack_unknown_elsewhere_is_clean() -> None:
    """Without a registered WebView nothing ties it to another app: no verdict."""
    a = assess(corpus_apk(APKS / "SystemWebView-repack.apk"), fdroid_catalog())
    assert a.verdict is Verdict.CLEAN
    assert a.finding_ids == ["package.unregistered"]


def test_version_regression_against_history() -> None:
    """Shelving politedroid 5 after 6 had been shelved: a downgrade."""
    history = [inspect_apk(corpus_apk(APKS / "repo__com.politedroid_6.apk"))]
    a = assess(corpus_apk(APKS / "repo__com.politedroid_5.apk"), fdroid_catalog(), history=history)
    assert a.verdict is Verdict.HOT_SWAPPED
    assert "version.regression" in a.finding_ids
    ok = assess(corpus_apk(APKS / "repo__com.politedroid_6.apk"), fdroid_catalog(), history=history)
    assert ok.verdict is Verdict.CLEAN


def test_successive_corpus_versions_do_not_drift() -> None:
    """politedroid 3 → 4 → 5 → 6 with each earlier one as history: all clean."""
    names = [f"repo__com.politedroid_{v}.apk" for v in (3, 4, 5, 6)]
    history: list[ApkFacts] = []
    for name in names:
        path = corpus_apk(APKS / name)
        a = assess(path, fdroid_catalog(), history=history)
        assert a.verdict is Verdict.CLEAN, (name, a.finding_ids)
        history.append(inspect_apk(path))


def _self_listing(sdks: tuple[DeclaredSdk, ...] | None) -> Catalog:
    """com.revrobotics.webview registered under its own key, with an SDK declaration."""
    facts = inspect_apk(corpus_apk(APKS / "SystemWebView-repack.apk"))
    listing = Listing(
        platform="example-store",
        package="com.revrobotics.webview",
        app_name="Android System WebView",
        signers={"example-store": facts.signing.signer_sha256},
        releases=(
            Release(
                version_code=451511500,
                permissions=tuple(
                    DeclaredPermission(p) for p in sorted(facts.manifest.permission_names())
                ),
                features=("android.hardware.touchscreen", "android.software.leanback"),
                sdks=sdks,
            ),
        ),
    )
    return Catalog((listing,), "self.json")


def test_undeclared_sdk_is_hot_swap() -> None:
    """The APK embeds Google Cast and Play services (found from manifest components);
    a listing that declares only Play services leaves Cast undeclared."""
    apk = corpus_apk(APKS / "SystemWebView-repack.apk")
    a = assess(apk, _self_listing((DeclaredSdk("Google Play Service", "sign-in"),)))
    assert a.verdict is Verdict.HOT_SWAPPED
    f = a.finding("sdk.undeclared")
    assert f is not None
    assert [e.value for e in f.evidence if e.kind == "sdk"] == ["Google Cast"]
    assert "component:com.google.android.gms.cast.framework" in (f.evidence[0].detail or "")


def test_sdk_declared_by_code_namespace_or_not_published() -> None:
    apk = corpus_apk(APKS / "SystemWebView-repack.apk")
    by_namespace = (
        DeclaredSdk("Play services", "sign-in", ("device_id",), ("com.google.android.gms",)),
    )
    assert assess(apk, _self_listing(by_namespace)).verdict is Verdict.CLEAN
    narrow = (DeclaredSdk("Cast", "casting", (), ("com.google.android.gms.cast",)),)
    a = assess(apk, _self_listing(narrow))
    assert a.verdict is Verdict.HOT_SWAPPED
    f = a.finding("sdk.undeclared")
    assert f is not None
    assert [e.value for e in f.evidence if e.kind == "sdk"] == ["Google Play Service"]
    # a platform that publishes no SDK list: reported for information only
    b = assess(apk, _self_listing(None))
    assert b.verdict is Verdict.CLEAN
    assert b.finding_ids == ["sdk.unlisted"]
