"""Tests for the AXML reader (provenance.apk.axml) and the manifest rules (provenance.apk.manifest).

Three kinds of evidence:
- every corpus APK's manifest compared with Debian's ``aapt dump badging`` (an
  independent C++ reader), with the known, explained differences spelled out;
- apksig's own assertions (ApkUtilsTest) and the corpus notes on special manifests;
- synthetic documents from a small AXML writer below: the apksig rules case by case,
  and hostile inputs (truncation, random corruption, forged tables, deep nesting),
  which must raise ``AxmlError`` or parse -- never another exception, never hang.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import struct
import subprocess
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from corpus import shared_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.apk.axml import (
    ANDROID_NAMESPACE,
    Limits,
    ValueType,
    XmlAttribute,
    XmlElement,
    parse_axml,
)
from provenance.apk.manifest import (
    ATTR_DEBUGGABLE,
    ATTR_MAX_SDK_VERSION,
    ATTR_MIN_SDK_VERSION,
    ATTR_TARGET_SANDBOX_VERSION,
    ATTR_TARGET_SDK_VERSION,
    ATTR_VERSION_CODE,
    ATTR_VERSION_CODE_MAJOR,
    ATTR_VERSION_NAME,
    Manifest,
    debuggable,
    long_version_code,
    min_sdk_version,
    min_sdk_version_for_codename,
    package_name,
    parse_manifest,
    target_sandbox_version,
    target_sdk_version,
)
from provenance.errors import ApkFormatError, AxmlError

# --- corpus ---------------------------------------------------------------------------


def corpus_dir() -> Path:
    """The shared corpus: ``$APKPROV_CORPUS``, else ``corpus/`` of the shared folder."""
    env = os.environ.get("APKPROV_CORPUS")
    return Path(env) if env else shared_dir() / "corpus"


def corpus_apks() -> list[Path]:
    root = corpus_dir()
    found = [
        *sorted((root / "apksig").glob("*.apk")),
        *sorted((root / "apksig" / "historical").glob("*.apk")),
        *sorted((root / "fdroid" / "apks").glob("*.apk")),
    ]
    return found


def apksig_apk(name: str) -> Path:
    path = corpus_dir() / "apksig" / name
    if not path.is_file():
        pytest.skip(f"corpus file {path} not present (set APKPROV_CORPUS)")
    return path


def manifest_of(apk: Path) -> bytes | None:
    """AndroidManifest.xml via Python's zipfile (independent of the project's ZIP reader)."""
    try:
        with zipfile.ZipFile(apk) as zf:
            return zf.read("AndroidManifest.xml")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None


def corpus_manifest(name: str) -> bytes:
    data = manifest_of(apksig_apk(name))
    assert data is not None, f"{name} has no readable AndroidManifest.xml"
    return data


CORPUS_APKS = corpus_apks()
AAPT = shutil.which("aapt")

# --- aapt oracle ------------------------------------------------------------------------


@dataclass(frozen=True)
class Badging:
    package: str
    version_code: str
    version_name: str
    sdk_version: str | None
    target_sdk_version: str | None
    max_sdk_version: str | None
    debuggable: bool


@functools.cache
def aapt_badging(apk: Path) -> Badging | None:
    """What ``aapt dump badging`` says, or ``None`` if aapt cannot read the APK."""
    assert AAPT is not None
    proc = subprocess.run(
        [AAPT, "dump", "badging", str(apk)], capture_output=True, text=True, timeout=60
    )
    out = proc.stdout
    pkg = re.search(
        r"^package: name='([^']*)' versionCode='([^']*)' versionName='([^']*)'", out, re.M
    )
    if pkg is None:
        return None

    def line(key: str) -> str | None:
        found = re.search(rf"^{key}:'([^']*)'", out, re.M)
        return found[1] if found else None

    return Badging(
        package=pkg[1],
        version_code=pkg[2],
        version_name=pkg[3],
        sdk_version=line("sdkVersion"),
        target_sdk_version=line("targetSdkVersion"),
        max_sdk_version=line("maxSdkVersion"),
        debuggable=re.search(r"^application-debuggable$", out, re.M) is not None,
    )


needs_aapt = pytest.mark.skipif(AAPT is None, reason="Debian's aapt (/usr/bin/aapt) not installed")
needs_corpus = pytest.mark.skipif(
    not CORPUS_APKS, reason=f"no APKs under {corpus_dir()} (set APKPROV_CORPUS)"
)


@needs_aapt
@needs_corpus
@pytest.mark.parametrize("apk", CORPUS_APKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_matches_aapt_badging(apk: Path) -> None:
    """Package, versions and SDK levels agree with aapt on every APK both can read.

    Known, explained differences (asserted precisely rather than skipped):
    - aapt prints no ``sdkVersion`` when minSdkVersion is absent; apksig's default is 1.
    - aapt prints no ``targetSdkVersion`` when it is absent; apksig falls back to the
      minSdkVersion (the platform's rule), so ours must equal our min_sdk_version.
    - aapt resolves ``versionName="@string/..."`` through resources.arsc; we do not
      read resources, so version_name is None and the attribute must be a reference.
    - aapt prints a codename minSdkVersion as the string; apksig maps it to an API level.
    - aapt prints only versionCode, not versionCodeMajor: compare the low 32 bits.
    """
    data = manifest_of(apk)
    if data is None:
        pytest.skip("Python's zipfile cannot read this APK's AndroidManifest.xml")
    badging = aapt_badging(apk)
    if badging is None:
        pytest.skip("aapt cannot read this APK")
    m = parse_manifest(data)

    assert m.package == badging.package
    if badging.version_code == "":
        assert m.version_code is None
    else:
        assert m.version_code is not None
        assert m.version_code & 0xFFFFFFFF == int(badging.version_code) & 0xFFFFFFFF

    if m.version_name is None and badging.version_name != "":
        attr = m.root.attribute_by_id(ATTR_VERSION_NAME)
        assert attr is not None and attr.value_type == ValueType.REFERENCE
    else:
        assert (m.version_name or "") == badging.version_name

    if badging.sdk_version is None:
        assert m.min_sdk_version == 1
    elif badging.sdk_version.isdigit():
        assert m.min_sdk_version == max(1, int(badging.sdk_version))
    else:  # a codename
        assert m.min_sdk_version == min_sdk_version_for_codename(badging.sdk_version)

    if badging.target_sdk_version is None:
        assert m.target_sdk_version == m.min_sdk_version
    elif badging.target_sdk_version.isdigit():
        assert m.target_sdk_version == int(badging.target_sdk_version)

    if badging.max_sdk_version is None:
        assert m.max_sdk_version is None
    else:
        assert m.max_sdk_version == int(badging.max_sdk_version)

    if m.debuggable is not None:
        assert m.debuggable == badging.debuggable


@needs_corpus
def test_every_corpus_manifest_parses_and_rules_agree() -> None:
    """All readable corpus manifests parse; the functions and the Manifest fields agree."""
    parsed = 0
    for apk in CORPUS_APKS:
        data = manifest_of(apk)
        if data is None:
            continue
        m = parse_manifest(data)
        parsed += 1
        assert m.root.name == "manifest", apk
        assert target_sdk_version(data) == target_sdk_version(m) == m.target_sdk_version
        assert target_sandbox_version(data) == m.target_sandbox_version
        assert package_name(data) == m.package
        if m.min_sdk_version is not None:
            assert min_sdk_version(data) == m.min_sdk_version
        if m.debuggable is not None:
            assert debuggable(data) == m.debuggable
    assert parsed >= 400


# --- apksig's own assertions (ApkUtilsTest) and corpus notes ------------------------------


def test_apksig_utils_original() -> None:
    m = parse_manifest(corpus_manifest("original.apk"))
    assert m.min_sdk_version == 23
    assert m.debuggable is False
    assert m.package == "android.appsecurity.cts.tinyapp"
    assert m.target_sandbox_version == 1
    assert m.version_code == 10
    assert long_version_code(m) == 10


def test_apksig_utils_target_sdk() -> None:
    assert target_sdk_version(corpus_manifest("v3-ec-p256-targetSdk-30.apk")) == 30
    m = parse_manifest(corpus_manifest("v1-only-no-uses-sdk.apk"))
    assert m.target_sdk_version == 1
    assert m.min_sdk_version == 1


def test_debuggable_boolean() -> None:
    data = corpus_manifest("debuggable-boolean.apk")
    assert debuggable(data) is True
    assert parse_manifest(data).debuggable is True


def test_debuggable_resource_rejected_like_apksig() -> None:
    data = corpus_manifest("debuggable-resource.apk")
    m = parse_manifest(data)
    assert m.debuggable is None
    attr = m.root.children_named("application").__next__().attribute_by_id(ATTR_DEBUGGABLE)
    assert attr is not None and attr.value_type == ValueType.REFERENCE
    with pytest.raises(ApkFormatError, match="references a resource"):
        debuggable(m)
    with pytest.raises(ApkFormatError, match="references a resource"):
        debuggable(data)


def test_version_code_major() -> None:
    data = corpus_manifest("original-with-versionCodeMajor.apk")
    m = parse_manifest(data)
    assert m.version_code == 4294967321 == (1 << 32) | 25
    assert long_version_code(data) == 4294967321
    assert m.target_sandbox_version == 2


def test_min_sdk_32_and_33() -> None:
    assert min_sdk_version(corpus_manifest("original-minSdk32.apk")) == 32
    assert min_sdk_version(corpus_manifest("original-minSdk33.apk")) == 33


@pytest.mark.parametrize(
    ("name", "sandbox"),
    [
        ("targetSandboxVersion-2.apk", 2),
        ("unsigned-targetSandboxVersion-2.apk", 2),
        ("v1-only-targetSandboxVersion-2.apk", 2),
        ("v2-only-targetSandboxVersion-2.apk", 2),
        ("v2-only-targetSandboxVersion-3.apk", 3),
        ("original.apk", 1),
    ],
)
def test_target_sandbox_version(name: str, sandbox: int) -> None:
    data = corpus_manifest(name)
    assert target_sandbox_version(data) == sandbox
    assert parse_manifest(data).target_sandbox_version == sandbox


def test_invalid_manifest_apk() -> None:
    """``invalid_manifest.apk`` is 10 bytes of a ZIP header: no manifest can be read.

    apksig throws ApkFormatException from its ZIP reader; as AXML the bytes are malformed.
    """
    path = apksig_apk("invalid_manifest.apk")
    assert manifest_of(path) is None
    raw = path.read_bytes()
    with pytest.raises(AxmlError):
        parse_manifest(raw)
    with pytest.raises(AxmlError, match="malformed binary resource"):
        min_sdk_version(raw)
    assert target_sdk_version(raw) == 1  # apksig never fails here: it falls back to 1
    assert target_sandbox_version(raw) == 1


def test_codenames_like_apksig() -> None:
    # ApkUtilsTest.testGetMinSdkVersionForValidCodename, plus Baklava.
    assert min_sdk_version_for_codename("AAAA") == 1
    assert min_sdk_version_for_codename("CUPCAKE") == 2
    assert min_sdk_version_for_codename("FROYO") == 7
    assert min_sdk_version_for_codename("N") == 23
    assert min_sdk_version_for_codename("NMR1") == 23
    assert min_sdk_version_for_codename("OMG") == 25
    assert min_sdk_version_for_codename("QQQ") == 27
    assert min_sdk_version_for_codename("Baklava") == 34
    assert min_sdk_version_for_codename("Bxyz") == 1
    assert min_sdk_version_for_codename("VanillaIceCream") == 32
    assert min_sdk_version_for_codename("Z") == 36
    assert min_sdk_version_for_codename("B") == 1
    assert min_sdk_version_for_codename("G") == 8
    for bad in ("", "1ABC", "tiramisu", "ÄB"):
        with pytest.raises(ApkFormatError, match="Unsupported codename"):
            min_sdk_version_for_codename(bad)


# --- a tiny AXML writer for synthetic documents -----------------------------------------

RES_XML = 0x0003
STRING_POOL = 0x0001
RESOURCE_MAP = 0x0180
START_NS, END_NS, START_EL, END_EL, CDATA = 0x0100, 0x0101, 0x0102, 0x0103, 0x0104


@dataclass
class A:
    """An attribute to write: ``value`` is a str for TYPE_STRING, else an int payload."""

    name: str
    value: str | int
    value_type: int = ValueType.INT_DEC
    resource_id: int = 0
    namespace: str | None = ANDROID_NAMESPACE
    raw: str | None = None


@dataclass
class E:
    name: str
    attrs: Sequence[A] = ()
    children: Sequence[E] = ()
    namespace: str | None = None
    text: str | None = None


def s(name: str, text: str, resource_id: int = 0) -> A:
    return A(name, text, ValueType.STRING, resource_id)


def pkg(name: str) -> A:
    """The ``package`` attribute: un-namespaced and without a resource ID, as aapt writes it."""
    return A("package", name, ValueType.STRING, 0, namespace=None)


def i(name: str, value: int, resource_id: int = 0, value_type: int = ValueType.INT_DEC) -> A:
    return A(name, value & 0xFFFFFFFF, value_type, resource_id)


def chunk(ctype: int, header: bytes, body: bytes) -> bytes:
    return struct.pack("<HHI", ctype, 8 + len(header), 8 + len(header) + len(body)) + header + body


def encode_pool(strings: Sequence[str], utf8: bool) -> bytes:
    offsets, data = [], bytearray()
    for text in strings:
        offsets.append(len(data))
        if utf8:
            raw = text.encode("utf-8")
            for n in (len(text.encode("utf-16-le")) // 2, len(raw)):
                data += bytes([n]) if n < 0x80 else bytes([0x80 | (n >> 8), n & 0xFF])
            data += raw + b"\0"
        else:
            raw = text.encode("utf-16-le")
            n = len(raw) // 2
            data += struct.pack("<H", n) if n < 0x8000 else struct.pack("<HH", 0x8000 | n >> 16, n)
            data += raw + b"\0\0"
    while len(data) % 4:
        data += b"\0"
    strings_start = 28 + 4 * len(strings)
    header = struct.pack(
        "<IIIII", len(strings), 0, 0x100 if utf8 else 0, strings_start if strings else 0, 0
    )
    return chunk(STRING_POOL, header, struct.pack(f"<{len(offsets)}I", *offsets) + bytes(data))


@dataclass
class Writer:
    utf8: bool = True
    strings: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    _index: dict[tuple[str, int], int] = field(default_factory=dict)

    def ref(self, text: str | None, resource_id: int = 0) -> int:
        if text is None:
            return 0xFFFFFFFF
        key = (text, resource_id)
        if key not in self._index:
            self._index[key] = len(self.strings)
            self.strings.append(text)
        return self._index[key]

    def collect_ids(self, element: E) -> None:
        for a in element.attrs:
            if a.resource_id and (a.name, a.resource_id) not in self._index:
                self.ref(a.name, a.resource_id)
                self.ids.append(a.resource_id)
        for child in element.children:
            self.collect_ids(child)

    def node(self, ctype: int, ext: bytes, line: int = 1) -> bytes:
        return chunk(ctype, struct.pack("<II", line, 0xFFFFFFFF), ext)

    def element(self, e: E) -> bytes:
        attrs = b""
        for a in e.attrs:
            if a.value_type == ValueType.STRING:
                assert isinstance(a.value, str)
                data = self.ref(a.value)
                raw = data if a.raw is None else self.ref(a.raw)
            else:
                assert isinstance(a.value, int)
                data, raw = a.value, self.ref(a.raw)
            attrs += struct.pack(
                "<IIIHBBI",
                self.ref(a.namespace),
                self.ref(a.name, a.resource_id),
                raw,
                8,
                0,
                a.value_type,
                data,
            )
        ns, name = self.ref(e.namespace), self.ref(e.name)
        out = self.node(
            START_EL, struct.pack("<IIHHHHHH", ns, name, 20, 20, len(e.attrs), 0, 0, 0) + attrs
        )
        if e.text is not None:
            out += self.node(
                CDATA, struct.pack("<IHBBI", self.ref(e.text), 8, 0, 3, self.ref(e.text))
            )
        for child in e.children:
            out += self.element(child)
        return out + self.node(END_EL, struct.pack("<II", ns, name))

    def document(self, *roots: E) -> bytes:
        for root in roots:
            self.collect_ids(root)
        prefix, uri = self.ref("android"), self.ref(ANDROID_NAMESPACE)
        body = self.node(START_NS, struct.pack("<II", prefix, uri))
        for root in roots:
            body += self.element(root)
        body += self.node(END_NS, struct.pack("<II", prefix, uri))
        resource_map = chunk(RESOURCE_MAP, b"", struct.pack(f"<{len(self.ids)}I", *self.ids))
        return chunk(RES_XML, b"", encode_pool(self.strings, self.utf8) + resource_map + body)


def axml(*roots: E, utf8: bool = True) -> bytes:
    return Writer(utf8=utf8).document(*roots)


def manifest(*children: E, attrs: Sequence[A] = ()) -> bytes:
    base = [pkg("com.example"), i("versionCode", 7, ATTR_VERSION_CODE)]
    return axml(E("manifest", [*base, *attrs], children))


def uses_sdk(*attrs: A) -> E:
    return E("uses-sdk", attrs)


MIN = functools.partial(i, "minSdkVersion", resource_id=ATTR_MIN_SDK_VERSION)
TARGET = functools.partial(i, "targetSdkVersion", resource_id=ATTR_TARGET_SDK_VERSION)


# --- the tree -------------------------------------------------------------------------


@pytest.mark.parametrize("utf8", [True, False])
def test_tree_roundtrip(utf8: bool) -> None:
    doc = parse_axml(
        axml(
            E(
                "manifest",
                [pkg("com.ex.ä€😀"), i("versionCode", 3, ATTR_VERSION_CODE)],
                [
                    E("uses-sdk", [MIN(21), TARGET(0x22, value_type=ValueType.INT_HEX)]),
                    E(
                        "application",
                        [
                            A("debuggable", 1, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE),
                            A("icon", 0x7F020000, ValueType.REFERENCE, 0x01010002),
                            A("alpha", 0x3F000000, ValueType.FLOAT, 0x0101031F),
                            A("size", (16 << 8) | 1, ValueType.DIMENSION, 0x01010155),
                            A("color", 0xFF00FF00, ValueType.INT_COLOR_ARGB8, 0x01010098),
                        ],
                        [E("meta-data", [s("name", "k"), s("value", "v")])],
                    ),
                ],
                text="hello",
            ),
            utf8=utf8,
        )
    )
    root = doc.root
    assert root.name == "manifest" and root.namespace == "" and root.text == "hello"
    assert root.namespaces == (("android", ANDROID_NAMESPACE),)
    package = root.attribute("package", namespace="")
    assert package is not None and package.string == "com.ex.ä€😀" == package.raw_string
    assert package.namespace == "" and package.resource_id == 0
    usdk, app = root.children
    min_attr = usdk.attribute("minSdkVersion", ATTR_MIN_SDK_VERSION)
    assert min_attr is not None and min_attr.int_value() == 21 and min_attr.string_value() == "21"
    tgt = usdk.attribute_by_id(ATTR_TARGET_SDK_VERSION)
    assert tgt is not None and tgt.string_value() == "0x22" and tgt.int_value() == 34
    formatted = [a.format_value() for a in app.attributes]
    assert formatted == ["true", "@0x7f020000", "0.5", "16dip", "#ff00ff00"]
    assert app.attributes[1].string_value() == "@7f020000"  # apksig's rendering
    assert app.attributes[0].bool_value() is True
    with pytest.raises(AxmlError, match="Cannot coerce to int"):
        app.attributes[2].int_value()
    with pytest.raises(AxmlError, match="Cannot coerce to string"):
        app.attributes[2].string_value()
    assert [d for d, _ in doc.walk()] == [1, 2, 2, 3]
    assert [e.name for _, e in doc.walk()] == ["manifest", "uses-sdk", "application", "meta-data"]
    assert list(root.children_named("application")) == [app]


def test_attribute_lookup_prefers_resource_id() -> None:
    """The attribute carrying the minSdkVersion ID wins, whatever its name; decoys lose."""
    el = parse_axml(
        axml(
            E(
                "uses-sdk",
                [
                    i("minSdkVersion", 99, resource_id=ATTR_TARGET_SDK_VERSION),  # decoy name
                    i("zzz", 21, resource_id=ATTR_MIN_SDK_VERSION),
                    i("maxSdkVersion", 30),  # no resource ID: reachable by name only
                ],
            )
        )
    ).root
    found = el.attribute("minSdkVersion", ATTR_MIN_SDK_VERSION)
    assert found is not None and found.name == "zzz" and found.int_value() == 21
    by_name = el.attribute("maxSdkVersion", ATTR_MAX_SDK_VERSION)
    assert by_name is not None and by_name.int_value() == 30
    assert el.attribute("minSdkVersion") is None  # the decoy has an ID, so no name fallback
    assert el.attribute("maxSdkVersion", namespace="") is None


# --- apksig rules on synthetic manifests ----------------------------------------------------


def test_min_sdk_is_max_over_depth2_uses_sdk() -> None:
    data = manifest(uses_sdk(MIN(9)), uses_sdk(MIN(15)), uses_sdk(), uses_sdk(MIN(-4)))
    assert min_sdk_version(data) == 15
    # depth 3 or a namespaced uses-sdk does not count, nor does a name-only attribute
    data = manifest(
        uses_sdk(MIN(9)),
        E("application", children=[uses_sdk(MIN(30))]),
        E("uses-sdk", [MIN(31)], namespace="urn:x"),
        uses_sdk(i("minSdkVersion", 32)),
    )
    assert min_sdk_version(data) == 9
    assert min_sdk_version(manifest()) == 1
    assert min_sdk_version(manifest(uses_sdk(MIN(0)))) == 1
    assert min_sdk_version(manifest(uses_sdk(MIN(0x1C, value_type=ValueType.INT_HEX)))) == 28


def test_min_sdk_codename_and_bad_types() -> None:
    assert min_sdk_version(manifest(uses_sdk(s("minSdkVersion", "P", ATTR_MIN_SDK_VERSION)))) == 26
    assert (
        min_sdk_version(manifest(uses_sdk(MIN(30)), uses_sdk(s("m", "Q", ATTR_MIN_SDK_VERSION))))
        == 30
    )
    bad = manifest(uses_sdk(s("minSdkVersion", "tiramisu", ATTR_MIN_SDK_VERSION)))
    with pytest.raises(ApkFormatError, match=r'Unsupported codename.*"tiramisu"'):
        min_sdk_version(bad)
    m = parse_manifest(bad)
    assert m.min_sdk_version is None
    assert m.target_sdk_version == 1  # apksig: target falls back to min, then to 1
    for vt in (ValueType.INT_BOOLEAN, ValueType.REFERENCE, ValueType.FLOAT):
        data = manifest(uses_sdk(A("minSdkVersion", 1, vt, ATTR_MIN_SDK_VERSION)))
        with pytest.raises(ApkFormatError, match=r"unsupported value type.*Only integer"):
            min_sdk_version(data)
    # only the first minSdkVersion-ID attribute of an element counts
    data = manifest(uses_sdk(MIN(12), i("again", 40, ATTR_MIN_SDK_VERSION)))
    assert min_sdk_version(data) == 12


def test_target_sdk_rules() -> None:
    assert target_sdk_version(manifest(uses_sdk(MIN(21), TARGET(33)))) == 33
    assert target_sdk_version(manifest(uses_sdk(MIN(21)))) == 21
    assert target_sdk_version(manifest()) == 1
    # a codename target cannot be coerced to int by apksig → falls back to minSdkVersion
    assert (
        target_sdk_version(manifest(uses_sdk(MIN(21), s("t", "U", ATTR_TARGET_SDK_VERSION)))) == 21
    )
    assert (
        target_sdk_version(
            manifest(uses_sdk(A("t", 1, ValueType.INT_BOOLEAN, ATTR_TARGET_SDK_VERSION)))
        )
        == 1
    )
    # any depth and namespace counts for targetSdkVersion (unlike minSdkVersion)
    deep = manifest(E("application", children=[E("uses-sdk", [TARGET(29)], namespace="urn:x")]))
    assert target_sdk_version(deep) == 29
    # the first uses-sdk carrying the attribute decides, even if later ones differ
    assert (
        target_sdk_version(manifest(uses_sdk(MIN(5)), uses_sdk(TARGET(30)), uses_sdk(TARGET(31))))
        == 30
    )
    assert target_sdk_version(manifest(uses_sdk(TARGET(-3)))) == -3
    assert target_sdk_version(b"\x00garbage") == 1


def test_target_sandbox_rules() -> None:
    sandbox = functools.partial(i, "targetSandboxVersion", resource_id=ATTR_TARGET_SANDBOX_VERSION)
    assert target_sandbox_version(manifest(attrs=[sandbox(2)])) == 2
    assert target_sandbox_version(manifest()) == 1
    assert (
        target_sandbox_version(
            manifest(attrs=[s("targetSandboxVersion", "2", ATTR_TARGET_SANDBOX_VERSION)])
        )
        == 1
    )
    assert target_sandbox_version(manifest(attrs=[i("targetSandboxVersion", 2)])) == 1  # name only
    nested = manifest(E("application", children=[E("manifest", [sandbox(3)])]))
    assert target_sandbox_version(nested) == 3  # apksig: any element named manifest
    assert target_sandbox_version(b"") == 1


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        (A("debuggable", 1, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE), True),
        (A("debuggable", 0, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE), False),
        (A("debuggable", 0xFFFFFFFF, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE), True),
        (s("debuggable", "true", ATTR_DEBUGGABLE), True),
        (s("debuggable", "TRUE", ATTR_DEBUGGABLE), True),
        (s("debuggable", "True", ATTR_DEBUGGABLE), False),
        (s("debuggable", "1", ATTR_DEBUGGABLE), True),
        (i("debuggable", 1, ATTR_DEBUGGABLE), True),
        (i("debuggable", 2, ATTR_DEBUGGABLE), False),
        (i("debuggable", 1, ATTR_DEBUGGABLE, ValueType.INT_HEX), False),  # renders as "0x1"
        (A("debuggable", 1, ValueType.INT_BOOLEAN, 0), False),  # name only: ignored
    ],
)
def test_debuggable_rules(attr: A, expected: bool) -> None:
    data = manifest(E("application", [attr]))
    assert debuggable(data) is expected
    assert parse_manifest(data).debuggable is expected


def test_debuggable_first_application_only_and_errors() -> None:
    dbg = A("debuggable", 1, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE)
    assert debuggable(manifest(E("application"), E("application", [dbg]))) is False
    assert debuggable(manifest(E("x", children=[E("application", [dbg])]))) is False
    assert debuggable(manifest()) is False
    with pytest.raises(ApkFormatError, match="unsupported value type"):
        debuggable(
            manifest(E("application", [A("debuggable", 1, ValueType.FLOAT, ATTR_DEBUGGABLE)]))
        )
    with pytest.raises(ApkFormatError, match="references a resource"):
        debuggable(
            manifest(E("application", [A("debuggable", 1, ValueType.REFERENCE, ATTR_DEBUGGABLE)]))
        )
    with pytest.raises(AxmlError, match="whether APK is debuggable: malformed"):
        debuggable(b"\x03\x00")


def test_version_code_rules() -> None:
    major = functools.partial(i, "versionCodeMajor", resource_id=ATTR_VERSION_CODE_MAJOR)
    assert long_version_code(manifest(attrs=[major(1)])) == (1 << 32) | 7
    m = parse_manifest(axml(E("manifest", [i("versionCode", -1, ATTR_VERSION_CODE), major(2)])))
    # Android masks the low word (PackageInfo.composeLongVersionCode)
    assert m.version_code == (2 << 32) | 0xFFFFFFFF
    m = parse_manifest(axml(E("manifest", [pkg("p")])))
    assert m.version_code is None
    with pytest.raises(
        ApkFormatError, match="Failed to determine APK's manifest attribute 0x0101021B"
    ):
        long_version_code(m)
    m = parse_manifest(axml(E("manifest", [s("versionCode", "12", ATTR_VERSION_CODE)])))
    assert m.version_code is None
    with pytest.raises(ApkFormatError, match="0x0101021B under element manifest; malformed"):
        long_version_code(m)
    m = parse_manifest(
        axml(E("manifest", [A("versionCode", 3, ValueType.REFERENCE, ATTR_VERSION_CODE)]))
    )
    with pytest.raises(ApkFormatError, match="Unsupported value type, 3, for attribute 0x0101021B"):
        long_version_code(m)


def test_package_and_version_name_and_max_sdk() -> None:
    data = axml(
        E(
            "manifest",
            [
                i("package", 5),
                s("versionName", "2.0", ATTR_VERSION_NAME),
            ],
            [uses_sdk(MIN(3), i("maxSdkVersion", 19, ATTR_MAX_SDK_VERSION))],
        )
    )
    m = parse_manifest(data)
    assert m.package == "5"  # apksig coerces non-string values to text
    assert m.version_name == "2.0"
    assert m.max_sdk_version == 19
    m = parse_manifest(
        axml(E("manifest", [A("versionName", 0x7F0B0001, ValueType.REFERENCE, ATTR_VERSION_NAME)]))
    )
    assert m.version_name is None and m.package is None
    m = parse_manifest(axml(E("manifest", [A("package", 0, ValueType.FLOAT, 0)])))
    assert m.package is None
    with pytest.raises(ApkFormatError, match="package name"):
        package_name(m)
    # not a top-level manifest element: no package (apksig looks at depth 1 only)
    assert package_name(axml(E("x", children=[E("manifest", [pkg("p")])]))) is None


def test_document_without_elements() -> None:
    data = chunk(RES_XML, b"", encode_pool(["a"], True))
    assert parse_axml(data).elements == ()
    with pytest.raises(AxmlError, match="no elements"):
        parse_manifest(data)
    # apksig's rules work on element-less documents and give the defaults
    assert min_sdk_version(data) == 1
    assert target_sdk_version(data) == 1
    assert target_sandbox_version(data) == 1
    assert debuggable(data) is False
    assert package_name(data) is None


def test_multiple_top_level_elements_follow_apksig_depths() -> None:
    data = axml(E("manifest", [pkg("a")]), E("manifest", [pkg("b")], [uses_sdk(MIN(24))]))
    doc = parse_axml(data)
    assert len(doc.elements) == 2
    assert package_name(data) == "a"
    assert min_sdk_version(data) == 24


def test_aapt_reads_synthetic_manifests_the_same(tmp_path: Path) -> None:
    """aapt agrees on synthetic edge cases too (a codename minSdkVersion, hex values)."""
    if AAPT is None:
        pytest.skip("Debian's aapt (/usr/bin/aapt) not installed")
    cases = {
        "hex": manifest(
            uses_sdk(
                MIN(0x15, value_type=ValueType.INT_HEX), TARGET(0x1E, value_type=ValueType.INT_HEX)
            )
        ),
        "codename": manifest(uses_sdk(s("minSdkVersion", "Q", ATTR_MIN_SDK_VERSION))),
        "utf16": axml(
            E(
                "manifest",
                [pkg("com.u16"), i("versionCode", 9, ATTR_VERSION_CODE)],
                [uses_sdk(MIN(8))],
            ),
            utf8=False,
        ),
    }
    for name, data in cases.items():
        apk = tmp_path / f"{name}.apk"
        with zipfile.ZipFile(apk, "w") as zf:
            zf.writestr("AndroidManifest.xml", data)
        badging = aapt_badging(apk)
        if badging is None:
            pytest.skip("aapt cannot read a manifest-only APK")
        m = parse_manifest(data)
        assert badging.package == m.package, name
        assert int(badging.version_code) == m.version_code, name
        if name == "codename":
            # aapt prints the codename itself; apksig (and we) map it to an API level
            assert badging.sdk_version == "Q" and m.min_sdk_version == 27
        else:
            assert badging.sdk_version == str(m.min_sdk_version), name
        if badging.target_sdk_version is not None and badging.target_sdk_version.isdigit():
            assert int(badging.target_sdk_version) == m.target_sdk_version, name


# --- hostile input ----------------------------------------------------------------------

SAMPLE = manifest(
    uses_sdk(MIN(21), TARGET(33)),
    E(
        "application",
        [A("debuggable", 0, ValueType.INT_BOOLEAN, ATTR_DEBUGGABLE)],
        [
            E(
                "activity",
                [s("name", ".Main")],
                [E("intent-filter", children=[E("action", [s("name", "a.MAIN")])])],
            )
        ],
    ),
)


def parse_or_axml_error(data: bytes) -> None:
    """Contract: parse, or raise AxmlError (rules may raise ApkFormatError); nothing else."""
    try:
        m = parse_manifest(data)
    except AxmlError:
        m = None
    for rule in (min_sdk_version, debuggable, package_name, long_version_code):
        with contextlib.suppress(ApkFormatError):
            rule(data if m is None else m)
    target_sdk_version(data)
    target_sandbox_version(data)


def real_manifest() -> bytes:
    data = manifest_of(corpus_dir() / "apksig" / "original.apk")
    return data if data is not None else SAMPLE


def test_truncation_at_every_offset() -> None:
    for data in (real_manifest(), SAMPLE, axml(E("manifest", [pkg("x")]), utf8=False)):
        parse_manifest(data)
        for n in range(len(data)):
            with pytest.raises(AxmlError):
                parse_manifest(data[:n])


def test_truncated_xml_chunk_with_fixed_size_field() -> None:
    """Cut inside the XML chunk but patch its size: inner chunks must not run past it."""
    data = real_manifest()
    for n in range(8, len(data), 7):
        cut = bytearray(data[:n])
        struct.pack_into("<I", cut, 4, n)
        parse_or_axml_error(bytes(cut))


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_corruption(data: st.DataObject) -> None:
    base = bytearray(data.draw(st.sampled_from([SAMPLE, real_manifest()])))
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), min_size=1, max_size=8
        )
    )
    for pos, value in flips:
        base[pos] = value
    parse_or_axml_error(bytes(base))


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=300))
def test_random_bytes_after_valid_header(tail: bytes) -> None:
    parse_or_axml_error(struct.pack("<HHI", RES_XML, 8, 8 + len(tail)) + tail)
    parse_or_axml_error(tail)


@settings(max_examples=300, deadline=2000)
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([8, 12, 16, 20, 24]), st.booleans())
def test_forged_string_pool_header_fields(value: int, field_offset: int, utf8: bool) -> None:
    """Overwrite stringCount/styleCount/flags/stringsStart/stylesStart with anything."""
    doc = bytearray(axml(E("manifest", [pkg("com.x")], [uses_sdk(MIN(4))]), utf8=utf8))
    struct.pack_into("<I", doc, 8 + field_offset, value)
    parse_or_axml_error(bytes(doc))


def pool_offset_of(doc: bytes) -> int:
    assert struct.unpack_from("<H", doc, 8)[0] == STRING_POOL
    return 8


@settings(max_examples=300, deadline=2000)
@given(st.integers(0, 40), st.integers(0, 0xFFFFFFFF), st.booleans())
def test_forged_string_offsets_and_lengths(index: int, value: int, utf8: bool) -> None:
    doc = bytearray(axml(E("manifest", [pkg("com.x" * 40)], [uses_sdk(MIN(4))]), utf8=utf8))
    pool = pool_offset_of(bytes(doc))
    count, _, _, strings_start, _ = struct.unpack_from("<IIIII", doc, pool + 8)
    if index < count:  # an entry of the offset table
        struct.pack_into("<I", doc, pool + 28 + 4 * index, value)
    else:  # the string data itself (lengths, bytes, terminators)
        target = pool + strings_start + (index - count) * 3
        struct.pack_into("<H", doc, min(target, len(doc) - 2), value & 0xFFFF)
    parse_or_axml_error(bytes(doc))


def test_forged_tables_give_clear_errors() -> None:
    doc = axml(E("manifest", [pkg("com.x")]))
    bad = bytearray(doc)
    struct.pack_into("<I", bad, 16, 0x7FFFFFFF)  # stringCount
    with pytest.raises(AxmlError, match="does not fit"):
        parse_axml(bytes(bad))
    bad = bytearray(doc)
    struct.pack_into("<I", bad, 28, 4)  # stringsStart inside the header
    with pytest.raises(AxmlError, match="String data offset"):
        parse_axml(bytes(bad))
    bad = bytearray(doc)
    struct.pack_into("<I", bad, 36, 0xFFFFFF)  # offset of string 0
    with pytest.raises(AxmlError, match="Offset of string 0 out of bounds"):
        parse_axml(bytes(bad))
    bad = bytearray(doc)
    struct.pack_into("<I", bad, 4, 0xFFFFFFF0)  # XML chunk size beyond the file
    with pytest.raises(AxmlError, match="No XML chunk"):
        parse_axml(bytes(bad))


def test_second_string_pool_and_chunk_overrun() -> None:
    doc = axml(E("manifest"))
    extra = encode_pool(["x"], True)
    twice = chunk(RES_XML, b"", doc[8:] + extra)
    with pytest.raises(AxmlError, match="Multiple string pools"):
        parse_axml(twice)
    # an inner chunk claiming more than the XML chunk holds
    overrun = bytearray(doc)
    struct.pack_into("<I", overrun, 8 + 4, len(doc))
    with pytest.raises(AxmlError, match="runs past the end"):
        parse_axml(bytes(overrun))


def test_unknown_chunks_and_trailing_data_are_skipped() -> None:
    doc = manifest(uses_sdk(MIN(17)))
    odd = chunk(0x7777, b"\0" * 4, b"junk")
    with_unknown = chunk(RES_XML, b"", odd + doc[8:] + odd)
    assert min_sdk_version(odd + with_unknown + b"trailing") == 17


def test_unclosed_elements_are_closed_and_stray_end_rejected() -> None:
    w = Writer()
    name = w.ref("manifest")
    pool = encode_pool(w.strings, True)
    start = w.node(START_EL, struct.pack("<IIHHHHHH", 0xFFFFFFFF, name, 20, 20, 0, 0, 0, 0))
    end = w.node(END_EL, struct.pack("<II", 0xFFFFFFFF, name))
    doc = parse_axml(chunk(RES_XML, b"", pool + start + start))
    assert doc.root.children[0].name == "manifest"
    with pytest.raises(AxmlError, match="without a matching start"):
        parse_axml(chunk(RES_XML, b"", pool + start + end + end))
    with pytest.raises(AxmlError, match="before string pool"):
        parse_axml(chunk(RES_XML, b"", start + pool))


def test_huge_nesting_and_element_count_are_bounded() -> None:
    w = Writer()
    name = w.ref("a")
    pool = encode_pool(w.strings, True)
    start = w.node(START_EL, struct.pack("<IIHHHHHH", 0xFFFFFFFF, name, 20, 20, 0, 0, 0, 0))
    end = w.node(END_EL, struct.pack("<II", 0xFFFFFFFF, name))
    t0 = time.perf_counter()
    with pytest.raises(AxmlError, match="nested deeper than 256"):
        parse_axml(chunk(RES_XML, b"", pool + start * 100_000))
    with pytest.raises(AxmlError, match="more than 1000 elements"):
        parse_axml(chunk(RES_XML, b"", pool + (start + end) * 5000), Limits(max_elements=1000))
    flat = parse_axml(chunk(RES_XML, b"", pool + start + (start + end) * 50_000 + end))
    assert len(flat.root.children) == 50_000
    assert time.perf_counter() - t0 < 10


def test_overlapping_strings_are_bounded() -> None:
    """Many offsets into one long string: decoding is capped, not quadratic."""
    n = 2000
    text = "x" * 20_000
    raw = bytes([0x80 | (len(text) >> 8), len(text) & 0xFF]) * 2 + text.encode() + b"\0"
    raw += b"\0" * (-len(raw) % 4)
    header = struct.pack("<IIIII", n, 0, 0x100, 28 + 4 * n, 0)
    pool = chunk(STRING_POOL, header, struct.pack(f"<{n}I", *([0] * n)) + raw)
    w = Writer()
    body = b"".join(
        w.node(START_EL, struct.pack("<IIHHHHHH", 0xFFFFFFFF, k, 20, 20, 0, 0, 0, 0))
        + w.node(END_EL, struct.pack("<II", 0xFFFFFFFF, k))
        for k in range(n)
    )
    doc = chunk(RES_XML, b"", pool + body)
    t0 = time.perf_counter()
    assert len(parse_axml(doc).elements) == n  # one offset shared by all: decoded once
    assert time.perf_counter() - t0 < 5
    distinct = axml(E("m", [s(f"a{k}", f"{k:05d}" * 200) for k in range(50)]))
    parse_axml(distinct)
    with pytest.raises(AxmlError, match="decoding limit"):
        parse_axml(distinct, Limits(max_decoded_string_bytes=20_000))


def test_attribute_table_bounds() -> None:
    w = Writer()
    name = w.ref("a")
    pool = encode_pool(w.strings, True)
    for attr_start, attr_size, count, message in [
        (20, 20, 3, "end offset out of bounds"),
        (4000, 20, 0, "start offset out of bounds"),
        (20, 8, 1, "Attribute size too small"),
    ]:
        ext = struct.pack("<IIHHHHHH", 0xFFFFFFFF, name, attr_start, attr_size, count, 0, 0, 0)
        doc = chunk(RES_XML, b"", pool + w.node(START_EL, ext + b"\0" * 20))
        with pytest.raises(AxmlError, match=message):
            parse_axml(doc)
    short = chunk(RES_XML, b"", pool + w.node(START_EL, b"\0" * 12))
    with pytest.raises(AxmlError, match="Start element chunk too short"):
        parse_axml(short)


def test_input_size_and_attribute_limits() -> None:
    with pytest.raises(AxmlError, match="more than the limit"):
        parse_axml(b"\0" * 100, Limits(max_input_bytes=50))
    with pytest.raises(AxmlError, match="more than 3 attributes"):
        parse_axml(SAMPLE, Limits(max_attributes=3))


def test_manifest_is_frozen() -> None:
    m = parse_manifest(SAMPLE)
    assert isinstance(m, Manifest)
    assert isinstance(m.root, XmlElement)
    assert all(isinstance(a, XmlAttribute) for a in m.root.attributes)
    with pytest.raises(AttributeError):
        m.package = "other"  # type: ignore[misc]
