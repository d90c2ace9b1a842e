"""APK Signature Scheme v1 (JAR signing): conformance with apksig and its edge rules.

The corpus part replays every ``expected.tsv`` row that the v1 verifier alone decides
(v1-only APKs, and failing rows whose issue is a ``JAR_SIG_*`` one with no newer
scheme reported). The unit part signs small APKs itself to pin the rules the corpus
does not reach: ignored signers, signer-set mismatches, stripping protection, the
per-API-level digest choice, manifest byte spans, and the reference's PKCS #7 and
Base64 quirks.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import hashlib
import io
import os
import random
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from provenance.apk import der, jar_manifest, pkcs7
from provenance.apk.result import SchemeResult
from provenance.apk.v1 import (
    MAX_APK_SIGNERS,
    _java_b64decode,
    _levels_text,
    _values_not_in,
    digests_to_verify,
    sig_alg_supported_api_levels,
    v1_manifest_digest,
    verify_v1,
)
from provenance.apk.zip import ApkFile, CdRecord
from provenance.errors import ApkFormatError

SDK_MAX = 0x7FFFFFFF
V2_NAME = "APK Signature Scheme v2"
V3_NAME = "APK Signature Scheme v3"
REPO = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    """The shared folder: ``$APKPROV_SHARED`` or ``../shared`` next to the repository."""
    env = os.environ.get("APKPROV_SHARED")
    return Path(env) if env else REPO.parent / "shared"


CORPUS = _shared() / "corpus" / "apksig"


def supported_names(max_sdk: int) -> dict[int, str]:
    """What apksig's ApkVerifier passes for a range ending at ``max_sdk``."""
    if max_sdk >= 28:
        return {2: V2_NAME, 3: V3_NAME}
    if max_sdk >= 24:
        return {2: V2_NAME}
    return {}


def names(issues: Sequence[Any]) -> list[str]:
    return [i.name for i in issues]


# ============================================================================ corpus


@dataclass(frozen=True)
class Row:
    file: str
    expected: str
    schemes: str
    issues: str
    min_sdk: int | None
    max_sdk: int | None
    other: str


@cache
def _rows() -> list[Row]:
    path = CORPUS / "expected.tsv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Row(
                r["file"],
                r["expected"],
                r["schemes"],
                r["expected_issues"].strip(),
                int(r["min_sdk"]) if r["min_sdk"] else None,
                int(r["max_sdk"]) if r["max_sdk"] else None,
                r["other_configs"],
            )
            for r in csv.DictReader(fh, delimiter="\t")
        ]


#: Rows selected by the rule but decided outside the v1 verifier: file -> (v1 alone
#: gives, why the oracle differs).
NOT_DECIDED_BY_V1: dict[str, tuple[str, str]] = {
    "v1-only-empty.apk": (
        "fails:JAR_SIG_NO_SIGNED_ZIP_ENTRIES",
        "ApkFormatException comes from ApkVerifier (no AndroidManifest.xml), before v1",
    ),
    "v1-only-targetSandboxVersion-2.apk": (
        "verifies",
        "NO_SIG_FOR_TARGET_SANDBOX_VERSION is ApkVerifier's check; the JAR signature is fine",
    ),
}


def _v1_rows() -> list[Row]:
    return [
        r
        for r in _rows()
        if r.file.startswith("v1-only") or ("JAR_SIG_" in r.issues and r.schemes in ("", "v1"))
    ]


def _configs(row: Row) -> Iterator[tuple[int | None, int | None, str, str]]:
    """(min, max, expected, issues) for the primary and every ``other_configs`` entry."""
    yield row.min_sdk, row.max_sdk, row.expected, row.issues
    for key, value, outcome, issues in re.findall(
        r"(min|max)=(\d+):(verifies|fails)(?:\(([^)]*)\))?", row.other
    ):
        lo, hi = (int(value), None) if key == "min" else (None, int(value))
        yield lo, hi, outcome, issues if outcome == "fails" else ""


def _manifest_min_sdk(apk: ApkFile) -> int:
    try:
        from provenance.apk import manifest as mf
    except ImportError:
        pytest.skip("provenance.apk.manifest not available: cannot read minSdkVersion")
    rec = apk.find("AndroidManifest.xml")
    if rec is None:
        raise ApkFormatError("Missing AndroidManifest.xml")
    return mf.min_sdk_version(mf.parse_manifest(apk.read_entry(rec)))


def _check(result: SchemeResult, expected: str, issues: str) -> str | None:
    """None when the result matches the oracle, else what differs."""
    errors = names(result.all_errors())
    warns = names(result.all_warnings())
    if expected == "verifies":
        if result.verified and not errors:
            return None
        return f"expected to verify, got errors {errors}"
    if result.verified:
        return f"expected failure ({issues}), but verified"
    for token in issues.split():
        if token.startswith("warning:"):
            if token[8:] not in warns:
                return f"missing warning {token[8:]} in {warns}"
        elif not set(token.split("|")) & set(errors):
            return f"missing {token} in {errors}"
    return None


@pytest.mark.parametrize("row", _v1_rows(), ids=lambda r: r.file)
def test_corpus_row(row: Row) -> None:
    """Every configuration of every v1-decided row agrees with the reference."""
    with ApkFile(CORPUS / row.file) as apk:
        manifest_min: int | None = None
        for lo, hi, expected, issues in _configs(row):
            if lo is None:
                if manifest_min is None:
                    manifest_min = _manifest_min_sdk(apk)
                lo = manifest_min
            hi = SDK_MAX if hi is None else hi
            result = verify_v1(apk, lo, hi, supported_names(hi), set())
            if row.file in NOT_DECIDED_BY_V1:
                v1_says, _why = NOT_DECIDED_BY_V1[row.file]
                got = (
                    "verifies"
                    if result.verified
                    else "fails:" + ",".join(names(result.all_errors()))
                )
                assert got == v1_says
                continue
            problem = _check(result, expected, issues)
            assert problem is None, f"{row.file} min={lo} max={hi}: {problem}"


def _verifying_v1_rows() -> list[Row]:
    return [
        r
        for r in _rows()
        if r.expected == "verifies"
        and "v1" in r.schemes.split(",")
        and r.file not in {x.file for x in _v1_rows()}
    ]


@pytest.mark.parametrize("row", _verifying_v1_rows(), ids=lambda r: r.file)
def test_corpus_v1_verifies_alongside_newer_schemes(row: Row) -> None:
    """Where the reference reports v1 as verified next to v2/v3, v1 alone verifies too."""
    found = {2} if "v2" in row.schemes else set()
    found |= {3} if "v3" in row.schemes.split(",") else set()
    with ApkFile(CORPUS / row.file) as apk:
        lo = row.min_sdk if row.min_sdk is not None else _manifest_min_sdk(apk)
        hi = SDK_MAX if row.max_sdk is None else row.max_sdk
        result = verify_v1(apk, lo, hi, supported_names(hi), found)
    assert result.verified, names(result.all_errors())


def test_corpus_selection_is_not_empty() -> None:
    if not (CORPUS / "expected.tsv").is_file():
        pytest.skip(f"corpus not found: {CORPUS} (set APKPROV_SHARED)")
    assert len(_v1_rows()) > 150


def test_corpus_signer_details() -> None:
    """The certificate found by issuer and serial, not the first one in the bag."""
    path = CORPUS / "v1-only-pkcs7-cert-bag-first-cert-not-used.apk"
    if not path.is_file():
        pytest.skip("corpus not found")
    with ApkFile(path) as apk:
        r = verify_v1(apk, 23, SDK_MAX, supported_names(SDK_MAX), set())
        assert r.verified
        assert [s.name for s in r.signers] == ["CERT.RSA"]
        s = r.signers[0]
        assert (s.signature_file, s.signature_block_file) == (
            "META-INF/CERT.SF",
            "META-INF/CERT.RSA",
        )
        assert [c.sha256 for c in s.certs] == [
            "fb5dbd3c669af9fc236c6991e6387b7f11ff0590997f22d0f5c74ff40e04fca8"
        ]
        manifest = apk.read_entry(apk.find("META-INF/MANIFEST.MF"))  # type: ignore[arg-type]
        assert v1_manifest_digest(apk) == hashlib.sha256(manifest).digest()


# ======================================================================= a tiny signer


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return der.encode_tlv(b"\x06", bytes(body))


def _tlv(tag: int, *parts: bytes) -> bytes:
    return der.encode_tlv(bytes([tag]), b"".join(parts))


def _int_der(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True))


NULL = b"\x05\x00"
OID_SHA1 = "1.3.14.3.2.26"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_SHA256_RSA = "1.2.840.113549.1.1.11"
_HASH = {OID_SHA1: hashes.SHA1, OID_SHA256: hashes.SHA256}


@dataclass
class Key:
    private: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@cache
def _key(cn: str = "v1 test") -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(0x1234)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    return Key(private, cert)


def signature_block(
    sf: bytes,
    key: Key,
    *,
    digest_oid: str = OID_SHA1,
    sig_oid: str = OID_RSA,
    signed_attrs: list[bytes] | None = None,
    sid: bytes | None = None,
    certificates: bytes | None = None,
    tamper: bool = False,
) -> bytes:
    """PKCS #7 SignedData over ``sf`` (detached), as jarsigner/apksig write it."""
    h = _HASH[digest_oid]()
    if signed_attrs is not None:
        attrs = _tlv(0xA0, *signed_attrs)
        signed = b"\x31" + attrs[1:]
    else:
        attrs = b""
        signed = sf
    sig = key.private.sign(signed, padding.PKCS1v15(), h)
    if tamper:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    issuer = key.cert.issuer.public_bytes()
    signer_info = _tlv(
        0x30,
        _int_der(1),
        sid if sid is not None else _tlv(0x30, issuer, _int_der(key.cert.serial_number)),
        _tlv(0x30, _oid_der(digest_oid), NULL),
        attrs,
        _tlv(0x30, _oid_der(sig_oid), NULL),
        _tlv(0x04, sig),
    )
    certs = certificates if certificates is not None else _tlv(0xA0, key.cert_der)
    signed_data = _tlv(
        0x30,
        _int_der(1),
        _tlv(0x31, _tlv(0x30, _oid_der(digest_oid), NULL)),
        _tlv(0x30, _oid_der(pkcs7.OID_DATA)),
        certs,
        _tlv(0x31, signer_info),
    )
    return _tlv(0x30, _oid_der(pkcs7.OID_SIGNED_DATA), _tlv(0xA0, signed_data))


def attribute(oid: str, *values: bytes) -> bytes:
    return _tlv(0x30, _oid_der(oid), _tlv(0x31, *values))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64digest(alg: str, data: bytes) -> str:
    return b64(hashlib.new(alg, data).digest())


@dataclass
class Signer:
    """One JAR signer of a synthetic APK."""

    name: str = "CERT"
    key: Key = field(default_factory=_key)
    sf_main: list[str] = field(default_factory=list)  # extra .SF main attributes
    entries: list[str] | None = None  # entries named in the .SF (default: all)
    digest: str = "SHA1"  # attribute prefix of the .SF digests
    version: bool = True
    with_manifest_digest: bool = True
    block_ext: str = "RSA"


def _hashlib_name(attr_prefix: str) -> str:
    return attr_prefix.replace("-", "").lower()


def build_manifest(
    files: dict[str, bytes], digest: str = "SHA1", main: Sequence[str] = ()
) -> tuple[bytes, dict[str, bytes]]:
    """MANIFEST.MF bytes and each entry's section bytes (``digest``: attribute prefix)."""
    hname = _hashlib_name(digest)
    out = ["Manifest-Version: 1.0\r\n", "Created-By: test\r\n", *(f"{a}\r\n" for a in main), "\r\n"]
    sections = {}
    for name, data in files.items():
        sec = f"Name: {name}\r\n{digest}-Digest: {b64digest(hname, data)}\r\n\r\n"
        sections[name] = sec.encode()
        out.append(sec)
    return "".join(out).encode(), sections


def build_sf(manifest: bytes, sections: dict[str, bytes], signer: Signer) -> bytes:
    hname = _hashlib_name(signer.digest)
    lines = ["Signature-Version: 1.0\r\n"] if signer.version else []
    lines.append("Created-By: 1.0 (Android)\r\n")
    if signer.with_manifest_digest:
        lines.append(f"{signer.digest}-Digest-Manifest: {b64digest(hname, manifest)}\r\n")
    lines += [f"{a}\r\n" for a in signer.sf_main]
    lines.append("\r\n")
    listed = signer.entries if signer.entries is not None else list(sections)
    for name in listed:
        lines.append(
            f"Name: {name}\r\n{signer.digest}-Digest: {b64digest(hname, sections[name])}\r\n\r\n"
        )
    return "".join(lines).encode()


def zip_bytes(entries: Sequence[tuple[str, bytes]], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate names are deliberate in some tests
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


FILES = {
    "AndroidManifest.xml": b"<manifest/>" * 10,
    "classes.dex": bytes(range(256)) * 40,
    "res/raw/a.txt": b"hello\n",
}


def build_apk(
    files: dict[str, bytes] | None = None,
    signers: Sequence[Signer] = (Signer(),),
    *,
    manifest: bytes | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
    block_override: dict[str, bytes] | None = None,
    sf_override: dict[str, bytes] | None = None,
    manifest_digest: str = "SHA1",
) -> ApkFile:
    files = dict(FILES if files is None else files)
    mf, sections = build_manifest(files, manifest_digest)
    if manifest is not None:
        mf = manifest
    entries: list[tuple[str, bytes]] = [("META-INF/MANIFEST.MF", mf)]
    for s in signers:
        sf = build_sf(mf, sections, s)
        if sf_override and s.name in sf_override:
            sf = sf_override[s.name]
        block = signature_block(sf, s.key)
        if block_override and s.name in block_override:
            block = block_override[s.name]
        entries.append((f"META-INF/{s.name}.SF", sf))
        entries.append((f"META-INF/{s.name}.{s.block_ext}", block))
    entries += list(files.items())
    entries += list(extra)
    return ApkFile.from_bytes(zip_bytes(entries))


def run(
    apk: ApkFile, lo: int = 1, hi: int = SDK_MAX, found: set[int] | None = None
) -> SchemeResult:
    return verify_v1(apk, lo, hi, supported_names(hi), found or set())


# ========================================================================= signing flows


def test_signed_apk_verifies_on_every_level() -> None:
    for lo, hi in [(1, SDK_MAX), (1, 17), (18, 23), (24, SDK_MAX), (9, 9)]:
        r = run(build_apk(), lo, hi)
        assert r.verified, (lo, hi, r.all_errors())
        assert r.errors == [] and r.warnings == []
        [s] = r.signers
        assert s.name == "CERT.RSA" and s.scheme == "v1"
        assert s.certs[0].encoded == _key().cert_der


def test_entries_are_streamed_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    apk = build_apk({**FILES, "assets/big.bin": os.urandom(3 << 20)})
    loaded: list[str] = []
    real = apk.read_entry

    def spy(rec: CdRecord, limit: int = 1 << 26) -> bytes:
        loaded.append(rec.name)
        return real(rec, limit)

    monkeypatch.setattr(apk, "read_entry", spy)
    assert run(apk).verified
    assert loaded and all(n.startswith("META-INF/") for n in loaded)


def test_modified_entry() -> None:
    mf, _ = build_manifest(FILES)
    apk = build_apk({**FILES, "classes.dex": b"changed"}, manifest=mf)
    r = run(apk)
    assert not r.verified
    assert names(r.errors) == ["JAR_SIG_ZIP_ENTRY_DIGEST_DID_NOT_VERIFY"]
    assert r.errors[0].params[:3] == ("classes.dex", "SHA-1", "META-INF/MANIFEST.MF")


def test_duplicate_entry_reported_once() -> None:
    apk = build_apk(extra=[("classes.dex", b"x"), ("classes.dex", b"y")])
    r = run(apk)
    assert names(r.errors) == ["JAR_SIG_DUPLICATE_ZIP_ENTRY"]
    assert r.errors[0].params == ("classes.dex",)


def test_no_manifest_and_no_signatures() -> None:
    r = run(ApkFile.from_bytes(zip_bytes(list(FILES.items()))))
    assert names(r.errors) == ["JAR_SIG_NO_MANIFEST"]
    mf, _ = build_manifest(FILES)
    r = run(ApkFile.from_bytes(zip_bytes([("META-INF/MANIFEST.MF", mf), *FILES.items()])))
    assert names(r.errors) == ["JAR_SIG_NO_SIGNATURES"]


def test_block_without_sf_is_a_warning() -> None:
    mf, _ = build_manifest(FILES)
    apk = ApkFile.from_bytes(
        zip_bytes([("META-INF/MANIFEST.MF", mf), ("META-INF/X.RSA", b"junk"), *FILES.items()])
    )
    r = run(apk)
    assert names(r.warnings) == ["JAR_SIG_MISSING_FILE"]
    assert r.warnings[0].params == ("META-INF/X.RSA", "META-INF/X.SF")
    assert names(r.errors) == ["JAR_SIG_NO_SIGNATURES"]


def test_too_many_signers() -> None:
    signers = [Signer(name=f"S{i}") for i in range(MAX_APK_SIGNERS + 1)]
    r = run(build_apk(signers=signers))
    assert names(r.errors) == ["JAR_SIG_MAX_SIGNATURES_EXCEEDED"]
    assert r.errors[0].params == (10, 11)


def test_entry_missing_from_manifest_and_stale_manifest_section() -> None:
    mf, _ = build_manifest({"classes.dex": FILES["classes.dex"], "gone.txt": b""})
    r = run(build_apk(manifest=mf))
    assert names(r.errors) == ["JAR_SIG_MISSING_ZIP_ENTRY_REFERENCED_IN_MANIFEST"]
    mf, _ = build_manifest({"classes.dex": FILES["classes.dex"]})
    r = run(build_apk(manifest=mf, signers=[Signer(entries=["classes.dex"])]))
    assert sorted(names(r.errors)) == ["JAR_SIG_NO_ZIP_ENTRY_DIGEST_IN_MANIFEST"] * 2


def test_unsigned_entry() -> None:
    r = run(build_apk(signers=[Signer(entries=["classes.dex"], with_manifest_digest=False)]))
    assert names(r.errors) == ["JAR_SIG_ZIP_ENTRY_NOT_SIGNED"] * 2
    assert r.signers == []  # like the reference, signers are only listed on success


def test_unprotected_meta_inf_entry_warns() -> None:
    r = run(build_apk(extra=[("META-INF/services/x", b"1"), ("META-INF/dir/", b"")]))
    assert r.verified
    assert [(i.name, i.params) for i in r.warnings] == [
        ("JAR_SIG_UNPROTECTED_ZIP_ENTRY", ("META-INF/services/x",))
    ]


def test_signers_must_cover_the_same_entries() -> None:
    a = Signer(name="A")
    b = Signer(name="B", key=_key("second"), entries=["classes.dex"])
    r = run(build_apk(signers=[a, b]))
    assert not r.verified
    assert "JAR_SIG_ZIP_ENTRY_SIGNERS_MISMATCH" in names(r.errors)
    mismatch = next(i for i in r.errors if i.name == "JAR_SIG_ZIP_ENTRY_SIGNERS_MISMATCH")
    assert "[A.RSA, B.RSA]" in mismatch.params or "[A.RSA]" in mismatch.params


def test_signer_of_no_entry_is_ignored() -> None:
    """A valid signer whose .SF names none of the entries the others sign is ignored."""
    mf, _ = build_manifest(FILES)
    a = Signer(name="A")
    b = Signer(name="B", key=_key("second"), entries=[])
    r = run(build_apk(signers=[a, b], manifest=mf))
    assert r.verified
    assert [s.name for s in r.signers] == ["A.RSA"]
    assert [s.name for s in r.ignored_signers] == ["B.RSA"]
    assert names(r.warnings) == ["JAR_SIG_UNPROTECTED_ZIP_ENTRY"] * 2  # B.SF and B.RSA


def test_sf_without_version_makes_the_signer_ignored() -> None:
    a = Signer(name="A")
    b = Signer(name="B", version=False)
    r = run(build_apk(signers=[a, b]))
    assert r.verified
    assert [s.name for s in r.ignored_signers] == ["B.RSA"]
    assert names(r.ignored_signers[0].errors) == ["JAR_SIG_MISSING_VERSION_ATTR_IN_SIG_FILE"]
    r = run(build_apk(signers=[b]))
    assert names(r.errors) == ["JAR_SIG_NO_SIGNATURES"]


def test_bad_block_fails_the_apk_even_with_a_good_signer() -> None:
    a, b = Signer(name="A"), Signer(name="B")
    r = run(build_apk(signers=[a, b], block_override={"B": b"\x30\x03\x06\x01\x00"}))
    assert not r.verified
    assert [s.name for s in r.signers] == ["B.RSA"]
    assert names(r.signers[0].errors) == ["JAR_SIG_PARSE_EXCEPTION"]


def test_tampered_signature_and_wrong_key() -> None:
    s = Signer()
    mf, sections = build_manifest(FILES)
    sf = build_sf(mf, sections, s)
    r = run(build_apk(block_override={"CERT": signature_block(sf, s.key, tamper=True)}))
    assert names(r.signers[0].errors) == ["JAR_SIG_DID_NOT_VERIFY"]
    other = _key("other")
    forged = signature_block(sf, s.key, certificates=_tlv(0xA0, other.cert_der))
    r = run(build_apk(block_override={"CERT": forged}))
    assert names(r.signers[0].errors) == ["JAR_SIG_VERIFY_EXCEPTION"]
    assert "not found in SignedData" in r.signers[0].errors[0].params[2]


def test_sf_not_matching_manifest() -> None:
    """A whole-manifest digest mismatch is only a warning; then each section must match."""
    mf, sections = build_manifest(FILES)
    s = Signer()
    sf = build_sf(mf, sections, s).replace(b"-Digest-Manifest: ", b"-Digest-Manifest: AAAA")
    r = run(build_apk(sf_override={"CERT": sf}, signers=[s]))
    assert r.verified
    assert names(r.all_warnings()) == ["JAR_SIG_ZIP_ENTRY_DIGEST_DID_NOT_VERIFY"]
    assert r.all_warnings()[0].params[:3] == ("META-INF/MANIFEST.MF", "SHA-1", "META-INF/CERT.SF")
    lines = ["Signature-Version: 1.0\r\n\r\n"]
    for name, section in sections.items():
        digest = bytes(20) if name == "classes.dex" else hashlib.sha1(section).digest()
        lines.append(f"Name: {name}\r\nSHA1-Digest: {b64(digest)}\r\n\r\n")
    bad = "".join(lines).encode()
    r = run(build_apk(sf_override={"CERT": bad}, signers=[s]))
    assert names(r.all_errors()) == ["JAR_SIG_MANIFEST_SECTION_DIGEST_DID_NOT_VERIFY"]
    assert r.all_errors()[0].params[:3] == ("classes.dex", "SHA-1", "META-INF/CERT.SF")
    assert names(r.all_warnings()) == ["JAR_SIG_NO_MANIFEST_DIGEST_IN_SIG_FILE"]


def test_main_attributes_digest() -> None:
    """Checked over the main section's exact bytes, blank line included (from API 18 here)."""
    mf, _ = build_manifest(FILES)
    main_end = mf.index(b"\r\n\r\n") + 4
    good = b64digest("sha256", mf[:main_end])
    s = Signer(sf_main=[f"SHA-256-Digest-Manifest-Main-Attributes: {good}"])
    assert run(build_apk(signers=[s]), 18).verified
    s = Signer(sf_main=[f"SHA-256-Digest-Manifest-Main-Attributes: {b64(bytes(32))}"])
    r = run(build_apk(signers=[s]), 18)
    assert names(r.all_errors()) == ["JAR_SIG_MANIFEST_MAIN_SECTION_DIGEST_DID_NOT_VERIFY"]
    # Before API 18 only Digest-Algorithms' digests (default SHA-1) are looked for.
    assert run(build_apk(signers=[s]), 1, 17).verified


def test_signtool_sections_are_digested_without_the_blank_line() -> None:
    mf, _ = build_manifest(FILES)
    lf_mf = mf.replace(b"\r\n", b"\n")
    s = Signer(with_manifest_digest=False)
    lines = ["Signature-Version: 1.0", "Created-By: signtool (test)", ""]
    for name in FILES:
        sec = lf_mf[lf_mf.index(f"Name: {name}\n".encode()) :]
        sec = sec[: sec.index(b"\n\n") + 1]  # one newline only: what signtool digested
        lines += [f"Name: {name}", f"SHA1-Digest: {b64digest('sha1', sec)}", ""]
    sf = ("\n".join(lines) + "\n").encode()
    apk = build_apk(signers=[s], manifest=lf_mf, sf_override={"CERT": sf})
    r = run(apk)
    assert r.verified, r.all_errors()
    assert names(r.all_warnings()) == ["JAR_SIG_NO_MANIFEST_DIGEST_IN_SIG_FILE"]


# ---------------------------------------------------------------- stripping protection


@pytest.mark.parametrize(
    ("attr", "found", "hi", "errors", "warnings"),
    [
        ("2", set(), SDK_MAX, ["JAR_SIG_MISSING_APK_SIG_REFERENCED"], []),
        ("2", {2}, SDK_MAX, [], []),
        ("2", set(), 23, [], []),  # before N the attribute means nothing
        ("3", set(), 27, [], ["JAR_SIG_UNKNOWN_APK_SIG_SCHEME_ID"]),  # v3 unknown before P
        (" 2 , x, ,99", {2}, SDK_MAX, [], ["JAR_SIG_UNKNOWN_APK_SIG_SCHEME_ID"]),
        ("2,3", {2}, SDK_MAX, ["JAR_SIG_MISSING_APK_SIG_REFERENCED"], []),
        (None, {2}, SDK_MAX, [], ["JAR_SIG_NO_APK_SIG_STRIP_PROTECTION"]),
        (None, set(), SDK_MAX, [], []),
    ],
)
def test_apk_signed_attribute(
    attr: str | None, found: set[int], hi: int, errors: list[str], warnings: list[str]
) -> None:
    main = [] if attr is None else [f"X-Android-APK-Signed: {attr}"]
    r = run(build_apk(signers=[Signer(sf_main=main)]), 1, hi, found)
    assert names(r.all_errors()) == errors
    assert names(r.all_warnings()) == warnings
    assert r.verified == (not errors)
    if errors:
        assert r.all_errors()[0].params[0] == "META-INF/CERT.SF"


# ------------------------------------------------------------------- signed attributes


def _signed_attr_block(sf: bytes, key: Key, attrs: list[bytes]) -> bytes:
    return signature_block(sf, key, digest_oid=OID_SHA256, sig_oid=OID_RSA, signed_attrs=attrs)


def test_signed_attributes_rules() -> None:
    s = Signer()
    mf, sections = build_manifest(FILES)
    sf = build_sf(mf, sections, s)
    ct = attribute(pkcs7.OID_CONTENT_TYPE, _oid_der(pkcs7.OID_DATA))
    md = attribute(pkcs7.OID_MESSAGE_DIGEST, _tlv(0x04, hashlib.sha256(sf).digest()))

    def verdict(attrs: list[bytes], lo: int, hi: int = SDK_MAX) -> list[str]:
        apk = build_apk(block_override={"CERT": _signed_attr_block(sf, s.key, attrs)})
        r = run(apk, lo, hi)
        return ["verifies"] if r.verified else names(r.all_errors())

    assert verdict([ct, md], 19) == ["verifies"]
    assert verdict([ct, md], 18) == ["JAR_SIG_VERIFY_EXCEPTION"]  # broken before KitKat
    assert verdict([md], 19, 23) == ["verifies"]  # content type only checked from N
    assert verdict([md], 19) == ["JAR_SIG_VERIFY_EXCEPTION"]
    assert verdict([ct], 19) == ["JAR_SIG_VERIFY_EXCEPTION"]
    assert verdict([ct, md, md], 19) == ["JAR_SIG_PARSE_EXCEPTION"]  # duplicate attribute
    wrong_ct = attribute(pkcs7.OID_CONTENT_TYPE, _oid_der(pkcs7.OID_SIGNED_DATA))
    assert verdict([wrong_ct, md], 24) == ["JAR_SIG_DID_NOT_VERIFY"]
    assert verdict([wrong_ct, md], 19, 23) == ["verifies"]
    two = attribute(pkcs7.OID_MESSAGE_DIGEST, _tlv(0x04, b"1"), _tlv(0x04, b"2"))
    assert verdict([ct, two], 19) == ["JAR_SIG_PARSE_EXCEPTION"]


# ------------------------------------------------------------------ PKCS #7 algorithms


def test_unsupported_algorithm_levels() -> None:
    s = Signer()
    mf, sections = build_manifest(FILES)
    sf = build_sf(mf, sections, s)
    block = signature_block(sf, s.key, digest_oid=OID_SHA256, sig_oid=OID_SHA256_RSA)
    apk = build_apk(block_override={"CERT": block})
    assert run(apk, 18).verified
    r = run(apk, 1)
    assert names(r.all_errors()) == ["JAR_SIG_UNSUPPORTED_SIG_ALG"]
    assert r.all_errors()[0].params[3] == "9-17"
    assert r.all_errors()[0].params[4:] == ("SHA-256", "SHA-256 with RSA")


def test_support_table_matches_reference() -> None:
    rsa_ = "1.2.840.113549.1.1.1"
    md5 = "1.2.840.113549.2.5"
    sha224 = "2.16.840.1.101.3.4.2.4"
    sha512 = "2.16.840.1.101.3.4.2.3"
    assert sig_alg_supported_api_levels(md5, rsa_) == ((0, SDK_MAX),)
    assert sig_alg_supported_api_levels(md5, "1.2.840.113549.1.1.4") == ((0, 8), (21, SDK_MAX))
    assert sig_alg_supported_api_levels(sha224, "1.2.840.113549.1.1.11") == ((21, 21),)
    assert sig_alg_supported_api_levels(sha512, "1.2.840.113549.1.1.12") == ((21, 21),)
    assert sig_alg_supported_api_levels(sha512, "1.2.840.10040.4.1") == ()
    assert sig_alg_supported_api_levels(md5, "1.2.840.10045.2.1") == ()
    assert sig_alg_supported_api_levels(OID_SHA1, "1.2.840.10040.4.3") == ((9, SDK_MAX),)
    assert sig_alg_supported_api_levels(sha224, "1.2.840.10040.4.1") == ((22, SDK_MAX),)
    assert sig_alg_supported_api_levels(md5, "2.16.840.1.101.3.4.3.2") == ((21, 23),)
    assert sig_alg_supported_api_levels(sha512, "2.16.840.1.101.3.4.3.4") == ()


def test_values_not_in_quirks() -> None:
    assert _values_not_in(1, SDK_MAX, [(0, 8), (18, SDK_MAX)]) == [(9, 17)]
    assert _values_not_in(23, SDK_MAX, [(21, 23)]) == [(24, SDK_MAX)]
    assert _values_not_in(5, 5, []) == [(5, 5)]
    # The reference reports the whole gap, even past the requested maximum.
    assert _values_not_in(5, 5, [(0, 3), (21, 23)]) == [(5, 20)]
    assert _levels_text([(9, 17), (24, SDK_MAX), (5, 5)]) == "9-17, 24+, 5"


# ======================================================================= digest choice


def _section(text: str) -> jar_manifest.Section:
    sec = jar_manifest.ManifestParser(text.encode()).read_section()
    assert sec is not None
    return sec


def test_digest_choice_per_api_level() -> None:
    sha1 = b64(b"\1" * 20)
    sha256 = b64(b"\2" * 32)
    sec = _section(f"Name: a\nSHA1-Digest: {sha1}\nSHA-256-Digest: {sha256}\n")
    got = digests_to_verify(sec, "-Digest", 1, 17)
    assert [d.algorithm for d in got] == ["SHA-1"]
    assert [d.algorithm for d in digests_to_verify(sec, "-Digest", 18, SDK_MAX)] == ["SHA-256"]
    both = digests_to_verify(sec, "-Digest", 1, SDK_MAX)
    assert [d.algorithm for d in both] == ["SHA-1", "SHA-256"]
    # Only SHA-256: no digest for pre-JB-MR2 platforms, so nothing verifies.
    only256 = _section(f"Name: a\nSHA-256-Digest: {sha256}\n")
    assert digests_to_verify(only256, "-Digest", 1, SDK_MAX) == []
    assert [d.algorithm for d in digests_to_verify(only256, "-Digest", 18, 18)] == ["SHA-256"]
    # ... unless Digest-Algorithms says so (case-insensitive names).
    listed = _section(f"Name: a\nDigest-Algorithms: sha-256\nsha-256-DIGEST: {sha256}\n")
    assert [d.algorithm for d in digests_to_verify(listed, "-Digest", 1, SDK_MAX)] == ["SHA-256"]
    # SHA-512 is unknown before Gingerbread.
    sha512 = _section(f"Name: a\nDigest-Algorithms: SHA-512\nSHA-512-Digest: {b64(bytes(64))}\n")
    assert digests_to_verify(sha512, "-Digest", 8, 8) == []
    assert len(digests_to_verify(sha512, "-Digest", 9, SDK_MAX)) == 1  # same digest, kept once


def test_digest_attribute_with_bad_base64_is_a_format_error() -> None:
    with pytest.raises(ApkFormatError, match="Base64"):
        digests_to_verify(_section("Name: a\nSHA-256-Digest: a b\n"), "-Digest", 18, 18)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("", b""),
        ("QQ==", b"A"),
        ("QQ", b"A"),
        ("QUI=", b"AB"),
        ("QUI", b"AB"),
        ("QUJD", b"ABC"),
        ("QR==", b"A"),  # non-zero trailing bits are tolerated
    ],
)
def test_java_base64_accepts(text: str, out: bytes) -> None:
    assert _java_b64decode(text) == out


@pytest.mark.parametrize("text", ["Q", "Q===", "QQ=", "QQ==x", "QUJD\n", " QUJD", "QU-D", "=", "é"])
def test_java_base64_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        _java_b64decode(text)


# ====================================================================== manifest parser


def test_manifest_sections_and_spans() -> None:
    data = (
        b"Manifest-Version: 1.0\r\n"
        b"Long: 0123456789\r\n"
        b" abc\r\n"
        b"\r\n"
        b"\r\n"
        b"Name: dir/\xc3\xa9.txt\n"
        b" tail\r"
        b"SHA-256-Digest: x\r\n"
        b"\r\n"
        b"name: second\r\n"
        b"NoDelimiter\r\n"
        b"Trailing :  spaced \r\n"
        b"\r\n"
        b"Name: last"
    )
    main, sections = jar_manifest.parse(data)
    assert main is not None
    assert main.start == 0 and data[: main.end].endswith(b"abc\r\n\r\n")
    assert main.get("long") == "0123456789abc"
    assert main.name is None
    first, second, last = sections
    assert data[first.start : first.start + 6] == b"Name: "  # extra blank line skipped
    assert first.name == "dir/é.txttail"
    assert first.get("sha-256-digest") == "x"
    assert data[first.start : first.end].endswith(b"x\r\n\r\n")
    assert second.name == "second"  # "Name" matches case-insensitively
    assert second.get("NoDelimiter") == ""
    assert second.get("Trailing ") == " spaced "  # value keeps its spaces after ": "
    assert last.name == "last" and last.end == len(data)


def test_manifest_parser_edge_inputs() -> None:
    assert jar_manifest.parse(b"") == (None, [])
    assert jar_manifest.parse(b"\n\n\r\n") == (None, [])
    main, rest = jar_manifest.parse(b" leading continuation\nA: b")
    assert main is not None and [a.name for a in main.attributes] == [" leading continuation", "A"]
    assert rest == []


def test_equals_ignore_case_is_javas() -> None:
    eq = jar_manifest.equals_ignore_case
    assert eq("SHA-256-Digest", "sha-256-digest")
    assert eq("Name", "NAME") and not eq("Name", "Nam")
    assert eq("\u017fHA1-Digest", "SHA1-Digest")  # long s upper-cases to S
    assert eq("D\u0131gest", "Digest")  # dotless i upper-cases to I
    assert not eq("stra\u00dfe", "STRASSE")  # per character, never expanded


def test_manifest_parser_limits() -> None:
    with pytest.raises(jar_manifest.ManifestLimitError):
        jar_manifest.parse(b"A: b\n\n" * (jar_manifest.MAX_SECTIONS + 1))
    with pytest.raises(jar_manifest.ManifestLimitError):
        jar_manifest.parse(b"A: b\n" * (jar_manifest.MAX_ATTRIBUTES + 1))
    huge = b"Manifest-Version: 1.0\n\n" + b"Name: x\n\n" * (jar_manifest.MAX_SECTIONS + 1)
    with pytest.raises(ApkFormatError, match="too large"):
        run(build_apk(manifest=huge))


def test_manifest_parser_is_linear() -> None:
    data = b"A: x\n" + b" y\n" * 200_000 + b"\n" + b"Name: n\nB: c\n\n" * 50_000
    main, sections = jar_manifest.parse(data)
    assert main is not None and len(main.get("A") or "") == 1 + 200_000
    assert len(sections) == 50_000


# ============================================================================ PKCS #7


def _good_block() -> bytes:
    s = Signer()
    mf, sections = build_manifest(FILES)
    return signature_block(build_sf(mf, sections, s), s.key)


def test_pkcs7_tolerates_what_the_reference_tolerates() -> None:
    block = _good_block()
    sd = pkcs7.parse_signature_block(block + b"trailing junk")
    assert sd.signer_infos is not None and len(sd.signer_infos) == 1
    assert sd.certificates is not None and len(sd.certificates) == 1
    si = sd.signer_infos[0]
    assert si.digest_algorithm is not None and si.digest_algorithm.algorithm == OID_SHA1
    assert si.sid is not None and si.sid.issuer_and_serial_number is not None
    assert si.sid.issuer_and_serial_number.serial_number == 0x1234


def test_pkcs7_rejects_what_the_reference_rejects() -> None:
    with pytest.raises(pkcs7.Asn1DecodingError):
        pkcs7.parse_signature_block(b"")
    with pytest.raises(pkcs7.Asn1DecodingError, match="contentType"):
        pkcs7.parse_signature_block(_tlv(0x30, _oid_der(pkcs7.OID_DATA), _tlv(0xA0, NULL)))
    s = Signer()
    mf, sections = build_manifest(FILES)
    sf = build_sf(mf, sections, s)
    ski = signature_block(sf, s.key, sid=_tlv(0x80, b"\1\2\3"))
    with pytest.raises(pkcs7.Asn1DecodingError):
        pkcs7.parse_signature_block(ski)  # subjectKeyIdentifier: not supported by Android
    r = run(build_apk(block_override={"CERT": ski}))
    assert names(r.all_errors()) == ["JAR_SIG_PARSE_EXCEPTION"]


def test_pkcs7_without_certificates_or_signers() -> None:
    s = Signer()
    mf, sections = build_manifest(FILES)
    sf = build_sf(mf, sections, s)
    no_certs = signature_block(sf, s.key, certificates=b"")
    r = run(build_apk(block_override={"CERT": no_certs}))
    assert names(r.all_errors()) == ["JAR_SIG_PARSE_EXCEPTION"]
    sd = _tlv(
        0x30,
        _int_der(1),
        _tlv(0x31),
        _tlv(0x30, _oid_der(pkcs7.OID_DATA)),
        _tlv(0xA0, s.key.cert_der),
        _tlv(0x31),
    )
    empty = _tlv(0x30, _oid_der(pkcs7.OID_SIGNED_DATA), _tlv(0xA0, sd))
    r = run(build_apk(block_override={"CERT": empty}))
    assert names(r.all_errors()) == ["JAR_SIG_NO_SIGNERS"]


def test_pkcs7_random_input_never_escapes() -> None:
    rng = random.Random(1)
    block = _good_block()
    for _ in range(3000):
        data = bytearray(block)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        with contextlib.suppress(pkcs7.Asn1DecodingError):
            pkcs7.parse_signature_block(cut)


def test_signed_attribute_helpers() -> None:
    attrs = pkcs7.parse_signed_attributes(
        _tlv(0xA0, attribute(pkcs7.OID_CONTENT_TYPE, _tlv(0x04, b"x")))
    )
    signed = pkcs7.SignedAttributes(attrs)
    with pytest.raises(pkcs7.Pkcs7DecodingError):
        signed.single_oid(pkcs7.OID_CONTENT_TYPE)  # not an OID
    assert signed.single_octets(pkcs7.OID_MESSAGE_DIGEST) is None
    assert pkcs7.signed_attributes_to_verify(b"\xa0\x00") == b"\x31\x00"


# ====================================================================== hostile inputs


def test_corrupt_entry_data_is_a_format_error() -> None:
    data = bytearray(build_apk().data)
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("classes.dex")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(b"classes.dex") + extra_len
    data[start : start + info.compress_size] = b"\xff" * info.compress_size  # invalid deflate
    with pytest.raises(ApkFormatError, match=r"classes\.dex"):
        run(ApkFile.from_bytes(bytes(data)))


def test_range_checks() -> None:
    with pytest.raises(ValueError):
        run(build_apk(), 24, 23)


def test_manifest_digest_helper() -> None:
    assert v1_manifest_digest(ApkFile.from_bytes(zip_bytes(list(FILES.items())))) is None
    mf, _ = build_manifest(FILES)
    assert v1_manifest_digest(build_apk()) == hashlib.sha256(mf).digest()
