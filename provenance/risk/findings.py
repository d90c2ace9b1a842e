"""Findings and verdicts: what the risk engine says about one shelved APK.

A detector reports an :class:`Observation` (which rule fired, on which concrete
values); the policy turns it into a :class:`Finding` by attaching the rule's title,
severity, confidence, verdict and weight. Keeping the numbers out of the detectors is
what lets a platform tune its policy file without touching code.

Evidence is always concrete: the permission name, the class and call site, the
signer certificate SHA-256, the listing field and the value published there, so a
reviewer can check every finding by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """The one-word answer per APK."""

    CLEAN = "clean"
    COUNTERFEIT = "counterfeit"
    REPACKAGED = "repackaged"
    HOT_SWAPPED = "hot_swapped"


class Severity(StrEnum):
    """How bad a finding is if true (ordered)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (info) .. 4 (critical), for sorting and thresholds."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Evidence:
    """One concrete value a finding rests on.

    ``kind`` names what the value is: ``permission``, ``sdk``, ``call-site``,
    ``class``, ``signer``, ``allowed-signers``, ``listing-field``, ``file``,
    ``version``, ``resource``, ``similarity``, ``framework``, ``report``, ``issue``.
    """

    kind: str
    value: str
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (``detail`` omitted when absent)."""
        out: dict[str, Any] = {"kind": self.kind, "value": self.value}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Observation:
    """A detector's raw report: rule id, evidence, and how sure the detector is.

    ``certainty`` (0..1) scales the rule's configured confidence, e.g. when the
    published release was matched by version code only instead of by file digest.
    """

    rule: str
    evidence: tuple[Evidence, ...]
    summary: str
    certainty: float = 1.0


@dataclass(frozen=True)
class Finding:
    """An observation rated by the policy."""

    id: str
    title: str
    summary: str
    severity: Severity
    confidence: float
    verdict: Verdict | None
    weight: float
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    @property
    def score(self) -> float:
        """Contribution to its verdict's score: weight × confidence."""
        return self.weight * self.confidence

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "severity": self.severity.value,
            "confidence": round(self.confidence, 3),
            "verdict": self.verdict.value if self.verdict else None,
            "weight": self.weight,
            "evidence": [e.to_json() for e in self.evidence],
        }
