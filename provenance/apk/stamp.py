"""Source stamps: a second, distributor-held signature over the APK's content digests.

A stamped APK carries the SHA-256 of the stamp certificate in the ZIP entry
``stamp-cert-sha256`` and, in the APK Signing Block, a V2 source stamp block
(ID 0x6dff800d). That block signs, per signature scheme, the content digests the
APK's own signers listed, plus optional attributes (timestamp, stamp key lineage).
The rules are apksig's ``V2SourceStampVerifier`` / ``SourceStampVerifier`` /
``SourceStampCertificateLineage``, step for step, because which issue gets
reported depends on the exact order of the checks.

Scheme numbers (the keys of ``scheme_digests`` and of the signed block) are
apksig's ``Constants``::

    VERSION_SOURCE_STAMP = 0            (never a key here)
    VERSION_JAR_SIGNATURE_SCHEME = 1    (v1: SHA-256 of META-INF/MANIFEST.MF)
    VERSION_APK_SIGNATURE_SCHEME_V2 = 2
    VERSION_APK_SIGNATURE_SCHEME_V3 = 3
    VERSION_APK_SIGNATURE_SCHEME_V31 = 31  (present -> info message only, never checked)

The v1 digest is filed under content-digest ID 4 (apksig ``ContentDigestAlgorithm.SHA256``,
which :class:`ContentDigest` does not model); pass it as ``{SHA256_DIGEST_ID: digest}``,
e.g. from :func:`jar_manifest_digests`.

How the stamp affects the APK's verdict (apksig ``ApkVerifier``): not at all. The stamp
verifier only ever records *warnings* (and info messages) on its single signer;
``Result.mergeFrom(ApkSigResult)`` copies nothing into the APK's errors or warnings,
it only keeps ``isSourceStampVerified`` and a ``SourceStampInfo``; and
``containsErrors()`` looks at the stamp's *errors* (always empty) and at its warnings
only when warnings are treated as errors. A missing stamp block is a top-level
*warning* (``SOURCE_STAMP_SIG_MISSING``). The one way a stamp stops verification is
a negative length prefix in a place where apksig lets ``IllegalArgumentException``
escape: that raises :class:`StampFormatError` here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.apk import certs
from provenance.apk.algorithms import (
    ContentDigest,
    NoSupportedSignatures,
    SignatureAlgorithm,
    find_by_id,
    signatures_to_verify,
)
from provenance.apk.certs import Certificate
from provenance.apk.issues import ISSUE_FORMATS, Issue
from provenance.apk.lineage import Lineage, LineageNode
from provenance.apk.result import StampResult
from provenance.apk.signing_block import (
    SOURCE_STAMP_V2_BLOCK_ID,
    Malformed,
    Reader,
    find_scheme_block,
)
from provenance.apk.zip import ApkFile
from provenance.errors import ApkFormatError

VERSION_SOURCE_STAMP = 0
VERSION_JAR_SIGNATURE_SCHEME = 1
VERSION_APK_SIGNATURE_SCHEME_V2 = 2
VERSION_APK_SIGNATURE_SCHEME_V3 = 3
VERSION_APK_SIGNATURE_SCHEME_V31 = 31

#: apksig ``ContentDigestAlgorithm.SHA256``: the id the v1 manifest digest is signed under.
SHA256_DIGEST_ID = 4

STAMP_CERT_ENTRY = "stamp-cert-sha256"
MANIFEST_ENTRY = "META-INF/MANIFEST.MF"
PROOF_OF_ROTATION_ATTR_ID = 0x9D6303F7
STAMP_TIME_ATTR_ID = 0xE43C5946
LINEAGE_VERSION = 1

#: Issues apksig records as *info messages*: they never make the stamp fail.
INFO_ISSUES = frozenset(
    {
        "SOURCE_STAMP_UNKNOWN_SIG_ALGORITHM",
        "SOURCE_STAMP_UNKNOWN_ATTRIBUTE",
        "SOURCE_STAMP_SIGNATURE_SCHEME_NOT_AVAILABLE",
    }
)

DigestKey = ContentDigest | int
#: One scheme's digests, keyed by :class:`ContentDigest` or by raw content-digest id.
DigestMap = Mapping[ContentDigest, bytes] | Mapping[int, bytes] | Mapping[DigestKey, bytes]


class StampFormatError(ApkFormatError):
    """A negative length prefix where apksig throws ``IllegalArgumentException``.

    apksig's ``getLengthPrefixedSlice`` rejects a negative length with an unchecked
    exception that ``ApkVerifier.verify`` does not catch, so the whole verification
    aborts; this mirrors that instead of inventing an issue apksig never reports.
    """


class _NegativeLength(Exception):
    """Internal: apksig's IllegalArgumentException from ``getLengthPrefixedSlice``."""


class _WrongVersion(_NegativeLength):
    """Internal: apksig throws IllegalArgumentException for an unknown lineage version too."""


class _LineageParse(Exception):
    """Internal: apksig's IOException / RuntimeException while reading a stamp lineage."""


class _LineageSecurity(Exception):
    """Internal: apksig's SecurityException while reading a stamp lineage."""


@dataclass(eq=False)
class SourceStampResult(StampResult):
    """A :class:`StampResult` with the rest of apksig's ``SourceStampInfo``.

    ``warnings`` holds only real warnings (any one means not verified); info
    messages, which apksig keeps apart and which never fail the stamp, are in
    ``info``. ``certs`` is every stamp certificate parsed (apksig ``certs``),
    ``lineage_certs`` the stamp key's lineage, oldest first (``certificateLineage``).
    """

    certs: list[Certificate] = field(default_factory=list)
    lineage_certs: list[Certificate] = field(default_factory=list)
    info: list[Issue] = field(default_factory=list)

    def note(self, name: str, *params: Any) -> None:
        """Record an info message (apksig ``addInfoMessage``)."""
        if name not in ISSUE_FORMATS:
            raise ValueError(f"unknown issue {name}")
        self.info.append(Issue(name, params))

    def to_json(self) -> dict[str, Any]:
        """JSON form: the base fields plus info messages, timestamp and lineage."""
        out = super().to_json()
        out["info"] = [i.to_json() for i in self.info]
        out["timestamp"] = self.timestamp
        out["lineage"] = [c.sha256 for c in self.lineage_certs]
        return out


def jar_manifest_digests(apk: ApkFile) -> dict[int, bytes]:
    """The v1 (JAR) entry of ``scheme_digests``: ``{4: SHA-256(MANIFEST.MF)}``.

    Empty when there is no manifest, as in apksig: the stamp then still needs a
    signature for scheme 1, over an empty digest list, which will not verify.
    Raises :class:`~provenance.apk.zip.ZipFormatError` when the entry is unreadable.
    """
    rec = apk.find(MANIFEST_ENTRY)
    if rec is None:
        return {}
    return {SHA256_DIGEST_ID: hashlib.sha256(apk.read_entry(rec)).digest()}


def encode_digests(digests: DigestMap) -> bytes:
    """What the stamp signs for one scheme: its digests sorted by id, each as
    ``u32 len | u32 id | u32 len | digest`` (apksig
    ``encodeAsSequenceOfLengthPrefixedPairsOfIntAndLengthPrefixedBytes``)."""
    pairs = sorted(
        ((k.ident if isinstance(k, ContentDigest) else k), v) for k, v in digests.items()
    )
    out = bytearray()
    for ident, value in pairs:
        out += struct.pack("<IiI", 8 + len(value), ident, len(value))
        out += value
    return bytes(out)


def verify_source_stamp(
    apk: ApkFile,
    stamp_cert_digest: bytes,
    scheme_digests: Mapping[int, DigestMap],
    min_sdk: int,
    max_sdk: int,
) -> SourceStampResult:
    """Verify the V2 source stamp block against the schemes' content digests.

    ``stamp_cert_digest`` is the raw content of ``stamp-cert-sha256``;
    ``scheme_digests`` maps scheme numbers (see the module doc) to that scheme's
    content digests. ApkVerifier passes ``max(minSdk, 30)`` as ``min_sdk``.
    Raises :class:`~provenance.apk.signing_block.SignatureNotFound` when there is no
    V2 stamp block (a V1 stamp block, 0x2b09189e, is ignored as ApkVerifier ignores
    it) and :class:`StampFormatError` where apksig throws.
    """
    _, block = find_scheme_block(apk, SOURCE_STAMP_V2_BLOCK_ID)
    encoded = {k: encode_digests(v) for k, v in scheme_digests.items()}
    result = SourceStampResult()
    try:
        data = _slice(Reader(block))
        _verify_v2_stamp(data, result, encoded, stamp_cert_digest, min_sdk, max_sdk)
        result.verified = not result.errors and not result.warnings
    except Malformed:
        result.warn("SOURCE_STAMP_MALFORMED_SIGNATURE")
    except _NegativeLength:
        raise StampFormatError("Negative length in the source stamp block") from None
    return result


def _slice(r: Reader) -> Reader:
    """apksig ``getLengthPrefixedSlice``: a negative length is not a format error."""
    if r.remaining >= 4 and struct.unpack_from("<i", r.buf, r.pos)[0] < 0:
        raise _NegativeLength
    return r.prefixed()


def _verify_v2_stamp(
    data: Reader,
    result: SourceStampResult,
    encoded: Mapping[int, bytes],
    stamp_cert_digest: bytes,
    min_sdk: int,
    max_sdk: int,
) -> None:
    cert = _stamp_certificate(data, stamp_cert_digest, result)
    if cert is None or result.warnings:
        return
    signed_schemes = _slice(data)
    per_scheme: dict[int, Reader] = {}
    while signed_schemes.has_remaining():
        scheme = _slice(signed_schemes)
        scheme_id = scheme.i32()
        per_scheme[scheme_id] = _slice(scheme)
    # apksig walks a HashMap keyed by these small ints: ascending order.
    for scheme_id in sorted(encoded):
        if scheme_id == VERSION_APK_SIGNATURE_SCHEME_V31:
            result.note("SOURCE_STAMP_SIGNATURE_SCHEME_NOT_AVAILABLE", scheme_id)
            continue
        sigs = per_scheme.get(scheme_id)
        if sigs is None:
            result.warn("SOURCE_STAMP_NO_SIGNATURE")
            return
        _verify_signatures(encoded[scheme_id], min_sdk, max_sdk, cert, sigs, result)
        if result.warnings:
            return
    if data.has_remaining():
        attrs = _slice(data)
        attr_sigs = _slice(data)
        _verify_signatures(attrs.whole(), min_sdk, max_sdk, cert, attr_sigs, result)
        if result.warnings:
            return
        _parse_attributes(Reader(attrs.buf, attrs.start, attrs.end), cert, result)


def _stamp_certificate(
    data: Reader, expected_digest: bytes, result: SourceStampResult
) -> certs.Certificate | None:
    """Parse the stamp certificate and check it against ``stamp-cert-sha256``."""
    encoded = data.prefixed_bytes()
    try:
        parsed = certs.load_certificate(encoded)
    except certs.CertificateError as e:
        result.warn("SOURCE_STAMP_MALFORMED_CERTIFICATE", e)
        return None
    # Identity is the bytes as stored (apksig GuaranteedEncodedFormX509Certificate).
    cert = certs.Certificate(encoded, parsed.cert)
    result.certs.append(cert)
    if result.cert is None:
        result.cert = cert
    actual = hashlib.sha256(encoded).digest()
    if actual != expected_digest:
        result.warn(
            "SOURCE_STAMP_CERTIFICATE_MISMATCH_BETWEEN_SIGNATURE_BLOCK_AND_APK",
            actual.hex(),
            bytes(expected_digest).hex(),
        )
        return None
    return cert


def _verify_signatures(
    data: bytes,
    min_sdk: int,
    max_sdk: int,
    cert: certs.Certificate,
    signatures: Reader,
    result: SourceStampResult,
) -> None:
    """apksig ``verifySourceStampSignature``: the strongest signature per API level."""
    count = 0
    supported: list[tuple[SignatureAlgorithm, bytes]] = []
    while signatures.has_remaining():
        count += 1
        try:
            sig = _slice(signatures)
            alg_id = sig.u32()
            sig_bytes = sig.prefixed_bytes()
        except Malformed:
            result.warn("SOURCE_STAMP_MALFORMED_SIGNATURE", count)
            return
        alg = find_by_id(alg_id)
        if alg is None:
            result.note("SOURCE_STAMP_UNKNOWN_SIG_ALGORITHM", alg_id)
            continue
        supported.append((alg, sig_bytes))
    if not supported:
        result.warn("SOURCE_STAMP_NO_SIGNATURE")
        return
    try:
        chosen = signatures_to_verify(supported, min_sdk, max_sdk, only_jca=True)
    except NoSupportedSignatures as e:
        names = ", ".join(a.name for a, _ in supported)
        result.warn("SOURCE_STAMP_NO_SUPPORTED_SIGNATURE", names, e)
        return
    for alg, sig_bytes in chosen:
        try:
            ok = certs.verify(
                cert.public_key, alg.key_type, alg.hash_name, alg.padding, data, sig_bytes
            )
        except (certs.PublicKeyError, certs.VerifyException) as e:
            result.warn("SOURCE_STAMP_VERIFY_EXCEPTION", alg, e)
            return
        if not ok:
            result.warn("SOURCE_STAMP_DID_NOT_VERIFY", alg)
            return


def _parse_attributes(data: Reader, cert: certs.Certificate, result: SourceStampResult) -> None:
    """apksig ``parseStampAttributes``: lineage, timestamp, unknown ids as info."""
    attrs = _slice(data)
    count = 0
    while attrs.has_remaining():
        count += 1
        try:
            attr = _slice(attrs)
            attr_id = attr.u32()
            value = attr.rest()
            if attr_id == PROOF_OF_ROTATION_ATTR_ID:
                _read_lineage_attribute(value, cert, result)
            elif attr_id == STAMP_TIME_ATTR_ID:
                if len(value) < 8:
                    raise Malformed("timestamp shorter than 8 bytes")
                (timestamp,) = struct.unpack_from("<q", value)
                if timestamp > 0:
                    result.timestamp = int(timestamp)
                else:
                    result.warn("SOURCE_STAMP_INVALID_TIMESTAMP", int(timestamp))
            else:
                result.note("SOURCE_STAMP_UNKNOWN_ATTRIBUTE", attr_id)
        except Malformed:
            result.warn("SOURCE_STAMP_MALFORMED_ATTRIBUTE", count)
            return


def _read_lineage_attribute(
    value: bytes, cert: certs.Certificate, result: SourceStampResult
) -> None:
    """apksig ``readStampCertificateLineage``: every failure becomes one warning.

    The mapping is apksig's catch clauses: SecurityException -> POR_DID_NOT_VERIFY,
    IllegalArgumentException (wrong version, negative slice length) ->
    POR_CERT_MISMATCH, anything else (truncation, an empty attribute, an unknown
    algorithm, no node at all) -> MALFORMED_LINEAGE.
    """
    try:
        nodes = _read_stamp_lineage(value)
        if nodes is None:
            raise _LineageParse("empty lineage")
        # Several lineage attributes append to one list (apksig certificateLineage).
        result.lineage_certs.extend(n.cert for n in nodes)
        if nodes:
            before = result.lineage.nodes if result.lineage is not None else ()
            result.lineage = Lineage((*before, *nodes))
        if not result.lineage_certs:
            raise _LineageParse("no node in lineage")
        if cert != result.lineage_certs[-1]:
            result.warn("SOURCE_STAMP_POR_CERT_MISMATCH")
    except _LineageSecurity:
        result.warn("SOURCE_STAMP_POR_DID_NOT_VERIFY")
    except _NegativeLength:
        result.warn("SOURCE_STAMP_POR_CERT_MISMATCH")
    except _LineageParse:
        result.warn("SOURCE_STAMP_MALFORMED_LINEAGE")


def _read_stamp_lineage(value: bytes) -> list[LineageNode] | None:
    """apksig ``SourceStampCertificateLineage.readSigningCertificateLineage``.

    Differs from the v3 lineage reader in what each failure is reported as, hence
    its own copy. Returns None for empty input, as apksig does.
    """
    if not value:
        return None
    r = Reader(value)
    nodes: list[LineageNode] = []
    seen: set[certs.Certificate] = set()
    last_cert: certs.Certificate | None = None
    last_alg_id = 0
    count = 0
    try:
        if r.i32() != LINEAGE_VERSION:
            raise _WrongVersion
        while r.has_remaining():
            count += 1
            node = _slice(r)
            signed = _slice(node)
            flags = node.i32()
            sig_alg_id = node.u32()
            parent_alg = find_by_id(last_alg_id)
            signature = node.prefixed_bytes()
            if last_cert is not None:
                if parent_alg is None:  # apksig: NullPointerException
                    raise _LineageParse(f"unknown signature algorithm {last_alg_id:#x}")
                try:
                    ok = certs.verify(
                        last_cert.public_key,
                        parent_alg.key_type,
                        parent_alg.hash_name,
                        parent_alg.padding,
                        signed.whole(),
                        signature,
                    )
                except (certs.PublicKeyError, certs.VerifyException) as e:
                    raise _LineageSecurity(str(e)) from None
                if not ok:
                    raise _LineageSecurity(f"certificate #{count} signature did not verify")
            encoded = signed.prefixed_bytes()
            signed_alg_id = signed.u32()
            if last_cert is not None and last_alg_id != signed_alg_id:
                raise _LineageSecurity(f"signing algorithm ID mismatch for certificate #{count}")
            try:
                parsed = certs.load_certificate(encoded)
            except certs.CertificateError as e:
                raise _LineageSecurity(str(e)) from None
            cert = certs.Certificate(encoded, parsed.cert)
            if cert in seen:
                raise _LineageSecurity(f"duplicate certificate #{count}")
            seen.add(cert)
            nodes.append(LineageNode(cert, signed_alg_id, sig_alg_id, signature, flags))
            last_cert = cert
            last_alg_id = sig_alg_id
    except Malformed as e:
        raise _LineageParse(str(e)) from None
    return nodes
