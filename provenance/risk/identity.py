"""Identity: does the APK's signer belong to the app it claims to be? (counterfeits)

An app's identity on Android is its package name bound to its signing key. A
counterfeit claims the identity of a registered app -- its package, or the name
users know it by -- without its key. The signer stands for the developer here: a
key allowed for another developer's listing is reported as such in the evidence.
"""

from __future__ import annotations

from collections.abc import Iterator

from provenance.metadata.listing import normalize_name
from provenance.risk.context import Context
from provenance.risk.findings import Evidence, Observation


def observe(ctx: Context) -> Iterator[Observation]:
    """Signature, signer and name observations."""
    signing = ctx.facts.signing
    if not signing.verified:
        ev = [Evidence("issue", e) for e in ctx.cap(signing.errors)] or [
            Evidence("issue", "no verified signature")
        ]
        ev += [Evidence("signer", s, "claimed, not verified") for s in signing.signer_sha256]
        yield Observation(
            "signature.not-verified",
            tuple(ev),
            f"the APK signature does not verify ({len(signing.errors)} error(s))",
        )
    if ctx.package is not None and not ctx.listings:
        yield Observation(
            "package.unregistered",
            (Evidence("listing-field", ctx.package, f"no listing in {ctx.catalog.source}"),),
            f"{ctx.package} is not registered in the listings checked against",
        )
    yield from _signer(ctx)
    yield from _name(ctx)


def _signer(ctx: Context) -> Iterator[Observation]:
    """Every signer must be allowed by some listing of the package (on the channel, if
    one is given): one app may use a different key per platform and channel."""
    signers = ctx.signers
    per_listing = [(x, ctx.allowed(x)) for x in ctx.listings]
    allowed = frozenset().union(*(a for _, a in per_listing))
    if not signers or not allowed or signers <= allowed:
        return
    field = f"signers.{ctx.channel}" if ctx.channel else "signers"
    ev = [Evidence("signer", s, _subject(ctx, s)) for s in sorted(signers - allowed)]
    for listing, keys in per_listing:
        if keys:
            where = f"{listing.platform} {listing.package} {field}"
            ev.append(Evidence("listing-field", where, ", ".join(sorted(keys))))
    ev += _owners(ctx, signers - allowed)
    platforms = ", ".join(sorted({x.platform for x, keys in per_listing if keys}))
    yield Observation(
        "signer.not-allowed",
        tuple(ev),
        f"{ctx.package} is signed by {_short(signers - allowed)}, "
        f"not by a key {platforms} allows ({_short(allowed)})",
    )


def _name(ctx: Context) -> Iterator[Observation]:
    name = ctx.app_name
    if not name or len(normalize_name(name)) < ctx.policy.limits.min_name_length:
        return
    for listing in ctx.catalog.by_name(name):
        if listing.package == ctx.package:
            continue
        allowed = ctx.allowed(listing)
        if ctx.signers and ctx.signers <= allowed:
            continue  # the same developer publishing another package under that name
        ev = [
            Evidence("listing-field", f"{listing.platform} {listing.package} app_name", name),
            Evidence("package", ctx.package or "?", "package of the checked APK"),
        ]
        ev += [Evidence("signer", s, _subject(ctx, s)) for s in sorted(ctx.signers)]
        if allowed:
            ev.append(
                Evidence(
                    "allowed-signers",
                    f"{listing.platform} {listing.package} signers",
                    ", ".join(sorted(allowed)),
                )
            )
        yield Observation(
            "name.impersonation",
            tuple(ev),
            f"shown as {name!r}, the name of registered app {listing.package}, "
            f"under package {ctx.package} and another signer",
        )


def _owners(ctx: Context, signers: frozenset[str]) -> list[Evidence]:
    """Other registered apps (other developers) this key belongs to."""
    out = []
    for s in sorted(signers):
        for other in ctx.catalog.by_signer(s):
            if other.package == ctx.package:
                continue
            who = other.developer.name or "unnamed developer"
            out.append(Evidence("signer-owner", s, f"allowed for {other.package} ({who})"))
    return out[: ctx.policy.limits.max_evidence]


def _subject(ctx: Context, sha256: str) -> str | None:
    s = ctx.facts.signing
    for digest, subject in zip(s.signer_sha256, s.signer_subjects, strict=False):
        if digest == sha256:
            return subject
    return None


def _short(values: frozenset[str]) -> str:
    return ", ".join(v[:16] + "…" for v in sorted(values))
