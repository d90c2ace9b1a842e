"""Counterfeit, repackaged and hot-swapped variants of corpus APKs, made with real tools.

* re-signing: the project's signer (``provenance.apk.sign``) or Debian's ``apksigner``
  (``tests/reference.py``), with apksig corpus keys;
* repackaging: Debian's ``apktool`` decodes the APK to smali + XML, the test edits the
  manifest (a permission, a version code) or adds a smali class, ``apktool`` rebuilds,
  and the result is signed.

Every APK is then checked exactly as ``apkprov check`` checks it (:func:`assess`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from corpus import require, shared_dir
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provenance.apk.sign import sign_apk
from provenance.inspect import inspect_apk
from provenance.inspect.model import ApkFacts
from provenance.keystore.loader import SignerKeySpec, load_signer
from provenance.metadata import Catalog, load_index
from provenance.risk import Assessment, evaluate, load_policy
from provenance.risk.presentation import read_presentation
from provenance.risk.reports import RuntimeReport

FDROID = shared_dir() / "corpus" / "fdroid"
APKSIG = shared_dir() / "corpus" / "apksig"
POLITEDROID_6 = FDROID / "apks" / "repo__com.politedroid_6.apk"
APKTOOL_TIMEOUT = 180

#: A payload class, as a repackager injects it.
PAYLOAD_SMALI = """.class public Lcom/evil/Payload;
.super Ljava/lang/Object;

.method public constructor <init>()V
    .registers 1
    invoke-direct {p0}, Ljava/lang/Object;-><init>()V
    return-void
.end method
"""

#: App code that loads a downloaded DEX: the hot-update pattern.
LOADER_SMALI = """.class public Lcom/politedroid/Updater;
.super Ljava/lang/Object;

.method public static load(Landroid/content/Context;Ljava/lang/String;)Ljava/lang/ClassLoader;
    .registers 6
    new-instance v0, Ldalvik/system/DexClassLoader;
    invoke-virtual {p0}, Landroid/content/Context;->getCodeCacheDir()Ljava/io/File;
    move-result-object v1
    invoke-virtual {v1}, Ljava/io/File;->getAbsolutePath()Ljava/lang/String;
    move-result-object v1
    const/4 v2, 0x0
    invoke-virtual {p0}, Landroid/content/Context;->getClassLoader()Ljava/lang/ClassLoader;
    move-result-object v3
    invoke-direct {v0, p1, v1, v2, v3}, Ldalvik/system/DexClassLoader;-><init>(%s)V
    return-object v0
.end method
""" % ("Ljava/lang/String;" * 3 + "Ljava/lang/ClassLoader;")


def corpus_apk(path: Path) -> Path:
    """A corpus APK (skip when the corpus is absent)."""
    return require(path)


def key_paths(name: str) -> tuple[Path, Path]:
    """PKCS#8 key and certificate of an apksig corpus key."""
    return require(APKSIG / f"{name}.pk8"), require(APKSIG / f"{name}.x509.pem")


def key_sha256(name: str) -> str:
    """SHA-256 of an apksig corpus key's certificate: what a listing names as signer."""
    der = x509.load_pem_x509_certificate(key_paths(name)[1].read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    return hashlib.sha256(der).hexdigest()


def resign(src: Path, out: Path, key: str = "rsa-2048") -> Path:
    """``src`` re-signed (v1+v2+v3) by an apksig corpus key with the project's signer."""
    pk8, pem = key_paths(key)
    signer = load_signer(SignerKeySpec(key=str(pk8), cert=str(pem)))
    sign_apk(src, out, [signer], v4=False)
    return out


def apktool() -> str:
    """The ``apktool`` binary (skip the test when Debian's apktool is not installed)."""
    exe = shutil.which("apktool")
    if exe is None:
        pytest.skip("apktool not installed (apt-get install apktool)")
    return exe


def _run(args: Sequence[str]) -> None:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=APKTOOL_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def decode(src: Path, work: Path) -> Path:
    """``apktool d`` into ``work/decoded`` (framework files kept under ``work``)."""
    out = work / "decoded"
    _run([apktool(), "d", "-q", "-f", "-p", str(work / "framework"), "-o", str(out), str(src)])
    return out


def rebuild(
    decoded: Path,
    out: Path,
    *,
    add_permissions: Sequence[str] = (),
    add_smali: dict[str, str] | None = None,
    version_code: int | None = None,
) -> Path:
    """Edit a copy of a decoded tree, then ``apktool b`` it into ``out`` (unsigned)."""
    tree = out.parent / f"{out.stem}.tree"
    shutil.copytree(decoded, tree)
    manifest = tree / "AndroidManifest.xml"
    text = manifest.read_text(encoding="utf-8")
    for p in add_permissions:
        text = text.replace(
            "<application", f'<uses-permission android:name="{p}"/>\n    <application', 1
        )
    manifest.write_text(text, encoding="utf-8")
    if version_code is not None:
        yml = tree / "apktool.yml"
        y = yml.read_text(encoding="utf-8")
        y, n = re.subn(r"versionCode: '?\d+'?", f"versionCode: '{version_code}'", y)
        assert n == 1, y
        yml.write_text(y, encoding="utf-8")
    for rel, smali in (add_smali or {}).items():
        f = tree / "smali" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(smali, encoding="utf-8")
    _run([apktool(), "b", "-q", "-p", str(decoded.parent / "framework"), "-o", str(out), str(tree)])
    return out


def fdroid_catalog() -> Catalog:
    """The corpus F-Droid index (v2)."""
    return load_index(require(FDROID / "index" / "index-v2.json"))


def assess(
    apk: Path,
    catalog: Catalog,
    *,
    history: Sequence[ApkFacts] = (),
    reports: Sequence[RuntimeReport] = (),
    channel: str | None = None,
) -> Assessment:
    """What ``apkprov check`` decides for ``apk`` (default policy)."""
    return evaluate(
        inspect_apk(apk),
        catalog,
        policy=load_policy(),
        history=history,
        reports=reports,
        channel=channel,
        presentation=read_presentation(apk),
    )
