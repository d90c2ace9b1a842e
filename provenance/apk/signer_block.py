"""The signer records shared by APK Signature Schemes v2, v3 and v3.1.

A scheme block is a length-prefixed list of signers; each signer holds its signed
data (digests, certificates, [v3: SDK range], additional attributes), its
signatures, and its public key. v2 and v3 differ only in a few fields and in the
issue names they report, so one parser serves both, parameterized by ``prefix``
("V2" or "V3"); the reference's order of checks (and therefore which issue wins
when several apply) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from provenance.apk import algorithms, certs
from provenance.apk.algorithms import ContentDigest, SignatureAlgorithm
from provenance.apk.digests import DigestCache
from provenance.apk.result import SchemeResult, SignerResult
from provenance.apk.signing_block import Malformed, Reader

MAX_APK_SIGNERS = 10


def verify_signer_signatures(
    signer: SignerResult,
    prefix: str,
    signed: Reader,
    sig_records: Reader,
    public_key_bytes: bytes,
    min_sdk: int,
    max_sdk: int,
    digests_to_verify: set[ContentDigest],
    *,
    detailed_no_supported: bool,
) -> bool:
    """Parse the signatures record and verify the applicable ones over signed data.

    Returns False when an error was recorded and parsing of this signer must stop.
    """
    records, complete = _id_value_records(signer, f"{prefix}_SIG_MALFORMED_SIGNATURE", sig_records)
    supported: list[tuple[SignatureAlgorithm, bytes]] = []
    sig_ids: list[int] = []
    for alg_id, sig in records:
        sig_ids.append(alg_id)
        alg = algorithms.find_by_id(alg_id)
        if alg is None:
            signer.warn(f"{prefix}_SIG_UNKNOWN_SIG_ALGORITHM", alg_id)
            continue
        supported.append((alg, sig))
    if not complete:  # after the warnings of the records before it, as the reference
        return False
    signer.signature_alg_ids = sig_ids
    if not sig_ids:
        signer.error(f"{prefix}_SIG_NO_SIGNATURES")
        return False
    try:
        to_verify = algorithms.signatures_to_verify(supported, min_sdk, max_sdk)
    except algorithms.NoSupportedSignatures as e:
        if detailed_no_supported:
            signer.error(f"{prefix}_SIG_NO_SUPPORTED_SIGNATURES", e)
        else:
            signer.error(f"{prefix}_SIG_NO_SUPPORTED_SIGNATURES")
        return False
    data = signed.whole()
    for alg, sig in to_verify:
        try:
            key = certs.load_public_key(public_key_bytes, alg.key_type)
        except certs.PublicKeyError as e:
            signer.error(f"{prefix}_SIG_MALFORMED_PUBLIC_KEY", e)
            return False
        try:
            ok = certs.verify(key, alg.key_type, alg.hash_name, alg.padding, data, sig)
        except certs.VerifyException as e:
            signer.error(f"{prefix}_SIG_VERIFY_EXCEPTION", alg, e)
            return False
        if not ok:
            signer.error(f"{prefix}_SIG_DID_NOT_VERIFY", alg)
            return False
        signer.verified_signatures[alg] = sig
        digests_to_verify.add(alg.digest)
    return True


def parse_certificates(signer: SignerResult, prefix: str, records: Reader) -> bool:
    """Parse the certificate list; False when an error stops this signer."""
    index = -1
    while records.has_remaining():
        index += 1
        encoded = records.prefixed_bytes()
        try:
            signer.certs.append(certs.load_certificate(encoded))
        except certs.CertificateError as e:
            signer.error(f"{prefix}_SIG_MALFORMED_CERTIFICATE", index, index + 1, e)
            return False
    if not signer.certs:
        signer.error(f"{prefix}_SIG_NO_CERTIFICATES")
        return False
    return True


def check_public_key(signer: SignerResult, prefix: str, public_key_bytes: bytes) -> bool:
    """The signer's public key must be the first certificate's key, byte for byte."""
    cert = signer.certs[0]
    try:
        cert_key = cert.spki
    except certs.PublicKeyError:
        cert_key = b""
    if cert_key != public_key_bytes:
        signer.error(
            f"{prefix}_SIG_PUBLIC_KEY_MISMATCH_BETWEEN_CERTIFICATE_AND_SIGNATURES_RECORD",
            cert_key.hex(),
            public_key_bytes.hex(),
        )
        return False
    return True


def parse_digests(signer: SignerResult, prefix: str, records: Reader) -> bool:
    """Parse the digests record and check its algorithms match the signatures'."""
    digests, complete = _id_value_records(signer, f"{prefix}_SIG_MALFORMED_DIGEST", records)
    signer.content_digests.extend(digests)
    if not complete:
        return False
    sig_ids = signer.signature_alg_ids
    digest_ids = [a for a, _ in signer.content_digests]
    if sig_ids != digest_ids:
        signer.error(
            f"{prefix}_SIG_SIG_ALG_MISMATCH_BETWEEN_SIGNATURES_AND_DIGESTS_RECORDS",
            sig_ids,
            digest_ids,
        )
        return False
    return True


def verify_integrity(
    result: SchemeResult,
    prefix: str | None,
    digests_to_verify: set[ContentDigest],
    cache: DigestCache,
    signing_block_offset: int,
) -> None:
    """Compare every signer's listed digests with the APK's actual content digests.

    ``prefix`` None reproduces the reference for v3.1, which records no error on a
    mismatch (its v3 block, which is mandatory, covers the same bytes).
    """
    actual: dict[ContentDigest, bytes] = {}
    for cd in digests_to_verify:
        try:
            actual[cd] = cache.get(cd, signing_block_offset)
        except ValueError as e:  # verity digest over a misaligned signing block
            result.error("UNEXPECTED_EXCEPTION", e)
            return
    for signer in result.signers:
        for alg_id, expected in signer.content_digests:
            alg = algorithms.find_by_id(alg_id)
            if alg is None or alg.digest not in digests_to_verify:
                continue
            got = actual[alg.digest]
            if expected != got:
                if prefix is not None:
                    signer.error(
                        f"{prefix}_SIG_APK_DIGEST_DID_NOT_VERIFY",
                        alg.digest,
                        expected.hex(),
                        got.hex(),
                    )
                continue
            signer.verified_digests[alg.digest] = got


def parse_signed_records(
    signer: SignerResult, prefix: str, certs_r: Reader, public_key: bytes, digests_r: Reader
) -> bool:
    """Certificates, then the public key check, then the digests record, in the
    reference's order; False when an error stops this signer."""
    return (
        parse_certificates(signer, prefix, certs_r)
        and check_public_key(signer, prefix, public_key)
        and parse_digests(signer, prefix, digests_r)
    )


def iter_attributes(
    signer: SignerResult, prefix: str, attrs: Reader
) -> Iterator[tuple[int, bytes]]:
    """Yield (id, value) of each additional attribute, recording each on the signer.

    A malformed attribute records ``<prefix>_SIG_MALFORMED_ADDITIONAL_ATTRIBUTE`` and
    ends the iteration, as the reference stops parsing the signer there.
    """
    count = 0
    while attrs.has_remaining():
        count += 1
        try:
            a = attrs.prefixed()
            ident = a.u32()
            val = a.rest()
        except Malformed:
            signer.error(f"{prefix}_SIG_MALFORMED_ADDITIONAL_ATTRIBUTE", count)
            return
        signer.additional_attributes.append((ident, val))
        yield ident, val


def attribute_int(signer: SignerResult, prefix: str, val: bytes) -> int | None:
    """A little-endian int32 attribute value; records the malformed issue when short."""
    if len(val) < 4:
        count = len(signer.additional_attributes)
        signer.error(f"{prefix}_SIG_MALFORMED_ADDITIONAL_ATTRIBUTE", count)
        return None
    return int.from_bytes(val[:4], "little", signed=True)


def _id_value_records(
    signer: SignerResult, malformed_issue: str, records: Reader
) -> tuple[list[tuple[int, bytes]], bool]:
    """Length-prefixed ``(u32 algorithm id, length-prefixed bytes)`` records (signatures
    and digests share the layout): those read, and False when one was malformed (then
    ``malformed_issue`` is recorded with its 1-based number)."""
    out: list[tuple[int, bytes]] = []
    while records.has_remaining():
        try:
            rec = records.prefixed()
            out.append((rec.u32(), rec.prefixed_bytes()))
        except Malformed:
            signer.error(malformed_issue, len(out) + 1)
            return out, False
    return out, True
