"""Risk policies: the shipped default, validation on load, overlays, and their effect."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from apk_variants import FDROID, assess, corpus_apk, fdroid_catalog

from provenance.errors import PolicyError
from provenance.inspect import inspect_apk
from provenance.risk import Verdict, evaluate, load_policy
from provenance.risk.evaluate import decide, rate
from provenance.risk.findings import Evidence, Observation, Severity
from provenance.risk.policy import DEFAULT_POLICY
from provenance.risk.rules import RULES

ANOTHER_KEY = FDROID / "apks" / "repo__obb.mainpatch.current_1619_another-release-key.apk"


def test_default_policy_rates_every_rule() -> None:
    p = load_policy()
    assert p.name == "default"
    assert set(p.rules) == set(RULES)
    assert p.precedence == (Verdict.REPACKAGED, Verdict.COUNTERFEIT, Verdict.HOT_SWAPPED)
    assert p.rule("signer.not-allowed").verdict is Verdict.COUNTERFEIT
    assert p.rule("package.unregistered").verdict is None
    # a decisive finding alone reaches its verdict's threshold
    decisive = (
        "signature.not-verified",
        "signer.not-allowed",
        "permission.undeclared",
        "sdk.undeclared",
        "code.dynamic-loading",
        "code.runtime-report",
        "repackage.content-shared",
        "container.prefix-data",
        "name.impersonation",
    )
    for rid in decisive:
        r = p.rule(rid)
        assert r.verdict is not None
        assert r.weight * r.confidence >= p.thresholds[r.verdict] - 1e-9, rid


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _default_text() -> str:
    return DEFAULT_POLICY.read_text(encoding="utf-8")


INVALID = [
    ('schema = "apkprov.risk-policy/1"', 'schema = "x/1"', "schema must be"),
    ('severity = "critical"', 'severity = "severe"', "severity must be one of"),
    ("confidence = 0.9", "confidence = 1.5", r"confidence must be in \[0, 1\]"),
    ("weight = 0.5", "weight = -1", "weight must be >= 0"),
    ('verdict = "counterfeit"', 'verdict = "evil"', "verdict must be one of"),
    ("[limits]", '[rules."no.such-rule"]\nseverity = "low"\n[limits]', "unknown rule"),
    ('[rules."feature.undeclared"]', '[rules_off."feature.undeclared"]', "unknown key"),
    ("counterfeit = 1.0", "counterfeit = 0", "threshold.counterfeit must be > 0"),
    ('precedence = ["repackaged", "counterfeit"', 'precedence = ["repackaged"', "precedence"),
    ("resource_threshold = 0.6", "resource_threshold = 2", r"must be in \[0.0, 1.0\]"),
    ("min_classes = 3", "min_classes = 2.5", "must be an integer"),
    ("max_evidence = 50", "max_evidence = inf", "finite number"),
    ("[similarity]", "[similarity]\nunknown = 1", "unknown key"),
    ("frameworks = []", 'frameworks = "Tinker"', "list of strings"),
    ("[verdicts]", "[verdicts", "not valid TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), INVALID, ids=[m for _, _, m in INVALID])
def test_invalid_policies(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = _default_text().replace(old, new, 1)
    assert text != _default_text()
    with pytest.raises(PolicyError, match=message):
        load_policy(_write(tmp_path, text))


def test_missing_rule_is_an_error(tmp_path: Path) -> None:
    head, rest = _default_text().split('[rules."feature.undeclared"]')
    text = head + "[rules." + rest.split("[rules.", 1)[1]
    assert "feature.undeclared" not in tomllib.loads(text)["rules"]
    with pytest.raises(PolicyError, match=r"not rated: feature.undeclared"):
        load_policy(_write(tmp_path, text))


def test_missing_file_and_bad_bytes(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(bad)


def test_extends_default_overrides_only_what_it_names(tmp_path: Path) -> None:
    p = load_policy(
        _write(
            tmp_path,
            'schema = "apkprov.risk-policy/1"\nname = "lenient"\nextends = "default"\n'
            '[rules."signer.not-allowed"]\nseverity = "medium"\nconfidence = 1.0\n'
            'verdict = "none"\nweight = 0.0\n',
        )
    )
    assert p.name == "lenient"
    assert p.rule("signer.not-allowed").verdict is None
    assert p.rule("signature.not-verified").verdict is Verdict.COUNTERFEIT
    a = assess(corpus_apk(ANOTHER_KEY), fdroid_catalog())
    assert a.verdict is Verdict.COUNTERFEIT
    b = evaluate(inspect_apk(ANOTHER_KEY), fdroid_catalog(), policy=p)
    assert b.verdict is Verdict.CLEAN
    assert b.finding("signer.not-allowed") is not None  # still reported, not decisive
    with pytest.raises(PolicyError, match="only 'default'"):
        load_policy(_write(tmp_path, 'extends = "strict"\n'))


def test_disabled_rule_is_dropped(tmp_path: Path) -> None:
    text = _default_text().replace(
        '[rules."signer.not-allowed"]\n', '[rules."signer.not-allowed"]\nenabled = false\n'
    )
    p = load_policy(_write(tmp_path, text))
    obs = [Observation("signer.not-allowed", (Evidence("signer", "x"),), "s")]
    assert rate(obs, p) == []


def test_scores_add_up_to_a_verdict() -> None:
    p = load_policy()
    half = Observation("release.file-differs", (), "file differs")  # 0.5 x 0.8
    feature = Observation("feature.undeclared", (), "feature")  # 0.25 x 0.8
    findings = rate([half, feature], p)
    verdict, scores = decide(findings, p)
    assert verdict is Verdict.CLEAN
    assert scores[Verdict.HOT_SWAPPED] == pytest.approx(0.6)
    findings = rate([half, feature, half], p)
    assert decide(findings, p)[0] is Verdict.HOT_SWAPPED
    # certainty scales confidence
    (f,) = rate([Observation("permission.undeclared", (), "p", certainty=0.7)], p)
    assert f.confidence == pytest.approx(0.7)
    assert f.severity is Severity.HIGH
