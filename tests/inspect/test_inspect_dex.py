"""Tests for the DEX reader (provenance.apk.dex).

Evidence:
- every DEX of both corpora against Debian's ``dexdump`` (an independent C++ reader):
  the classes defined, and per method the ``invoke`` targets and ``const-string``
  operands of its disassembly (``// method@XXXX``, ``// string@XXXX``), with the
  referenced method resolved to the same class/name/prototype;
- synthetic DEX files from a small writer (``inspect_dexgen``), also accepted and read
  back by ``dexdump``: MUTF-8 edge cases, payload tables that contain invoke-looking
  bytes, range and polymorphic invokes, jumbo strings, versions 035-041;
- the targeted search (``find_references``) equals the full instruction walk;
- hostile input (truncation, forged sizes, offsets and counts, random bytes) raises
  ``DexError`` or parses -- never another exception, never slowly.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
import zipfile
from functools import cache

import pytest
from corpus import shared_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspect_dexgen import (
    INVOKE_DIRECT,
    INVOKE_INTERFACE,
    INVOKE_VIRTUAL,
    ClassSpec,
    Insn,
    Method,
    build_dex,
    const_string,
    invoke,
    invoke_range,
    mutf8,
)
from inspect_tools import DEXDUMP, dexdump, dexdump_refs

from provenance.apk.dex import DexError, DexFile, decode_mutf8, open_dex_container
from provenance.errors import ApkFormatError

needs_dexdump = pytest.mark.skipif(DEXDUMP is None, reason="Debian's dexdump not installed")

DCL = ("Ldalvik/system/DexClassLoader;", "<init>", ("V", ("Ljava/lang/String;",) * 3))


def _sample_classes() -> list[ClassSpec]:
    return [
        ClassSpec(
            "Lcom/example/app/Main;",
            methods=[
                Method(
                    "run",
                    code=[
                        const_string("dexElements"),
                        invoke(*DCL, op=INVOKE_DIRECT),
                        Insn("packed-switch", size=3),
                        invoke_range(
                            "Ljava/lang/System;", "loadLibrary", ("V", ("Ljava/lang/String;",))
                        ),
                        const_string("h\u00e9llo\u0000\U0001f600", jumbo=True),
                        Insn("fill-array", units=(0x1071, 0, 0, 0x001A, 1)),
                        Insn("sparse-switch", size=2),
                        invoke("Ljava/lang/Runnable;", "run", op=INVOKE_INTERFACE),
                        Insn("return-void"),
                    ],
                ),
                Method("noop", proto=("I", ("J", "Ljava/lang/String;"))),
            ],
        ),
        ClassSpec(
            "Lcom/example/app/Sub;",
            superclass="Lcom/example/app/Main;",
            methods=[Method("x", code=None, flags=0x0109)],
        ),
    ]


# --- dexdump as the reference (inspect_tools) -----------------------------------


def ours_refs(dex: DexFile) -> dict[tuple[str, str, str], list[tuple[str, int]]]:
    out: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
    for d in dex.class_defs():
        for m in dex.class_methods(d):
            ref = dex.method_ref(m.method_idx)
            key = (ref.class_, ref.name, ref.proto)
            rows = out.setdefault(key, [])
            if m.code_off:
                # dexdump prints instructions in order; ours keeps invokes and strings apart.
                cr = dex.code_refs(m.code_off)
                rows.extend(
                    [("method", t) for t in cr.invokes] + [("string", s) for s in cr.strings]
                )
    return out


def check_against_dexdump(data: bytes) -> None:
    text = dexdump(data)
    classes, refs, targets = dexdump_refs(text)
    dex = DexFile(data)
    assert dex.class_names() == classes
    ours = ours_refs(dex)
    assert set(ours) == set(refs)
    for key, theirs in refs.items():
        assert sorted(ours[key]) == sorted(theirs), key
    for idx, (cls, name, proto) in targets.items():
        ref = dex.method_ref(idx)
        assert (ref.class_, ref.name, ref.proto) == (cls, name, proto)


def check_search_equals_walk(dex: DexFile) -> None:
    walk: dict[tuple[int, str, int], int] = {}
    for caller, cr in dex.iter_code_refs():
        for t in cr.invokes:
            walk[(caller, "invoke", t)] = walk.get((caller, "invoke", t), 0) + 1
        for s in cr.strings:
            walk[(caller, "string", s)] = walk.get((caller, "string", s), 0) + 1
    found = dex.find_references(range(dex.method_count), range(dex.string_count))
    assert {(r.caller, r.kind, r.target): r.occurrences for r in found} == walk


# --- corpus ----------------------------------------------------------------------


@cache
def corpus_dexes() -> dict[str, tuple[bytes, list[str]]]:
    """Every distinct DEX of both corpora (sha256 → bytes, APKs containing it)."""
    out: dict[str, tuple[bytes, list[str]]] = {}
    base = shared_dir() / "corpus"
    for apk in sorted([*base.glob("apksig/*.apk"), *base.glob("fdroid/apks/*.apk")]):
        try:
            with zipfile.ZipFile(apk) as z:
                for info in z.infolist():
                    if re.fullmatch(r"classes\d*\.dex", info.filename):
                        data = z.read(info)
                        key = hashlib.sha256(data).hexdigest()
                        out.setdefault(key, (data, []))[1].append(f"{apk.name}!{info.filename}")
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError):
            continue  # malformed ZIPs of the signature corpus (read by other tests)
    return out


def _corpus_ids() -> list[str]:
    return sorted(corpus_dexes())


@needs_dexdump
@pytest.mark.parametrize("key", _corpus_ids() or ["none"])
def test_corpus_dex_matches_dexdump(key: str) -> None:
    if key == "none":
        pytest.skip("no corpus")
    data, _apks = corpus_dexes()[key]
    check_against_dexdump(data)
    dex = DexFile(data)
    assert dex.checksum_ok
    check_search_equals_walk(dex)
    # every method_id and string decodes
    assert len(list(dex.method_refs())) == dex.method_count
    assert len(list(dex.strings())) == dex.string_count


def test_corpus_has_dex() -> None:
    if not (shared_dir() / "corpus").exists():
        pytest.skip("no corpus")
    assert len(corpus_dexes()) >= 40


# --- synthetic -------------------------------------------------------------------


@needs_dexdump
def test_synthetic_matches_dexdump() -> None:
    data = build_dex(_sample_classes())
    check_against_dexdump(data)
    dex = DexFile(data)
    check_search_equals_walk(dex)
    assert dex.checksum_ok
    assert "h\u00e9llo\u0000\U0001f600" in set(dex.strings())
    assert dex.superclass(dex.class_defs()[1]) == "Lcom/example/app/Main;"


def test_payload_bytes_are_not_instructions() -> None:
    dex = DexFile(build_dex(_sample_classes()))
    run = next(i for i, m in enumerate(dex.method_refs()) if m.name == "run")
    refs = dict(dex.iter_code_refs())[run]
    names = [dex.method_ref(t).name for t in refs.invokes]
    # the fill-array payload holds 0x1071 0000 (an invoke-static of method 0): not a call
    assert names == ["<init>", "loadLibrary", "run"]
    assert [dex.string(s) for s in refs.strings] == ["dexElements", "h\u00e9llo\u0000\U0001f600"]


def test_find_string_and_type() -> None:
    dex = DexFile(build_dex(_sample_classes()))
    for i, s in enumerate(dex.strings()):
        assert dex.find_string(s) == i
    assert dex.find_string("nope") is None
    t = dex.find_type("Ldalvik/system/DexClassLoader;")
    assert t is not None and dex.type_name(t) == "Ldalvik/system/DexClassLoader;"
    assert dex.find_type("Lnope;") is None


@pytest.mark.parametrize("version", range(35, 42))
def test_versions(version: int) -> None:
    data = build_dex(_sample_classes(), version=version)
    (dex,) = open_dex_container(data)
    assert dex.version == version
    assert dex.class_names() == ["Lcom/example/app/Main;", "Lcom/example/app/Sub;"]
    assert dex.checksum_ok


def test_unsupported_versions_and_magic() -> None:
    data = bytearray(build_dex(_sample_classes()))
    for version in (b"034", b"042", b"0a5"):
        bad = bytearray(data)
        bad[4:7] = version
        with pytest.raises(DexError):
            DexFile(bytes(bad))
    bad = bytearray(data)
    bad[0:4] = b"dey\n"
    with pytest.raises(DexError, match="not a DEX"):
        DexFile(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 40, 0x78563412)
    with pytest.raises(DexError, match="reverse-endian"):
        DexFile(bytes(bad))
    assert issubclass(DexError, ApkFormatError)


def test_checksum_mismatch_is_reported_not_fatal() -> None:
    data = bytearray(build_dex(_sample_classes()))
    data[-1] ^= 0xFF
    dex = DexFile(bytes(data))
    assert not dex.checksum_ok


def test_mutf8() -> None:
    for text in ["", "abc", "\u00e9", "\u0000", "\u20ac", "\U0001f600", "a\u0000b\U00010000"]:
        units = len(text.encode("utf-16-le")) // 2
        assert decode_mutf8(mutf8(text), units) == text
    assert decode_mutf8(b"\xed\xa0\x80", 1) == "\ud800"  # a lone surrogate survives
    for bad in [b"\x00", b"\xf0\x9f\x98\x80", b"\xc3", b"\x80", b"\xff"]:
        with pytest.raises(DexError):
            decode_mutf8(bad)
    with pytest.raises(DexError, match="UTF-16 units"):
        decode_mutf8(b"abc", 2)


# --- generated code: search == walk ----------------------------------------------

_TARGETS = [
    DCL,
    ("Ljava/lang/System;", "loadLibrary", ("V", ("Ljava/lang/String;",))),
    ("Ljava/lang/Class;", "forName", ("Ljava/lang/Class;", ("Ljava/lang/String;",))),
    ("Lcom/a/B;", "c", ("V", ())),
]
_STRINGS = ["dexElements", "pathList", "x", "\u00e9t\u00e9"]

_insn = st.one_of(
    st.builds(
        lambda t, op: invoke(*t, op=op),
        st.sampled_from(_TARGETS),
        st.sampled_from([INVOKE_VIRTUAL, INVOKE_DIRECT, 0x71, INVOKE_INTERFACE]),
    ),
    st.builds(lambda t: invoke_range(*t), st.sampled_from(_TARGETS)),
    st.builds(lambda t: Insn("polymorphic", ref=t), st.sampled_from(_TARGETS)),
    st.builds(const_string, st.sampled_from(_STRINGS), st.booleans()),
    st.builds(lambda n: Insn("packed-switch", size=n), st.integers(0, 4)),
    st.builds(lambda n: Insn("sparse-switch", size=n), st.integers(0, 4)),
    st.builds(
        lambda u: Insn("fill-array", units=tuple(u)),
        st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8),
    ),
    st.builds(lambda u: Insn("raw", units=(u,)), st.sampled_from([0x0000, 0x0001, 0x000E, 0x0F00])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_insn, max_size=12), min_size=1, max_size=4))
def test_search_equals_walk_generated(bodies: list[list[Insn]]) -> None:
    methods = [Method(f"m{i}", code=[*body, Insn("return-void")]) for i, body in enumerate(bodies)]
    dex = DexFile(build_dex([ClassSpec("Lcom/example/G;", methods=methods)]))
    check_search_equals_walk(dex)


# --- hostile input ---------------------------------------------------------------


def exercise(data: bytes) -> None:
    """Read everything a caller can ask for; only DexError may escape, quickly."""
    start = time.monotonic()
    try:
        for dex in open_dex_container(data):
            dex.class_names()
            for d in dex.class_defs():
                dex.superclass(d)
                dex.class_methods(d)
            list(dex.method_refs())
            list(dex.strings())
            for i in range(dex.field_count):
                dex.field_ref(i)
            list(dex.iter_code_refs())
            dex.find_references(range(min(dex.method_count, 0x10000)), range(dex.string_count))
            _ = dex.checksum_ok
    except DexError:
        pass
    assert time.monotonic() - start < 10


_BASE = build_dex(_sample_classes())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_BASE)))
def test_truncated(cut: int) -> None:
    exercise(_BASE[:cut])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_BASE) - 4),
            st.one_of(
                st.integers(0, 0xFFFFFFFF),
                st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, len(_BASE)]),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_forged_words(patches: list[tuple[int, int]]) -> None:
    data = bytearray(_BASE)
    for off, value in patches:
        struct.pack_into("<I", data, off, value)
    exercise(bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0x20, 0x6C), st.integers(0, 0xFFFFFFFF))
def test_forged_header_fields(field_off: int, value: int) -> None:
    data = bytearray(_BASE)
    struct.pack_into("<I", data, field_off & ~3, value)
    exercise(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(blob: bytes) -> None:
    exercise(b"dex\n035\x00" + blob)


def test_huge_counts_rejected_before_allocating() -> None:
    data = bytearray(_BASE)
    struct.pack_into("<I", data, 0x38, 0x7FFFFFFF)  # string_ids_size
    with pytest.raises(DexError, match="out of bounds"):
        DexFile(bytes(data))
    data = bytearray(_BASE)
    struct.pack_into("<I", data, 0x40, 70000)  # type_ids_size over the format's limit
    with pytest.raises(DexError, match="too many type_ids"):
        DexFile(bytes(data))


def test_repeated_class_data_is_not_quadratic() -> None:
    # Every class_def pointing at the same class data: parsed once, cached.
    data = bytearray(_BASE)
    dex = DexFile(bytes(data))
    off = dex.class_defs()[0].class_data_off
    start = time.monotonic()
    for _ in range(20000):
        dex.class_methods(dex.class_defs()[0])
    assert off and time.monotonic() - start < 3


def test_overlapping_strings_hit_the_budget() -> None:
    # 60,000 string_ids all pointing into one long string, each at a different byte.
    n = 60_000
    body = b"a" * n
    data = bytearray(_BASE[:0x70])
    ids_off = 0x70
    str_off = ids_off + 4 * n
    table = b"".join(struct.pack("<I", str_off + 3 + i) for i in range(n))
    blob = bytearray(data + table + b"\x80\xd4\x03" + body + b"\x00")
    struct.pack_into("<I", blob, 0x20, len(blob))  # file_size
    struct.pack_into("<II", blob, 0x38, n, ids_off)
    for off in range(0x40, 0x70, 4):
        struct.pack_into("<I", blob, off, 0)
    dex = DexFile(bytes(blob))
    start = time.monotonic()
    with pytest.raises(DexError):
        for i in range(n):
            dex.string(i)
    assert time.monotonic() - start < 10


def test_bulk_class_data_equals_per_class() -> None:
    """The bulk decoding of all class data gives what decoding each class alone gives."""
    classes = [
        ClassSpec(f"Lcom/example/C{i};", methods=[m for m in _sample_classes()[0].methods])
        for i in range(40)
    ]
    datas = [build_dex(classes)] + [d for d, _ in corpus_dexes().values()]
    for data in datas:
        alone = DexFile(data)
        per_class = [alone.class_methods(d) for d in alone.class_defs()]
        bulk = DexFile(data)
        list(bulk.iter_code_refs())  # prefetches
        assert [bulk.class_methods(d) for d in bulk.class_defs()] == per_class


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(1, 5).flatmap(
            lambda n: st.tuples(
                st.lists(st.integers(0x80, 0xFF), min_size=n - 1, max_size=n - 1),
                st.integers(0, 0xFF if n == 5 else 0x7F),
            )
        ),
        max_size=20,
    )
)
def test_uleb_values(parts: list[tuple[list[int], int]]) -> None:
    from provenance.apk.dex import _uleb_values, _ulebs

    tokens = [bytes([*head, last]) for head, last in parts]

    def reference(t: bytes) -> int:
        return sum((b & 0x7F) << (7 * i) for i, b in enumerate(t)) & 0xFFFFFFFF

    assert _uleb_values(tokens) == [reference(t) for t in tokens]
    blob = b"".join(tokens)
    values, end = _ulebs(blob, 0, len(tokens), len(blob))
    assert values == [reference(t) for t in tokens] and end == len(blob)
