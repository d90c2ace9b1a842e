"""Between the risk engine and the log: inspection statements and the verdict they imply.

The inspection/v1 predicate says ``pass``, ``warn`` or ``fail`` and lists findings by
rule id; it has no field for the risk verdict (counterfeit, repackaged, hot_swapped).
So :func:`inspection_predicate` writes the verdict as a first pseudo-finding
``verdict:<kind>`` (the finding-id pattern allows it), and :func:`inspection_kind`
reads it back -- falling back, for inspections written by other tools, to what the
shipped risk policy says each finding id decides. Either way the mapping is data in
the signed statement or in the policy file, never a guess in the index.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from provenance.errors import ProvenanceError
from provenance.risk import Assessment, Severity
from provenance.risk.findings import Verdict as RiskVerdict
from provenance.statements import LogRef
from provenance.verdicts.model import VerdictKind

__all__ = [
    "VERDICT_FINDING_PREFIX",
    "finding_sentences",
    "inspection_kind",
    "inspection_predicate",
]

VERDICT_FINDING_PREFIX = "verdict:"
_WARNING_KINDS = {
    "counterfeit": VerdictKind.COUNTERFEIT,
    "repackaged": VerdictKind.REPACKAGED,
    "hot_swapped": VerdictKind.HOT_SWAPPED,
}
_SEVERITY_RANK = {s.value: s.rank for s in Severity}
_MAX_FINDINGS = 256
_MAX_EVIDENCE = 32


@functools.cache
def _rule_verdicts() -> dict[str, VerdictKind]:
    """Finding id → verdict, from the shipped risk policy (empty if it cannot load)."""
    from provenance.risk import load_policy

    try:
        policy = load_policy()
    except ProvenanceError:
        return {}
    return {
        rid: _WARNING_KINDS[rule.verdict.value]
        for rid, rule in policy.rules.items()
        if rule.verdict is not None and rule.enabled
    }


def inspection_kind(predicate: Mapping[str, Any]) -> VerdictKind | None:
    """The warning an inspection implies, or None (it passed, or names no verdict)."""
    if predicate.get("verdict") == "pass":
        return None
    findings = predicate.get("findings") or []
    kinds = {
        _WARNING_KINDS[f["id"][len(VERDICT_FINDING_PREFIX) :]]
        for f in findings
        if f["id"].startswith(VERDICT_FINDING_PREFIX)
        and f["id"][len(VERDICT_FINDING_PREFIX) :] in _WARNING_KINDS
    }
    if not kinds:
        table = _rule_verdicts()
        kinds = {table[f["id"]] for f in findings if f["id"] in table}
    return max(kinds, key=lambda k: k.severity) if kinds else None


def finding_sentences(predicate: Mapping[str, Any], limit: int = 2) -> tuple[str, ...]:
    """The most severe findings' summaries (medium or worse), for reasons."""
    real = [
        f
        for f in predicate.get("findings") or []
        if not f["id"].startswith(VERDICT_FINDING_PREFIX)
        and _SEVERITY_RANK.get(f["severity"], 0) >= Severity.MEDIUM.rank
    ]
    real.sort(key=lambda f: -_SEVERITY_RANK.get(f["severity"], 0))
    return tuple(" ".join(str(f["summary"]).split()) for f in real[:limit])


def inspection_predicate(
    assessment: Assessment,
    *,
    inspector: str,
    target: LogRef,
    facts_sha256: str,
    tool: str,
    facts_uri: str | None = None,
    min_severity: Severity = Severity.LOW,
) -> dict[str, Any]:
    """The inspection/v1 predicate for a risk assessment (for ``make_statement``).

    ``pass`` when clean without findings at ``min_severity`` or above, ``warn`` when
    clean with some, ``fail`` with a verdict; the verdict itself is the first finding.
    """
    findings: list[dict[str, Any]] = []
    if assessment.verdict is not RiskVerdict.CLEAN:
        deciding = [f.id for f in assessment.findings if f.verdict is assessment.verdict]
        findings.append(
            {
                "id": VERDICT_FINDING_PREFIX + assessment.verdict.value,
                "severity": "critical",
                "summary": f"Risk verdict {assessment.verdict.value}, decided by "
                + (", ".join(deciding[:8]) or "the policy"),
            }
        )
    kept = [f for f in assessment.findings if f.severity.rank >= min_severity.rank]
    kept.sort(key=lambda f: -f.severity.rank)
    for f in kept[: _MAX_FINDINGS - len(findings)]:
        item: dict[str, Any] = {"id": f.id, "severity": f.severity.value, "summary": f.summary}
        evidence = _evidence_lines(f.evidence)
        if evidence:
            item["evidence"] = evidence
        findings.append(item)
    result = "fail" if assessment.verdict is not RiskVerdict.CLEAN else "warn" if kept else "pass"
    facts: dict[str, Any] = {"sha256": facts_sha256, "tool": tool}
    if facts_uri is not None:
        facts["uri"] = facts_uri
    if assessment.package is None:
        raise ProvenanceError(f"{assessment.file}: no package name; cannot state an inspection")
    return {
        "inspector": inspector,
        "target": target.to_dict(),
        "apk": {"sha256": assessment.sha256},
        "package": assessment.package,
        "facts": facts,
        "findings": findings,
        "verdict": result,
    }


def _evidence_lines(evidence: Sequence[Any]) -> list[str]:
    out = []
    for e in evidence[:_MAX_EVIDENCE]:
        line = f"{e.kind}: {e.value}" + (f" ({e.detail})" if e.detail else "")
        out.append(line[:4096])
    return out
