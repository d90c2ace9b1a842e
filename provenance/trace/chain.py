"""An app's life cycle from verified statements, per version, for people and JSON.

Groups what :class:`~provenance.trace.verify.TraceVerifier` verified into the order a
reader follows: the developer's registration, then per version (APK digest) its
release, shelvings on each platform, inspections, and takedowns and restores of that
version; app-wide takedowns and restores last. The standing of each version --
available or taken down -- is the last takedown or restore (of the version or of
the whole app) in log order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.statements import (
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
)
from provenance.trace.verify import TraceResult, VerifiedStatement

__all__ = ["AppChain", "Version", "build_chains", "chains_json", "render_text"]


@dataclass
class Version:
    """One APK of an app and what happened to it."""

    apk_sha256: str
    version_code: int | None = None
    version_name: str | None = None
    releases: list[VerifiedStatement] = field(default_factory=list)
    shelvings: list[VerifiedStatement] = field(default_factory=list)
    inspections: list[VerifiedStatement] = field(default_factory=list)
    actions: list[VerifiedStatement] = field(default_factory=list)

    def steps(self) -> list[VerifiedStatement]:
        return [*self.releases, *self.shelvings, *self.inspections, *self.actions]


@dataclass
class AppChain:
    """Everything verified about one package."""

    package: str
    registrations: list[VerifiedStatement] = field(default_factory=list)
    versions: dict[str, Version] = field(default_factory=dict)
    app_actions: list[VerifiedStatement] = field(default_factory=list)

    def standing(self, version: Version | None = None) -> str:
        """``available`` or ``taken down`` (by the last takedown/restore)."""
        actions = list(self.app_actions)
        if version is not None:
            actions += version.actions
        if not actions:
            return "available"
        last = max(actions, key=lambda s: s.index)
        return "taken down" if last.predicate_type == TAKEDOWN else "available"


def _package_of(s: VerifiedStatement) -> str | None:
    p = s.predicate
    if "package" in p:
        return str(p["package"])
    scope = p.get("scope")
    if isinstance(scope, dict) and "package" in scope:
        return str(scope["package"])
    return None


def build_chains(result: TraceResult) -> list[AppChain]:
    """One chain per package among the verified statements."""
    chains: dict[str, AppChain] = {}
    registrations = {
        s.index: s for s in result.statements if s.predicate_type == DEVELOPER_REGISTRATION
    }
    for s in result.statements:
        package = _package_of(s)
        if package is None:
            continue
        chain = chains.setdefault(package, AppChain(package))
        p = s.predicate
        if s.predicate_type in (TAKEDOWN, RESTORE):
            if p["scope"]["kind"] == "app":
                chain.app_actions.append(s)
                continue
            sha = p["scope"]["apk_sha256"]
        else:
            sha = p["apk"]["sha256"]
        version = chain.versions.setdefault(sha, Version(sha))
        if s.predicate_type == RELEASE:
            version.releases.append(s)
            version.version_code = p["version_code"]
            version.version_name = p.get("version_name")
            reg = registrations.get(p["developer_registration"]["index"])
            if reg is not None and reg not in chain.registrations:
                chain.registrations.append(reg)
        elif s.predicate_type == SHELVING:
            version.shelvings.append(s)
            version.version_code = version.version_code or p["version_code"]
        elif s.predicate_type == INSPECTION:
            version.inspections.append(s)
        else:
            version.actions.append(s)
    return [chains[k] for k in sorted(chains)]


def _line(s: VerifiedStatement) -> str:
    p = s.predicate
    head = f"#{s.index:<5} {s.step:<22} by {s.signer:<16} {s.statement.issued_at}"
    detail = ""
    if s.predicate_type == DEVELOPER_REGISTRATION:
        ident = p["identity"]
        certs = ", ".join(c["sha256"][:12] + "…" for c in p["signer_certificates"])
        detail = f"{p['developer']}: {ident['legal_name']} ({ident['country']}); certs {certs}"
    elif s.predicate_type == RELEASE:
        certs = ", ".join(c[:12] + "…" for c in p["signer_certificates"])
        schemes = ",".join(p["verification"]["schemes"])
        detail = f"signed by {certs}; schemes {schemes}"
    elif s.predicate_type == SHELVING:
        listing = p["listing"]
        detail = (
            f"listing {listing['id']} shelved {listing['shelved_at']} "
            f"as {p['metadata']['app_name']!r}"
        )
    elif s.predicate_type == INSPECTION:
        worst = sorted({f["severity"] for f in p["findings"]})
        detail = f"verdict {p['verdict']}; {len(p['findings'])} findings" + (
            f" ({', '.join(worst)})" if worst else ""
        )
    elif s.predicate_type in (TAKEDOWN, RESTORE):
        reason = p["reason"]
        detail = f"{reason['code']}: {reason['text'][:80]}; effective {p['effective_at']}"
    out = f"{head}  {detail}".rstrip()
    for note in s.notes:
        out += f"\n{'':10}note: {note}"
    return out


def render_text(result: TraceResult, chains: list[AppChain], highlight: str | None = None) -> str:
    """The human report: verdict, checkpoint, then each app's life cycle."""
    lines: list[str] = []
    cp = result.checkpoint
    verdict = "VERIFIED" if result.ok else "NOT VERIFIED"
    where = f"log {cp.origin}, checkpoint size {cp.size}" if cp else "no verified checkpoint"
    lines.append(f"{verdict}: {len(result.statements)} statements ({where})")
    if not chains:
        lines.append("no statements found for " + ", ".join(f"{k}={v}" for k, v in result.queries))
    for chain in chains:
        lines.append("")
        lines.append(f"{chain.package}  [{chain.standing()}]")
        if chain.registrations:
            lines.append("  registration")
            lines.extend("    " + _line(s) for s in chain.registrations)
        ordered = sorted(chain.versions.values(), key=lambda v: min(s.index for s in v.steps()))
        for v in ordered:
            name = f" ({v.version_name})" if v.version_name else ""
            mark = "  <== this APK" if highlight and v.apk_sha256 == highlight else ""
            lines.append(
                f"  version {v.version_code if v.version_code is not None else '?'}{name}"
                f"  sha256 {v.apk_sha256}  [{chain.standing(v)}]{mark}"
            )
            if not v.releases:
                lines.append("    (no verified release for this APK)")
            lines.extend("    " + _line(s) for s in sorted(v.steps(), key=lambda s: s.index))
        if chain.app_actions:
            lines.append("  whole app")
            lines.extend("    " + _line(s) for s in chain.app_actions)
    if result.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in result.warnings)
    if result.problems:
        lines.append("")
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in result.problems)
    return "\n".join(lines) + "\n"


def chains_json(chains: list[AppChain]) -> list[dict[str, Any]]:
    """The life cycle as JSON: entry indices per step (statements are listed apart)."""
    return [
        {
            "package": c.package,
            "standing": c.standing(),
            "registrations": [s.index for s in c.registrations],
            "versions": [
                {
                    "apk_sha256": v.apk_sha256,
                    "version_code": v.version_code,
                    "version_name": v.version_name,
                    "standing": c.standing(v),
                    "releases": [s.index for s in v.releases],
                    "shelvings": [s.index for s in v.shelvings],
                    "inspections": [s.index for s in v.inspections],
                    "takedowns_restores": [s.index for s in v.actions],
                }
                for v in sorted(c.versions.values(), key=lambda v: min(s.index for s in v.steps()))
            ],
            "app_takedowns_restores": [s.index for s in c.app_actions],
        }
        for c in chains
    ]
