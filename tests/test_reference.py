"""Tests of tests/reference.py, the wrapper that runs Debian's apksigner as the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import reference

CORPUS = reference.corpus_dir()

needs_corpus = pytest.mark.skipif(
    not (CORPUS / "expected_cases.tsv").is_file(),
    reason=f"apksig corpus not found at {CORPUS} (set APKPROV_SHARED)",
)
needs_apksigner = pytest.mark.skipif(
    not reference.available(), reason=f"apksigner: {reference.unavailable_reason()}"
)


VERIFIED_OUT = """\
Verifies
Verified using v1 scheme (JAR signing): true
Verified using v2 scheme (APK Signature Scheme v2): true
Verified using v3 scheme (APK Signature Scheme v3): false
Verified using v4 scheme (APK Signature Scheme v4): false
Verified for SourceStamp: false
Number of signers: 1
WARNING: APK Signature Scheme v2 signer #1: Unknown signature algorithm: 0x9901
"""


def test_parse_verified_output() -> None:
    res = reference.parse_verify_output(VERIFIED_OUT, "", 0)
    assert res.verified and res.ok
    assert res.schemes == ["v1", "v2"]
    assert res.source_stamp_verified is False
    assert res.errors == []
    assert [w.where for w in res.warnings] == ["APK Signature Scheme v2 signer #1"]
    assert res.warnings[0].message == "Unknown signature algorithm: 0x9901"
    assert res.summary() == "rc=0 verifies [v1,v2]"


def test_parse_exception_output() -> None:
    err = (
        'Exception in thread "main" com.android.apksig.apk.ApkFormatException: '
        "Malformed APK: not a ZIP archive\n\tat com.android.apksig.ApkVerifier.verify(...)\n"
    )
    res = reference.parse_verify_output("", err, 1)
    assert not res.verified
    assert res.is_format_error
    assert res.exception is not None and res.exception.endswith("not a ZIP archive")


@needs_corpus
def test_issue_names_use_the_scheme_to_break_ties() -> None:
    err = (
        "DOES NOT VERIFY\n"
        "ERROR: APK Signature Scheme v2 signer #1: No certificates\n"
        "ERROR: APK Signature Scheme v3 signer #1: No certificates\n"
        "ERROR: JAR signer CERT.RSA: JAR signature META-INF/CERT.RSA did not verify "
        "against META-INF/CERT.SF\n"
        "ERROR: Missing META-INF/MANIFEST.MF\n"
    )
    res = reference.parse_verify_output("", err, 1)
    assert not res.verified
    assert res.error_issues == [
        "V2_SIG_NO_CERTIFICATES",
        "V3_SIG_NO_CERTIFICATES",
        "JAR_SIG_DID_NOT_VERIFY",
        "JAR_SIG_NO_MANIFEST",
    ]


def test_agrees_parses_the_column() -> None:
    res = reference.parse_verify_output(VERIFIED_OUT, "", 0)
    assert reference.agrees(res, "rc=0 verifies [v1,v2]") is None
    assert reference.agrees(res, "rc=0 verifies [v2]") is not None
    assert reference.agrees(res, "rc=1 fails V2_SIG_DID_NOT_VERIFY") is not None


def _sample_cases() -> list[reference.CorpusCase]:
    if not (CORPUS / "expected_cases.tsv").is_file():
        return []
    cases = reference.corpus_cases()
    wanted = {
        "T000",  # v1+v2
        "T174",  # RSA-PSS: needs BouncyCastle
        "T175",  # RSA-PSS 16384-bit: needs rsa.max_size
        "T181",  # v2 signature does not verify
        "T198",  # truncated central directory: ApkFormatException
        "T210",  # v3 cert/public key mismatch
        "T226",  # no AndroidManifest.xml
        "T244",  # --max-sdk-version
        "T253",  # --min-sdk-version
        "T255",  # two v1 errors
        "T340",  # --v4-signature-file
        "T346",  # golden v3-only output
    }
    return [c for c in cases if c.case_id in wanted]


@needs_corpus
@needs_apksigner
@pytest.mark.apksigner
@pytest.mark.parametrize("case", _sample_cases(), ids=lambda c: f"{c.case_id}-{c.file}")
def test_verify_agrees_with_cli_deb31(case: reference.CorpusCase) -> None:
    res = reference.verify(
        CORPUS / case.file,
        min_sdk=case.min_sdk,
        max_sdk=case.max_sdk,
        v4_signature_file=CORPUS / case.v4_file if case.v4_file else None,
    )
    assert reference.agrees(res, case.expectation()) is None, res.summary()


@needs_corpus
@needs_apksigner
@pytest.mark.apksigner
@pytest.mark.parametrize(
    ("v1", "v3", "golden"),
    [
        (None, None, "golden-aligned-v1v2v3-out.apk"),
        (False, False, "golden-aligned-v2-out.apk"),
    ],
)
def test_sign_reproduces_golden_output(
    tmp_path: Path, v1: bool | None, v3: bool | None, golden: str
) -> None:
    out = tmp_path / "out.apk"
    reference.sign(
        CORPUS / "golden-aligned-in.apk",
        out,
        key=CORPUS / "rsa-2048.pk8",
        cert=CORPUS / "rsa-2048.x509.pem",
        v1=v1,
        v3=v3,
        v4=False,
    )
    assert out.read_bytes() == (CORPUS / golden).read_bytes()


@needs_corpus
@needs_apksigner
@pytest.mark.apksigner
def test_sign_with_lineage_verifies(tmp_path: Path) -> None:
    out = tmp_path / "rotated.apk"
    reference.sign(
        CORPUS / "golden-aligned-in.apk",
        out,
        key=CORPUS / "rsa-2048_2.pk8",
        cert=CORPUS / "rsa-2048_2.x509.pem",
        lineage=CORPUS / "rsa-2048-lineage-2-signers",
        v1=False,  # v1/v2 would need the oldest signer of the lineage
        v2=False,
        v4=True,
    )
    idsig = Path(str(out) + ".idsig")
    assert idsig.is_file()
    res = reference.verify(out, min_sdk=28, v4_signature_file=idsig)
    assert res.ok, res.summary()
    assert "v3" in res.schemes and "v4" in res.schemes


@needs_apksigner
@pytest.mark.apksigner
def test_sign_failure_raises(tmp_path: Path) -> None:
    bad = tmp_path / "not-an-apk.apk"
    bad.write_bytes(b"not a zip")
    key = tmp_path / "k.pk8"
    key.write_bytes(b"junk")
    with pytest.raises(reference.ApksignerError) as info:
        reference.sign(bad, tmp_path / "o.apk", key=key, cert=key)
    assert info.value.rc != 0
