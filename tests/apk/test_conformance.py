"""Conformance with the reference: every case of apksig's own test corpus.

The oracle is ``expected.tsv`` (see ``../shared/corpus/apksig/README.md``): for each
APK and configuration, whether the reference verifies it, which issue it reports
when it does not, and which schemes it reports as verified.
"""

from __future__ import annotations

import pytest
from corpus import Case, apksig_cases, apksig_dir, require

from provenance.apk.verify import verify_apk
from provenance.errors import ApkFormatError, InputError

# Cases where this verifier knowingly differs from the reference, with the reason.
KNOWN_DIFFERENCES: dict[str, str] = {}

CASES = apksig_cases()


def _param(c: Case) -> object:
    reason = KNOWN_DIFFERENCES.get(c.id)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: Case) -> None:
    base = require(apksig_dir())
    v4 = str(base / case.v4_file) if case.v4_file else None
    if case.expected.startswith("error:"):
        with pytest.raises((ApkFormatError, InputError)):
            verify_apk(
                base / case.file, min_sdk=case.min_sdk, max_sdk=case.max_sdk, v4_signature_file=v4
            )
        return
    res = verify_apk(
        base / case.file, min_sdk=case.min_sdk, max_sdk=case.max_sdk, v4_signature_file=v4
    )
    errors = [i.name for i in res.all_errors()]
    if case.expected == "verifies":
        assert res.verified, f"expected to verify, got errors {errors}"
        if case.schemes:
            assert tuple(res.verified_schemes) == case.schemes
        if case.stamp:
            assert res.source_stamp is not None
            stamp_issues = [i.name for i in res.source_stamp.errors + res.source_stamp.warnings]
            assert case.stamp in stamp_issues
            assert res.source_stamp.status != "verified"
        warnings = [i.name for i in res.all_warnings()]
        for w in case.warnings:
            assert w in warnings
    else:
        assert not res.verified, "expected to fail, but it verified"
        if case.issues:
            assert any(i in errors for i in case.issues), (
                f"expected one of {case.issues}, got {errors}"
            )


def test_corpus_is_complete() -> None:
    """Guard against silently testing nothing: the oracle has ~390 APKs."""
    require(apksig_dir())
    assert len({c.file for c in CASES}) >= 380
