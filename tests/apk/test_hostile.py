"""Hostile and damaged APKs: never a traceback, never a hang, never "verified".

Mutations start from real signed APKs of the apksig corpus. A mutated APK must
either be reported as not verifying or be refused with the project's input error;
any other exception is a bug. Where a mutation lands in bytes no signature covers
(inside the APK Signing Block), Debian's ``apksigner`` decides what the verdict
must be.
"""

from __future__ import annotations

import random
import struct
import zipfile
import zlib
from io import BytesIO
from pathlib import Path

import pytest
import reference
from corpus import apksig_dir, require
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.apk.signing_block import find_signing_block
from provenance.apk.verify import ApkVerificationResult, verify_apkfile
from provenance.apk.zip import ApkFile
from provenance.errors import ProvenanceError

SIGNED = "golden-aligned-v1v2v3-out.apk"  # v1 + v2 + v3, RSA 2048
V1_ONLY = "golden-aligned-v1-out.apk"


def _load(name: str) -> bytes:
    return (require(apksig_dir()) / name).read_bytes()


def _verify(data: bytes, **kw: int) -> ApkVerificationResult | ProvenanceError:
    """Verify bytes; return the result or the project error it raised."""
    try:
        return verify_apkfile(ApkFile.from_bytes(data), **kw)
    except ProvenanceError as e:
        return e


def _verified(data: bytes, **kw: int) -> bool:
    r = _verify(data, **kw)
    return isinstance(r, ApkVerificationResult) and r.verified


def _regions(data: bytes) -> tuple[int, int, int]:
    apk = ApkFile.from_bytes(data)
    sb = find_signing_block(apk)
    return sb.offset, apk.sections.cd_offset, apk.sections.eocd_offset


def test_originals_verify() -> None:
    assert _verified(_load(SIGNED))
    assert _verified(_load(V1_ONLY))


@pytest.mark.parametrize("name", [SIGNED, V1_ONLY])
def test_every_truncation(name: str) -> None:
    data = _load(name)
    for n in range(len(data)):
        assert not _verified(data[:n]), f"truncated to {n} bytes still verifies"


@pytest.mark.parametrize("name", [SIGNED, V1_ONLY])
def test_flips_in_signed_bytes_never_verify(name: str) -> None:
    """Every byte outside the signing block is covered by a signature (v1: the
    entries the manifest names). Flip a sample of them, each in its own copy."""
    data = _load(name)
    if name == SIGNED:
        sb_off, cd_off, _ = _regions(data)
        candidates = [*range(0, sb_off), *range(cd_off, len(data))]
    else:
        candidates = list(range(len(data)))
    rng = random.Random(1234)
    offsets = sorted(rng.sample(candidates, min(400, len(candidates))))
    survivors = []
    for off in offsets:
        m = bytearray(data)
        m[off] ^= 0x5A
        if _verified(bytes(m)):
            survivors.append(off)
    if name == V1_ONLY and survivors:
        # JAR signing leaves ZIP metadata (timestamps, extra fields, comments) unsigned;
        # the reference must agree that such flips still verify.
        if not reference.available():
            pytest.skip(reference.unavailable_reason() or "apksigner unavailable")
        for off in survivors[:8]:
            m = bytearray(data)
            m[off] ^= 0x5A
            _assert_reference_agrees(bytes(m), verified=True)
    else:
        assert survivors == [], f"flips at {survivors} still verify"


def _assert_reference_agrees(data: bytes, *, verified: bool, tmp: Path | None = None) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".apk", dir=tmp) as f:
        f.write(data)
        f.flush()
        ref = reference.verify(f.name)
    assert ref.verified == verified, f"apksigner says verified={ref.verified}: {ref.errors}"


def test_flips_in_signing_block_agree_with_apksigner(tmp_path: Path) -> None:
    """Bytes inside the signing block: some are unsigned (padding, unknown blocks).
    Our verdict must match the reference's on each mutated APK."""
    if not reference.available():
        pytest.skip(reference.unavailable_reason() or "apksigner unavailable")
    data = _load(SIGNED)
    sb_off, cd_off, _ = _regions(data)
    rng = random.Random(99)
    for off in sorted(rng.sample(range(sb_off, cd_off), 12)):
        m = bytearray(data)
        m[off] ^= 0xFF
        ours = _verified(bytes(m))
        _assert_reference_agrees(bytes(m), verified=ours, tmp=tmp_path)


def _eocd_offset(data: bytes) -> int:
    return data.rindex(b"PK\x05\x06")


def test_forged_eocd_fields() -> None:
    data = _load(SIGNED)
    e = _eocd_offset(data)
    forgeries = {
        "record count 65535": (e + 10, struct.pack("<H", 0xFFFF)),
        "cd size 4 GiB": (e + 12, struct.pack("<I", 0xFFFFFFFF)),
        "cd offset past end": (e + 16, struct.pack("<I", 0xFFFFFFF0)),
        "cd offset 0": (e + 16, struct.pack("<I", 0)),
        "comment length": (e + 20, struct.pack("<H", 0xFFFF)),
    }
    for what, (off, value) in forgeries.items():
        m = bytearray(data)
        m[off : off + len(value)] = value
        assert not _verified(bytes(m)), what


def test_forged_central_directory_lengths() -> None:
    data = _load(SIGNED)
    cd = ApkFile.from_bytes(data).sections.cd_offset
    for field_off, size in ((28, 2), (30, 2), (32, 2), (20, 4), (24, 4), (42, 4)):
        for value in (0, 0xFFFF if size == 2 else 0xFFFFFFFF):
            m = bytearray(data)
            new = value.to_bytes(size, "little")
            if m[cd + field_off : cd + field_off + size] == new:
                continue  # not a forgery: the field already holds this value
            m[cd + field_off : cd + field_off + size] = new
            assert not _verified(bytes(m)), (field_off, value)


def test_forged_signing_block_lengths() -> None:
    data = _load(SIGNED)
    sb_off, cd_off, _ = _regions(data)
    # header size, footer size, first pair length, first signer-list length prefix
    for off in (sb_off, cd_off - 24, sb_off + 8, sb_off + 20, sb_off + 24):
        for value in (0, 3, 0x7FFFFFFF, 0xFFFFFFFFFFFF):
            m = bytearray(data)
            width = 8 if off in (sb_off, cd_off - 24, sb_off + 8) else 4
            m[off : off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
            r = _verify(bytes(m))
            assert not (isinstance(r, ApkVerificationResult) and r.verified), (off, value)


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content, method in entries:
            z.writestr(zipfile.ZipInfo(name), content, compress_type=method)
    return buf.getvalue()


def test_duplicate_and_overlapping_entries() -> None:
    """Two central directory records pointing at one local header (an overlap)."""
    data = _zip([("AndroidManifest.xml", b"x" * 100, zipfile.ZIP_STORED)])
    e = _eocd_offset(data)
    cd_off = struct.unpack_from("<I", data, e + 16)[0]
    cd = data[cd_off:e]
    eocd = bytearray(data[e:])
    struct.pack_into("<HHI", eocd, 8, 2, 2, len(cd) * 2)
    forged = data[:cd_off] + cd + cd + bytes(eocd)
    r = _verify(forged, min_sdk=1)
    assert isinstance(r, ProvenanceError) or not r.verified


def test_inflation_bomb_is_bounded() -> None:
    """A manifest whose inflated size is forged must not be inflated without bound."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = bomb.compress(b"\0" * (80 << 20)) + bomb.flush()
    # One deflated entry claiming an uncompressed size of 4 GiB.
    lfh = (
        bytearray(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(raw), 0xFFFFFFFF, 19, 0)
        )
        + b"AndroidManifest.xml"
    )
    cdr = (
        bytearray(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0,
                0,
                len(raw),
                0xFFFFFFFF,
                19,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        )
        + b"AndroidManifest.xml"
    )
    body = bytes(lfh) + raw
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(cdr), len(body), 0)
    r = _verify(body + bytes(cdr) + eocd)
    assert isinstance(r, ProvenanceError)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
        min_size=1,
        max_size=6,
    )
)
def test_random_mutations(flips: list[tuple[int, int]]) -> None:
    original = _load(SIGNED)
    data = bytearray(original)
    sb_off, cd_off, _ = _regions(original)
    for pos, x in flips:
        data[pos % len(data)] ^= x
    changed = [i for i in range(len(data)) if data[i] != original[i]]
    r = _verify(bytes(data))
    if any(not sb_off <= i < cd_off for i in changed):
        assert not (isinstance(r, ApkVerificationResult) and r.verified), changed
