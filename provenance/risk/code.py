"""Code the app can load, or did load, after review (hot swaps).

A reviewed APK can still change what it does by loading code it downloads: a DEX
through ``DexClassLoader``, a hot-update framework (Tinker, Sophix, Robust, ...), a
patched native library. The inspector attributes every code-loading call site to
the package that makes it; only calls in the app's own code count here, never
calls inside vetted libraries or store-mediated delivery (Play Feature Delivery),
which the policy allow-lists. A terminal's report of code actually loaded at run
time is the strongest evidence of all.
"""

from __future__ import annotations

from collections.abc import Iterator

from provenance.inspect.model import CallSite
from provenance.risk.context import Context
from provenance.risk.findings import Evidence, Observation


def app_call_sites(ctx: Context) -> list[CallSite]:
    """Strong code-loading call sites in the app's own code, minus allow-listed callers."""
    allow = ctx.policy.allow
    return [
        c
        for c in ctx.facts.code_loading.call_sites
        if c.strength == "strong"
        and c.origin in allow.call_site_origins
        and not c.caller_class.startswith(allow.code_loading_callers)
    ]


def active_frameworks(ctx: Context) -> list[str]:
    """Hot-update frameworks found, except store-mediated and allow-listed ones."""
    allow = {a.casefold() for a in ctx.policy.allow.frameworks}
    return sorted(
        {
            f.name
            for f in ctx.facts.code_loading.frameworks
            if not f.store_mediated and f.name.casefold() not in allow
        }
    )


def observe(ctx: Context) -> Iterator[Observation]:
    """Dynamic-loading, framework and runtime-report observations."""
    sites = app_call_sites(ctx)
    if sites:
        ev = [
            Evidence("call-site", f"{c.caller} -> {c.api}", f"{c.origin}, {c.dex}, x{c.count}")
            for c in sites[: ctx.policy.limits.max_evidence]
        ]
        apis = sorted({c.api for c in sites})
        yield Observation(
            "code.dynamic-loading",
            tuple(ev),
            f"{len(sites)} call site(s) in app code load code at run time ({', '.join(apis[:3])})",
        )
    by_name = {f.name: f for f in ctx.facts.code_loading.frameworks}
    for name in active_frameworks(ctx):
        f = by_name[name]
        ev = [Evidence("framework", name, f.kind)]
        ev += [Evidence("class", e) for e in ctx.cap(f.evidence)]
        yield Observation("code.hot-update-framework", tuple(ev), f"{name} ({f.kind}) is built in")
    for report in ctx.reports:
        if not report.applies_to(ctx.package, ctx.version_code, ctx.sha256):
            continue
        ev = [
            Evidence("report", item.sha256 or item.path or item.kind, item.describe())
            for item in report.loaded[: ctx.policy.limits.max_evidence]
        ]
        who = report.reporter or "a terminal"
        when = f" at {report.reported_at}" if report.reported_at else ""
        ev.append(Evidence("file", report.source, f"reported by {who}{when}"))
        yield Observation(
            "code.runtime-report",
            tuple(ev),
            f"{who} saw {ctx.package} load {len(report.loaded)} piece(s) of code at run time",
        )
