"""The takedown checklist: is the chain behind an app complete, and does it verify?

Before an access provider acts on an app it needs the whole traceable chain, each
step proved: the developer's verified **registration**, the **release** of the APK,
its **shelving** by a platform, and the **inspection(s)** that found the problem.
For each step the checklist says whether it is *verified* (at least one statement
passed every check of the trace client), *unverified* (the source returned such a
statement but it failed a check, or is not in a checkpoint yet) or *missing*
(nothing at all). It also lists takedowns that already stand.

"Unverified" needs what the source *claimed*, not only what verified, so it is read
from the recorded answers (:mod:`.record`), parsed but never trusted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import ProvenanceError
from provenance.log.checkpoint import Checkpoint
from provenance.statements import (
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    SHELVING,
    Envelope,
    Statement,
)
from provenance.takedown.record import Recording
from provenance.takedown.state import active_takedowns
from provenance.takedown.subject import Subject
from provenance.trace.chain import AppChain
from provenance.trace.verify import TraceResult, VerifiedStatement

__all__ = ["MISSING", "UNVERIFIED", "VERIFIED", "Checklist", "StepStatus", "Targets", "targets"]

VERIFIED = "verified"
UNVERIFIED = "unverified"
MISSING = "missing"

STEPS = (
    ("registration", "Developer registration", DEVELOPER_REGISTRATION),
    ("release", "Release", RELEASE),
    ("shelving", "Shelving", SHELVING),
    ("inspection", "Inspection", INSPECTION),
)

_MISSING_TEXT = {
    "registration": "no verified developer registration cited by a release",
    "release": "no release of this app in the log",
    "shelving": "no platform shelving in the log",
    "inspection": "no inspection in the log",
}


@dataclass(frozen=True)
class Targets:
    """The packages and APK digests the chain is about."""

    packages: frozenset[str]
    apks: frozenset[str]


def targets(subject: Subject, chains: list[AppChain]) -> Targets:
    """An APK subject is that APK (and its package); a package is all its versions; a
    certificate is every app it signed."""
    if subject.sha256:
        pkgs = {c.package for c in chains if subject.sha256 in c.versions}
        return Targets(frozenset(pkgs), frozenset({subject.sha256}))
    chosen = [c for c in chains if subject.package is None or c.package == subject.package]
    pkgs = {c.package for c in chosen} | ({subject.package} if subject.package else set())
    return Targets(frozenset(pkgs), frozenset(v for c in chosen for v in c.versions))


@dataclass
class StepStatus:
    """One step of the chain."""

    step: str
    title: str
    status: str
    verified: list[VerifiedStatement] = field(default_factory=list)
    unverified: list[int] = field(default_factory=list)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status,
            "verified": [s.index for s in self.verified],
            "unverified": self.unverified,
            "text": self.text,
        }


@dataclass
class Checklist:
    """The steps, what already stands against the app, and the trace's verdict."""

    subject: Subject
    targets: Targets
    steps: list[StepStatus]
    takedowns: list[VerifiedStatement]
    checkpoint: Checkpoint | None
    problems: list[str]
    warnings: list[str]

    @property
    def complete(self) -> bool:
        """Every step has at least one verified statement."""
        return all(s.status == VERIFIED for s in self.steps)

    @property
    def verified(self) -> bool:
        """Everything the source gave verified (no problem at all)."""
        return not self.problems

    @property
    def ok(self) -> bool:
        return self.complete and self.verified

    def step(self, name: str) -> StepStatus:
        return next(s for s in self.steps if s.step == name)

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "complete": self.complete,
            "verified": self.verified,
            "subject": self.subject.to_json(),
            "packages": sorted(self.targets.packages),
            "apks": sorted(self.targets.apks),
            "checkpoint": (
                {"origin": cp.origin, "size": cp.size, "root_hash": cp.root_hash.hex()}
                if cp
                else None
            ),
            "steps": [s.to_json() for s in self.steps],
            "standing": "taken down" if self.takedowns else "available",
            "takedowns": [s.index for s in self.takedowns],
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _describe(s: VerifiedStatement) -> str:
    p = s.predicate
    head = f"#{s.index} by {s.signer}"
    if s.predicate_type == DEVELOPER_REGISTRATION:
        ident = p["identity"]
        return f"{head}: {p['developer']} ({ident['legal_name']}, {ident['country']})"
    if s.predicate_type == RELEASE:
        name = f" ({p['version_name']})" if p.get("version_name") else ""
        return f"{head}: version {p['version_code']}{name}, APK {p['apk']['sha256'][:12]}…"
    if s.predicate_type == SHELVING:
        return f"{head}: listing {p['listing']['id']} as {p['metadata']['app_name']!r}"
    if s.predicate_type == INSPECTION:
        n = len(p["findings"])
        return f"{head}: verdict {p['verdict']}, {n} finding{'s' if n != 1 else ''}"
    return head


def _raw_statements(recording: Recording) -> Iterator[tuple[int, Statement, bool]]:
    """(index, statement, has proof) for every statement the trace answers claimed."""
    answers = [*recording.trace.values()]
    answers += [a for a in recording.entries.values() if a is not None]
    for answer in answers:
        items: list[Any] = []
        for name in ("entries", "references", "pending"):
            value = answer.get(name)
            items += value if isinstance(value, list) else []
        if isinstance(answer.get("entry"), dict):
            items.append(answer["entry"])
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                continue
            try:
                env = Envelope.from_dict(item["envelope"])
                statement = Statement.from_json(env.payload)
            except (ProvenanceError, KeyError, TypeError, ValueError):
                continue
            yield item["index"], statement, isinstance(item.get("proof"), str)


def _about(statement: Statement, t: Targets) -> bool:
    p = statement.predicate
    if statement.predicate_type == DEVELOPER_REGISTRATION:
        return True
    apk = p.get("apk")
    sha = apk.get("sha256") if isinstance(apk, dict) else None
    return sha in t.apks or (not t.apks and p.get("package") in t.packages)


def build_checklist(
    subject: Subject, result: TraceResult, chains: list[AppChain], recording: Recording
) -> Checklist:
    """The checklist for ``subject`` from a verified trace and the answers behind it."""
    t = targets(subject, chains)
    verified_ix = {s.index for s in result.statements}
    by_index = {s.index: s for s in result.statements}

    def of(ptype: str) -> list[VerifiedStatement]:
        return [
            s
            for s in result.statements
            if s.predicate_type == ptype and s.predicate["apk"]["sha256"] in t.apks
        ]

    releases = of(RELEASE)
    registrations: dict[int, VerifiedStatement] = {}
    for r in releases:
        ref = r.predicate["developer_registration"]
        reg = by_index.get(ref["index"])
        if (
            reg is not None
            and reg.predicate_type == DEVELOPER_REGISTRATION
            and reg.leaf_hash.hex() == ref["leaf_hash"]
        ):
            registrations[reg.index] = reg
    found = {
        "registration": sorted(registrations.values(), key=lambda s: s.index),
        "release": releases,
        "shelving": of(SHELVING),
        "inspection": of(INSPECTION),
    }
    raw: dict[str, set[int]] = {name: set() for name, _, _ in STEPS}
    pending: set[int] = set()
    types = {ptype: name for name, _, ptype in STEPS}
    for index, statement, proved in _raw_statements(recording):
        name = types.get(statement.predicate_type)
        if name is None or index in verified_ix or not _about(statement, t):
            continue
        raw[name].add(index)
        if not proved:
            pending.add(index)
    steps = []
    for name, title, _ in STEPS:
        good = found[name]
        bad = sorted(raw[name])
        if good:
            status, text = VERIFIED, "; ".join(_describe(s) for s in good)
        elif bad:
            why = [
                f"#{i} " + ("not in a checkpoint yet" if i in pending else "failed") for i in bad
            ]
            status, text = UNVERIFIED, "present but not verified: " + ", ".join(why)
        else:
            status, text = MISSING, _MISSING_TEXT[name]
        if good and bad:
            text += f"; also given but not verified: {', '.join(f'#{i}' for i in bad)}"
        steps.append(StepStatus(name, title, status, good, bad, text))
    standing = active_takedowns(result, t.packages, t.apks, subject.sdk)
    return Checklist(
        subject,
        t,
        steps,
        standing,
        result.checkpoint,
        list(result.problems),
        list(result.warnings),
    )
