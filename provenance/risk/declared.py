"""Declared vs actual: the APK against the release the platform published (hot swaps).

What a user consents to is the listing: its permission list, its features, its SDKs
and what they do with data. Anything the APK can do beyond that was never reviewed.
This module compares the APK's manifest and detected SDKs with the matched release
(see :mod:`provenance.risk.context`) and checks the release record itself (is this
the published file, does it say what the file says).
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

from provenance.metadata.listing import DeclaredSdk, Release
from provenance.risk.context import Context, ReleaseMatch
from provenance.risk.findings import Evidence, Observation


def observe(ctx: Context) -> Iterator[Observation]:
    """Release-record and declared-capability observations."""
    m = ctx.match
    if m is None:
        return
    yield from _release(ctx, m)
    if m.release is None:
        return
    where = f"{m.listing.platform} {m.listing.package} release {m.release.version_code}"
    yield from _permissions(ctx, m, m.release, where)
    yield from _features(ctx, m, m.release, where)
    yield from _sdks(ctx, m, m.release, where)


def _release(ctx: Context, m: ReleaseMatch) -> Iterator[Observation]:
    r = m.release
    if m.how == "sha256" and r is not None:
        ev = []
        if r.version_code != ctx.version_code:
            ev.append(Evidence("version", str(ctx.version_code), f"published: {r.version_code}"))
        if r.signers and ctx.signers and ctx.signers != frozenset(r.signers):
            ev += [Evidence("signer", s, "in the APK") for s in sorted(ctx.signers)]
            ev += [Evidence("listing-field", s, "release signers") for s in r.signers]
        if ev:
            yield Observation(
                "release.mismatch",
                tuple(ev),
                f"the file is published as release {r.version_code}, but its record "
                "does not describe it",
            )
        return
    if m.how == "version_code" and r is not None:
        if r.apk_sha256 is None:
            return  # the platform publishes no file digest: nothing to compare
        yield Observation(
            "release.file-differs",
            (
                Evidence("file", ctx.sha256, "checked APK"),
                Evidence(
                    "listing-field",
                    f"{m.listing.platform} {m.listing.package} release {r.version_code} apk_sha256",
                    r.apk_sha256,
                ),
            ),
            f"version {r.version_code} was published with another file",
        )
        return
    newest = max((x.version_code for x in m.listing.releases), default=None)
    yield Observation(
        "release.unpublished",
        (
            Evidence("file", ctx.sha256, f"version {ctx.version_code}"),
            Evidence(
                "listing-field",
                f"{m.listing.platform} {m.listing.package} releases",
                f"newest published version: {newest}" if newest is not None else "none",
            ),
        ),
        f"version {ctx.version_code} of {ctx.package} is not a published release",
    )


def _permissions(ctx: Context, m: ReleaseMatch, r: Release, where: str) -> Iterator[Observation]:
    declared = r.permission_names
    allow = ctx.policy.allow.permissions
    extra = sorted(
        {
            p.name
            for p in ctx.facts.manifest.uses_permissions
            if p.name not in declared and not any(fnmatchcase(p.name, pat) for pat in allow)
        }
    )
    if extra:
        ev = [Evidence("permission", p) for p in ctx.cap(extra)]
        ev.append(Evidence("listing-field", f"{where} permissions", ", ".join(sorted(declared))))
        yield Observation(
            "permission.undeclared",
            tuple(ev),
            f"{len(extra)} permission(s) beyond the published list: {', '.join(extra[:5])}",
            m.certainty,
        )


def _features(ctx: Context, m: ReleaseMatch, r: Release, where: str) -> Iterator[Observation]:
    declared = set(r.features)
    extra = sorted(
        {
            f.name
            for f in ctx.facts.manifest.uses_features
            if f.name is not None and f.required and f.name not in declared
        }
    )
    if extra:
        ev = [Evidence("feature", f) for f in ctx.cap(extra)]
        ev.append(Evidence("listing-field", f"{where} features", ", ".join(sorted(declared))))
        yield Observation(
            "feature.undeclared",
            tuple(ev),
            f"{len(extra)} required feature(s) beyond the published list",
            m.certainty,
        )


def _sdks(ctx: Context, m: ReleaseMatch, r: Release, where: str) -> Iterator[Observation]:
    allow = {a.casefold() for a in ctx.policy.allow.sdks}
    hits = [h for h in ctx.facts.sdks if h.name.casefold() not in allow]
    if not hits:
        return
    if r.sdks is None:
        ev = [Evidence("sdk", h.name, _sdk_detail(h.source, h.evidence)) for h in hits]
        yield Observation(
            "sdk.unlisted",
            tuple(ev[: ctx.policy.limits.max_evidence]),
            f"{len(hits)} SDK(s) found; {m.listing.platform} publishes no SDK list",
            m.certainty,
        )
        return
    extra = [h for h in hits if not any(_declares(d, h.name, h.evidence) for d in r.sdks)]
    if extra:
        ev = [Evidence("sdk", h.name, _sdk_detail(h.source, h.evidence)) for h in extra]
        ev = ev[: ctx.policy.limits.max_evidence]
        ev.append(Evidence("listing-field", f"{where} sdks", ", ".join(d.name for d in r.sdks)))
        names = sorted({h.name for h in extra})
        yield Observation(
            "sdk.undeclared",
            tuple(ev),
            f"{len(names)} SDK(s) not in the published list: {', '.join(names[:5])}",
            m.certainty,
        )


def _declares(d: DeclaredSdk, name: str, evidence: tuple[str, ...]) -> bool:
    """A declared SDK covers a detected one by name, or when all the detection's class
    and component evidence lies in the SDK's declared code namespaces."""
    if d.name.casefold() == name.casefold():
        return True
    if not d.packages:
        return False
    dotted = [p.strip(".") + "." for p in d.packages]
    code = [_dotted(e) for e in evidence if e.startswith(("class:", "component:"))]
    return bool(code) and all(any(c.startswith(p) for p in dotted) for c in code)


def _dotted(evidence: str) -> str:
    """``class:Lcom/example/sdk/`` or ``component:com.example.sdk.X`` → ``com.example.sdk.…``."""
    kind, _, value = evidence.partition(":")
    if kind == "class":
        value = value.removeprefix("L").rstrip(";").replace("/", ".")
    return value if value.endswith(".") else value + "."


def _sdk_detail(source: str, evidence: tuple[str, ...]) -> str:
    shown = ", ".join(evidence[:3])
    return f"{source}: {shown}" if shown else source
