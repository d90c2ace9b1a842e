"""F-Droid index v1/v2 importers against the real fdroidserver test repository.

Ground truth: every APK of the corpus that the index lists (by file SHA-256) must
match its listing in signer, versionCode, SDK range, permissions and features, as
read from the APK itself by the inspector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fdroid_corpus import APKS, corpus, sha256_of

from provenance.inspect import inspect_apk
from provenance.inspect.model import ManifestFacts
from provenance.metadata import (
    Catalog,
    Listing,
    ListingError,
    Release,
    catalog_from_json,
    load_index,
)

#: Indexed files present in the corpus: repo__*.apk but helloworld and v1.v2.sig.
EXPECTED_INDEXED = 15


def _v2() -> Catalog:
    return load_index(corpus("index", "index-v2.json"))


def _v1() -> Catalog:
    return load_index(corpus("index", "index-v1.json"))


def _indexed() -> list[tuple[str, Listing, Release]]:
    """(corpus APK name, listing, release) for every corpus APK the v2 index lists."""
    corpus("apks")
    by_sha = {r.apk_sha256: (x, r) for x in _v2().listings for r in x.releases}
    out = []
    for apk in sorted(APKS.glob("*.apk")):
        hit = by_sha.get(sha256_of(apk))
        if hit is not None:
            out.append((apk.name, *hit))
    return out


def test_index_v2_listings() -> None:
    cat = _v2()
    assert len(cat.listings) == 11
    assert cat.authenticated_by is None
    (obb,) = cat.by_package("obb.mainpatch.current")
    assert obb.platform == "fdroid:https://example.com/fdroid/repo"
    assert obb.app_name == "OBB Main/Patch Current"
    # preferredSigner is the allowed key, although two files of 1619 are published
    assert obb.signers == {
        "fdroid": ("32a23624c201b949f085996ba5ed53d40f703aca4989476949cae891022e0ed6",)
    }
    assert sorted(s for r in obb.releases for s in r.signers) == [
        "32a23624c201b949f085996ba5ed53d40f703aca4989476949cae891022e0ed6",
        "ce9e200667f02d96d49891a2e08a3c178870e91853d61bdd33ef5f0b54701aa5",
    ]
    (dup,) = cat.by_package("duplicate.permisssions")
    (rel,) = dup.releases
    sdk23 = {p.name: p for p in rel.permissions if p.min_sdk == 23}
    assert sdk23["android.permission.REQUEST_IGNORE_BATTERY_OPTIMIZATIONS"].max_sdk == 27
    assert rel.features == ("android.hardware.telephony",)
    assert rel.sdks is None  # F-Droid publishes no SDK list
    (maxsdk,) = cat.by_package("org.maxsdkversion")
    assert maxsdk.releases[0].max_sdk == 25
    assert [x.package for x in cat.by_name("polite  DROID")] == ["com.politedroid"]


def test_every_indexed_corpus_apk_matches_its_listing() -> None:
    rows = _indexed()
    assert len(rows) == EXPECTED_INDEXED, [r[0] for r in rows]
    for name, listing, release in rows:
        facts = inspect_apk(APKS / name)
        m = facts.manifest
        assert facts.file.sha256 == release.apk_sha256
        assert facts.file.size == release.apk_size, name
        assert facts.signing.verified, name
        assert set(facts.signing.signer_sha256) == set(release.signers), name
        assert m.package == listing.package, name
        assert m.version_code == release.version_code, name
        # fdroidserver writes 3 for an absent minSdkVersion, and targetSdk defaults to it
        min_sdk = m.min_sdk if m.min_sdk and m.min_sdk > 1 else 3
        assert min_sdk == release.min_sdk, name
        assert max(m.target_sdk, min_sdk) == release.target_sdk, name
        assert _with_implied(m) == release.permission_names, name
        required = {f.name for f in m.uses_features if f.name and f.required}
        assert required == set(release.features), name


def _with_implied(m: ManifestFacts) -> frozenset[str]:
    """Permissions plus those the platform implies (fdroidserver lists them, as aapt does):
    apps targeting API < 4 get external storage and phone state; a ``<uses-permission>``
    (not ``-sdk-23``) for writing external storage implies reading it."""
    out = set(m.permission_names())
    plain = {p.name for p in m.uses_permissions if not p.sdk23}
    if m.target_sdk < 4:
        plain |= {
            "android.permission.WRITE_EXTERNAL_STORAGE",
            "android.permission.READ_PHONE_STATE",
        }
    if "android.permission.WRITE_EXTERNAL_STORAGE" in plain:
        plain.add("android.permission.READ_EXTERNAL_STORAGE")
    return frozenset(out | plain)


def test_index_v1_agrees_with_v2() -> None:
    v1, v2 = _v1(), _v2()
    assert {x.package for x in v1.listings} == {x.package for x in v2.listings}
    for a in v2.listings:
        (b,) = v1.by_package(a.package)
        assert b.signers == a.signers, a.package  # v1: the suggested version's signer
        key = sorted((r.apk_sha256 or "", r.version_code, r.signers) for r in a.releases)
        assert sorted((r.apk_sha256 or "", r.version_code, r.signers) for r in b.releases) == key
        for r in a.releases:
            other = b.release(apk_sha256=r.apk_sha256)
            assert other is not None
            assert other.permission_names == r.permission_names, a.package


def test_index_v1_old_format_strings_and_no_signer() -> None:
    """Guardian Project's 2017 index-v1 (in its signed JAR): SDK levels as strings, no
    ``signer`` field (only F-Droid's MD5 ``sig``, which is not a certificate hash)."""
    cat = load_index(
        corpus("jars", "guardianproject-v1.jar"),
        repo_fingerprint="b7c2eefd8dac7806af67dfcd92eb18126bc08312a7f2d6f3862e46013c7a6135",
    )
    assert len(cat.listings) == 10
    (checkey,) = cat.by_package("info.guardianproject.checkey")
    assert checkey.releases[0].min_sdk == 8
    assert checkey.signers == {}
    assert all(not r.signers for x in cat.listings for r in x.releases)


@pytest.mark.parametrize("loader", [_v1, _v2], ids=["v1", "v2"])
def test_json_form_round_trip(loader: object) -> None:
    cat = loader()  # type: ignore[operator]
    doc = json.loads(json.dumps(cat.to_json()))
    assert doc["schema"] == "apkprov.listing/1"
    assert catalog_from_json(doc, "round-trip").listings == cat.listings


def test_channel_name_is_configurable() -> None:
    cat = load_index(corpus("index", "index-v2.json"), channel="app_fdroid_repo")
    (x,) = cat.by_package("com.politedroid")
    assert set(x.signers) == {"app_fdroid_repo"}


def _v2_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(corpus("index", "index-v2.json").read_bytes())
    return doc


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = doc["packages"]["com.politedroid"]["metadata"]
    return meta


def _first_version(doc: dict[str, Any]) -> dict[str, Any]:
    versions: dict[str, Any] = doc["packages"]["com.politedroid"]["versions"]
    return next(iter(versions.values()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _first_version(d)["file"].update(sha256="00" * 32), "differs from file.sha256"),
        (lambda d: _first_version(d)["manifest"].update(versionCode="6"), "expected an integer"),
        (lambda d: _first_version(d)["manifest"].pop("versionCode"), "'versionCode'"),
        (lambda d: _first_version(d)["manifest"]["signer"].update(sha256=["xyz"]), "not a SHA-256"),
        (lambda d: _meta(d).update(name=7), "expected an object"),
        (lambda d: d["packages"].update({"bad name": {}}), "not a valid package name"),
        (lambda d: d.pop("repo"), "not an F-Droid index"),
        (lambda d: d["repo"].update(address=["x"]), r"repo\.address: expected a string"),
    ],
)  # fmt: skip
def test_malformed_index_v2(tmp_path: Path, mutate: Any, message: str) -> None:
    doc = _v2_doc()
    mutate(doc)
    p = tmp_path / "index-v2.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ListingError, match=message):
        load_index(p)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["packages"]["com.politedroid"][0].update(packageName="x.y"), "listed under"),
        (lambda d: d["packages"]["com.politedroid"][0].update(hashType="md5"), "not supported"),
        (lambda d: d["packages"]["com.politedroid"][0].update({"uses-permission": [[]]}), "empty"),
        (lambda d: d["apps"].append(d["apps"][0]), "listed twice"),
    ],
)
def test_malformed_index_v1(tmp_path: Path, mutate: Any, message: str) -> None:
    doc = json.loads(corpus("index", "index-v1.json").read_bytes())
    mutate(doc)
    p = tmp_path / "index-v1.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ListingError, match=message):
        load_index(p)
