"""Source stamps and APK Signature Scheme v4 against apksig's corpus and crafted input.

The corpus is ``<shared>/corpus/apksig`` (``$APKPROV_SHARED`` or ``../shared`` next to
the repository). Content digests of v2/v3/v3.1 are read straight from the signers'
signed data, as apksig's ``ApkVerifier`` collects them for the stamp.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from provenance.apk import certs, stamp, v4, verity
from provenance.apk.algorithms import SDK_MAX, ContentDigest, find_by_id
from provenance.apk.issues import IssueList
from provenance.apk.result import V2, V3, V31, SchemeResult, SignerResult
from provenance.apk.signing_block import (
    SOURCE_STAMP_V2_BLOCK_ID,
    V2_BLOCK_ID,
    V3_BLOCK_ID,
    V31_BLOCK_ID,
    Malformed,
    Reader,
    SignatureNotFound,
    find_scheme_block,
    find_signing_block,
)
from provenance.apk.zip import ApkFile
from provenance.errors import ProvenanceError

# -- corpus ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def corpus() -> Path:
    """``<shared>/corpus/apksig``; skips the test when it is not there."""
    env = os.environ.get("APKPROV_SHARED")
    path = (Path(env) if env else REPO.parent / "shared") / "corpus" / "apksig"
    if not path.is_dir():
        pytest.skip(f"corpus not found: {path} (set APKPROV_SHARED)")
    return path


def _rows() -> dict[str, dict[str, str]]:
    env = os.environ.get("APKPROV_SHARED")
    tsv = (Path(env) if env else REPO.parent / "shared") / "corpus/apksig/expected.tsv"
    if not tsv.is_file():
        return {}
    with tsv.open(newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}


ROWS = _rows()
STAMP_APKS = sorted(f for f in ROWS if "stamp" in f and f.endswith(".apk"))
V4_ROWS = sorted(f for f, r in ROWS.items() if r["v4_file"])

BLOCKS = {V2: V2_BLOCK_ID, V3: V3_BLOCK_ID, V31: V31_BLOCK_ID}
NUMBERS = {"v1": 1, V2: 2, V3: 3, V31: 31}


def parse_scheme(apk: ApkFile, scheme: str) -> SchemeResult | None:
    """Signers of a v2/v3/v3.1 block with their certificates and listed digests."""
    try:
        _, block = find_scheme_block(apk, BLOCKS[scheme])
    except SignatureNotFound:
        return None
    result = SchemeResult(scheme, verified=True)
    signers = Reader(block).prefixed()
    while signers.has_remaining():
        signed = signers.prefixed().prefixed()
        s = SignerResult(scheme, index=len(result.signers))
        digests = signed.prefixed()
        while digests.has_remaining():
            d = digests.prefixed()
            s.content_digests.append((d.u32(), d.prefixed_bytes()))
        cert_list = signed.prefixed()
        while cert_list.has_remaining():
            s.certs.append(certs.load_certificate(cert_list.prefixed_bytes()))
        if scheme != V2:
            s.min_sdk, s.max_sdk = signed.u32(), signed.u32()
        result.signers.append(s)
    return result


def scheme_digests(r: SchemeResult) -> dict[stamp.DigestKey, bytes]:
    """apksig ``getApkContentDigestsFromSigningSchemeResult``."""
    out: dict[stamp.DigestKey, bytes] = {}
    for s in r.signers:
        for alg_id, value in s.content_digests:
            alg = find_by_id(alg_id)
            if alg is not None:
                out[alg.digest] = value
    return out


def digests_for(apk: ApkFile, schemes: list[str]) -> dict[int, stamp.DigestMap]:
    """The ``scheme_digests`` ApkVerifier builds when ``schemes`` were checked."""
    out: dict[int, stamp.DigestMap] = {}
    for name in schemes:
        if name == "v1":
            out[1] = stamp.jar_manifest_digests(apk)
        else:
            r = parse_scheme(apk, name)
            assert r is not None, name
            out[NUMBERS[name]] = scheme_digests(r)
    return out


def flow_schemes(apk: ApkFile, min_sdk: int, max_sdk: int, with_v31: bool) -> list[str]:
    """Schemes ``SourceStampVerifier`` (with v3.1) or ``ApkVerifier.verifySourceStamp``
    (without) collect digests for."""
    found: list[str] = []
    if with_v31 and max_sdk >= 33 and parse_scheme(apk, V31) is not None:
        found.append(V31)
    if max_sdk >= 28 and parse_scheme(apk, V3) is not None:
        found.append(V3)
    if max_sdk >= 24 and (min_sdk < 28 or not found) and parse_scheme(apk, V2) is not None:
        found.append(V2)
    if min_sdk < 24 or not found:
        found.append("v1")
    return found


def run_stamp(apk: ApkFile, schemes: list[str], min_sdk: int, max_sdk: int) -> Any:
    """The stamp result, or "SIG_MISSING" when there is no stamp block."""
    rec = apk.find(stamp.STAMP_CERT_ENTRY)
    assert rec is not None
    try:
        return stamp.verify_source_stamp(
            apk, apk.read_entry(rec), digests_for(apk, schemes), min_sdk, max_sdk
        )
    except SignatureNotFound:
        return "SIG_MISSING"


def names(result: stamp.SourceStampResult) -> set[str]:
    return {i.name for i in result.warnings + result.info}


def cert_of(name: str) -> certs.Certificate:
    pem = (corpus() / f"{name}.x509.pem").read_bytes()
    from cryptography import x509

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return certs.load_certificate(der)


# -- stamps: the corpus ---------------------------------------------------------------


@pytest.mark.parametrize("name", STAMP_APKS)
def test_stamp_as_apkverifier_verify(name: str) -> None:
    """ApkVerifier.verify's stamp outcome: ``default_issues`` / ``expected_issues``."""
    row = ROWS[name]
    if row["default_expected"] != "verifies":
        pytest.skip("ApkVerifier.verify stops before the stamp (see the flow test)")
    wanted = set(re.findall(r"SOURCE_STAMP_\w+", row["default_issues"]))
    wanted |= set(re.findall(r"stamp:(SOURCE_STAMP_\w+)", row["expected_issues"]))
    with ApkFile(corpus() / name) as apk:
        # ApkVerifier passes max(minSdk, R) and the schemes it checked.
        res = run_stamp(apk, row["default_schemes"].split(","), 30, SDK_MAX)
    if res == "SIG_MISSING":
        assert wanted == {"SOURCE_STAMP_SIG_MISSING"}
        return
    assert names(res) == wanted
    assert not res.errors  # the stamp never records errors: it cannot fail the APK
    assert res.verified == (not (wanted - stamp.INFO_ISSUES))
    assert res.status == ("verified" if res.verified else "failed")


_CASE = re.compile(
    r"^(?P<api>SourceStampVerifier|verifySourceStamp)\((?P<cfg>[^)]*)\):"
    r"(?P<outcome>stamp-verified|stamp-fails)(?:\[(?P<issues>[^\]]*)\])?(?:\{(?P<details>.*)\})?$"
)


def _stamp_cases() -> list[tuple[str, str]]:
    out = []
    for name in STAMP_APKS:
        for case in ROWS[name]["stamp_expectation"].split("; "):
            m = _CASE.match(case)
            if m and not m["cfg"].startswith("stampdigest"):
                out.append((name, case))
    return out


@pytest.mark.parametrize(("name", "case"), _stamp_cases())
def test_stamp_expectation(name: str, case: str) -> None:
    """``stamp_expectation``: SourceStampVerifier / verifySourceStamp configurations."""
    m = _CASE.match(case)
    assert m is not None
    row = ROWS[name]
    cfg = dict(kv.split("=") for kv in m["cfg"].split(",")) if "=" in m["cfg"] else {}
    with ApkFile(corpus() / name) as apk:
        if m["api"] == "SourceStampVerifier":
            lo, hi = int(cfg.get("min", 1)), int(cfg.get("max", SDK_MAX))
            schemes = flow_schemes(apk, lo, hi, with_v31=True)
        elif cfg:
            lo, hi = int(cfg["min"]), int(cfg["max"])
            schemes = flow_schemes(apk, lo, hi, with_v31=False)
        else:  # verifySourceStamp(): minSdk from the manifest, so from the schemes seen
            checked = row["default_schemes"].split(",")
            lo = 1 if "v1" in checked else 24 if V2 in checked else 28
            hi = SDK_MAX
            schemes = [s for s in checked if s != V31]
        res = run_stamp(apk, schemes, lo, hi)
    issues = set(re.findall(r"SOURCE_STAMP_\w+", m["issues"] or ""))
    if res == "SIG_MISSING":
        assert issues == {"SOURCE_STAMP_SIG_MISSING"}
        return
    if m["outcome"] == "stamp-verified":
        assert res.verified, res.warnings
        assert issues <= {i.name for i in res.info}
    else:
        assert not res.verified
        assert issues <= {i.name for i in res.warnings}
    details = m["details"] or ""
    ts = re.search(r"timestamp=(\d+)", details)
    if ts:
        assert (res.timestamp or 0) == int(ts[1])
    lineage = re.match(r"stamp lineage (.*)", details)
    if lineage:
        keys = [k if k.startswith("rsa") else "rsa-2048" + k for k in lineage[1].split(",")]
        assert [c.sha256 for c in res.lineage_certs] == [cert_of(k).sha256 for k in keys]
        assert res.lineage is not None and len(res.lineage) == len(keys)


def test_stamp_corpus_is_covered() -> None:
    corpus()
    assert len(STAMP_APKS) >= 30
    assert len(_stamp_cases()) >= 25


def test_v1_digest_is_sha256_of_manifest_under_id_4() -> None:
    with ApkFile(corpus() / "v1-only-with-stamp.apk") as apk:
        d = stamp.jar_manifest_digests(apk)
        assert list(d) == [stamp.SHA256_DIGEST_ID]
        rec = apk.find(stamp.STAMP_CERT_ENTRY)
        assert rec is not None
        cert_digest = apk.read_entry(rec)
        ok = stamp.verify_source_stamp(apk, cert_digest, {1: d}, 30, SDK_MAX)
        assert ok.verified
        # Filed under CHUNKED_SHA256 (id 1) the signed bytes differ: not verified.
        bad = stamp.verify_source_stamp(
            apk, cert_digest, {1: {ContentDigest.CHUNKED_SHA256: d[4]}}, 30, SDK_MAX
        )
        assert [w.name for w in bad.warnings] == ["SOURCE_STAMP_DID_NOT_VERIFY"]
        # v1 checked but no manifest: an empty digest list, still needs scheme 1 signed.
        empty = stamp.verify_source_stamp(apk, cert_digest, {1: {}}, 30, SDK_MAX)
        assert [w.name for w in empty.warnings] == ["SOURCE_STAMP_DID_NOT_VERIFY"]


def test_v31_digests_give_info_only() -> None:
    with ApkFile(corpus() / "valid-stamp.apk") as apk:
        rec = apk.find(stamp.STAMP_CERT_ENTRY)
        assert rec is not None
        res = stamp.verify_source_stamp(
            apk, apk.read_entry(rec), {31: {ContentDigest.CHUNKED_SHA256: b"x"}}, 30, SDK_MAX
        )
    assert res.verified
    assert [(i.name, i.params) for i in res.info] == [
        ("SOURCE_STAMP_SIGNATURE_SCHEME_NOT_AVAILABLE", (31,))
    ]


def test_missing_scheme_in_stamp_is_no_signature() -> None:
    with ApkFile(corpus() / "v2-only-with-stamp.apk") as apk:
        rec = apk.find(stamp.STAMP_CERT_ENTRY)
        assert rec is not None
        d = digests_for(apk, [V2])
        d[3] = d[2]  # a scheme the stamp did not sign
        res = stamp.verify_source_stamp(apk, apk.read_entry(rec), d, 30, SDK_MAX)
    assert [w.name for w in res.warnings] == ["SOURCE_STAMP_NO_SIGNATURE"]


# -- stamps: crafted blocks -----------------------------------------------------------


def lp(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def u32(v: int) -> bytes:
    return struct.pack("<I", v & 0xFFFFFFFF)


def apk_with_pairs(
    pairs: list[tuple[int, bytes]], entries: dict[str, bytes] | None = None
) -> bytes:
    """A minimal ZIP (stored entries) with an APK Signing Block holding ``pairs``."""
    body = bytearray()
    cd = bytearray()
    for name, data in (entries or {}).items():
        n = name.encode()
        crc = __import__("zlib").crc32(data)
        cd += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
            len(n), 0, 0, 0, 0, 0, len(body),
        ) + n  # fmt: skip
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data),
                            len(data), len(n), 0) + n + data  # fmt: skip
    inner = b"".join(struct.pack("<Q", len(v) + 4) + u32(i) + v for i, v in pairs)
    size = len(inner) + 8 + 16
    block = struct.pack("<Q", size) + inner + struct.pack("<Q", size) + b"APK Sig Block 42"
    cd_offset = len(body) + len(block)
    count = len(entries or {})
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(cd), cd_offset, 0)
    return bytes(body + block + cd + eocd)


@dataclass
class Key:
    cert: bytes
    private: Any
    alg_id: int

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            sig: bytes = self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
            return sig
        return bytes(self.private.sign(data, ec.ECDSA(hashes.SHA256())))


def key(name: str) -> Key:
    private = serialization.load_der_private_key((corpus() / f"{name}.pk8").read_bytes(), None)
    alg = 0x0103 if isinstance(private, rsa.RSAPrivateKey) else 0x0201
    return Key(cert_of(name).encoded, private, alg)


def sigs(k: Key, data: bytes) -> bytes:
    return lp(u32(k.alg_id) + lp(k.sign(data)))


def stamp_value(
    k: Key,
    signed: dict[int, bytes],
    attrs: bytes | None = None,
    cert: bytes | None = None,
) -> bytes:
    """A V2 source stamp block value signing ``signed`` (scheme -> encoded digests)."""
    schemes = b"".join(lp(u32(s) + lp(sigs(k, d))) for s, d in signed.items())
    data = lp(k.cert if cert is None else cert) + lp(schemes)
    if attrs is not None:
        data += lp(attrs) + lp(sigs(k, attrs))
    return lp(data)


DIGESTS = {ContentDigest.CHUNKED_SHA256: b"\x11" * 32}


def attr_block(*attrs: tuple[int, bytes]) -> bytes:
    return lp(b"".join(lp(u32(i) + v) for i, v in attrs))


def crafted(k: Key, value: bytes, digests: dict[int, stamp.DigestMap] | None = None,
            cert_digest: bytes | None = None) -> stamp.SourceStampResult:  # fmt: skip
    data = apk_with_pairs([(SOURCE_STAMP_V2_BLOCK_ID, value)])
    with ApkFile.from_bytes(data) as apk:
        return stamp.verify_source_stamp(
            apk,
            hashlib.sha256(k.cert).digest() if cert_digest is None else cert_digest,
            {2: DIGESTS} if digests is None else digests,
            30,
            SDK_MAX,
        )


def warn_names(r: stamp.SourceStampResult) -> list[str]:
    return [w.name for w in r.warnings]


def test_crafted_stamp_verifies_rsa_and_ec() -> None:
    for name in ("rsa-2048", "ec-p256"):
        k = key(name)
        ts = struct.pack("<q", 1_700_000_000) + b"junk"  # only the first 8 bytes count
        r = crafted(k, stamp_value(k, {2: stamp.encode_digests(DIGESTS)},
                                   attr_block((stamp.STAMP_TIME_ATTR_ID, ts))))  # fmt: skip
        assert r.verified, r.warnings
        assert r.timestamp == 1_700_000_000
        assert r.cert is not None and r.cert.encoded == k.cert


def test_crafted_stamp_rules() -> None:
    k = key("rsa-2048")
    enc = stamp.encode_digests(DIGESTS)

    def attrs(*a: tuple[int, bytes]) -> list[str]:
        return warn_names(crafted(k, stamp_value(k, {2: enc}, attr_block(*a))))

    assert attrs((stamp.STAMP_TIME_ATTR_ID, struct.pack("<i", 5))) == [
        "SOURCE_STAMP_MALFORMED_ATTRIBUTE"
    ]
    assert attrs((stamp.STAMP_TIME_ATTR_ID, struct.pack("<q", -1))) == [
        "SOURCE_STAMP_INVALID_TIMESTAMP"
    ]
    # Parsing goes on after an invalid timestamp.
    r = crafted(k, stamp_value(k, {2: enc}, attr_block(
        (stamp.STAMP_TIME_ATTR_ID, struct.pack("<q", 0)), (0x1234, b"")
    )))  # fmt: skip
    assert warn_names(r) == ["SOURCE_STAMP_INVALID_TIMESTAMP"]
    assert [i.name for i in r.info] == ["SOURCE_STAMP_UNKNOWN_ATTRIBUTE"]
    # Attribute shorter than its id.
    assert warn_names(crafted(k, stamp_value(k, {2: enc}, lp(lp(b"ab"))))) == [
        "SOURCE_STAMP_MALFORMED_ATTRIBUTE"
    ]
    # Lineage: each of apksig's catch clauses.
    lineage_file = (corpus() / "rsa-2048-lineage-2-signers").read_bytes()
    nodes = Reader(lineage_file, 8).prefixed_bytes()[4:]  # after its version
    por = stamp.PROOF_OF_ROTATION_ATTR_ID
    assert attrs((por, u32(1) + nodes)) == ["SOURCE_STAMP_POR_CERT_MISMATCH"]  # ends at _2
    k2 = key("rsa-2048_2")
    r = crafted(k2, stamp_value(k2, {2: enc}, attr_block((por, u32(1) + nodes))))
    assert r.verified and [c.sha256 for c in r.lineage_certs] == [
        cert_of("rsa-2048").sha256,
        cert_of("rsa-2048_2").sha256,
    ]
    assert attrs((por, u32(2) + nodes)) == ["SOURCE_STAMP_POR_CERT_MISMATCH"]  # version
    assert attrs((por, b"")) == ["SOURCE_STAMP_MALFORMED_LINEAGE"]  # empty
    assert attrs((por, u32(1))) == ["SOURCE_STAMP_MALFORMED_LINEAGE"]  # no node
    assert attrs((por, u32(1) + nodes[:-3])) == ["SOURCE_STAMP_MALFORMED_LINEAGE"]
    assert attrs((por, u32(1) + u32(0xFFFFFFFF))) == ["SOURCE_STAMP_POR_CERT_MISMATCH"]
    tampered = bytearray(nodes)
    tampered[-10] ^= 1  # inside the second node's signature
    assert attrs((por, u32(1) + bytes(tampered))) == ["SOURCE_STAMP_POR_DID_NOT_VERIFY"]
    # Hand-made nodes: a duplicate, an algorithm mismatch, an unknown algorithm.
    k_signed = lp(k.cert) + u32(0)

    def node(signed: bytes, sig_alg: int, signature: bytes = b"") -> bytes:
        return lp(lp(signed) + u32(0) + u32(sig_alg) + lp(signature))

    root = node(k_signed, 0x0103)
    again = lp(k.cert) + u32(0x0103)
    assert attrs((por, u32(1) + root + node(again, 0, k.sign(again)))) == [
        "SOURCE_STAMP_POR_DID_NOT_VERIFY"  # duplicate certificate
    ]
    k2_other_alg = lp(k2.cert) + u32(0x0201)
    assert attrs((por, u32(1) + root + node(k2_other_alg, 0, k.sign(k2_other_alg)))) == [
        "SOURCE_STAMP_POR_DID_NOT_VERIFY"  # signed algorithm id differs
    ]
    k2_signed = lp(k2.cert) + u32(0x0103)
    r = crafted(k2, stamp_value(k2, {2: enc}, attr_block(
        (por, u32(1) + root + node(k2_signed, 0, k.sign(k2_signed)))
    )))  # fmt: skip
    assert r.verified and len(r.lineage_certs) == 2
    unknown_root = node(k_signed, 0x9999)
    assert attrs((por, u32(1) + unknown_root + node(k2_signed, 0, k.sign(k2_signed)))) == [
        "SOURCE_STAMP_MALFORMED_LINEAGE"  # apksig: NullPointerException
    ]
    # Two lineage attributes: the certificates accumulate, the last one must be the stamp's.
    r = crafted(k2, stamp_value(k2, {2: enc}, attr_block((por, u32(1) + nodes), (por, u32(1)))))
    assert r.verified and len(r.lineage_certs) == 2
    assert r.to_json()["lineage"] == [c.sha256 for c in r.lineage_certs]


def test_crafted_stamp_signature_rules() -> None:
    k = key("rsa-2048")
    enc = stamp.encode_digests(DIGESTS)
    good = stamp_value(k, {2: enc})
    assert crafted(k, good).verified
    # Wrong stamp certificate digest, malformed certificate.
    assert warn_names(crafted(k, good, cert_digest=b"\0" * 32)) == [
        "SOURCE_STAMP_CERTIFICATE_MISMATCH_BETWEEN_SIGNATURE_BLOCK_AND_APK"
    ]
    r = crafted(k, stamp_value(k, {2: enc}, cert=b"garbage"),
                cert_digest=hashlib.sha256(b"garbage").digest())  # fmt: skip
    assert warn_names(r) == ["SOURCE_STAMP_MALFORMED_CERTIFICATE"]
    # A digest the stamp did not sign.
    r = crafted(k, good, digests={2: {ContentDigest.CHUNKED_SHA256: b"\x22" * 32}})
    assert warn_names(r) == ["SOURCE_STAMP_DID_NOT_VERIFY"]
    # Signature of the wrong key type for the certificate.
    ec_k = key("ec-p256")
    odd = Key(k.cert, ec_k.private, 0x0201)
    assert warn_names(crafted(k, stamp_value(odd, {2: enc}))) == ["SOURCE_STAMP_VERIFY_EXCEPTION"]
    # Only unknown algorithms, and a truncated signature record.
    unknown = lp(k.cert) + lp(lp(u32(2) + lp(lp(u32(0x9999) + lp(b"sig")))))
    r = crafted(k, lp(unknown))
    assert warn_names(r) == ["SOURCE_STAMP_NO_SIGNATURE"]
    assert [(i.name, i.params) for i in r.info] == [
        ("SOURCE_STAMP_UNKNOWN_SIG_ALGORITHM", (0x9999,))
    ]
    trunc = lp(k.cert) + lp(lp(u32(2) + lp(lp(u32(0x0103)))))
    r = crafted(k, lp(trunc))
    assert [(w.name, w.params) for w in r.warnings] == [("SOURCE_STAMP_MALFORMED_SIGNATURE", (1,))]
    # Truncated block: the outer malformed-signature warning, without parameters.
    r = crafted(k, good[:-5])
    assert [(w.name, w.params) for w in r.warnings] == [("SOURCE_STAMP_MALFORMED_SIGNATURE", ())]


def test_negative_lengths_where_apksig_throws() -> None:
    k = key("rsa-2048")
    with pytest.raises(stamp.StampFormatError):
        crafted(k, u32(-1))
    with pytest.raises(stamp.StampFormatError):
        crafted(k, lp(lp(k.cert) + lp(u32(-4))))
    # ... but readLengthPrefixedByteArray's negative length is a format error.
    r = crafted(k, lp(u32(-4)))
    assert warn_names(r) == ["SOURCE_STAMP_MALFORMED_SIGNATURE"]


def test_no_stamp_block_is_signature_not_found() -> None:
    data = apk_with_pairs([(0x1234, b"xxxx")])
    with ApkFile.from_bytes(data) as apk, pytest.raises(SignatureNotFound):
        stamp.verify_source_stamp(apk, b"", {}, 30, SDK_MAX)
    # A V1 stamp block alone is ignored, as ApkVerifier ignores it.
    data = apk_with_pairs([(stamp_module_v1_id(), b"\0" * 8)])
    with ApkFile.from_bytes(data) as apk, pytest.raises(SignatureNotFound):
        stamp.verify_source_stamp(apk, b"", {}, 30, SDK_MAX)


def stamp_module_v1_id() -> int:
    from provenance.apk.signing_block import SOURCE_STAMP_V1_BLOCK_ID

    return SOURCE_STAMP_V1_BLOCK_ID


def _stamp_location(data: bytes) -> tuple[int, int]:
    with ApkFile.from_bytes(data) as apk:
        block = find_signing_block(apk)
        base = block.offset + 8
        body = block.data[8 : len(block.data) - 24]
        pos = 0
        while pos < len(body):
            (n,) = struct.unpack_from("<Q", body, pos)
            (ident,) = struct.unpack_from("<I", body, pos + 8)
            if ident == SOURCE_STAMP_V2_BLOCK_ID:
                return base + pos + 12, n - 4
            pos += 8 + n
    raise AssertionError("no stamp block")


@pytest.mark.parametrize("name", ["valid-stamp.apk", "stamp-lineage-valid.apk"])
def test_stamp_fuzz_only_project_errors(name: str) -> None:
    """Corrupting the stamp block never raises anything but the project's errors."""
    original = (corpus() / name).read_bytes()
    start, size = _stamp_location(original)
    rng = random.Random(name)
    with ApkFile.from_bytes(original) as apk:
        rec = apk.find(stamp.STAMP_CERT_ENTRY)
        assert rec is not None
        cert_digest = apk.read_entry(rec)
        digests = digests_for(apk, ["v1", V2, V3])
    outcomes: set[str] = set()
    for i in range(300):
        data = bytearray(original)
        if i % 3 == 0:  # random bytes
            for _ in range(rng.randint(1, 4)):
                data[start + rng.randrange(size)] = rng.randrange(256)
        elif i % 3 == 1:  # a length-looking word
            pos = start + rng.randrange(size - 4)
            data[pos : pos + 4] = u32(
                rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
            )
        else:  # truncate the value (zero the tail)
            cut = rng.randrange(size)
            data[start + cut : start + size] = bytes(size - cut)
        with ApkFile.from_bytes(bytes(data)) as apk:
            try:
                r = stamp.verify_source_stamp(apk, cert_digest, digests, 30, SDK_MAX)
                outcomes.add("verified" if r.verified else "failed")
                assert not r.errors
            except ProvenanceError:
                outcomes.add("raised")
    assert "failed" in outcomes


# -- v4: the corpus -------------------------------------------------------------------


def apk_schemes(apk: ApkFile) -> dict[str, SchemeResult | None]:
    return {s: parse_scheme(apk, s) for s in (V2, V3, V31)}


@pytest.mark.parametrize("name", V4_ROWS)
def test_v4_expected(name: str) -> None:
    """Rows with a ``v4_file``: v4 verifies, then ApkVerifier's v4 checks report."""
    row = ROWS[name]
    with ApkFile(corpus() / name) as apk:
        r4 = v4.verify_v4(apk, str(corpus() / row["v4_file"]))
        assert r4.verified, [s.errors for s in r4.signers]
        assert "v4" in row["schemes"].split(",")
        s = apk_schemes(apk)
        issues = IssueList()
        checked = row["schemes"].split(",")
        v4.check_v4(
            issues,
            r4,
            s[V2] if V2 in checked else None,
            s[V3] if V3 in checked else None,
            s[V31] if V31 in checked else None,
        )
    want = set(row["expected_issues"].split("|")) if row["expected"] == "fails" else set()
    assert {i.name for i in issues.errors} == want


def test_v4_idsig_files_both_verify() -> None:
    for apk_name in (
        "v31-rsa-2048_2-tgt-10000-dev-release.apk",
        "v41-digest-mismatched-with-v31.apk",
    ):
        with ApkFile(corpus() / apk_name) as apk:
            r4 = v4.verify_v4(apk, str(corpus() / f"{apk_name}.idsig"))
            assert r4.verified and r4.scheme == "v4"
            assert len(r4.signers) == 2  # v4.1
            s3 = parse_scheme(apk, V3)
            s31 = parse_scheme(apk, V31)
            assert s3 is not None and s31 is not None
            for signer, other in zip(r4.signers, (s3, s31), strict=True):
                assert signer.certs[0] == other.signers[0].certs[0]
                assert len(signer.content_digests) == 1 and signer.content_digests[0][0] == 0
            primary = r4.signers[0]
            assert ContentDigest.VERITY_CHUNKED_SHA256 in primary.verified_digests
            # The v4 signer vouches for the v3 signer's best digest.
            assert primary.content_digests[0][1] == v4.pick_best_digest_for_v4(
                s3.signers[0].content_digests
            )
            issues = IssueList()
            v4.check_v4(issues, r4, parse_scheme(apk, V2), s3, s31)
            # Derived from apksig's rules (no row asserts the dev-release pair): the v4.1
            # signer's digest equals v3.1's, the mismatched one's does not.
            want = [] if "dev-release" in apk_name else ["V4_SIG_V2_V3_DIGESTS_MISMATCH"]
            assert [e.name for e in issues.errors] == want


# -- v4: crafted .idsig files ---------------------------------------------------------


def make_idsig(
    apk: ApkFile,
    signers: list[tuple[Key, bytes]],
    *,
    version: int = 2,
    root: bytes | None = None,
    tree: bytes | None = None,
    salt: bytes = b"",
    with_tree: bool = True,
    public_key: bytes | None = None,
    alg_id: int | None = None,
    block_ids: tuple[int, ...] = (),
) -> bytes:
    """An .idsig as apksig's V4SchemeSigner writes it (signers: key, apk digest)."""
    real_tree = verity.verity_tree(apk.data)
    root = v4.root_from_tree(real_tree) if root is None else root
    tree = real_tree if tree is None else tree
    hashing = v4.HashingInfo(1, 12, salt, root)
    hashing_bytes = u32(1) + bytes([12]) + lp(salt) + lp(root)
    infos = b""
    for n, (k, digest) in enumerate(signers):
        pk = certs.load_certificate(k.cert).spki if public_key is None else public_key
        aid = k.alg_id if alg_id is None else alg_id
        info = v4.SigningInfo(digest, k.cert, b"", pk, aid, b"")
        sig = k.sign(v4.signed_data(len(apk.data), hashing, info))
        raw = lp(digest) + lp(k.cert) + lp(b"") + lp(pk) + u32(aid) + lp(sig)
        if n == 0:
            infos += raw
        else:
            bid = block_ids[n - 1] if len(block_ids) >= n else 0x4C4E4B5A
            infos += u32(bid) + lp(raw)
    out = u32(version) + lp(hashing_bytes) + lp(infos)
    if with_tree:
        out += lp(tree)
    return out


def run_v4(tmp_path: Path, apk: ApkFile, idsig: bytes) -> SchemeResult:
    p = tmp_path / "x.idsig"
    p.write_bytes(idsig)
    return v4.verify_v4(apk, str(p))


def errs(r: SchemeResult) -> list[list[str]]:
    return [[e.name for e in s.errors] for s in r.signers]


def test_crafted_v4(tmp_path: Path) -> None:
    k, k2 = key("rsa-2048"), key("ec-p256")
    d = b"\x42" * 32
    with ApkFile(corpus() / "v2-only-with-stamp.apk") as apk:
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)]))
        assert r.verified and errs(r) == [[]]
        assert r.signers[0].content_digests == [(0, d)]
        assert r.signers[0].certs[0].encoded == k.cert
        # v4.1: second signer, any block id.
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d), (k2, d)], block_ids=(7,)))
        assert r.verified and errs(r) == [[], []]
        # No tree in the file, or one cut short: the tree is not checked.
        full = make_idsig(apk, [(k, d)])
        assert run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], with_tree=False)).verified
        assert run_v4(tmp_path, apk, full[:-1]).verified
        assert run_v4(tmp_path, apk, full + b"trailing").verified
        # A wrong tree, an empty tree, a wrong root (signed): errors on the first signer.
        bad_tree = bytearray(verity.verity_tree(apk.data))
        bad_tree[5] ^= 1
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d), (k2, d)], tree=bytes(bad_tree)))
        assert errs(r) == [["V4_SIG_APK_TREE_DID_NOT_VERIFY"], []] and not r.verified
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], tree=b""))
        assert errs(r) == [["V4_SIG_APK_TREE_DID_NOT_VERIFY"]]
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], root=b"\0" * 32))
        assert errs(r) == [["V4_SIG_APK_ROOT_DID_NOT_VERIFY"]]
        # The salt in hashing_info is signed but not used for the tree (as in apksig).
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], salt=b"salt"))
        assert r.verified
        # Signature-level failures; the second signer is not even parsed.
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], alg_id=0x9999))
        assert errs(r) == [["V4_SIG_UNKNOWN_SIG_ALGORITHM"]]
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], public_key=b"junk"))
        assert errs(r) == [["V4_SIG_MALFORMED_PUBLIC_KEY"]]
        other = certs.load_certificate(key("rsa-2048_2").cert).spki
        r = run_v4(tmp_path, apk, make_idsig(apk, [(k, d)], public_key=other))
        assert errs(r) == [["V4_SIG_DID_NOT_VERIFY"]]
        good = make_idsig(apk, [(k, d)])
        r = run_v4(tmp_path, apk, good + u32(1) + lp(b"\xff" * 3))  # appended to the tree
        assert r.verified
        # Second signer malformed: raises only once the first verified.
        first = make_idsig(apk, [(k, d)], with_tree=False)
        infos_at = 4 + 4 + (4 + 1 + 4 + 4 + 32)
        (n,) = struct.unpack_from("<I", first, infos_at)
        broken = first[:infos_at] + lp(first[infos_at + 4 :] + u32(1) + lp(b"xx"))
        with pytest.raises(v4.V4FormatError):
            run_v4(tmp_path, apk, broken)
        assert n > 0
        badsig = bytearray(first)
        badsig[-3] ^= 1
        broken = bytes(badsig[:infos_at]) + lp(bytes(badsig[infos_at + 4 :]) + u32(1) + lp(b"xx"))
        assert errs(run_v4(tmp_path, apk, broken)) == [["V4_SIG_DID_NOT_VERIFY"]]


def test_v4_public_key_mismatch_and_malformed_certificate(tmp_path: Path) -> None:
    k = key("rsa-2048")
    d = b"\x01" * 32
    with ApkFile(corpus() / "v2-only-with-stamp.apk") as apk:
        # Signed by k, public key of k, but another certificate.
        liar = Key(key("rsa-2048_2").cert, k.private, k.alg_id)
        pk = certs.load_certificate(k.cert).spki
        r = run_v4(tmp_path, apk, make_idsig(apk, [(liar, d)], public_key=pk))
        assert errs(r) == [["V4_SIG_PUBLIC_KEY_MISMATCH_BETWEEN_CERTIFICATE_AND_SIGNATURES_RECORD"]]
        bogus = Key(b"not a certificate", k.private, k.alg_id)
        r = run_v4(tmp_path, apk, make_idsig(apk, [(bogus, d)], public_key=pk))
        assert errs(r) == [["V4_SIG_MALFORMED_CERTIFICATE"]]


def test_malformed_idsig_raises(tmp_path: Path) -> None:
    k = key("rsa-2048")
    with ApkFile(corpus() / "v2-only-with-stamp.apk") as apk:
        good = make_idsig(apk, [(k, b"\x01" * 32)])
        cases = [
            b"",
            b"\x02\x00",
            make_idsig(apk, [(k, b"")], version=3),
            u32(2),  # no hashing info
            u32(2) + lp(b"\x01\x00\x00\x00"),  # hashing info truncated
            u32(2) + u32(-1),  # negative size
            good[:8] + lp(b"x"),  # hashing info cut by end of file -> absent
            good[: 8 + 45] + u32(-7),  # negative signing infos size
            good[: 8 + 45] + lp(b"\0" * 10),  # signing info truncated
            good[: 8 + 45 + 3],  # signing infos cut by end of file
        ]
        for data in cases:
            with pytest.raises(v4.V4FormatError):
                run_v4(tmp_path, apk, data)
        with pytest.raises(ProvenanceError):
            v4.verify_v4(apk, str(tmp_path / "missing.idsig"))
        with pytest.raises(ProvenanceError):
            v4.verify_v4(apk, str(tmp_path))


def test_v4_of_empty_file_raises(tmp_path: Path) -> None:
    k = key("rsa-2048")
    with ApkFile.from_bytes(b"") as apk:
        idsig = make_idsig(apk, [(k, b"")], root=b"\0" * 32, tree=b"")
        with pytest.raises(v4.V4Error):
            run_v4(tmp_path, apk, idsig)


def test_idsig_fuzz_only_project_errors(tmp_path: Path) -> None:
    base = corpus() / "v41-digest-mismatched-with-v31.apk"
    original = (corpus() / "v41-digest-mismatched-with-v31.apk.idsig").read_bytes()
    rng = random.Random(4)
    seen: set[str] = set()
    with ApkFile(base) as apk:
        for i in range(200):
            data = bytearray(original)
            if i % 2:
                for _ in range(rng.randint(1, 3)):
                    data[rng.randrange(len(data) - 4096)] = rng.randrange(256)
            else:
                data = data[: rng.randrange(len(data))]
            try:
                r = run_v4(tmp_path, apk, bytes(data))
                seen.add("verified" if r.verified else "failed")
            except ProvenanceError:
                seen.add("raised")
    assert {"failed", "raised"} <= seen


# -- v4: ApkVerifier's consistency checks ---------------------------------------------


def signer(scheme: str, cert: certs.Certificate, *digests: tuple[int, bytes]) -> SignerResult:
    s = SignerResult(scheme, certs=[cert])
    s.content_digests.extend(digests)
    return s


def scheme(name: str, *signers: SignerResult, verified: bool = True) -> SchemeResult:
    return SchemeResult(name, verified=verified, signers=list(signers))


def test_pick_best_digest_for_v4() -> None:
    assert v4.pick_best_digest_for_v4([(0x0103, b"a"), (0x0421, b"v"), (0x0104, b"b")]) == b"b"
    assert v4.pick_best_digest_for_v4([(0x0103, b"a"), (0x0421, b"v")]) == b"v"
    assert v4.pick_best_digest_for_v4([(0x0201, b"e"), (0x9999, b"?")]) == b"e"
    assert v4.pick_best_digest_for_v4([(0x9999, b"?")]) is None
    # A later digest for the same content digest algorithm wins.
    assert v4.pick_best_digest_for_v4([(0x0103, b"a"), (0x0201, b"c")]) == b"c"


def test_check_v4_rules() -> None:
    c1, c2 = cert_of("rsa-2048"), cert_of("rsa-2048_2")
    d = b"\x07" * 32
    v4one = scheme("v4", signer("v4", c1, (0, d)))

    def check(v4r: SchemeResult, v2r: Any = None, v3r: Any = None, v31r: Any = None) -> list[str]:
        issues = IssueList()
        v4.check_v4(issues, v4r, v2r, v3r, v31r)
        return [e.name for e in issues.errors]

    assert check(v4one, v2r=scheme(V2, signer(V2, c1, (0x0103, d)))) == []
    assert check(v4one, v2r=scheme(V2, signer(V2, c2, (0x0103, d)))) == [
        "V4_SIG_V2_V3_SIGNERS_MISMATCH"
    ]
    issues = IssueList()
    v4.check_v4(issues, v4one, scheme(V2, signer(V2, c1, (0x0103, b"x"))), None, None)
    assert [(e.name, e.params[0]) for e in issues.errors] == [("V4_SIG_V2_V3_DIGESTS_MISMATCH", 2)]
    two_v2 = scheme(V2, signer(V2, c1, (0x0103, d)), signer(V2, c2, (0x0103, d)))
    assert check(v4one, v2r=two_v2) == ["V4_SIG_MULTIPLE_SIGNERS"]
    # v3 wins over v2; v3.1 needs a second v4 signer.
    v3r = scheme(V3, signer(V3, c1, (0x0104, d)))
    assert check(v4one, v2r=scheme(V2, signer(V2, c2)), v3r=v3r) == []
    v31r = scheme(V31, signer(V31, c2, (0x0104, b"z")))
    assert check(v4one, v3r=v3r, v31r=v31r) == ["V41_SIG_NEEDS_TWO_SIGNERS"]
    v41 = scheme("v4", signer("v4", c1, (0, d)), signer("v4", c2, (0, d)))
    issues = IssueList()
    v4.check_v4(issues, v41, None, v3r, v31r)
    assert [(e.name, e.params[0]) for e in issues.errors] == [("V4_SIG_V2_V3_DIGESTS_MISMATCH", 3)]
    assert check(v41, v3r=v3r) == ["V4_SIG_MULTIPLE_SIGNERS"]
    # Unverified v3.1 is as if absent.
    assert check(v4one, v3r=v3r, v31r=scheme(V31, verified=False)) == []
    # Digest count.
    assert check(scheme("v4", signer("v4", c1)), v2r=two_v2) == ["V4_SIG_UNEXPECTED_DIGESTS"]
    with pytest.raises(v4.V4Error):
        check(v4one)


# -- the verity tree ------------------------------------------------------------------


def reference_tree(data: bytes, salt: bytes | None) -> bytes:
    """A literal port of apksig ``VerityTreeBuilder.generateVerityTree``."""
    page, size = 4096, 32
    level_sizes = []
    n = len(data)
    while True:
        chunks = -(-n // page)
        level_sizes.append(page * -(-(chunks * size) // page))
        if chunks * size <= page:
            break
        n = chunks * size
    offsets = [0]
    for s in reversed(level_sizes):
        offsets.append(offsets[-1] + s)
    buf = bytearray(offsets[-1])
    for i in range(len(offsets) - 2, -1, -1):
        src = data if i == len(offsets) - 2 else bytes(buf[offsets[i + 1] : offsets[i + 2]])
        out = bytearray()
        for off in range(0, len(src), page):
            chunk = src[off : off + page].ljust(page, b"\0")
            out += hashlib.sha256((salt or b"") + chunk).digest()
        buf[offsets[i] : offsets[i] + len(out)] = out
    return bytes(buf)


@pytest.mark.parametrize(
    "size", [1, 100, 4095, 4096, 4097, 128 * 4096, 128 * 4096 + 1, 129 * 4096 - 5, 1100 * 4096 + 3]
)
@pytest.mark.parametrize("salt", [None, b"\0" * 8])
def test_verity_tree_matches_reference(size: int, salt: bytes | None) -> None:
    data = random.Random(size).randbytes(size)
    expected = reference_tree(data, salt)
    assert verity.verity_tree(memoryview(data), salt) == expected
    cuts = sorted({0, size // 3, size // 3 + 1, size - 1, size})
    parts = [data[a:b] for a, b in itertools.pairwise(cuts)]
    assert verity.verity_tree(parts, salt) == expected
    root = hashlib.sha256((salt or b"") + expected[:4096]).digest()
    assert verity.verity_root(parts, salt) == root


def test_verity_root_of_empty_data() -> None:
    assert verity.verity_tree(b"") == b""
    with pytest.raises(ValueError):
        verity.verity_root(b"")


def test_verity_digest_of_v2_signer() -> None:
    """VERITY_CHUNKED_SHA256 from the sections with an 8-byte zero salt."""
    with ApkFile(corpus() / "golden-rsa-verity-out.apk") as apk:
        r = parse_scheme(apk, V2)
        assert r is not None
        listed = dict(r.signers[0].content_digests)[0x0421]
        block = find_signing_block(apk)
        s = apk.sections
        eocd = bytearray(apk.eocd)
        struct.pack_into("<I", eocd, 16, block.offset)
        sections: list[bytes | memoryview] = [
            apk.data[: block.offset],
            apk.data[s.cd_offset : s.eocd_offset],
            bytes(eocd),
        ]
        total = sum(len(x) for x in sections)
        assert verity.verity_root(sections, b"\0" * 8) + struct.pack("<q", total) == listed


def test_reader_helpers_stay_bounded() -> None:
    with pytest.raises(Malformed):
        Reader(b"\x05\0\0\0ab").prefixed()
