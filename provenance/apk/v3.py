"""APK Signature Schemes v3 (Android 9+) and v3.1 (Android 13+): key rotation.

v3 signers each cover an API range and may carry a proof-of-rotation lineage;
v3.1 is a second block that lets a rotated key apply only from a later platform
version, while the v3 block keeps the original key for older ones. Follows
apksig's ``V3SchemeVerifier`` (its ``Builder`` fixes the range for each block).
"""

from __future__ import annotations

from provenance.apk import lineage as lin
from provenance.apk import signer_block as sb
from provenance.apk.algorithms import SDK_P, SDK_T, ContentDigest
from provenance.apk.digests import DigestCache
from provenance.apk.result import V3, V31, SchemeResult, SignerResult
from provenance.apk.signing_block import (
    V3_BLOCK_ID,
    V31_BLOCK_ID,
    Malformed,
    Reader,
    find_scheme_block,
)
from provenance.apk.zip import ApkFile

PROOF_OF_ROTATION_ATTR_ID = 0x3BA06F8C
ROTATION_MIN_SDK_VERSION_ATTR_ID = 0x559F8B02
ROTATION_ON_DEV_RELEASE_ATTR_ID = 0xC2A6B3BA
MIN_SDK_WITH_V31_SUPPORT = SDK_T


def verify_v3(
    apk: ApkFile,
    cache: DigestCache,
    min_sdk: int,
    max_sdk: int,
    *,
    v31: bool = False,
    rotation_min_sdk: int | None = None,
) -> SchemeResult:
    """Verify the v3 (or v3.1) block; raises SignatureNotFound when absent."""
    if v31:
        block_id = V31_BLOCK_ID
        min_sdk = max_sdk  # the reference's Builder does this for v3.1 blocks
    else:
        block_id = V3_BLOCK_ID
        min_sdk = max(min_sdk, SDK_P)
    block, value = find_scheme_block(apk, block_id)
    result = SchemeResult(V31 if v31 else V3)
    digests: set[ContentDigest] = set()
    _parse_signers(value, result, digests, max_sdk, v31, rotation_min_sdk)
    if result.contains_errors:
        return result
    sb.verify_integrity(result, None if v31 else "V3", digests, cache, block.offset)

    by_max = {s.max_sdk: s for s in result.signers}
    first_min = 0
    last_max = 0
    last_lineage_size = 0
    lineages: list[lin.Lineage] = []
    for key in sorted(by_max):
        s = by_max[key]
        if first_min == 0:
            first_min = s.min_sdk
        elif s.min_sdk != last_max + 1 and not (s.min_sdk == last_max and _dev_release(s)):
            result.error("V3_INCONSISTENT_SDK_VERSIONS")
            break
        last_max = s.max_sdk
        if s.lineage is not None:
            if len(s.lineage) < last_lineage_size:
                result.error("V3_INCONSISTENT_LINEAGES")
                break
            last_lineage_size = len(s.lineage)
            lineages.append(s.lineage)
    upper = rotation_min_sdk - 1 if rotation_min_sdk is not None else max_sdk
    if first_min > min_sdk or last_max < upper:
        result.error("V3_MISSING_SDK_VERSIONS", first_min, last_max)
    try:
        result.lineage = lin.consolidate(lineages)
    except lin.NotInLineage:
        result.error("V3_INCONSISTENT_LINEAGES")
    if not result.contains_errors:
        result.verified = True
    return result


def _dev_release(s: SignerResult) -> bool:
    return any(i == ROTATION_ON_DEV_RELEASE_ATTR_ID for i, _ in s.additional_attributes)


def _parse_signers(
    value: memoryview,
    result: SchemeResult,
    digests: set[ContentDigest],
    max_sdk: int,
    v31: bool,
    rotation_min_sdk: int | None,
) -> None:
    try:
        signers = Reader(value).prefixed()
    except Malformed:
        result.error("V3_SIG_MALFORMED_SIGNERS")
        return
    if not signers.has_remaining():
        result.error("V3_SIG_NO_SIGNERS")
        return
    count = 0
    while signers.has_remaining():
        signer = SignerResult(V31 if v31 else V3, index=count)
        count += 1
        result.signers.append(signer)
        try:
            _parse_signer(signers.prefixed(), signer, digests, max_sdk, v31, rotation_min_sdk)
        except Malformed:
            signer.error("V3_SIG_MALFORMED_SIGNER")
            return


def _parse_signer(
    r: Reader,
    signer: SignerResult,
    digests: set[ContentDigest],
    max_sdk: int,
    v31: bool,
    rotation_min_sdk: int | None,
) -> None:
    signed = r.prefixed()
    signer.min_sdk = r.i32()
    signer.max_sdk = r.i32()
    if signer.min_sdk < 0 or signer.min_sdk > signer.max_sdk:
        signer.error("V3_SIG_INVALID_SDK_VERSIONS", signer.min_sdk, signer.max_sdk)
    sigs = r.prefixed()
    public_key = r.prefixed_bytes()
    if not sb.verify_signer_signatures(
        signer,
        "V3",
        signed,
        sigs,
        public_key,
        signer.min_sdk,
        signer.max_sdk,
        digests,
        detailed_no_supported=False,
    ):
        return
    signed.pos = signed.start
    digest_records = signed.prefixed()
    cert_records = signed.prefixed()
    signed_min = signed.i32()
    if signed_min != signer.min_sdk:
        signer.error(
            "V3_MIN_SDK_VERSION_MISMATCH_BETWEEN_SIGNER_AND_SIGNED_DATA_RECORD",
            signer.min_sdk,
            signed_min,
        )
    signed_max = signed.i32()
    if signed_max != signer.max_sdk:
        signer.error(
            "V3_MAX_SDK_VERSION_MISMATCH_BETWEEN_SIGNER_AND_SIGNED_DATA_RECORD",
            signer.max_sdk,
            signed_max,
        )
    attrs = signed.prefixed()
    if not sb.parse_signed_records(signer, "V3", cert_records, public_key, digest_records):
        return
    rotation_attr_found = False
    for ident, val in sb.iter_attributes(signer, "V3", attrs):
        if ident == PROOF_OF_ROTATION_ATTR_ID:
            try:
                signer.lineage = lin.from_v3_attribute(val)
                sub = signer.lineage.sub_lineage(signer.certs[0])
                if len(sub) != len(signer.lineage):
                    signer.error("V3_SIG_POR_CERT_MISMATCH")
            except lin.LineageVerifyError:
                signer.error("V3_SIG_POR_DID_NOT_VERIFY")
            except lin.NotInLineage:
                signer.error("V3_SIG_POR_CERT_MISMATCH")
            except (lin.LineageFormatError, Malformed):
                signer.error("V3_SIG_MALFORMED_LINEAGE")
        elif ident == ROTATION_MIN_SDK_VERSION_ATTR_ID:
            rotation_attr_found = True
            if max_sdk >= MIN_SDK_WITH_V31_SUPPORT:
                attr_min = sb.attribute_int(signer, "V3", val)
                if attr_min is None:
                    return
                if rotation_min_sdk is not None:
                    if attr_min != rotation_min_sdk:
                        signer.error("V31_ROTATION_MIN_SDK_MISMATCH", attr_min, rotation_min_sdk)
                else:
                    signer.error("V31_BLOCK_MISSING", attr_min)
        elif ident == ROTATION_ON_DEV_RELEASE_ATTR_ID:
            if not v31:
                signer.warn("V31_ROTATION_TARGETS_DEV_RELEASE_ATTR_ON_V3_SIGNER")
        else:
            signer.warn("V3_SIG_UNKNOWN_ADDITIONAL_ATTRIBUTE", ident)
    if any(e.name == "V3_SIG_MALFORMED_ADDITIONAL_ATTRIBUTE" for e in signer.errors):
        return
    if rotation_min_sdk is not None and not rotation_attr_found:
        signer.warn("V31_ROTATION_MIN_SDK_ATTR_MISSING", rotation_min_sdk)
