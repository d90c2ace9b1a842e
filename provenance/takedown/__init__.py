"""Takedowns by access providers, regulators and platforms, on verified evidence.

An authority about to take an app down first gathers the app's traceable chain
through the verifying trace client and checks it is complete
(:func:`~provenance.takedown.prepare.prepare`: registration, release, shelving,
inspections, each proved; :mod:`.checklist`), can keep it as an evidence bundle
anyone can verify offline (:mod:`.evidence`), then signs a takedown -- or later a
restore -- citing verified entries only (:mod:`.actions`) and submits it to the log
(:mod:`.submit`). ``apkprov takedown`` is the command line; ``docs/access-provider.md``
the guide.
"""

from __future__ import annotations

from provenance.takedown.actions import (
    RESTORE_REASONS,
    SCOPES,
    TAKEDOWN_REASONS,
    authority_for,
    build_restore,
    build_takedown,
    choose_evidence,
    resolve_scope,
    restorable,
    sign,
    standing_takedowns,
)
from provenance.takedown.checklist import (
    MISSING,
    UNVERIFIED,
    VERIFIED,
    Checklist,
    StepStatus,
    Targets,
)
from provenance.takedown.checks import Check, checks_of, trust_json
from provenance.takedown.evidence import (
    BUNDLE_FORMAT,
    EvidenceBundle,
    bundle_document,
    read_bundle,
    verify_bundle,
    write_bundle,
)
from provenance.takedown.prepare import Prepared, plan_queries, prepare
from provenance.takedown.record import Recording, RecordingSource, ReplaySource
from provenance.takedown.state import active_takedowns, affects, lifted_by
from provenance.takedown.subject import Subject
from provenance.takedown.submit import Receipt, SubmissionRefused, read_token, submit_statement

__all__ = [
    "BUNDLE_FORMAT",
    "MISSING",
    "RESTORE_REASONS",
    "SCOPES",
    "TAKEDOWN_REASONS",
    "UNVERIFIED",
    "VERIFIED",
    "Check",
    "Checklist",
    "EvidenceBundle",
    "Prepared",
    "Receipt",
    "Recording",
    "RecordingSource",
    "ReplaySource",
    "StepStatus",
    "Subject",
    "SubmissionRefused",
    "Targets",
    "active_takedowns",
    "affects",
    "authority_for",
    "build_restore",
    "build_takedown",
    "bundle_document",
    "checks_of",
    "choose_evidence",
    "lifted_by",
    "plan_queries",
    "prepare",
    "read_bundle",
    "read_token",
    "resolve_scope",
    "restorable",
    "sign",
    "standing_takedowns",
    "submit_statement",
    "trust_json",
    "verify_bundle",
    "write_bundle",
]
