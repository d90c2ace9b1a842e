"""APK Signature Scheme v2 (Android 7.0+): whole-file signatures in the signing block.

Follows apksig's ``V2SchemeVerifier``: parse every signer, verify the signatures that
apply to the API range, check certificates, public key and digests records, honour
the stripping-protection attribute, then compare content digests with the file.
"""

from __future__ import annotations

from provenance.apk import signer_block as sb
from provenance.apk.algorithms import ContentDigest
from provenance.apk.digests import DigestCache
from provenance.apk.result import V2, SchemeResult, SignerResult
from provenance.apk.signing_block import V2_BLOCK_ID, Malformed, Reader, find_scheme_block
from provenance.apk.zip import ApkFile

STRIPPING_PROTECTION_ATTR_ID = 0xBEEFF00D


def verify_v2(
    apk: ApkFile,
    cache: DigestCache,
    supported_scheme_names: dict[int, str],
    found_scheme_ids: set[int],
    min_sdk: int,
    max_sdk: int,
) -> SchemeResult:
    """Verify the v2 block; raises SignatureNotFound when the APK has none."""
    block, value = find_scheme_block(apk, V2_BLOCK_ID)
    result = SchemeResult(V2)
    digests: set[ContentDigest] = set()
    _parse_signers(
        value, result, digests, supported_scheme_names, found_scheme_ids, min_sdk, max_sdk
    )
    if result.contains_errors:
        return result
    sb.verify_integrity(result, "V2", digests, cache, block.offset)
    if not result.contains_errors:
        result.verified = True
    return result


def _parse_signers(
    value: memoryview,
    result: SchemeResult,
    digests: set[ContentDigest],
    names: dict[int, str],
    found: set[int],
    min_sdk: int,
    max_sdk: int,
) -> None:
    try:
        signers = Reader(value).prefixed()
    except Malformed:
        result.error("V2_SIG_MALFORMED_SIGNERS")
        return
    if not signers.has_remaining():
        result.error("V2_SIG_NO_SIGNERS")
        return
    count = 0
    while signers.has_remaining():
        signer = SignerResult(V2, index=count)
        count += 1
        result.signers.append(signer)
        try:
            _parse_signer(signers.prefixed(), signer, digests, names, found, min_sdk, max_sdk)
        except Malformed:
            signer.error("V2_SIG_MALFORMED_SIGNER")
            return
    if count > sb.MAX_APK_SIGNERS:
        result.error("V2_SIG_MAX_SIGNATURES_EXCEEDED", sb.MAX_APK_SIGNERS, count)


def _parse_signer(
    r: Reader,
    signer: SignerResult,
    digests: set[ContentDigest],
    names: dict[int, str],
    found: set[int],
    min_sdk: int,
    max_sdk: int,
) -> None:
    signed = r.prefixed()
    sigs = r.prefixed()
    public_key = r.prefixed_bytes()
    if not sb.verify_signer_signatures(
        signer,
        "V2",
        signed,
        sigs,
        public_key,
        min_sdk,
        max_sdk,
        digests,
        detailed_no_supported=True,
    ):
        return
    signed.pos = signed.start
    digest_records = signed.prefixed()
    cert_records = signed.prefixed()
    attrs = signed.prefixed()
    if not sb.parse_signed_records(signer, "V2", cert_records, public_key, digest_records):
        return
    expected_ids: set[int] = set()
    for ident, val in sb.iter_attributes(signer, "V2", attrs):
        if ident == STRIPPING_PROTECTION_ATTR_ID:
            scheme_id = sb.attribute_int(signer, "V2", val)
            if scheme_id is None:
                return
            if scheme_id in names:
                expected_ids.add(scheme_id)
            else:
                signer.warn("V2_SIG_UNKNOWN_APK_SIG_SCHEME_ID", signer.index, scheme_id)
        else:
            signer.warn("V2_SIG_UNKNOWN_ADDITIONAL_ATTRIBUTE", ident)
    if signer.errors:
        return
    for scheme_id in sorted(expected_ids):
        if scheme_id not in found:
            signer.error("V2_SIG_MISSING_APK_SIG_REFERENCED", signer.index, names[scheme_id])
