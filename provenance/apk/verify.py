"""Verify an APK's signatures as Android's reference verifier (apksig) does.

The order and the conditions are the reference's ``ApkVerifier.verify``:

1. v3.1 (if the range reaches API 33), v3 (API 28+), v2 (when the range starts
   below API 28 or no v3 was found), v4 when an ``.idsig`` is given;
2. targetSandboxVersion > 1 needs a v2+ signature;
3. v1 (JAR) when the range starts below API 24 or no v2+ signature was found;
4. the source stamp, reported apart;
5. cross-scheme consistency: v1 and v2 signer sets, v3 against the older signer
   (directly or through the lineage), v4 against v2/v3;
6. targetSdkVersion >= 30 needs v2+.

Any error stops at the reference's check points, so the reported issue is the one
the reference reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from provenance.apk import lineage as lin
from provenance.apk import manifest as mf
from provenance.apk.algorithms import SDK_MAX, SDK_N, SDK_O, SDK_P, SDK_R, find_by_id
from provenance.apk.certs import Certificate
from provenance.apk.digests import DigestCache
from provenance.apk.issues import Issue, IssueList
from provenance.apk.result import V1, V2, V3, V4, V31, SchemeResult, StampResult
from provenance.apk.signing_block import SignatureNotFound
from provenance.apk.v1 import verify_v1
from provenance.apk.v2 import verify_v2
from provenance.apk.v3 import MIN_SDK_WITH_V31_SUPPORT, verify_v3
from provenance.apk.zip import ApkFile, ZipFormatError
from provenance.errors import ApkFormatError, InputError

# Scheme version numbers as the reference numbers them (stamps sign per scheme).
VERSION_JAR = 1
VERSION_V2 = 2
VERSION_V3 = 3
VERSION_V31 = 31
VERSION_V4 = 4

SCHEME_NAMES = {VERSION_V2: "APK Signature Scheme v2", VERSION_V3: "APK Signature Scheme v3"}
STAMP_CERT_ENTRY = "stamp-cert-sha256"
MANIFEST_ENTRY = "AndroidManifest.xml"


@dataclass
class ApkVerificationResult(IssueList):
    """Everything the verifier found about one APK."""

    path: str
    min_sdk: int = 0
    max_sdk: int = SDK_MAX
    verified: bool = False
    schemes: dict[str, SchemeResult] = field(default_factory=dict)
    signer_certs: list[Certificate] = field(default_factory=list)
    source_stamp: StampResult | None = None

    def __post_init__(self) -> None:
        IssueList.__init__(self)

    def verified_using(self, scheme: str) -> bool:
        """True when that scheme ran and verified."""
        r = self.schemes.get(scheme)
        return bool(r and r.verified)

    @property
    def verified_schemes(self) -> list[str]:
        """Schemes that verified, in the order v1, v2, v3, v3.1, v4."""
        return [s for s in (V1, V2, V3, V31, V4) if self.verified_using(s)]

    @property
    def lineage(self) -> lin.Lineage | None:
        """The rotation lineage from v3.1, else v3."""
        for s in (V31, V3):
            r = self.schemes.get(s)
            if r is not None and r.lineage is not None:
                return r.lineage
        return None

    @property
    def contains_errors(self) -> bool:
        """The reference's ``containsErrors``.

        v4 signers' own errors do not count: the reference then simply does not
        report the APK as verified with v4 (the ``.idsig`` is a separate file).
        """
        return bool(self.all_errors()) or bool(self.source_stamp and self.source_stamp.errors)

    def all_errors(self) -> list[Issue]:
        """Top-level errors, then each scheme's (as apksigner prints them)."""
        out = list(self.errors)
        for r in self.schemes.values():
            out.extend(r.errors if r.scheme == V4 else r.all_errors())
        return out

    def all_warnings(self) -> list[Issue]:
        """Top-level warnings, then each scheme's; v4 signer errors are shown here."""
        out = list(self.warnings)
        for r in self.schemes.values():
            out.extend(r.all_warnings())
            if r.scheme == V4:
                for signer in r.signers:
                    out.extend(signer.errors)
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``apkprov verify --json`` prints for this APK."""
        signers: list[dict[str, Any]] = []
        for c in self.signer_certs:
            signers.append(
                {
                    "cert_sha256": c.sha256,
                    "subject": c.subject,
                    "key_algorithm": c.key_algorithm,
                    "key_size": c.key_size,
                }
            )
        lineage = self.lineage
        return {
            "file": self.path,
            "verified": self.verified,
            "schemes": self.verified_schemes,
            "min_sdk": self.min_sdk,
            "max_sdk": self.max_sdk,
            "signers": signers,
            "lineage": lineage.to_json() if lineage is not None else None,
            "errors": [i.to_json() for i in self.all_errors()],
            "warnings": [i.to_json() for i in self.all_warnings()],
            "source_stamp": self.source_stamp.to_json() if self.source_stamp else None,
        }


def supported_scheme_names(max_sdk: int) -> dict[int, str]:
    """Schemes the platform range knows, for stripping protection checks."""
    if max_sdk >= SDK_P:
        return dict(SCHEME_NAMES)
    if max_sdk >= SDK_N:
        return {VERSION_V2: SCHEME_NAMES[VERSION_V2]}
    return {}


def read_manifest(apk: ApkFile) -> bytes:
    """The binary AndroidManifest.xml (ApkFormatError when missing or unreadable).

    Kept as bytes: the reference reads each value with its own fallbacks (a
    malformed manifest fails minSdkVersion but gives targetSandboxVersion 1).
    """
    rec = apk.find(MANIFEST_ENTRY)
    if rec is None:
        raise ApkFormatError("Missing AndroidManifest.xml")
    try:
        return apk.read_entry(rec)
    except ZipFormatError as e:
        raise ApkFormatError(f"Failed to read AndroidManifest.xml: {e}") from None


def verify_apk(
    path: str | os.PathLike[str],
    *,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    v4_signature_file: str | os.PathLike[str] | None = None,
) -> ApkVerificationResult:
    """Verify the APK at ``path`` for API levels ``min_sdk..max_sdk``.

    ``min_sdk`` defaults to the manifest's minSdkVersion, ``max_sdk`` to no limit.
    Raises :class:`ApkFormatError` when the APK is too malformed to verify at all
    (where the reference throws) and :class:`InputError` for bad arguments.
    """
    with ApkFile(path) as apk:
        return verify_apkfile(
            apk, min_sdk=min_sdk, max_sdk=max_sdk, v4_signature_file=v4_signature_file
        )


def verify_apkfile(
    apk: ApkFile,
    *,
    min_sdk: int | None = None,
    max_sdk: int | None = None,
    v4_signature_file: str | os.PathLike[str] | None = None,
) -> ApkVerificationResult:
    """:func:`verify_apk` over an already opened :class:`ApkFile`."""
    max_sdk = SDK_MAX if max_sdk is None else max_sdk
    if min_sdk is not None:
        if min_sdk < 0:
            raise InputError(f"minSdkVersion must not be negative: {min_sdk}")
        if min_sdk > max_sdk:
            raise InputError(f"minSdkVersion ({min_sdk}) > maxSdkVersion ({max_sdk})")
    try:
        apk.sections  # noqa: B018 - locate the ZIP sections or fail early
    except ZipFormatError as e:
        raise ApkFormatError(f"Malformed APK: not a ZIP archive: {e}") from None
    manifest: bytes | None = None
    if min_sdk is None:
        manifest = read_manifest(apk)
        min_sdk = mf.min_sdk_version(manifest)
        if min_sdk > max_sdk:
            raise InputError(f"minSdkVersion from APK ({min_sdk}) > maxSdkVersion ({max_sdk})")
    result = ApkVerificationResult(str(apk.path), min_sdk, max_sdk)
    _verify(apk, result, min_sdk, max_sdk, manifest, v4_signature_file)
    return result


def _merge(result: ApkVerificationResult, r: SchemeResult) -> None:
    result.schemes[r.scheme] = r


def _digests_of(r: SchemeResult) -> dict[int, bytes]:
    """Content digests a scheme's signers list, keyed by content-digest id (for stamps)."""
    out: dict[int, bytes] = {}
    for s in r.signers:
        for alg_id, value in s.content_digests:
            alg = find_by_id(alg_id)
            if alg is not None:
                out[alg.digest.ident] = value
    return out


def _verify(
    apk: ApkFile,
    result: ApkVerificationResult,
    min_sdk: int,
    max_sdk: int,
    manifest: bytes | None,
    v4_file: str | os.PathLike[str] | None,
) -> None:
    cache = DigestCache(apk)
    names = supported_scheme_names(max_sdk)
    found: set[int] = set()
    scheme_digests: dict[int, dict[int, bytes]] = {}

    if max_sdk >= SDK_N:
        rotation_min = 0
        if max_sdk >= MIN_SDK_WITH_V31_SUPPORT:
            try:
                r31 = verify_v3(
                    apk, cache, max(min_sdk, MIN_SDK_WITH_V31_SUPPORT), max_sdk, v31=True
                )
                found.add(VERSION_V31)
                rotation_min = min((s.min_sdk for s in r31.signers), default=0)
                _merge(result, r31)
                scheme_digests[VERSION_V31] = _digests_of(r31)
            except SignatureNotFound:
                pass
            if result.contains_errors:
                return
        if max_sdk >= SDK_P:
            try:
                r3 = verify_v3(
                    apk,
                    cache,
                    max(min_sdk, SDK_P),
                    max_sdk,
                    rotation_min_sdk=rotation_min if rotation_min > 0 else None,
                )
                found.add(VERSION_V3)
                _merge(result, r3)
                scheme_digests[VERSION_V3] = _digests_of(r3)
            except SignatureNotFound:
                if VERSION_V31 in found:
                    result.error("V31_BLOCK_FOUND_WITHOUT_V3_BLOCK")
            if result.contains_errors:
                return
        if min_sdk < SDK_P or not found:
            try:
                r2 = verify_v2(apk, cache, names, found, max(min_sdk, SDK_N), max_sdk)
                found.add(VERSION_V2)
                _merge(result, r2)
                scheme_digests[VERSION_V2] = _digests_of(r2)
            except SignatureNotFound:
                pass
            if result.contains_errors:
                return
        if v4_file is not None:
            from provenance.apk.v4 import verify_v4  # only with an .idsig: keep start-up lean

            r4 = verify_v4(apk, str(v4_file))
            found.add(VERSION_V4)
            _merge(result, r4)
            if result.contains_errors:
                return

    if max_sdk >= SDK_O:
        if manifest is None:
            manifest = read_manifest(apk)
        sandbox = mf.target_sandbox_version(manifest)
        if sandbox > 1 and not found:
            result.error("NO_SIG_FOR_TARGET_SANDBOX_VERSION", sandbox)

    if min_sdk < SDK_N or not found:
        r1 = verify_v1(apk, min_sdk, max_sdk, names, found)
        _merge(result, r1)
    if result.contains_errors:
        return

    _verify_stamp(apk, result, scheme_digests, min_sdk, max_sdk)
    if result.contains_errors:
        return

    _cross_check(result)
    if result.contains_errors:
        return

    if manifest is None:
        try:
            manifest = read_manifest(apk)
        except ApkFormatError:
            manifest = None
    if manifest is not None:
        target = mf.target_sdk_version(manifest)
        if (
            target >= SDK_R
            and max_sdk >= target
            and not (
                result.verified_using(V2) or result.verified_using(V3) or result.verified_using(V31)
            )
        ):
            result.error("MIN_SIG_SCHEME_FOR_TARGET_SDK_NOT_MET", target, VERSION_V2)
    if result.contains_errors:
        return

    result.verified = True
    for scheme in (V31, V3):
        if result.verified_using(scheme):
            last = result.schemes[scheme].signers[-1]
            if last.cert is not None:
                result.signer_certs.append(last.cert)
            return
    for scheme in (V2, V1):
        if result.verified_using(scheme):
            result.signer_certs.extend(
                s.cert for s in result.schemes[scheme].signers if s.cert is not None
            )
            return
    raise AssertionError("APK verified, but not by any of v1, v2 or v3")


def _verify_stamp(
    apk: ApkFile,
    result: ApkVerificationResult,
    scheme_digests: dict[int, dict[int, bytes]],
    min_sdk: int,
    max_sdk: int,
) -> None:
    rec = apk.find(STAMP_CERT_ENTRY)
    if rec is None:
        return
    # Only stamped APKs need the stamp verifier (start-up matters for one-shot use).
    from provenance.apk.stamp import jar_manifest_digests, verify_source_stamp

    if V1 in result.schemes:  # the stamp signs the v1 digest only when v1 was checked
        try:
            scheme_digests[VERSION_JAR] = jar_manifest_digests(apk)
        except ZipFormatError as e:
            raise ApkFormatError(f"Failed to read APK: {e}") from None
    try:
        cert_digest = apk.read_entry(rec, limit=1 << 16)
        result.source_stamp = verify_source_stamp(
            apk, cert_digest, scheme_digests, max(min_sdk, SDK_R), max_sdk
        )
    except SignatureNotFound:
        stamp = StampResult()
        stamp.warn("SOURCE_STAMP_SIG_MISSING")
        result.source_stamp = stamp
    except ZipFormatError as e:
        raise ApkFormatError(f"Failed to read APK: {e}") from None


def _cross_check(result: ApkVerificationResult) -> None:
    """Signer consistency between schemes."""
    if result.verified_using(V1) and result.verified_using(V2):
        v1s = result.schemes[V1].signers
        v2s = result.schemes[V2].signers
        v1c = [s.cert for s in v1s]
        v2c = [s.cert for s in v2s]
        for i, c in enumerate(v1c):
            if c not in v2c:
                v1s[i].error("V2_SIG_MISSING")
                break
        for i, c in enumerate(v2c):
            if c not in v1c:
                v2s[i].error("JAR_SIG_MISSING")
                break

    if result.verified_using(V3) and (result.verified_using(V1) or result.verified_using(V2)):
        old_scheme = V1 if result.verified_using(V1) else V2
        olds = result.schemes[old_scheme].signers
        if len(olds) != 1:
            result.error("V3_SIG_MULTIPLE_PAST_SIGNERS")
        old_cert = olds[0].cert
        v3 = result.schemes[V3]
        if v3.lineage is None:
            if len(v3.signers) != 1:
                result.error("V3_SIG_MULTIPLE_SIGNERS")
            if old_cert != v3.signers[0].cert:
                result.error("V3_SIG_PAST_SIGNERS_MISMATCH")
        else:
            try:
                if old_cert is None or len(v3.lineage.sub_lineage(old_cert)) != 1:
                    result.error("V3_SIG_PAST_SIGNERS_MISMATCH")
            except lin.NotInLineage:
                result.error("V3_SIG_PAST_SIGNERS_MISMATCH")

    if result.verified_using(V4):
        from provenance.apk.v4 import check_v4

        check_v4(
            result,
            result.schemes[V4],
            result.schemes.get(V2),
            result.schemes.get(V3),
            result.schemes.get(V31),
        )
