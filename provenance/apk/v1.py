"""APK Signature Scheme v1: JAR signing, verified the way Android's reference does it.

Android does not follow the JAR specification to the letter, and which JAR
signatures it accepts changed across platform versions. This module reproduces the
decisions of apksig's ``V1SchemeVerifier`` for a range of API levels: an APK
verifies only if every platform version in ``[min_sdk, max_sdk]`` would accept it.
The per-level rules that matter are:

* before API 18 a digest is chosen through the ``Digest-Algorithms`` attribute
  (default ``SHA SHA1``) and SHA-384/512 are unknown before API 9; from API 18 the
  strongest of SHA-512, SHA-384, SHA-256, SHA-1 is used. Over a range spanning
  both, both choices must verify;
* which PKCS #7 digest/signature algorithm OID pairs each API level accepts
  (``OidConstants``); before API 24 only the first SignerInfo is tried;
* signed attributes are refused below API 19 and their content type is only
  checked from API 24;
* from API 24 an ``X-Android-APK-Signed`` attribute naming a scheme that is
  supported but absent means the newer signature was stripped.

Every entry outside ``META-INF/`` must be listed in the manifest, named in a
signer's .SF file, digest-checked (streamed, never loaded whole), and all such
entries must be signed by the same set of signers.

Where the reference raises instead of reporting (malformed ZIP entries, a digest
that is not valid Base64), :class:`~provenance.errors.ApkFormatError` is raised.
Where the reference would crash on a missing mandatory PKCS #7 field, the signer
gets ``JAR_SIG_PARSE_EXCEPTION`` instead.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TypeVar

from provenance.apk import der, jar_manifest, pkcs7
from provenance.apk.algorithms import SDK_MAX, SDK_N
from provenance.apk.certs import (
    Certificate,
    CertificateError,
    PublicKeyError,
    VerifyException,
    load_certificate,
)
from provenance.apk.certs import verify as verify_signature
from provenance.apk.jar_manifest import Section
from provenance.apk.parallel import WORKERS, executor
from provenance.apk.result import V1, SchemeResult, SignerResult
from provenance.apk.zip import ApkFile, CdRecord
from provenance.errors import ApkFormatError, DerError

__all__ = [
    "MANIFEST_ENTRY_NAME",
    "MAX_APK_SIGNERS",
    "NamedDigest",
    "digests_to_verify",
    "sig_alg_supported_api_levels",
    "v1_manifest_digest",
    "verify_v1",
]

MANIFEST_ENTRY_NAME = "META-INF/MANIFEST.MF"
#: The most JAR signers the reference accepts.
MAX_APK_SIGNERS = 10
SF_ATTRIBUTE_APK_SIGNED = "X-Android-APK-Signed"

SDK_GINGERBREAD = 9
SDK_JELLY_BEAN_MR2 = 18
SDK_KITKAT = 19

_T = TypeVar("_T")

# -- digest algorithms in manifests and .SF files ----------------------------------------

_HASHLIB = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
#: Names accepted in ``Digest-Algorithms`` (upper-cased) and what they mean.
_CANONICAL_DIGEST = {
    "MD5": "MD5",
    "SHA": "SHA-1",
    "SHA1": "SHA-1",
    "SHA-1": "SHA-1",
    "SHA-256": "SHA-256",
    "SHA-384": "SHA-384",
    "SHA-512": "SHA-512",
}
#: First API level whose manifest/.SF verifier knows each digest (pre-API-18 logic).
_DIGEST_MIN_SDK = {
    "MD5": 0,
    "SHA-1": 0,
    "SHA-256": 0,
    "SHA-384": SDK_GINGERBREAD,
    "SHA-512": SDK_GINGERBREAD,
}
#: From API 18 the strongest present digest is used.
_JB_MR2_DIGESTS = ("SHA-512", "SHA-384", "SHA-256", "SHA-1")
_JAVA_WS = " \t\n\r\f"


@dataclass(frozen=True, slots=True)
class NamedDigest:
    """A digest found in a manifest or .SF section, with its JCA algorithm name."""

    algorithm: str
    digest: bytes


_CANONICAL_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _java_b64decode(text: str) -> bytes:
    """``Base64.getDecoder().decode``: strict alphabet, optional but well-formed padding."""
    if _CANONICAL_B64.fullmatch(text):  # the common case; identical result, C speed
        return base64.b64decode(text)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = bytearray()
    bits = 0
    shift = 18
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        i += 1
        if c == "=":
            # Padding ends the data: "xx==" or "xxx=", never a lone "=" at a unit start.
            if shift == 18 or (shift == 6 and (i == n or text[i] != "=")):
                raise ValueError("Input byte array has wrong 4-byte ending unit")
            if shift == 6:
                i += 1
            break
        v = alphabet.find(c)
        if v < 0:
            raise ValueError(f"Illegal base64 character {c!r}")
        bits |= v << shift
        shift -= 6
        if shift < 0:
            out += bytes(((bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF))
            shift = 18
            bits = 0
    if shift == 6:
        out.append((bits >> 16) & 0xFF)
    elif shift == 0:
        out += bytes(((bits >> 16) & 0xFF, (bits >> 8) & 0xFF))
    elif shift == 12:
        raise ValueError("Last unit does not have enough valid bits")
    if i < n:
        raise ValueError(f"Input byte array has incorrect ending byte at {i}")
    return bytes(out)


def _decode_digest(section: Section, attr: str, value: str) -> bytes:
    try:
        return _java_b64decode(value)
    except ValueError as e:
        where = f"section {section.name}" if section.name is not None else "main section"
        raise ApkFormatError(f"Malformed Base64 in {attr} of {where}: {e}") from None


def digests_to_verify(
    section: Section, suffix: str, min_sdk: int, max_sdk: int
) -> list[NamedDigest]:
    """The digests of ``section`` that platforms in ``[min_sdk, max_sdk]`` would check.

    Below API 18 the first listed ``Digest-Algorithms`` digest the oldest platform
    knows; from API 18 the strongest present one (added unless it is the same
    digest). Empty when the pre-18 platforms find none, which the callers report.
    Raises :class:`ApkFormatError` for a value that is not Base64.
    """
    result: list[NamedDigest] = []
    if min_sdk < SDK_JELLY_BEAN_MR2:
        algs = section.get("Digest-Algorithms")
        if algs is None:
            algs = "SHA SHA1"
        for alg in _split_java_ws(algs):
            attr = alg + suffix
            value = section.get(attr)
            if value is None:
                continue
            canonical = _CANONICAL_DIGEST.get(alg.upper())
            if canonical is None or _DIGEST_MIN_SDK[canonical] > min_sdk:
                continue
            result.append(NamedDigest(canonical, _decode_digest(section, attr, value)))
            break
        if not result:
            return result
    if max_sdk >= SDK_JELLY_BEAN_MR2:
        for alg in _JB_MR2_DIGESTS:
            attr = ("SHA1" if alg == "SHA-1" else alg) + suffix
            value = section.get(attr)
            if value is None:
                continue
            digest = _decode_digest(section, attr, value)
            earlier = next((d.digest for d in result if d.algorithm.upper() == alg), None)
            if earlier is None or earlier != digest:
                result.append(NamedDigest(alg, digest))
            break
    return result


def _split_java_ws(text: str) -> list[str]:
    """``StringTokenizer`` with its default delimiters (not Python's notion of whitespace)."""
    tokens: list[str] = []
    cur: list[str] = []
    for c in text:
        if c in _JAVA_WS:
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        tokens.append("".join(cur))
    return tokens


def _digest(alg: str, data: bytes | memoryview) -> bytes:
    return hashlib.new(_HASHLIB[alg], data).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- PKCS #7 algorithm support per API level (apksig OidConstants) -------------------------

OID_DIGEST_MD5 = "1.2.840.113549.2.5"
OID_DIGEST_SHA1 = "1.3.14.3.2.26"
OID_DIGEST_SHA224 = "2.16.840.1.101.3.4.2.4"
OID_DIGEST_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_DIGEST_SHA384 = "2.16.840.1.101.3.4.2.2"
OID_DIGEST_SHA512 = "2.16.840.1.101.3.4.2.3"

OID_SIG_RSA = "1.2.840.113549.1.1.1"
OID_SIG_MD5_WITH_RSA = "1.2.840.113549.1.1.4"
OID_SIG_SHA1_WITH_RSA = "1.2.840.113549.1.1.5"
OID_SIG_SHA224_WITH_RSA = "1.2.840.113549.1.1.14"
OID_SIG_SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
OID_SIG_SHA384_WITH_RSA = "1.2.840.113549.1.1.12"
OID_SIG_SHA512_WITH_RSA = "1.2.840.113549.1.1.13"
OID_SIG_DSA = "1.2.840.10040.4.1"
OID_SIG_SHA1_WITH_DSA = "1.2.840.10040.4.3"
OID_SIG_SHA224_WITH_DSA = "2.16.840.1.101.3.4.3.1"
OID_SIG_SHA256_WITH_DSA = "2.16.840.1.101.3.4.3.2"
OID_SIG_SHA384_WITH_DSA = "2.16.840.1.101.3.4.3.3"
OID_SIG_SHA512_WITH_DSA = "2.16.840.1.101.3.4.3.4"
OID_SIG_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_SIG_SHA1_WITH_ECDSA = "1.2.840.10045.4.1"
OID_SIG_SHA224_WITH_ECDSA = "1.2.840.10045.4.3.1"
OID_SIG_SHA256_WITH_ECDSA = "1.2.840.10045.4.3.2"
OID_SIG_SHA384_WITH_ECDSA = "1.2.840.10045.4.3.3"
OID_SIG_SHA512_WITH_ECDSA = "1.2.840.10045.4.3.4"

_DIGEST_OID_TO_JCA = {
    OID_DIGEST_MD5: "MD5",
    OID_DIGEST_SHA1: "SHA-1",
    OID_DIGEST_SHA224: "SHA-224",
    OID_DIGEST_SHA256: "SHA-256",
    OID_DIGEST_SHA384: "SHA-384",
    OID_DIGEST_SHA512: "SHA-512",
}
#: Signature OIDs that fix their own hash: (hash, key type). The PKCS #7 digest
#: algorithm then only selects the signed-attributes message digest.
_SIG_OID_TO_JCA = {
    OID_SIG_MD5_WITH_RSA: ("MD5", "RSA"),
    OID_SIG_SHA1_WITH_RSA: ("SHA-1", "RSA"),
    OID_SIG_SHA224_WITH_RSA: ("SHA-224", "RSA"),
    OID_SIG_SHA256_WITH_RSA: ("SHA-256", "RSA"),
    OID_SIG_SHA384_WITH_RSA: ("SHA-384", "RSA"),
    OID_SIG_SHA512_WITH_RSA: ("SHA-512", "RSA"),
    OID_SIG_SHA1_WITH_DSA: ("SHA-1", "DSA"),
    OID_SIG_SHA224_WITH_DSA: ("SHA-224", "DSA"),
    OID_SIG_SHA256_WITH_DSA: ("SHA-256", "DSA"),
    OID_SIG_SHA1_WITH_ECDSA: ("SHA-1", "EC"),
    OID_SIG_SHA224_WITH_ECDSA: ("SHA-224", "EC"),
    OID_SIG_SHA256_WITH_ECDSA: ("SHA-256", "EC"),
    OID_SIG_SHA384_WITH_ECDSA: ("SHA-384", "EC"),
    OID_SIG_SHA512_WITH_ECDSA: ("SHA-512", "EC"),
}
#: Key-only signature OIDs: the hash comes from the PKCS #7 digest algorithm.
_KEY_OID_TO_TYPE = {OID_SIG_RSA: "RSA", OID_SIG_DSA: "DSA", OID_SIG_EC_PUBLIC_KEY: "EC"}

_FRIENDLY_NAMES = {
    OID_DIGEST_MD5: "MD5",
    OID_DIGEST_SHA1: "SHA-1",
    OID_DIGEST_SHA224: "SHA-224",
    OID_DIGEST_SHA256: "SHA-256",
    OID_DIGEST_SHA384: "SHA-384",
    OID_DIGEST_SHA512: "SHA-512",
    OID_SIG_RSA: "RSA",
    OID_SIG_MD5_WITH_RSA: "MD5 with RSA",
    OID_SIG_SHA1_WITH_RSA: "SHA-1 with RSA",
    OID_SIG_SHA224_WITH_RSA: "SHA-224 with RSA",
    OID_SIG_SHA256_WITH_RSA: "SHA-256 with RSA",
    OID_SIG_SHA384_WITH_RSA: "SHA-384 with RSA",
    OID_SIG_SHA512_WITH_RSA: "SHA-512 with RSA",
    OID_SIG_DSA: "DSA",
    OID_SIG_SHA1_WITH_DSA: "SHA-1 with DSA",
    OID_SIG_SHA224_WITH_DSA: "SHA-224 with DSA",
    OID_SIG_SHA256_WITH_DSA: "SHA-256 with DSA",
    OID_SIG_SHA384_WITH_DSA: "SHA-384 with DSA",
    OID_SIG_SHA512_WITH_DSA: "SHA-512 with DSA",
    OID_SIG_EC_PUBLIC_KEY: "ECDSA",
    OID_SIG_SHA1_WITH_ECDSA: "SHA-1 with ECDSA",
    OID_SIG_SHA224_WITH_ECDSA: "SHA-224 with ECDSA",
    OID_SIG_SHA256_WITH_ECDSA: "SHA-256 with ECDSA",
    OID_SIG_SHA384_WITH_ECDSA: "SHA-384 with ECDSA",
    OID_SIG_SHA512_WITH_ECDSA: "SHA-512 with ECDSA",
}

_Range = tuple[int, int]
_ALL: tuple[_Range, ...] = ((0, SDK_MAX),)
_L: tuple[_Range, ...] = ((21, 23),)  # accepted only by Android 5.0-6.0's lenient verifier


def _from(level: int) -> tuple[_Range, ...]:
    return ((level, SDK_MAX),)


def _build_support_table() -> dict[tuple[str, str], tuple[_Range, ...]]:
    md5, sha1, sha224, sha256, sha384, sha512 = (
        OID_DIGEST_MD5,
        OID_DIGEST_SHA1,
        OID_DIGEST_SHA224,
        OID_DIGEST_SHA256,
        OID_DIGEST_SHA384,
        OID_DIGEST_SHA512,
    )
    rsa_sigs = (
        OID_SIG_MD5_WITH_RSA,
        OID_SIG_SHA1_WITH_RSA,
        OID_SIG_SHA224_WITH_RSA,
        OID_SIG_SHA256_WITH_RSA,
        OID_SIG_SHA384_WITH_RSA,
        OID_SIG_SHA512_WITH_RSA,
    )
    dsa_sigs = (OID_SIG_SHA1_WITH_DSA, OID_SIG_SHA224_WITH_DSA, OID_SIG_SHA256_WITH_DSA)
    ec_sigs = (
        OID_SIG_SHA1_WITH_ECDSA,
        OID_SIG_SHA224_WITH_ECDSA,
        OID_SIG_SHA256_WITH_ECDSA,
        OID_SIG_SHA384_WITH_ECDSA,
        OID_SIG_SHA512_WITH_ECDSA,
    )
    t: dict[tuple[str, str], tuple[_Range, ...]] = {}
    # Mismatched digest/signature-hash pairs: only API 21-23 accept them ...
    for d in (md5, sha1, sha224, sha256, sha384, sha512):
        for s in rsa_sigs + ec_sigs:
            t[d, s] = _L
    for d in (md5, sha1, sha224, sha256, sha384, sha512):
        for s in dsa_sigs:
            t[d, s] = _L
    # ... with these exceptions and the matched pairs.
    t[md5, OID_SIG_RSA] = _ALL
    t[md5, OID_SIG_MD5_WITH_RSA] = ((0, 8), (21, SDK_MAX))
    t[sha1, OID_SIG_RSA] = _ALL
    t[sha1, OID_SIG_SHA1_WITH_RSA] = _ALL
    t[sha224, OID_SIG_RSA] = ((0, 8), (21, SDK_MAX))
    t[sha224, OID_SIG_SHA224_WITH_RSA] = ((0, 8), (21, SDK_MAX))
    t[sha224, OID_SIG_SHA256_WITH_RSA] = ((21, 21),)
    t[sha256, OID_SIG_RSA] = ((0, 8), (18, SDK_MAX))
    t[sha256, OID_SIG_SHA1_WITH_RSA] = ((21, 21),)
    t[sha256, OID_SIG_SHA256_WITH_RSA] = ((0, 8), (18, SDK_MAX))
    t[sha384, OID_SIG_RSA] = _from(18)
    t[sha384, OID_SIG_SHA384_WITH_RSA] = _from(21)
    t[sha512, OID_SIG_RSA] = _from(18)
    t[sha512, OID_SIG_SHA384_WITH_RSA] = ((21, 21),)
    t[sha512, OID_SIG_SHA512_WITH_RSA] = _from(21)
    t[sha1, OID_SIG_DSA] = _ALL
    t[sha1, OID_SIG_SHA1_WITH_DSA] = _from(9)
    t[sha224, OID_SIG_DSA] = _from(22)
    t[sha224, OID_SIG_SHA224_WITH_DSA] = _from(21)
    t[sha256, OID_SIG_DSA] = _from(22)
    t[sha256, OID_SIG_SHA256_WITH_DSA] = _from(21)
    t[sha1, OID_SIG_EC_PUBLIC_KEY] = _from(18)
    t[sha224, OID_SIG_EC_PUBLIC_KEY] = _from(21)
    t[sha256, OID_SIG_EC_PUBLIC_KEY] = _from(18)
    t[sha384, OID_SIG_EC_PUBLIC_KEY] = _from(18)
    t[sha512, OID_SIG_EC_PUBLIC_KEY] = _from(18)
    t[sha1, OID_SIG_SHA1_WITH_ECDSA] = _from(18)
    t[sha224, OID_SIG_SHA224_WITH_ECDSA] = _from(21)
    t[sha256, OID_SIG_SHA256_WITH_ECDSA] = _from(21)
    t[sha384, OID_SIG_SHA384_WITH_ECDSA] = _from(21)
    t[sha512, OID_SIG_SHA512_WITH_ECDSA] = _from(21)
    return t


_SUPPORTED_SIG_ALGS = _build_support_table()


def sig_alg_supported_api_levels(digest_oid: str, sig_oid: str) -> tuple[_Range, ...]:
    """API level ranges (inclusive, sorted) accepting this PKCS #7 algorithm pair."""
    return _SUPPORTED_SIG_ALGS.get((digest_oid, sig_oid), ())


def _values_not_in(lo: int, hi: int, ranges: Sequence[_Range]) -> list[_Range]:
    """Parts of ``[lo, hi]`` outside ``ranges``, computed exactly as the reference does."""
    if not ranges:
        return [(lo, hi)]
    test = lo
    out: list[_Range] = []
    for rmin, rmax in ranges:
        if test > rmax:
            continue
        if test < rmin:
            out.append((test, rmin - 1))
        if rmax >= hi:
            return out
        test = rmax + 1
    if test <= hi:
        out.append((test, hi))
    return out


def _levels_text(ranges: Iterable[_Range]) -> str:
    parts = []
    for lo, hi in ranges:
        if lo == hi:
            parts.append(str(lo))
        elif hi == SDK_MAX:
            parts.append(f"{lo}+")
        else:
            parts.append(f"{lo}-{hi}")
    return ", ".join(parts)


def _jca_signature(digest_oid: str, sig_oid: str) -> tuple[str, str]:
    """(hash, key type) of the JCA Signature the reference would instantiate."""
    fixed = _SIG_OID_TO_JCA.get(sig_oid)
    if fixed is not None:
        return fixed
    key_type = _KEY_OID_TO_TYPE.get(sig_oid)
    digest = _DIGEST_OID_TO_JCA.get(digest_oid)
    if key_type is None or digest is None:
        raise _SignatureFailure(
            f"Unsupported JCA Signature algorithm. Digest algorithm: {digest_oid}, "
            f"signature algorithm: {sig_oid}"
        )
    return digest, key_type


# -- certificates ---------------------------------------------------------------------------

# Critical extensions the platform's X.509 implementation understands; any other
# critical extension disqualifies a signing certificate.
_KNOWN_EXTENSIONS = frozenset(
    {
        "2.5.29.14",
        "2.5.29.15",
        "2.5.29.16",
        "2.5.29.17",
        "2.5.29.18",
        "2.5.29.19",
        "2.5.29.20",
        "2.5.29.21",
        "2.5.29.24",
        "2.5.29.27",
        "2.5.29.28",
        "2.5.29.29",
        "2.5.29.30",
        "2.5.29.31",
        "2.5.29.32",
        "2.5.29.33",
        "2.5.29.35",
        "2.5.29.36",
        "2.5.29.37",
        "2.5.29.46",
        "2.5.29.54",
        "2.16.840.1.113730.1.1",
        "1.3.6.1.5.5.7.1.1",
        "1.3.6.1.5.5.7.1.11",
        "1.3.6.1.5.5.7.48.1.5",
    }
)
# Attribute types with an RFC 2253 keyword: only their string values compare as text.
_RFC2253_KEYWORDS = frozenset(
    {
        "2.5.4.3",
        "2.5.4.6",
        "2.5.4.7",
        "2.5.4.8",
        "2.5.4.9",
        "2.5.4.10",
        "2.5.4.11",
        "0.9.2342.19200300.100.1.1",
        "0.9.2342.19200300.100.1.25",
    }
)
_NAME_SPECIALS = ',+<>;"\\'


@dataclass(frozen=True, slots=True)
class _CertInfo:
    """What the v1 rules need from a certificate beyond :class:`Certificate`."""

    cert: Certificate
    issuer: bytes
    subject: bytes
    serial: int
    unsupported_critical: bool
    key_usage: tuple[bool, bool] | None  # (digitalSignature, nonRepudiation)


def _cert_info(cert: Certificate) -> _CertInfo:
    try:
        top = der.parse(cert.encoded, allow_trailing=True)
        tbs = top.children()[0].children()
        i = 1 if tbs and tbs[0].is_(0, der.CLASS_CONTEXT) else 0
        serial = int.from_bytes(tbs[i].content, "big", signed=True) if tbs[i].content else 0
        issuer = tbs[i + 2].encoded
        subject = tbs[i + 4].encoded
        extra = tbs[i + 6 :]
    except (DerError, IndexError) as e:
        raise CertificateError(f"Failed to parse certificate: {e}") from None
    unsupported = False
    key_usage: tuple[bool, bool] | None = None
    for el in extra:
        if not el.is_(3, der.CLASS_CONTEXT):
            continue
        try:
            for ext in el.children()[0].children():
                parts = ext.children()
                oid = pkcs7.decode_oid(parts[0].content)
                critical = (
                    len(parts) > 2
                    and parts[1].is_(der.BOOLEAN)
                    and parts[1].content not in (b"", b"\0")
                )
                value = parts[-1].content
                if critical and oid not in _KNOWN_EXTENSIONS:
                    unsupported = True
                if oid == "2.5.29.15":
                    key_usage = _key_usage_bits(value)
        except (DerError, IndexError, pkcs7.Asn1DecodingError):
            continue
    return _CertInfo(cert, issuer, subject, serial, unsupported, key_usage)


def _key_usage_bits(value: bytes) -> tuple[bool, bool]:
    bits = der.parse(value).expect(der.BIT_STRING).content
    if not bits:
        return False, False
    unused, data = bits[0], bits[1:]
    length = len(data) * 8 - unused

    def bit(n: int) -> bool:
        return n < length and bool(data[n // 8] & (0x80 >> (n % 8)))

    return bit(0), bit(1)


def _canonical_ava(oid: str, value: der.Element) -> str:
    if oid not in _RFC2253_KEYWORDS or not (
        value.cls == der.CLASS_UNIVERSAL
        and value.tag in (der.PRINTABLE_STRING, der.UTF8_STRING)
        and not value.constructed
    ):
        text = f"{oid}=#{der.to_der(value).hex()}"
    else:
        codec = "utf-8" if value.tag == der.UTF8_STRING else "ascii"
        raw = value.content.decode(codec, "replace")
        out: list[str] = []
        prev_white = False
        for j, c in enumerate(raw):
            if c in _NAME_SPECIALS or (j == 0 and c == "#"):
                out.append("\\" + c)
                prev_white = False
            elif c.isspace():
                if not prev_white:
                    out.append(c)
                prev_white = True
            else:
                out.append(c)
                prev_white = False
        text = f"{oid}=" + "".join(out).strip("".join(map(chr, range(33))))
    return unicodedata.normalize("NFKD", text.upper().lower())


def _canonical_name(encoded: bytes) -> tuple[tuple[str, ...], ...] | None:
    """An X.500 name in the form the platform compares names by, or None if unparsable."""
    try:
        name = der.parse(encoded, allow_trailing=True).expect(der.SEQUENCE)
        rdns = []
        for rdn in name.children():
            rdn.expect(der.SET)
            avas = []
            for ava in rdn.children():
                parts = ava.expect(der.SEQUENCE).children()
                if len(parts) != 2:
                    return None
                oid = pkcs7.decode_oid(parts[0].expect(der.OID).content)
                avas.append(_canonical_ava(oid, parts[1]))
            rdns.append(tuple(sorted(avas)))
        return tuple(rdns)
    except (DerError, pkcs7.Asn1DecodingError):
        return None


def _names_equal(a: bytes, b: bytes) -> bool:
    if a == b:
        return True
    ca, cb = _canonical_name(a), _canonical_name(b)
    return ca is not None and ca == cb


def _find_certificate(certs: Sequence[_CertInfo], sid: pkcs7.SignerIdentifier) -> _CertInfo | None:
    ias = sid.issuer_and_serial_number
    if ias is None:
        return None  # Android only identifies signers by issuer and serial number
    for c in certs:
        issuer = _need(ias.issuer, "issuer")
        serial = _need(ias.serial_number, "serial number")
        if serial == c.serial and _names_equal(issuer, c.issuer):
            return c
    return None


def _certificate_chain(certs: Sequence[_CertInfo], leaf: _CertInfo) -> list[Certificate]:
    """The leaf followed by its issuers found among ``certs``, by subject/issuer names."""
    unused = list(certs)
    for k, c in enumerate(unused):
        if c.cert == leaf.cert:
            del unused[k]
            break
    chain = [leaf.cert]
    root = leaf
    while not _names_equal(root.subject, root.issuer):
        for k, c in enumerate(unused):
            if _names_equal(root.issuer, c.subject):
                del unused[k]
                chain.append(c.cert)
                root = c
                break
        else:
            break
    return chain


# -- signature checking ---------------------------------------------------------------------


class _SignatureFailure(Exception):
    """The SignerInfo cannot be verified (reported as JAR_SIG_VERIFY_EXCEPTION).

    Rendered with the Java exception class the reference would name, so messages
    read like ``apksigner``'s.
    """

    def __init__(self, message: str, java_class: str = "java.security.SignatureException"):
        super().__init__(f"{java_class}: {message}")


_INVALID_KEY = "java.security.InvalidKeyException"
_ASN1_EXC = "com.android.apksig.internal.asn1.Asn1DecodingException"
_PKCS7_EXC = "com.android.apksig.internal.pkcs7.Pkcs7DecodingException"
_CERT_EXC = "java.security.cert.CertificateException"


class _Malformed(Exception):
    """A mandatory PKCS #7 field is missing (reported as JAR_SIG_PARSE_EXCEPTION)."""


def _need(value: _T | None, what: str) -> _T:
    if value is None:
        raise _Malformed(f"SignerInfo or SignedData lacks its {what}")
    return value


def _check_signature_encoding(key_type: str, key_bits: int | None, sig: bytes) -> None:
    """Encoding checks under which the platform throws rather than answering false."""
    if key_type == "RSA":
        if key_bits is not None and len(sig) != (key_bits + 7) // 8:
            raise _SignatureFailure(
                f"Bad signature length: got {len(sig)} but was expecting {(key_bits + 7) // 8}"
            )
        return
    try:
        el = der.parse(sig).expect(der.SEQUENCE)
        parts = el.children()
        if len(parts) != 2 or der.to_der(el) != sig:
            raise DerError("not a DER SEQUENCE of two INTEGERs")
        for p in parts:
            p.expect(der.INTEGER)
    except DerError as e:
        raise _SignatureFailure(f"Invalid encoding for signature: {e}") from None


# -- the verifier ---------------------------------------------------------------------------


class _Signer:
    """One signature block (.RSA/.DSA/.EC) with its .SF file."""

    def __init__(
        self, name: str, block: CdRecord, sig_file: CdRecord, result: SignerResult
    ) -> None:
        self.name = name
        self.block = block
        self.sig_file = sig_file
        self.result = result
        self.ignored = False
        self.sf_bytes = b""
        self.sf_entry_names: set[str] = set()

    # .RSA/.DSA/.EC against .SF ---------------------------------------------------------

    def verify_block(self, apk: ApkFile, min_sdk: int, max_sdk: int) -> None:
        """Check the PKCS #7 signature over the .SF file and record the certificate chain."""
        block_bytes = _read_entry(apk, self.block)
        self.sf_bytes = _read_entry(apk, self.sig_file)
        r = self.result
        block_name = self.block.name
        try:
            signed_data = pkcs7.parse_signature_block(block_bytes)
        except pkcs7.Asn1DecodingError as e:
            r.error("JAR_SIG_PARSE_EXCEPTION", block_name, f"{_ASN1_EXC}: {e}")
            return
        if signed_data.signer_infos is None:
            r.error("JAR_SIG_PARSE_EXCEPTION", block_name, "SignedData lacks signerInfos")
            return
        if not signed_data.signer_infos:
            r.error("JAR_SIG_NO_SIGNERS", block_name)
            return
        # Before Android N only the first SignerInfo is tried; from N all of them,
        # and the first that verifies is used.
        to_try = signed_data.signer_infos
        if min_sdk < SDK_N:
            to_try = to_try[:1]
        certs: list[_CertInfo] | None = None
        first: _CertInfo | None = None
        for signer_info in to_try:
            if certs is None:
                try:
                    certs = _parse_certificates(signed_data.certificates)
                except CertificateError as e:
                    r.error("JAR_SIG_PARSE_EXCEPTION", block_name, f"{_CERT_EXC}: {e}")
                    return
                except _Malformed as e:
                    r.error("JAR_SIG_PARSE_EXCEPTION", block_name, str(e))
                    return
            try:
                cert = self._verify_signer_info(signed_data, certs, signer_info, min_sdk, max_sdk)
            except pkcs7.Pkcs7DecodingError as e:
                r.error("JAR_SIG_PARSE_EXCEPTION", block_name, f"{_PKCS7_EXC}: {e}")
                return
            except _Malformed as e:
                r.error("JAR_SIG_PARSE_EXCEPTION", block_name, str(e))
                return
            except _SignatureFailure as e:
                r.error("JAR_SIG_VERIFY_EXCEPTION", block_name, self.sig_file.name, str(e))
                return
            if r.errors:
                return
            if cert is not None and first is None:
                first = cert
        if first is None or certs is None:
            r.error("JAR_SIG_DID_NOT_VERIFY", block_name, self.sig_file.name)
            return
        r.certs = _certificate_chain(certs, first)

    def _verify_signer_info(
        self,
        signed_data: pkcs7.SignedData,
        certs: Sequence[_CertInfo],
        si: pkcs7.SignerInfo,
        min_sdk: int,
        max_sdk: int,
    ) -> _CertInfo | None:
        """The signing certificate if ``si`` verifies the .SF file, else None."""
        # An AlgorithmIdentifier without its OID is looked up (and reported) as "null".
        digest_oid = _need(si.digest_algorithm, "digest algorithm").algorithm or "null"
        sig_oid = _need(si.signature_algorithm, "signature algorithm").algorithm or "null"
        missing = _values_not_in(
            min_sdk, max_sdk, sig_alg_supported_api_levels(digest_oid, sig_oid)
        )
        if missing:
            self.result.error(
                "JAR_SIG_UNSUPPORTED_SIG_ALG",
                self.block.name,
                digest_oid,
                sig_oid,
                _levels_text(missing),
                _FRIENDLY_NAMES.get(digest_oid, digest_oid),
                _FRIENDLY_NAMES.get(sig_oid, sig_oid),
            )
            return None

        signing = _find_certificate(certs, _need(si.sid, "signer identifier"))
        if signing is None:
            raise _SignatureFailure(
                "Signing certificate referenced in SignerInfo not found in SignedData"
            )
        if signing.unsupported_critical:
            raise _SignatureFailure("Signing certificate has unsupported critical extensions")
        if signing.key_usage is not None and not any(signing.key_usage):
            raise _SignatureFailure(
                "Signing certificate not authorized for use in digital signatures: keyUsage "
                "extension missing digitalSignature and nonRepudiation"
            )
        hash_alg, key_type = _jca_signature(digest_oid, sig_oid)
        try:
            key = signing.cert.public_key
        except PublicKeyError as e:
            raise _SignatureFailure(str(e), _INVALID_KEY) from None
        if signing.cert.key_algorithm != key_type:
            raise _SignatureFailure(
                f"{signing.cert.key_algorithm} key cannot verify a {key_type} signature",
                _INVALID_KEY,
            )

        if si.signed_attrs is not None:
            # The signature covers the signed attributes, which carry the .SF digest.
            if min_sdk < SDK_KITKAT:
                raise _SignatureFailure(
                    f"APKs with Signed Attributes broken on platforms with API Level < {SDK_KITKAT}"
                )
            try:
                attrs = pkcs7.parse_signed_attributes(si.signed_attrs)
            except pkcs7.Asn1DecodingError as e:
                raise _SignatureFailure(f"Failed to parse signed attributes: {e}") from None
            signed = pkcs7.SignedAttributes(attrs)
            if max_sdk >= SDK_N:
                content_type = signed.single_oid(pkcs7.OID_CONTENT_TYPE)
                if content_type is None:
                    raise _SignatureFailure("No Content Type in signed attributes")
                encap = _need(signed_data.encap_content_info, "encapsulated content info")
                if content_type != encap.content_type:
                    return None
            expected = signed.single_octets(pkcs7.OID_MESSAGE_DIGEST)
            if expected is None:
                raise _SignatureFailure("No content digest in signed attributes")
            sf_digest_alg = _DIGEST_OID_TO_JCA.get(digest_oid)
            if sf_digest_alg is None:
                raise _SignatureFailure(f"Unsupported digest algorithm: {digest_oid}")
            if expected != _digest(sf_digest_alg, self.sf_bytes):
                return None
            data = pkcs7.signed_attributes_to_verify(si.signed_attrs)
        else:
            data = self.sf_bytes
        sig = _need(si.signature, "signature")
        _check_signature_encoding(key_type, signing.cert.key_size, sig)
        try:
            ok = verify_signature(key, key_type, _HASHLIB[hash_alg], "pkcs1", data, sig)
        except VerifyException as e:
            raise _SignatureFailure(str(e)) from None
        return signing if ok else None

    # .SF against MANIFEST.MF ---------------------------------------------------------------

    def verify_sig_file(
        self,
        manifest: bytes,
        manifest_main: Section | None,
        manifest_sections: Mapping[str, Section],
        supported_schemes: Mapping[int, str],
        found_schemes: AbstractSet[int],
        min_sdk: int,
        max_sdk: int,
    ) -> None:
        """Check the .SF file's digests of the manifest and collect the entries it names."""
        r = self.result
        sf_name = self.sig_file.name
        parser = jar_manifest.ManifestParser(self.sf_bytes)
        try:
            main = parser.read_section()
            sections = parser.read_all_sections() if main is not None else []
        except jar_manifest.ManifestLimitError as e:
            raise ApkFormatError(f"{sf_name} too large: {e}") from None
        if main is None or main.get("Signature-Version") is None:
            r.error("JAR_SIG_MISSING_VERSION_ATTR_IN_SIG_FILE", sf_name)
            self.ignored = True
            return
        if max_sdk >= SDK_N:
            self._check_stripped_signatures(main, supported_schemes, found_schemes)
            if r.errors:
                return
        created_by = main.get("Created-By")
        signtool = created_by is not None and "signtool" in created_by
        whole_verified = self._verify_manifest_digest(main, signtool, manifest, min_sdk, max_sdk)
        if not signtool:
            self._verify_main_section_digest(main, manifest_main, manifest, min_sdk, max_sdk)
        if r.errors:
            return

        names: set[str] = set()
        for number, section in enumerate(sections, start=1):
            name = section.name
            if name is None:
                r.error("JAR_SIG_UNNNAMED_SIG_FILE_SECTION", sf_name, number)
                self.ignored = True
                return
            if name in names:
                r.error("JAR_SIG_DUPLICATE_SIG_FILE_SECTION", sf_name, name)
                self.ignored = True
                return
            names.add(name)
            if whole_verified:
                continue
            manifest_section = manifest_sections.get(name)
            if manifest_section is None:
                r.error("JAR_SIG_NO_ZIP_ENTRY_DIGEST_IN_SIG_FILE", name, sf_name)
                self.ignored = True
                continue
            self._verify_section_digest(
                section, signtool, manifest_section, manifest, min_sdk, max_sdk
            )
        self.sf_entry_names = names

    def _verify_manifest_digest(
        self, main: Section, signtool: bool, manifest: bytes, min_sdk: int, max_sdk: int
    ) -> bool:
        suffix = "-Digest" if signtool else "-Digest-Manifest"
        expected = digests_to_verify(main, suffix, min_sdk, max_sdk)
        if not expected:
            self.result.warn("JAR_SIG_NO_MANIFEST_DIGEST_IN_SIG_FILE", self.sig_file.name)
            return False
        verified = True
        for d in expected:
            actual = _digest(d.algorithm, manifest)
            if actual != d.digest:
                self.result.warn(
                    "JAR_SIG_ZIP_ENTRY_DIGEST_DID_NOT_VERIFY",
                    MANIFEST_ENTRY_NAME,
                    d.algorithm,
                    self.sig_file.name,
                    _b64(actual),
                    _b64(d.digest),
                )
                verified = False
        return verified

    def _verify_main_section_digest(
        self,
        main: Section,
        manifest_main: Section | None,
        manifest: bytes,
        min_sdk: int,
        max_sdk: int,
    ) -> None:
        expected = digests_to_verify(main, "-Digest-Manifest-Main-Attributes", min_sdk, max_sdk)
        start, end = (manifest_main.start, manifest_main.end) if manifest_main else (0, 0)
        for d in expected:
            actual = _digest(d.algorithm, memoryview(manifest)[start:end])
            if actual != d.digest:
                self.result.error(
                    "JAR_SIG_MANIFEST_MAIN_SECTION_DIGEST_DID_NOT_VERIFY",
                    d.algorithm,
                    self.sig_file.name,
                    _b64(actual),
                    _b64(d.digest),
                )

    def _verify_section_digest(
        self,
        sf_section: Section,
        signtool: bool,
        manifest_section: Section,
        manifest: bytes,
        min_sdk: int,
        max_sdk: int,
    ) -> None:
        name = sf_section.name
        expected = digests_to_verify(sf_section, "-Digest", min_sdk, max_sdk)
        if not expected:
            self.result.error("JAR_SIG_NO_ZIP_ENTRY_DIGEST_IN_SIG_FILE", name, self.sig_file.name)
            return
        start, end = manifest_section.start, manifest_section.end
        # Netscape signtool digested sections without their closing blank line.
        if signtool and end >= 2 and manifest[end - 1] == 0x0A and manifest[end - 2] == 0x0A:
            end -= 1
        for d in expected:
            actual = _digest(d.algorithm, memoryview(manifest)[start:end])
            if actual != d.digest:
                self.result.error(
                    "JAR_SIG_MANIFEST_SECTION_DIGEST_DID_NOT_VERIFY",
                    name,
                    d.algorithm,
                    self.sig_file.name,
                    _b64(actual),
                    _b64(d.digest),
                )

    def _check_stripped_signatures(
        self, main: Section, supported: Mapping[int, str], found: AbstractSet[int]
    ) -> None:
        """Android N+ rejects an APK whose .SF names a supported scheme that is not present."""
        sf_name = self.sig_file.name
        listed = main.get(SF_ATTRIBUTE_APK_SIGNED)
        if listed is None:
            if found:
                self.result.warn("JAR_SIG_NO_APK_SIG_STRIP_PROTECTION", sf_name)
            return
        if not supported:
            return
        expected: set[int] = set()
        for token in listed.split(","):
            text = _java_trim(token)
            if not text:
                continue
            scheme = _java_parse_int(text)
            if scheme is None:
                continue
            if scheme in supported:
                expected.add(scheme)
            else:
                self.result.warn("JAR_SIG_UNKNOWN_APK_SIG_SCHEME_ID", sf_name, scheme)
        for scheme in sorted(expected):
            if scheme not in found:
                self.result.error(
                    "JAR_SIG_MISSING_APK_SIG_REFERENCED", sf_name, scheme, supported[scheme]
                )


def _java_trim(text: str) -> str:
    return text.strip("".join(map(chr, range(33))))


def _java_parse_int(text: str) -> int | None:
    """``Integer.parseInt``: optional sign, decimal digits (any script), 32-bit range."""
    negative = text[0] == "-"
    digits = text[1:] if text[0] in "+-" else text
    if not digits or len(digits) > 64:
        return None
    value = 0
    for c in digits:
        d = unicodedata.decimal(c, -1)
        if d < 0:
            return None
        value = value * 10 + d
    value = -value if negative else value
    return value if -(1 << 31) <= value < (1 << 31) else None


def _parse_certificates(encoded: tuple[bytes, ...] | None) -> list[_CertInfo]:
    out: list[_CertInfo] = []
    for i, raw in enumerate(_need(encoded, "certificates")):
        try:
            out.append(_cert_info(load_certificate(raw)))
        except CertificateError as e:
            raise CertificateError(f"Failed to parse certificate #{i + 1}: {e}") from None
    return out


def _read_entry(apk: ApkFile, record: CdRecord) -> bytes:
    try:
        return apk.read_entry(record)
    except ApkFormatError as e:
        raise ApkFormatError(f"Malformed ZIP entry: {record.name}: {e}") from e


def _signer_names(signers: Sequence[_Signer]) -> str:
    return "[" + ", ".join(s.name for s in signers) + "]"


def _parse_manifest(
    manifest: bytes, entry_names: AbstractSet[str], result: SchemeResult
) -> tuple[Section | None, dict[str, Section]]:
    try:
        main, sections = jar_manifest.parse(manifest)
    except jar_manifest.ManifestLimitError as e:
        raise ApkFormatError(f"{MANIFEST_ENTRY_NAME} too large: {e}") from None
    by_name: dict[str, Section] = {}
    for number, section in enumerate(sections, start=1):
        name = section.name
        if name is None:
            result.error("JAR_SIG_UNNNAMED_MANIFEST_SECTION", number)
            continue
        if name in by_name:
            by_name[name] = section
            result.error("JAR_SIG_DUPLICATE_MANIFEST_SECTION", name)
            continue
        by_name[name] = section
        if name not in entry_names:
            result.error("JAR_SIG_MISSING_ZIP_ENTRY_REFERENCED_IN_MANIFEST", name)
    return main, by_name


def _verify_entries(
    apk: ApkFile,
    records: Sequence[CdRecord],
    manifest_sections: Mapping[str, Section],
    signers: Sequence[_Signer],
    min_sdk: int,
    max_sdk: int,
    result: SchemeResult,
) -> list[_Signer]:
    """Digest every entry outside META-INF/; return the signers of the first signed one."""
    first_signers: list[_Signer] | None = None
    first_name = ""
    # Plan in local-header order, digest in parallel, then report in the same order,
    # so the issues (and their order) are those of a sequential pass.
    plan: list[tuple[str, tuple[object, ...]] | int] = []
    jobs: list[tuple[CdRecord, list[NamedDigest]]] = []
    for record in sorted(records, key=lambda rec: rec.lfh_offset):
        name = record.name
        if name.startswith("META-INF/") or name.endswith("/"):
            continue
        section = manifest_sections.get(name)
        if section is None:
            plan.append(("JAR_SIG_NO_ZIP_ENTRY_DIGEST_IN_MANIFEST", (name,)))
            continue
        entry_signers = [s for s in signers if name in s.sf_entry_names]
        if not entry_signers:
            plan.append(("JAR_SIG_ZIP_ENTRY_NOT_SIGNED", (name,)))
            continue
        if first_signers is None:
            first_signers, first_name = entry_signers, name
        elif entry_signers != first_signers:
            plan.append(
                (
                    "JAR_SIG_ZIP_ENTRY_SIGNERS_MISMATCH",
                    (first_name, _signer_names(first_signers), name, _signer_names(entry_signers)),
                )
            )
            continue
        expected = digests_to_verify(section, "-Digest", min_sdk, max_sdk)
        if not expected:
            plan.append(("JAR_SIG_NO_ZIP_ENTRY_DIGEST_IN_MANIFEST", (name,)))
            continue
        plan.append(len(jobs))
        jobs.append((record, expected))
    actuals = _digest_entries(apk, jobs)
    for step in plan:
        if not isinstance(step, int):
            result.error(step[0], *step[1])
            continue
        record, expected = jobs[step]
        for d, actual in zip(expected, actuals[step], strict=True):
            if actual != d.digest:
                result.error(
                    "JAR_SIG_ZIP_ENTRY_DIGEST_DID_NOT_VERIFY",
                    record.name,
                    d.algorithm,
                    MANIFEST_ENTRY_NAME,
                    _b64(actual),
                    _b64(d.digest),
                )
    if first_signers is None:
        result.error("JAR_SIG_NO_SIGNED_ZIP_ENTRIES")
        return []
    return first_signers


#: Below this many compressed bytes, threads cost more than they save.
_PARALLEL_MIN_BYTES = 4 << 20


def _digest_entry(apk: ApkFile, record: CdRecord, expected: Sequence[NamedDigest]) -> list[bytes]:
    """Digests of one entry's uncompressed bytes, one per expected algorithm (cached on
    the APK, so inspection's resource hashes reuse them)."""
    try:
        return apk.entry_digests(record, [_HASHLIB[d.algorithm] for d in expected])
    except ApkFormatError as e:
        raise ApkFormatError(f"Malformed ZIP entry: {record.name}: {e}") from e


def _digest_entries(
    apk: ApkFile, jobs: Sequence[tuple[CdRecord, list[NamedDigest]]]
) -> list[list[bytes]]:
    """Digest entries on the shared pool (zlib and hashlib release the GIL).

    Entries are grouped into contiguous batches of similar byte size so the file is
    still read nearly sequentially and per-task overhead stays small. The first
    malformed entry in file order raises, as in a sequential pass.
    """
    total = sum(r.compressed_size for r, _ in jobs)
    if WORKERS == 1 or total < _PARALLEL_MIN_BYTES or len(jobs) < 2:
        return [_digest_entry(apk, r, e) for r, e in jobs]
    target = max(total // (WORKERS * 8), 1)
    batches: list[range] = []
    start = 0
    acc = 0
    for i, (r, _) in enumerate(jobs):
        acc += r.compressed_size
        if acc >= target:
            batches.append(range(start, i + 1))
            start, acc = i + 1, 0
    if start < len(jobs):
        batches.append(range(start, len(jobs)))

    def run(b: range) -> list[list[bytes]]:
        return [_digest_entry(apk, jobs[i][0], jobs[i][1]) for i in b]

    out: list[list[bytes]] = []
    for part in executor().map(run, batches):
        out.extend(part)
    return out


def verify_v1(
    apk: ApkFile,
    min_sdk: int,
    max_sdk: int,
    supported_scheme_names: Mapping[int, str],
    found_scheme_ids: AbstractSet[int],
) -> SchemeResult:
    """Verify the APK's JAR signatures for every API level in ``[min_sdk, max_sdk]``.

    ``supported_scheme_names`` maps the APK Signing Block schemes the range supports
    (2, 3) to their names and ``found_scheme_ids`` lists those found in the APK: they
    drive the ``X-Android-APK-Signed`` stripping check. ``result.verified`` is True
    only when no error was found. Raises :class:`ApkFormatError` for a malformed APK
    and :class:`ValueError` when ``min_sdk > max_sdk``.
    """
    if min_sdk > max_sdk:
        raise ValueError(f"minSdkVersion ({min_sdk}) > maxSdkVersion ({max_sdk})")
    result = SchemeResult(scheme=V1)
    records = apk.cd_records()

    entry_names: set[str] = set()
    duplicates: set[str] = set()
    for record in records:
        if record.name in entry_names:
            if record.name not in duplicates:
                duplicates.add(record.name)
                result.error("JAR_SIG_DUPLICATE_ZIP_ENTRY", record.name)
        else:
            entry_names.add(record.name)
    if result.contains_errors:
        return result

    # Locate the manifest and the signature files.
    manifest_record: CdRecord | None = None
    sig_files: dict[str, CdRecord] = {}
    blocks: list[CdRecord] = []
    for record in records:
        name = record.name
        if not name.startswith("META-INF/"):
            continue
        if manifest_record is None and name == MANIFEST_ENTRY_NAME:
            manifest_record = record
        elif name.endswith(".SF"):
            sig_files[name] = record
        elif name.endswith((".RSA", ".DSA", ".EC")):
            blocks.append(record)
    if manifest_record is None:
        result.error("JAR_SIG_NO_MANIFEST")
        return result

    manifest = _read_entry(apk, manifest_record)
    manifest_main, manifest_sections = _parse_manifest(manifest, entry_names, result)
    if result.contains_errors:
        return result

    signers: list[_Signer] = []
    for block in blocks:
        sf_name = block.name[: block.name.rindex(".")] + ".SF"
        sf = sig_files.get(sf_name)
        if sf is None:
            result.warn("JAR_SIG_MISSING_FILE", block.name, sf_name)
            continue
        signer_name = block.name[len("META-INF/") :]
        info = SignerResult(
            scheme=V1,
            index=len(signers),
            name=signer_name,
            signature_file=sf.name,
            signature_block_file=block.name,
        )
        signers.append(_Signer(signer_name, block, sf, info))
    if not signers:
        result.error("JAR_SIG_NO_SIGNATURES")
        return result
    if len(signers) > MAX_APK_SIGNERS:
        result.error("JAR_SIG_MAX_SIGNATURES_EXCEEDED", MAX_APK_SIGNERS, len(signers))
        return result

    # Any signer whose block does not verify its .SF fails the APK, as on Android.
    for signer in signers:
        signer.verify_block(apk, min_sdk, max_sdk)
        if signer.result.errors:
            result.signers.append(signer.result)
    if result.contains_errors:
        return result

    remaining: list[_Signer] = []
    for signer in signers:
        signer.verify_sig_file(
            manifest,
            manifest_main,
            manifest_sections,
            supported_scheme_names,
            found_scheme_ids,
            min_sdk,
            max_sdk,
        )
        if signer.ignored:
            result.ignored_signers.append(signer.result)
        elif signer.result.errors:
            result.signers.append(signer.result)
        else:
            remaining.append(signer)
    if result.contains_errors:
        return result
    if not remaining:
        result.error("JAR_SIG_NO_SIGNATURES")
        return result

    apk_signers = _verify_entries(
        apk, records, manifest_sections, remaining, min_sdk, max_sdk, result
    )
    if result.contains_errors:
        return result

    protected = {MANIFEST_ENTRY_NAME}
    for signer in apk_signers:
        protected.add(signer.block.name)
        protected.add(signer.sig_file.name)
    for record in records:
        name = record.name
        if name.startswith("META-INF/") and not name.endswith("/") and name not in protected:
            result.warn("JAR_SIG_UNPROTECTED_ZIP_ENTRY", name)

    for signer in remaining:
        if signer in apk_signers:
            result.signers.append(signer.result)
        else:
            result.ignored_signers.append(signer.result)
    result.verified = True
    return result


def v1_manifest_digest(apk: ApkFile) -> bytes | None:
    """SHA-256 of META-INF/MANIFEST.MF, the v1 "content digest" a source stamp signs.

    None when there is no manifest (the reference then contributes no digest).
    """
    for record in apk.cd_records():
        if record.name == MANIFEST_ENTRY_NAME:
            h = hashlib.sha256()
            try:
                for chunk in apk.iter_entry_chunks(record):
                    h.update(chunk)
            except ApkFormatError as e:
                raise ApkFormatError(f"Failed to read APK: {e}") from e
            return h.digest()
    return None
