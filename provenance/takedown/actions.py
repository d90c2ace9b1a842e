"""Takedown and restore statements built from a verified chain.

A takedown must rest on evidence the log can prove, so evidence is only ever taken
from statements the trace client verified (:class:`~provenance.takedown.prepare.
Prepared`), cited by index and leaf hash (:class:`~provenance.statements.LogRef`).
By default that is the inspection(s) of what is taken down; ``--evidence INDEX``
names others. The signer's actor and role are looked up in the registry the client
rebuilt from the root keys, so a key that may not sign takedowns is refused here,
before anything is sent, with the same role policy the log applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from provenance.errors import CheckFailed, InputError
from provenance.statements import (
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
    LogRef,
    RolePolicy,
    Signer,
    make_statement,
    sign_statement,
)
from provenance.statements.predicates import PREDICATES
from provenance.statements.schema import format_time
from provenance.takedown.prepare import Prepared
from provenance.takedown.state import active_takedowns
from provenance.trace.verify import VerifiedStatement

__all__ = [
    "RESTORE_REASONS",
    "SCOPES",
    "TAKEDOWN_REASONS",
    "authority_for",
    "build_restore",
    "build_takedown",
    "choose_evidence",
    "resolve_scope",
    "restorable",
    "sign",
    "standing_takedowns",
]

TAKEDOWN_REASONS = (
    "malware",
    "privacy",
    "unfiled",
    "fraud",
    "illegal_content",
    "security",
    "policy",
    "other",
)
RESTORE_REASONS = ("resolved", "appeal_granted", "error", "other")
SCOPES = ("app", "version", "sdk")
MAX_EVIDENCE = 64
_MAX_TEXT = 4096


def _apk_statements(prepared: Prepared, sha256: str) -> list[VerifiedStatement]:
    return [
        s
        for s in prepared.result.statements
        if s.predicate_type in (RELEASE, SHELVING, INSPECTION)
        and s.predicate["apk"]["sha256"] == sha256
    ]


def resolve_scope(
    prepared: Prepared,
    kind: str,
    *,
    sdk_id: str | None = None,
    sdk_version: str | None = None,
) -> dict[str, Any]:
    """The ``scope`` object for a takedown of kind ``app``, ``version`` or ``sdk``,
    filled in from verified statements (package, APK digest, version code)."""
    t = prepared.checklist.targets
    if kind == "sdk":
        if not sdk_id:
            raise InputError("--scope sdk needs --sdk ID")
        scope: dict[str, Any] = {"kind": "sdk", "sdk_id": sdk_id}
        if sdk_version:
            scope["sdk_version"] = sdk_version
        return scope
    if sdk_id or sdk_version:
        raise InputError("--sdk and --sdk-version go with --scope sdk only")
    if kind == "app":
        if len(t.packages) != 1:
            found = ", ".join(sorted(t.packages)) or "none"
            raise InputError(f"--scope app needs one package; the chain has: {found}")
        (package,) = t.packages
        return {"kind": "app", "package": package}
    if kind != "version":
        raise InputError(f"--scope must be one of {', '.join(SCOPES)}")
    if len(t.apks) != 1:
        found = ", ".join(sorted(t.apks)) or "none verified"
        raise InputError(f"--scope version needs one APK: give --sha256 HEX (versions: {found})")
    (sha,) = t.apks
    known = _apk_statements(prepared, sha)
    if not known:
        raise CheckFailed(f"no verified release, shelving or inspection of APK {sha}")
    scope = {"kind": "version", "package": known[0].predicate["package"], "apk_sha256": sha}
    codes = {s.predicate["version_code"] for s in known if "version_code" in s.predicate}
    if len(codes) == 1:
        scope["version_code"] = codes.pop()
    return scope


def _in_scope(prepared: Prepared, scope: dict[str, Any]) -> list[VerifiedStatement]:
    """Verified inspections of what ``scope`` covers (for an SDK: of the subject)."""
    t = prepared.checklist.targets
    out = []
    for s in prepared.result.statements:
        if s.predicate_type != INSPECTION:
            continue
        sha = s.predicate["apk"]["sha256"]
        if scope["kind"] == "version":
            hit = sha == scope["apk_sha256"]
        elif scope["kind"] == "app":
            hit = s.predicate["package"] == scope["package"]
        else:
            hit = sha in t.apks
        if hit:
            out.append(s)
    return out


def choose_evidence(
    prepared: Prepared,
    scope: dict[str, Any],
    given: Sequence[int] = (),
    *,
    after: int = -1,
    required: bool = True,
) -> list[VerifiedStatement]:
    """The statements to cite: ``given`` indices, each a verified statement of the
    chain; else the verified inspections in scope logged after index ``after``."""
    verified = {s.index: s for s in prepared.result.statements}
    if given:
        chosen = []
        for index in dict.fromkeys(given):
            s = verified.get(index)
            if s is None:
                raise CheckFailed(
                    f"entry {index} is not a verified statement of this chain; "
                    "only verified entries can be cited as evidence"
                )
            chosen.append(s)
    else:
        chosen = [s for s in _in_scope(prepared, scope) if s.index > after]
    if required and not chosen:
        raise CheckFailed(
            "there is no verified inspection to cite as evidence; "
            "name verified entries with --evidence INDEX"
        )
    if len(chosen) > MAX_EVIDENCE:
        raise InputError(f"at most {MAX_EVIDENCE} evidence entries can be cited")
    return chosen


def authority_for(prepared: Prepared, signer: Signer, predicate_type: str, now: datetime) -> str:
    """The actor owning ``signer``'s key, if the role policy lets it sign
    ``predicate_type`` -- the same rule the log applies on submission."""
    registry = prepared.result.registry
    if registry is None:
        raise CheckFailed("the actor registry could not be verified")
    actor, _ = registry.lookup(signer.key_id, now)
    policy = prepared.trust.role_policy or RolePolicy.default()
    allowed = policy.allowed(predicate_type)
    if not allowed & actor.roles:
        step = PREDICATES[predicate_type].step
        raise CheckFailed(
            f"actor {actor.id} (roles: {', '.join(sorted(actor.roles))}) may not sign "
            f"{step} statements; the role policy allows: {', '.join(sorted(allowed)) or 'none'}"
        )
    return actor.id


_REASON_TEXT = {
    "malware": "Malware",
    "privacy": "Privacy violation",
    "unfiled": "App not filed",
    "fraud": "Fraud",
    "illegal_content": "Illegal content",
    "security": "Security vulnerability",
    "policy": "Policy violation",
    "resolved": "The problem was resolved",
    "appeal_granted": "Appeal granted",
    "error": "The takedown was an error",
}


def _text(text: str | None, code: str, evidence: Sequence[VerifiedStatement]) -> str:
    """The reason text given, or one made from the code and the cited evidence."""
    if text:
        return text
    cited = ", ".join(
        f"{s.step} #{s.index} by {s.signer}"
        + (f" (verdict {s.predicate['verdict']})" if s.predicate_type == INSPECTION else "")
        for s in evidence
    )
    out = _REASON_TEXT.get(code, "See the evidence") + (f"; evidence: {cited}" if cited else "")
    return out[:_MAX_TEXT]


def _reason(code: str, text: str, legal_basis: str | None) -> dict[str, Any]:
    reason: dict[str, Any] = {"code": code, "text": text}
    if legal_basis:
        reason["legal_basis"] = legal_basis
    return reason


def build_takedown(
    authority: str,
    scope: dict[str, Any],
    code: str,
    evidence: Sequence[VerifiedStatement],
    *,
    text: str | None = None,
    legal_basis: str | None = None,
    effective_at: datetime | None = None,
) -> dict[str, Any]:
    """A takedown predicate (without ``statement_id``/``issued_at``)."""
    if code not in TAKEDOWN_REASONS:
        raise InputError(f"takedown reason must be one of {', '.join(TAKEDOWN_REASONS)}")
    return {
        "authority": authority,
        "scope": scope,
        "reason": _reason(code, _text(text, code, evidence), legal_basis),
        "evidence": [LogRef(s.index, s.leaf_hash).to_dict() for s in evidence],
        "effective_at": format_time(effective_at or datetime.now(UTC)),
    }


def build_restore(
    authority: str,
    takedown: VerifiedStatement,
    code: str,
    evidence: Sequence[VerifiedStatement],
    *,
    text: str | None = None,
    legal_basis: str | None = None,
    effective_at: datetime | None = None,
) -> dict[str, Any]:
    """A restore predicate lifting ``takedown`` (same scope, cited by index and hash)."""
    if code not in RESTORE_REASONS:
        raise InputError(f"restore reason must be one of {', '.join(RESTORE_REASONS)}")
    return {
        "authority": authority,
        "scope": takedown.predicate["scope"],
        "takedown": LogRef(takedown.index, takedown.leaf_hash).to_dict(),
        "reason": _reason(code, _text(text, code, evidence), legal_basis),
        "evidence": [LogRef(s.index, s.leaf_hash).to_dict() for s in evidence],
        "effective_at": format_time(effective_at or datetime.now(UTC)),
    }


def standing_takedowns(prepared: Prepared, scope: dict[str, Any]) -> list[VerifiedStatement]:
    """Verified, unlifted takedowns with exactly this scope."""
    t = prepared.checklist.targets
    return [
        s
        for s in active_takedowns(prepared.result, t.packages, t.apks, prepared.subject.sdk)
        if s.predicate["scope"] == scope
    ]


def restorable(prepared: Prepared, index: int | None) -> VerifiedStatement:
    """The standing takedown to lift: ``index``, or the only one of the subject."""
    t = prepared.checklist.targets
    standing = active_takedowns(prepared.result, t.packages, t.apks, prepared.subject.sdk)
    if index is not None:
        for s in standing:
            if s.index == index:
                return s
        raise CheckFailed(f"entry {index} is not a verified takedown of this chain that stands")
    if not standing:
        raise CheckFailed(f"no verified takedown of {prepared.subject.describe()} stands")
    if len(standing) > 1:
        found = ", ".join(f"#{s.index} ({s.predicate['scope']['kind']})" for s in standing)
        raise InputError(f"several takedowns stand ({found}): choose one with --takedown INDEX")
    return standing[0]


def sign(predicate_type: str, predicate: dict[str, Any], signer: Signer) -> bytes:
    """The DSSE envelope (canonical JSON bytes) of a fresh statement."""
    if predicate_type not in (TAKEDOWN, RESTORE):
        raise InputError("only takedown and restore statements are built here")
    return sign_statement(make_statement(predicate_type, predicate), [signer]).to_json()
