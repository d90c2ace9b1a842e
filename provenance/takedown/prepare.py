"""``takedown prepare``: gather an app's chain through the verifying trace client.

Runs the same :class:`~provenance.trace.verify.TraceVerifier` as ``apkprov trace``
(trusting only the log's key, the registry's root keys and optionally a witness
policy), through a :class:`~provenance.takedown.record.RecordingSource` so that what
the source answered can be written to an evidence bundle and verified again
offline, and turns the result into the checklist (:mod:`.checklist`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provenance.errors import ProvenanceError
from provenance.statements import Envelope, Statement
from provenance.takedown.checklist import Checklist, build_checklist
from provenance.takedown.record import Recording, RecordingSource
from provenance.takedown.subject import Subject
from provenance.trace.chain import AppChain, build_chains
from provenance.trace.extract import statement_keys
from provenance.trace.sources import TraceSource
from provenance.trace.verify import TraceResult, TraceVerifier, Trust

__all__ = ["MAX_PACKAGES", "Prepared", "plan_queries", "prepare"]

MAX_PACKAGES = 16
"""Packages followed from one APK digest or certificate (each is one more query)."""


@dataclass
class Prepared:
    """A verified trace of a subject, its chains, its checklist and the raw answers."""

    subject: Subject
    trust: Trust
    queries: list[tuple[str, str]]
    result: TraceResult
    chains: list[AppChain]
    checklist: Checklist
    recording: Recording

    @property
    def ok(self) -> bool:
        return self.checklist.ok


def _packages_in(answer: dict[str, object]) -> list[str]:
    """Packages the (unverified) matched statements of an answer are about."""
    out: list[str] = []
    items = answer.get("entries")
    for item in items if isinstance(items, list) else []:
        try:
            env = Envelope.from_dict(item["envelope"])
            keys = statement_keys(Statement.from_json(env.payload))
        except (ProvenanceError, KeyError, TypeError, ValueError):
            continue
        out += sorted(v for k, v in keys if k == "package" and v not in out)
    return out


def plan_queries(source: TraceSource, subject: Subject) -> list[tuple[str, str]]:
    """The trace queries for ``subject``: its own, plus -- for an APK digest or a
    certificate -- every package the answer names, so each version's whole chain
    comes too and the two answers check each other."""
    queries = [subject.primary]
    if subject.package is None:
        kind, value = subject.primary
        for package in _packages_in(source.trace(kind, value, -1))[:MAX_PACKAGES]:
            if ("package", package) not in queries:
                queries.append(("package", package))
    if subject.sdk:
        queries.append(("sdk", subject.sdk))
    return queries


def prepare(
    source: TraceSource,
    trust: Trust,
    subject: Subject,
    *,
    queries: Sequence[tuple[str, str]] | None = None,
) -> Prepared:
    """Trace and verify ``subject`` (with ``queries`` as recorded in an evidence
    bundle, or planned from the source). The source is not closed."""
    recording = Recording()
    recorder = RecordingSource(source, recording)
    planned = list(queries) if queries is not None else plan_queries(recorder, subject)
    result = TraceVerifier(recorder, trust).run(planned)
    chains = build_chains(result)
    checklist = build_checklist(subject, result, chains, recording)
    return Prepared(subject, trust, planned, result, chains, checklist, recording)
