"""Drift against history: downgrades, re-scans that differ, capability growth.

The same version code must always mean the same code: a second scan of "version 42"
with other classes, permissions or SDKs means the shelf now serves something other
than what was reviewed. Between successive versions, growth is normal -- except
growth in the ability to load code, which is how a reviewed app turns into another.
A version older than one shelved before is a downgrade.
"""

from __future__ import annotations

from collections.abc import Iterator

from provenance.inspect.model import ApkFacts
from provenance.risk.code import active_frameworks, app_call_sites
from provenance.risk.context import Context
from provenance.risk.findings import Evidence, Observation


def observe(ctx: Context) -> Iterator[Observation]:
    """Regression, same-version drift and code-loading drift observations."""
    earlier = ctx.same_package_history()
    vc = ctx.version_code
    if not earlier or vc is None:
        return
    newer = [h for h in earlier if (h.manifest.version_code or 0) > vc]
    if newer:
        top = max(newer, key=lambda h: h.manifest.version_code or 0)
        yield Observation(
            "version.regression",
            (
                Evidence("version", str(vc), "checked APK"),
                Evidence("version", str(top.manifest.version_code), f"shelved: {top.file.sha256}"),
            ),
            f"version {vc} is older than version {top.manifest.version_code} shelved before",
        )
    for h in earlier:
        if h.manifest.version_code == vc:
            changes = _changes(ctx, h)
            if changes:
                yield Observation(
                    "drift.same-version",
                    (Evidence("file", h.file.sha256, "earlier scan of this version"), *changes),
                    f"version {vc} was scanned before with other content "
                    f"({len(changes)} difference(s))",
                )
    older = [h for h in earlier if (h.manifest.version_code or 0) < vc]
    if older:
        prev = max(older, key=lambda h: h.manifest.version_code or 0)
        yield from _code_growth(ctx, prev)


def _changes(ctx: Context, h: ApkFacts) -> tuple[Evidence, ...]:
    f = ctx.facts
    out: list[Evidence] = []
    if f.class_fingerprint and h.class_fingerprint and f.class_fingerprint != h.class_fingerprint:
        added = sorted(f.class_names() - h.class_names())
        removed = sorted(h.class_names() - f.class_names())
        out.append(
            Evidence(
                "class-set",
                f.class_fingerprint,
                f"was {h.class_fingerprint}: {len(added)} added, {len(removed)} removed",
            )
        )
        out += [Evidence("class", c, "added") for c in ctx.cap(added)]
    for p in sorted(f.manifest.permission_names() - h.manifest.permission_names()):
        out.append(Evidence("permission", p, "added"))
    for s in sorted({x.name for x in f.sdks} - {x.name for x in h.sdks}):
        out.append(Evidence("sdk", s, "added"))
    if set(f.signing.signer_sha256) != set(h.signing.signer_sha256):
        out += [Evidence("signer", s, "now") for s in f.signing.signer_sha256]
    return tuple(out)


def _code_growth(ctx: Context, prev: ApkFacts) -> Iterator[Observation]:
    before = {(c.caller_class, c.api) for c in prev.code_loading.call_sites}
    new_sites = [c for c in app_call_sites(ctx) if (c.caller_class, c.api) not in before]
    before_fw = {f.name for f in prev.code_loading.frameworks}
    new_fw = [n for n in active_frameworks(ctx) if n not in before_fw]
    if not new_sites and not new_fw:
        return
    ev = [Evidence("version", str(prev.manifest.version_code), f"previous: {prev.file.sha256}")]
    ev += [Evidence("call-site", f"{c.caller} -> {c.api}", "new") for c in new_sites]
    ev += [Evidence("framework", n, "new") for n in new_fw]
    yield Observation(
        "drift.new-code-loading",
        tuple(ev[: ctx.policy.limits.max_evidence + 1]),
        f"{len(new_sites)} new code-loading call site(s), {len(new_fw)} new framework(s) "
        f"since version {prev.manifest.version_code}",
    )
