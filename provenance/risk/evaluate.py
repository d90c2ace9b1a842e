"""The risk engine: facts + published listing + history → findings → one verdict.

Detectors (identity, declared, code, drift, similarity) only observe; the policy
rates each observation (severity, confidence, verdict, weight); the verdict is the
first one in the policy's precedence whose findings' scores (weight × confidence)
reach its threshold, else ``clean``. The same facts, listing, history and policy
always give the same assessment, so a verdict can be re-derived and audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.inspect.model import ApkFacts
from provenance.metadata.listing import Catalog
from provenance.risk import code, declared, drift, identity, repackaging
from provenance.risk.context import Context, ReleaseMatch
from provenance.risk.findings import Finding, Observation, Verdict
from provenance.risk.policy import Policy, load_policy
from provenance.risk.presentation import Presentation
from provenance.risk.reports import RuntimeReport
from provenance.risk.rules import RULES

DETECTORS = (identity.observe, declared.observe, code.observe, drift.observe, repackaging.observe)


@dataclass(frozen=True)
class Assessment:
    """The verdict on one APK, with every finding and what it was compared against."""

    file: str
    sha256: str
    package: str | None
    version_code: int | None
    signers: tuple[str, ...]
    verdict: Verdict
    scores: dict[Verdict, float]
    findings: tuple[Finding, ...]
    match: ReleaseMatch | None
    policy: str
    catalog_source: str
    authenticated_by: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        """Whether the verdict is ``clean``."""
        return self.verdict is Verdict.CLEAN

    def finding(self, rule_id: str) -> Finding | None:
        """The finding for ``rule_id``, if raised."""
        return next((f for f in self.findings if f.id == rule_id), None)

    @property
    def finding_ids(self) -> list[str]:
        """Ids of every finding raised."""
        return [f.id for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``apkprov check --json`` prints per APK."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "package": self.package,
            "version_code": self.version_code,
            "signers": list(self.signers),
            "verdict": self.verdict.value,
            "scores": {v.value: round(s, 3) for v, s in self.scores.items()},
            "listing": self.match.to_json() if self.match else None,
            "findings": [f.to_json() for f in self.findings],
            "policy": self.policy,
            "catalog": {"source": self.catalog_source, "authenticated_by": self.authenticated_by},
            "notes": list(self.notes),
        }


def rate(observations: Iterable[Observation], policy: Policy) -> list[Finding]:
    """Findings from observations (disabled rules dropped), most severe first."""
    out = []
    for o in observations:
        cfg = policy.rule(o.rule)
        if not cfg.enabled:
            continue
        out.append(
            Finding(
                id=o.rule,
                title=RULES[o.rule],
                summary=o.summary,
                severity=cfg.severity,
                confidence=cfg.confidence * max(0.0, min(1.0, o.certainty)),
                verdict=cfg.verdict,
                weight=cfg.weight,
                evidence=o.evidence,
            )
        )
    out.sort(key=lambda f: (-f.severity.rank, -f.score, f.id))
    return out


def decide(findings: Sequence[Finding], policy: Policy) -> tuple[Verdict, dict[Verdict, float]]:
    """The verdict and each verdict's score (see module docstring)."""
    scores = {v: 0.0 for v in policy.precedence}
    for f in findings:
        if f.verdict is not None:
            scores[f.verdict] += f.score
    for v in policy.precedence:
        if scores[v] >= policy.thresholds[v] - 1e-9:
            return v, scores
    return Verdict.CLEAN, scores


class Evaluator:
    """A catalog, policy, history and reports, applied to one APK after another.

    What depends only on these inputs (the content of registered apps in the
    history) is computed once and shared, so a shelf scan costs one pass per APK.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        policy: Policy | None = None,
        history: Sequence[ApkFacts] = (),
        reports: Sequence[RuntimeReport] = (),
        channel: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.policy = policy if policy is not None else load_policy()
        self.history = tuple(history)
        self.reports = tuple(reports)
        self.channel = channel
        self._memo: dict[tuple[str, str], object] = {}

    def evaluate(
        self,
        facts: ApkFacts,
        *,
        presentation: Presentation | None = None,
        app_name: str | None = None,
    ) -> Assessment:
        """Assess one APK (see :func:`evaluate`)."""
        ctx = Context(
            facts=facts,
            catalog=self.catalog,
            policy=self.policy,
            history=self.history,
            reports=self.reports,
            channel=self.channel,
            presentation=presentation or Presentation(),
            app_name_override=app_name,
            memo=self._memo,
        )
        observations = [o for detect in DETECTORS for o in detect(ctx)]
        findings = rate(observations, self.policy)
        verdict, scores = decide(findings, self.policy)
        notes = []
        if not self.catalog.authenticated_by:
            notes.append(f"listing source {self.catalog.source!r} was not authenticated")
        if not ctx.app_name:
            notes.append("app name unknown: impersonation by name not checked")
        return Assessment(
            file=facts.file.name,
            sha256=facts.file.sha256,
            package=facts.manifest.package,
            version_code=facts.manifest.version_code,
            signers=tuple(facts.signing.signer_sha256),
            verdict=verdict,
            scores=scores,
            findings=tuple(findings),
            match=ctx.match,
            policy=self.policy.name,
            catalog_source=self.catalog.source,
            authenticated_by=self.catalog.authenticated_by,
            notes=tuple(notes),
        )


def evaluate(
    facts: ApkFacts,
    catalog: Catalog,
    *,
    policy: Policy | None = None,
    history: Sequence[ApkFacts] = (),
    reports: Sequence[RuntimeReport] = (),
    channel: str | None = None,
    presentation: Presentation | None = None,
    app_name: str | None = None,
) -> Assessment:
    """Assess one APK's facts against ``catalog`` (and history, reports) under ``policy``.

    ``channel`` restricts allowed signers to one distribution channel (default: any
    channel the listing names); ``presentation`` gives the APK's label and ZIP prefix
    (:func:`~provenance.risk.presentation.read_presentation`); ``app_name`` overrides
    the label for impersonation checks. For many APKs, use one :class:`Evaluator`.
    """
    evaluator = Evaluator(catalog, policy=policy, history=history, reports=reports, channel=channel)
    return evaluator.evaluate(facts, presentation=presentation, app_name=app_name)
