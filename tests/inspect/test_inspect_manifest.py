"""Manifest facts of every corpus APK against Debian's ``aapt`` (an independent C++ reader).

``aapt dump badging`` gives the package, versions (with ``versionName`` resolved through
resources.arsc), SDK levels, permissions with ``maxSdkVersion`` and features;
``aapt dump xmltree`` the declared components. Known, explained differences:

- aapt adds *implied* permissions and features (``uses-implied-*`` lines): those are
  not declared, so they are not manifest facts;
- aapt prints a codename minSdkVersion as text; ours is the API level apksig assumes;
- ``targetSdkVersion`` missing: aapt prints nothing, we report the platform's fallback
  (minSdkVersion);
- APKs aapt cannot open (malformed ZIP or manifest, per the signature corpus) are
  skipped with aapt's error as the reason; APKs that we reject must be rejected by
  aapt too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from corpus import shared_dir

from provenance.errors import ProvenanceError
from provenance.inspect import ApkFacts, inspect_apk

AAPT = shutil.which("aapt")
needs_aapt = pytest.mark.skipif(AAPT is None, reason="Debian's aapt not installed")


def corpus_apks() -> list[Path]:
    base = shared_dir() / "corpus"
    return sorted([*base.glob("apksig/*.apk"), *base.glob("fdroid/apks/*.apk")])


def _ids() -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in corpus_apks()] or ["none"]


@cache
def aapt(path: Path, *args: str) -> tuple[int, str]:
    assert AAPT is not None
    out = subprocess.run(
        [
            AAPT,
            "dump",
            *args,
            str(path),
            *(["AndroidManifest.xml"] if args[0] == "xmltree" else []),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return out.returncode, out.stdout.decode("utf-8", "replace")


_Q = re.compile(r"(\w+)='((?:[^'\\]|\\.)*)'")


def _fields(line: str) -> dict[str, str]:
    return dict(_Q.findall(line))


def badging(path: Path) -> dict[str, object] | None:
    rc, text = aapt(path, "badging")
    if rc != 0 or not text.startswith("package:"):
        return None
    out: dict[str, object] = {"permissions": set(), "implied_permissions": set()}
    features: set[tuple[str, bool]] = set()
    implied_features: set[str] = set()
    perms: set[tuple[str, str | None, bool]] = set()
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "package":
            out["package"] = _fields(rest)
        elif key in ("sdkVersion", "targetSdkVersion", "maxSdkVersion"):
            out[key] = rest.strip("'")
        elif key in ("uses-permission", "uses-permission-sdk-23"):
            f = _fields(rest)
            perms.add((f["name"], f.get("maxSdkVersion"), key.endswith("23")))
        elif key == "uses-implied-permission":
            out["implied_permissions"].add(_fields(rest)["name"])  # type: ignore[attr-defined]
        elif key.strip() in ("uses-feature", "uses-feature-not-required"):
            features.add((_fields(rest)["name"], key.strip() == "uses-feature"))
        elif key.strip() == "uses-implied-feature":
            implied_features.add(_fields(rest)["name"])
        elif key == "uses-gl-es":
            out["gl_es"] = int(rest.strip("'"), 16)
    out["permissions"] = perms
    out["features"] = features
    out["implied_features"] = implied_features
    return out


_ELEMENT = re.compile(r"^( *)E: (\S+) \(line=\d+\)$")
_NAME = re.compile(r'^ *A: android:name\(0x01010003\)="([^"]*)"')


def xmltree_components(path: Path) -> list[tuple[str, str]] | None:
    """(kind, raw android:name) of components under the application element."""
    rc, text = aapt(path, "xmltree")
    if rc != 0:
        return None
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = _ELEMENT.match(line)
        if not m:
            continue
        depth = len(m.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents = [name for _, name in stack]
        stack.append((depth, m.group(2)))
        if parents[-2:] == ["manifest", "application"] or parents == ["manifest", "application"]:
            kind = m.group(2)
            if kind in ("activity", "activity-alias", "service", "receiver", "provider"):
                for attr in lines[i + 1 :]:
                    if _ELEMENT.match(attr):
                        break
                    n = _NAME.match(attr)
                    if n:
                        out.append((kind, n.group(1)))
                        break
    return out


def _facts(path: Path) -> ApkFacts | None:
    try:
        return inspect_apk(path, verify=False)
    except ProvenanceError:
        return None


@needs_aapt
@pytest.mark.parametrize("name", _ids())
def test_manifest_facts_match_aapt(name: str) -> None:
    if name == "none":
        pytest.skip("no corpus")
    path = (
        shared_dir()
        / "corpus"
        / ("fdroid/apks" if name.startswith("apks/") else "apksig")
        / name.split("/", 1)[1]
    )
    facts = _facts(path)
    b = badging(path)
    if facts is None:
        assert b is None, "we reject an APK that aapt reads"
        return
    if b is None:
        pytest.skip(f"aapt cannot read this APK: {aapt(path, 'badging')[1][-200:]!r}")
    m = facts.manifest
    pkg = b["package"]
    assert isinstance(pkg, dict)
    assert m.package == (pkg.get("name") or None)
    if pkg.get("versionCode"):
        assert m.version_code is not None
        assert m.version_code & 0xFFFFFFFF == int(pkg["versionCode"]) & 0xFFFFFFFF
    else:
        assert m.version_code is None
    assert (m.version_name or "") == pkg.get("versionName", "")
    sdk = b.get("sdkVersion")
    if isinstance(sdk, str) and sdk.isdigit():
        assert m.min_sdk == int(sdk)
    target = b.get("targetSdkVersion")
    if isinstance(target, str) and target.isdigit():
        assert m.target_sdk == int(target)
    elif target is None and m.min_sdk is not None:
        assert m.target_sdk == m.min_sdk
    if isinstance(b.get("maxSdkVersion"), str):
        assert str(m.max_sdk) == b["maxSdkVersion"]
    ours_perms = {
        (p.name, None if p.max_sdk_version is None else str(p.max_sdk_version), p.sdk23)
        for p in m.uses_permissions
    }
    theirs = b["permissions"]
    implied = b["implied_permissions"]
    assert isinstance(theirs, set) and isinstance(implied, set)
    assert ours_perms <= theirs
    assert {p for p in theirs if p[0] not in implied} <= ours_perms
    ours_features = {(f.name, f.required) for f in m.uses_features if f.name}
    feats = b["features"]
    implied_f = b["implied_features"]
    assert isinstance(feats, set) and isinstance(implied_f, set)
    assert ours_features <= feats
    assert {f for f in feats if f[0] not in implied_f} <= ours_features
    gl = [f.gl_es_version for f in m.uses_features if f.gl_es_version]
    if "gl_es" in b:
        assert max(gl) == b["gl_es"]
    comps = xmltree_components(path)
    if comps is not None:
        assert [c.kind for c in m.components] == [k for k, _ in comps]
        for c, (_, raw) in zip(m.components, comps, strict=True):
            assert c.name.endswith(raw.lstrip(".")) or raw == c.name


def test_exported_rules() -> None:
    """Exported: explicit wins; else intent filters (providers: targetSdk <= 16)."""
    path = shared_dir() / "corpus" / "fdroid" / "apks" / "repo__souch.smsbypass_9.apk"
    if not path.exists():
        pytest.skip("no corpus")
    m = inspect_apk(path, verify=False).manifest
    receiver = next(c for c in m.components if c.name == "souch.smsbypass.SMSReceiver")
    assert receiver.exported and receiver.exported_explicit is None
    assert receiver.intent_filters[0].actions == ("android.provider.Telephony.SMS_RECEIVED",)
    assert receiver.intent_filters[0].priority == 999
    ui = next(c for c in m.components if c.name == "souch.smsbypass.UI")
    assert not ui.exported
    assert m.application.allow_backup is True
    assert m.version_name == "0.9"  # a @string reference resolved through resources.arsc
