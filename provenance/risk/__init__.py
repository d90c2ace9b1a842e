"""Shelf risk: findings and a verdict per APK against its published listing and history.

:func:`evaluate` (facts → :class:`Assessment`) is the engine (:class:`Evaluator` for
many APKs against the same inputs); detectors live one per
concern (``identity``, ``declared``, ``code``, ``drift``, ``similarity``); ratings,
thresholds and allow-lists come from a TOML policy (:func:`load_policy`,
``policies/default.toml``). See ``docs/risk.md``.
"""

from __future__ import annotations

from provenance.risk.evaluate import Assessment, Evaluator, evaluate
from provenance.risk.findings import Evidence, Finding, Severity, Verdict
from provenance.risk.history import load_history
from provenance.risk.policy import Policy, load_policy
from provenance.risk.reports import RuntimeReport, load_reports

__all__ = [
    "Assessment",
    "Evaluator",
    "Evidence",
    "Finding",
    "Policy",
    "RuntimeReport",
    "Severity",
    "Verdict",
    "evaluate",
    "load_history",
    "load_policy",
    "load_reports",
]
