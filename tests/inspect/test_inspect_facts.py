"""``inspect_apk`` end to end: code loading attributed per call site, SDKs, the facts model.

Synthetic APKs are a real corpus APK (its manifest and resources) with DEX files from
the test writer, so every attribution rule is exercised on a known answer: the app's
own loader, Play Feature Delivery (store), Google Play services (library), a tracker
SDK, a hot-update framework, obfuscated code, an app-defined subclass of a loader in
another DEX file, a Context subclass, strings loaded by ``const-string`` and strings
only present in the pool. On the real corpus the call sites found must be exactly the
invoke instructions ``dexdump`` disassembles to those APIs.
"""

from __future__ import annotations

import json
import zipfile
from functools import cache
from pathlib import Path

import pytest
from corpus import REPO, shared_dir
from inspect_dexgen import INVOKE_DIRECT, INVOKE_VIRTUAL, ClassSpec, Insn, Method, build_dex, invoke
from inspect_dexgen import const_string as cs
from inspect_tools import DEXDUMP, dexdump, dexdump_refs

from provenance.apk.dex import DexFile
from provenance.apk.zip import ApkFile
from provenance.errors import ApkFormatError, InputError
from provenance.inspect import FACTS_VERSION, ApkFacts, inspect_apk
from provenance.inspect.code_loading import WELL_KNOWN_LIBRARIES
from provenance.inspect.sdk import load_indicators, load_sdk_db

BASE = "repo__com.politedroid_6.apk"  # package com.politedroid
S = "Ljava/lang/String;"
DCL = ("Ldalvik/system/DexClassLoader;", "<init>", ("V", (S, S, S, "Ljava/lang/ClassLoader;")))
PCL = ("Ldalvik/system/PathClassLoader;", "<init>", ("V", (S, "Ljava/lang/ClassLoader;")))
IMDCL = ("Ldalvik/system/InMemoryDexClassLoader;", "<init>", ("V", ("Ljava/nio/ByteBuffer;",)))
SYSTEM_LOAD = ("Ljava/lang/System;", "load", ("V", (S,)))
FOR_NAME = ("Ljava/lang/Class;", "forName", ("Ljava/lang/Class;", (S,)))
CREATE_CTX = ("createPackageContext", ("Landroid/content/Context;", (S, "I")))


def corpus_apk(name: str) -> Path:
    path = shared_dir() / "corpus" / "fdroid" / "apks" / name
    if not path.exists():
        pytest.skip(f"corpus not found: {path}")
    return path


def make_apk(
    tmp: Path, dexes: dict[str, bytes], base: str = BASE, extra: dict[str, bytes] | None = None
) -> Path:
    """The base APK with its DEX files and signature replaced (unsigned)."""
    out = tmp / "synthetic.apk"
    with zipfile.ZipFile(corpus_apk(base)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith(".dex") or info.filename.startswith("META-INF/"):
                continue
            dst.writestr(info, src.read(info))
        for name, data in {**dexes, **(extra or {})}.items():
            dst.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return out


def m(name: str, *code: Insn) -> Method:
    return Method(name, code=[*code, Insn("return-void")])


def _classes_main() -> list[ClassSpec]:
    return [
        ClassSpec(
            "Lcom/politedroid/Loader;",
            methods=[m("load", invoke(*DCL, op=INVOKE_DIRECT), cs("dexElements"))],
        ),
        ClassSpec(
            "Lcom/google/android/play/core/splitinstall/SplitInstallHelper;",
            methods=[m("loadLibrary", invoke(*SYSTEM_LOAD))],
        ),
        ClassSpec(
            "Lcom/google/android/gms/dynamite/DynamiteModule;",
            methods=[m("a", invoke(*DCL, op=INVOKE_DIRECT))],
        ),
        ClassSpec(
            "Lcom/appsflyer/internal/AFa1;", methods=[m("b", invoke(*IMDCL, op=INVOKE_DIRECT))]
        ),
        ClassSpec(
            "Lcom/tencent/tinker/loader/SystemClassLoaderAdder;",
            methods=[
                m("install", cs("dexElements"), cs("pathList"), invoke(*PCL, op=INVOKE_DIRECT))
            ],
        ),
        ClassSpec("La/b/c;", methods=[m("d", invoke(*FOR_NAME), invoke(*FOR_NAME))]),
        ClassSpec(
            "Lcom/politedroid/User;",
            methods=[
                m("use", invoke("Lcom/politedroid/MyLoader;", "<init>", DCL[2], op=INVOKE_DIRECT))
            ],
        ),
        ClassSpec(
            "Lcom/politedroid/Main;",
            superclass="Landroid/app/Activity;",
            methods=[m("ctx", invoke("Lcom/politedroid/Main;", *CREATE_CTX, op=INVOKE_VIRTUAL))],
        ),
        ClassSpec("Lcom/meituan/robust/PatchProxy;", methods=[m("p", cs("changeQuickRedirect"))]),
    ]


def _classes_second() -> list[ClassSpec]:
    # Defined in classes2.dex: the subclass used from classes.dex.
    return [
        ClassSpec(
            "Lcom/politedroid/MyLoader;", superclass="Ldalvik/system/DexClassLoader;", methods=[]
        )
    ]


@cache
def _synthetic_facts(tmp: Path) -> ApkFacts:
    apk = make_apk(
        tmp,
        {
            "classes.dex": build_dex(_classes_main(), extra_strings=("nativeLibraryDirectories",)),
            "classes2.dex": build_dex(_classes_second()),
        },
        extra={"lib/arm64-v8a/libsophix.so": b"\x7fELF", "assets/index.android.bundle": b"x"},
    )
    return inspect_apk(apk)


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> ApkFacts:
    return _synthetic_facts(tmp_path_factory.mktemp("synthetic"))


def _sites(facts: ApkFacts) -> dict[tuple[str, str], tuple[str, str | None, str, int]]:
    return {
        (c.api.split(";->")[0] + ";->" + c.api.split(";->")[1], c.caller_class): (
            c.origin,
            c.library,
            c.strength,
            c.count,
        )
        for c in facts.code_loading.call_sites
    }


def test_call_sites_are_attributed(facts: ApkFacts) -> None:
    sites = _sites(facts)
    dcl = "Ldalvik/system/DexClassLoader;-><init>"
    assert sites[(dcl, "Lcom/politedroid/Loader;")] == ("app", None, "strong", 1)
    assert sites[
        (
            "Ljava/lang/System;->load",
            "Lcom/google/android/play/core/splitinstall/SplitInstallHelper;",
        )
    ][:2] == (
        "store",
        "Google Play Feature Delivery (legit)",
    )
    assert sites[(dcl, "Lcom/google/android/gms/dynamite/DynamiteModule;")][:2] == (
        "library",
        "Google Play services",
    )
    assert sites[
        ("Ldalvik/system/InMemoryDexClassLoader;-><init>", "Lcom/appsflyer/internal/AFa1;")
    ][:2] == (
        "sdk",
        "AppsFlyer",
    )
    assert sites[
        (
            "Ldalvik/system/PathClassLoader;-><init>",
            "Lcom/tencent/tinker/loader/SystemClassLoaderAdder;",
        )
    ][:2] == ("hot-update", "Tencent Tinker")
    # obfuscated code is never excused; two calls, one site
    assert sites[("Ljava/lang/Class;->forName", "La/b/c;")] == ("app", None, "weak", 2)
    # an app-defined subclass of DexClassLoader (in classes2.dex), constructed in classes.dex
    assert sites[(dcl, "Lcom/politedroid/User;")][0] == "app"
    # createPackageContext through the app's Activity subclass
    assert (
        sites[("Landroid/content/Context;->createPackageContext", "Lcom/politedroid/Main;")][0]
        == "app"
    )
    site = next(
        c for c in facts.code_loading.call_sites if c.caller_class == "Lcom/politedroid/User;"
    )
    assert site.caller == "Lcom/politedroid/User;->use()V"
    assert site.caller_package == "com.politedroid"
    assert site.dex == "classes.dex"
    assert len(facts.code_loading.app_call_sites("strong")) == 3


def test_strings_are_attributed(facts: ApkFacts) -> None:
    hits = {h.string: h for h in facts.code_loading.strings}
    assert hits["dexElements"].callers == (
        "Lcom/politedroid/Loader;",
        "Lcom/tencent/tinker/loader/SystemClassLoaderAdder;",
    )
    assert hits["dexElements"].origins == ("app", "hot-update")
    assert hits["pathList"].origins == ("hot-update",)
    assert hits["nativeLibraryDirectories"].in_pool_only
    assert "changeQuickRedirect" not in hits  # a framework string, not an injection string


def test_frameworks(facts: ApkFacts) -> None:
    fw = {f.name: f for f in facts.code_loading.frameworks}
    assert "class:Lcom/tencent/tinker/loader/" in fw["Tencent Tinker"].evidence
    assert fw["Meituan Robust"].evidence == (
        "class:Lcom/meituan/robust/",
        "string:changeQuickRedirect",
    )
    assert fw["Alibaba Sophix"].evidence == ("native:libsophix.so",)
    assert fw["React Native (bundle present)"].evidence == ("asset:assets/index.android.bundle",)
    assert fw["Google Play Feature Delivery (legit)"].store_mediated
    assert not fw["Tencent Tinker"].store_mediated


def test_sdks_and_natives(facts: ApkFacts) -> None:
    names = {(s.source, s.name) for s in facts.sdks}
    assert ("exodus", "AppsFlyer") in names
    assert facts.abis == ("arm64-v8a",)
    (lib,) = facts.native_libs
    assert (lib.abi, lib.name, lib.size) == ("arm64-v8a", "libsophix.so", 4)
    assert {d.name for d in facts.dex} == {"classes.dex", "classes2.dex"}
    assert "Lcom/politedroid/MyLoader;" in facts.class_names()
    assert facts.class_count == len(facts.class_names())
    assert not facts.signing.verified  # unsigned after rebuilding


def test_json_round_trip_and_stability(facts: ApkFacts) -> None:
    data = facts.to_json()
    text = json.dumps(data)
    assert ApkFacts.from_json(json.loads(text)) == facts
    assert data["facts_version"] == FACTS_VERSION
    with pytest.raises(ValueError):
        ApkFacts.from_json({**data, "facts_version": 999})


def test_same_facts_twice_and_fingerprint_ignores_resources(tmp_path: Path) -> None:
    dex = build_dex(_classes_main())
    a = inspect_apk(make_apk(tmp_path, {"classes.dex": dex}))
    b = inspect_apk(make_apk(tmp_path, {"classes.dex": dex}, extra={"assets/new.txt": b"x"}))
    assert a.class_fingerprint == b.class_fingerprint
    assert {r.name for r in b.resources} - {r.name for r in a.resources} == {"assets/new.txt"}
    again = inspect_apk(make_apk(tmp_path, {"classes.dex": dex}))
    assert json.dumps(again.to_json()) == json.dumps(a.to_json())


def test_bad_dex_is_an_issue_not_a_failure(tmp_path: Path) -> None:
    good = build_dex(_classes_main())
    apk = make_apk(
        tmp_path, {"classes.dex": good, "classes2.dex": good[:100], "classes4.dex": good}
    )
    f = inspect_apk(apk)
    bad = next(d for d in f.dex if d.name == "classes2.dex")
    assert bad.error and not bad.classes
    assert any(i.startswith("classes2.dex:") for i in f.issues)
    assert any("classes4.dex" in i and "does not load" in i for i in f.issues)
    assert f.manifest.package == "com.politedroid"


def test_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        inspect_apk(tmp_path / "missing.apk")
    notzip = tmp_path / "x.apk"
    notzip.write_bytes(b"hello")
    with pytest.raises(ApkFormatError, match="not a ZIP"):
        inspect_apk(notzip)
    nomanifest = tmp_path / "y.apk"
    with zipfile.ZipFile(nomanifest, "w") as z:
        z.writestr("classes.dex", b"")
    with pytest.raises(ApkFormatError, match=r"no AndroidManifest\.xml"):
        inspect_apk(nomanifest)


# --- real corpus: call sites == dexdump's invokes of the APIs ----------------------


def _api_keys() -> set[tuple[str, str]]:
    return {tuple(k.split("->")) for k in load_indicators()["dcl_api_methods"]}  # type: ignore[misc]


@pytest.mark.skipif(DEXDUMP is None, reason="Debian's dexdump not installed")
def test_corpus_call_sites_match_dexdump() -> None:
    base = shared_dir() / "corpus"
    apks = sorted([*base.glob("apksig/*.apk"), *base.glob("fdroid/apks/*.apk")])
    if not apks:
        pytest.skip("no corpus")
    keys = _api_keys()
    checked = 0
    seen: set[str] = set()
    for apk in apks:
        try:
            facts = inspect_apk(apk, verify=False)
        except ApkFormatError:
            continue
        ours = {(c.api, c.caller) for c in facts.code_loading.call_sites}
        expected: set[tuple[str, str]] = set()
        with ApkFile(apk) as z:
            for d in facts.dex:
                if d.error:
                    continue
                rec = z.find(d.name)
                assert rec is not None
                data = z.read_entry(rec)
                dex = DexFile(data)
                _, refs, targets = dexdump_refs(dexdump(data))
                for (cls, name, proto), rows in refs.items():
                    for kind, idx in rows:
                        if kind == "method" and (targets[idx][0], targets[idx][1]) in keys:
                            api = f"{targets[idx][0]}->{targets[idx][1]}"
                            expected.add((api, f"{cls}->{name}{proto}"))
                del dex
        assert ours == expected, apk.name
        if facts.class_fingerprint not in seen:
            seen.add(facts.class_fingerprint)
            checked += len(expected)
    assert checked >= 4  # fules.ck loadLibrary, politedroid Class.forName


def test_corpus_facts_are_json_and_round_trip() -> None:
    base = shared_dir() / "corpus" / "fdroid" / "apks"
    apks = sorted(base.glob("*.apk"))
    if not apks:
        pytest.skip("no corpus")
    for apk in apks:
        f = inspect_apk(apk)
        assert ApkFacts.from_json(json.loads(json.dumps(f.to_json()))) == f


def test_published_signers_match_fdroid_index() -> None:
    """Signer SHA-256 and versionCode agree with F-Droid's own published index."""
    index = shared_dir() / "corpus" / "fdroid" / "index" / "index-v2.json"
    if not index.exists():
        pytest.skip("no index")
    data = json.loads(index.read_text())
    checked = 0
    for pkg in data["packages"].values():
        for version in pkg["versions"].values():
            name = version["file"]["name"].lstrip("/")
            path = shared_dir() / "corpus" / "fdroid" / "apks" / f"repo__{name}"
            if not path.exists():
                continue
            f = inspect_apk(path)
            assert f.file.sha256 == version["file"]["sha256"]
            manifest = version["manifest"]
            assert f.manifest.version_code == manifest["versionCode"]
            signer = manifest.get("signer", {}).get("sha256", [])
            if signer and f.signing.verified:
                assert list(f.signing.signer_sha256) == signer
            # the index adds implied permissions (aapt's uses-implied-permission)
            perms = {
                p["name"]
                for key in ("usesPermission", "usesPermissionSdk23")
                for p in manifest.get(key, [])
            }
            assert f.manifest.permission_names() <= perms
            checked += 1
    assert checked >= 5


# --- shipped datasets ----------------------------------------------------------------


def test_sdk_db_loads_offline_and_is_current() -> None:
    db = load_sdk_db()
    assert db.version.startswith("1.")
    assert {s["id"] for s in db.sources} == {"exodus", "libchecker", "libradar"}
    assert len(db.sdks) > 1000
    notice = REPO / "provenance" / "data" / "NOTICE"
    text = notice.read_text()
    for needle in (
        "ODbL",
        "DbCL",
        "Apache License 2.0",
        "Exodus Privacy",
        "LibChecker",
        "LibRadar",
    ):
        assert needle in text
    shared = shared_dir() / "data"
    if not (shared / "sdk").exists():
        pytest.skip("shared datasets not found")
    from provenance.data.build_sdk_db import main

    assert main(["--shared", str(shared), "--check"]) == 0, "shipped copy is stale"


def test_well_known_libraries_are_not_store() -> None:
    store = [
        p
        for name, fw in load_indicators()["frameworks"].items()
        if "legit" in name
        for p in fw["class_prefixes"]
    ]
    assert store == [
        "Lcom/google/android/play/core/splitinstall/",
        "Lcom/google/android/play/core/splitcompat/",
    ]
    assert all(p.endswith("/") for p, _ in WELL_KNOWN_LIBRARIES)


def test_suss_cross_check() -> None:
    """F-Droid's scanner signatures (AGPL, test-only) vs our shipped database.

    For each of its class-path signatures that names a plain package, a class in that
    package must be recognised by at least one of our sources -- most are; the ones
    that are not are listed so the gap is visible.
    """
    suss = shared_dir() / "data" / "sdk" / "fdroid_suss_default.json"
    if not suss.exists():
        pytest.skip("shared datasets not found")
    import re

    db = load_sdk_db()
    data = json.loads(suss.read_text())
    total = found = 0
    for sig in data.get("signatures", {}).values():
        for pattern in sig.get("code_signatures", []):
            m = re.fullmatch(r"\^?((?:[a-z0-9_]+(?:\\\.|/))+[a-z0-9_]+)(?:\\\.|/)?", pattern)
            if not m:
                continue
            pkg = m.group(1).replace("\\.", "/").replace(".", "/")
            total += 1
            cls = f"L{pkg}/Sample;"
            if db.match([cls]) or db.prefix_owner(cls):
                found += 1
    assert total > 20
    assert found / total > 0.5


def test_janus_prefix_is_an_issue() -> None:
    f = inspect_apk(corpus_apk("janus.apk"), verify=False)
    assert any("Janus" in i for i in f.issues)
    clean = inspect_apk(corpus_apk(BASE), verify=False)
    assert not any("before the first ZIP entry" in i for i in clean.issues)
