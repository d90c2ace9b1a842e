"""Repackaging: a registered app's content under another signer, or a signed app altered.

A repackager takes a published APK, changes it (adds a permission, an ad SDK, a
payload class; or nothing at all) and signs it with their own key. What stays is the
content: resource files byte for byte, and most of the class set. The references are
the history entries of *registered* apps -- facts of APKs that verified under a key
the app's listing allows -- so "shared content" always means "shared with the real
app". Similarity is containment (how much of the reference is in the checked APK):
a repackager adds, so Jaccard would punish exactly what they do.

Library code (AndroidX, Kotlin, Google libraries) and library resources are shared
by unrelated apps; the policy lists their prefixes and name patterns so they never
count as shared content. Relative to the closest reference, the symptoms of
repackaging are then reported one by one: identical resources under a new signer,
added classes, added permissions, a debuggable build of a non-debuggable app.

One symptom needs no reference: data before the first ZIP entry. Android 5.0-8.0
execute a DEX found there while a v1-only signature still verifies (Janus,
CVE-2017-13156), so a signed app was altered after signing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from provenance.inspect.model import ApkFacts
from provenance.risk.context import Context
from provenance.risk.findings import Evidence, Observation
from provenance.risk.policy import Similarity


@dataclass(frozen=True)
class Overlap:
    """How much of a reference APK's content is in the checked APK."""

    reference: ApkFacts
    shared_resources: int
    reference_resources: int
    shared_classes: int
    reference_classes: int

    @property
    def resource_ratio(self) -> float:
        """Share of the reference's resource files found identical (0 if too few)."""
        return self.shared_resources / self.reference_resources if self.reference_resources else 0

    @property
    def class_ratio(self) -> float:
        """Share of the reference's classes found by name (0 if too few)."""
        return self.shared_classes / self.reference_classes if self.reference_classes else 0.0


@dataclass(frozen=True)
class Content:
    """What a repackager keeps: app resource files (content hashes, a multiset) and app
    class names, library ones left out (see the policy's ``similarity`` table)."""

    resources: Counter[str]
    classes: frozenset[str]


def content(f: ApkFacts, sim: Similarity) -> Content:
    """The comparable content of an APK under ``sim``."""
    resources = Counter(
        r.sha256
        for r in f.resources
        if not any(fnmatchcase(r.name, pat) for pat in sim.ignore_resources)
    )
    classes = frozenset(c for c in f.class_names() if not c.startswith(sim.ignore_class_prefixes))
    return Content(resources, classes)


def _reference_content(ctx: Context, ref: ApkFacts) -> Content:
    """A history entry's content, computed once per evaluator (shelf scans reuse it)."""
    key = ("content", ref.file.sha256)
    found = ctx.memo.get(key)
    if not isinstance(found, Content):
        found = content(ref, ctx.policy.similarity)
        ctx.memo[key] = found
    return found


def overlap(mine: Content, theirs: Content, reference: ApkFacts, sim: Similarity) -> Overlap:
    """Containment of a reference's content (``theirs``) in the checked APK's (``mine``)."""
    n_res = sum(theirs.resources.values())
    shared_res = sum(min(n, mine.resources[k]) for k, n in theirs.resources.items())
    n_cls = len(theirs.classes)
    shared_cls = len(theirs.classes & mine.classes)
    return Overlap(
        reference,
        shared_res,
        n_res if n_res >= sim.min_resources else 0,
        shared_cls,
        n_cls if n_cls >= sim.min_classes else 0,
    )


def references(ctx: Context) -> list[ApkFacts]:
    """History entries of registered apps, verified under an allowed key not the APK's."""
    out = []
    for h in ctx.history:
        signers = frozenset(h.signing.signer_sha256)
        if not h.signing.verified or not signers or signers & ctx.signers:
            continue
        if h.file.sha256 == ctx.sha256 or h.manifest.package is None:
            continue
        listings = ctx.catalog.by_package(h.manifest.package)
        if any(signers <= ctx.allowed(x) for x in listings if ctx.allowed(x)):
            out.append(h)
    return out


def observe(ctx: Context) -> Iterator[Observation]:
    """Prefix data, then shared content and its symptoms against the closest reference."""
    p = ctx.presentation
    if p.prefix_size:
        yield Observation(
            "container.prefix-data",
            (
                Evidence("file", f"{p.prefix_size} bytes before the first entry", p.prefix_kind),
                Evidence("signature", ", ".join(ctx.facts.signing.schemes) or "none", "schemes"),
            ),
            f"{p.prefix_size} bytes of {p.prefix_kind} precede the ZIP entries",
        )
    yield from _shared(ctx)


def _shared(ctx: Context) -> Iterator[Observation]:
    sim = ctx.policy.similarity
    best: Overlap | None = None
    best_score = 0.0
    refs = references(ctx)
    mine = content(ctx.facts, sim) if refs else Content(Counter(), frozenset())
    for ref in refs:
        o = overlap(mine, _reference_content(ctx, ref), ref, sim)
        passes = o.resource_ratio >= sim.resource_threshold or o.class_ratio >= sim.class_threshold
        score = max(o.resource_ratio, o.class_ratio)
        if passes and score > best_score:
            best, best_score = o, score
    if best is None:
        return
    ref = best.reference
    ref_id = f"{ref.manifest.package} {ref.manifest.version_code} ({ref.file.sha256})"
    ev = [
        Evidence(
            "reference", ref_id, "registered app, signer " + ", ".join(ref.signing.signer_sha256)
        ),
        Evidence(
            "similarity",
            f"resources {best.resource_ratio:.2f}",
            f"{best.shared_resources}/{best.reference_resources} identical files",
        ),
        Evidence(
            "similarity",
            f"classes {best.class_ratio:.2f}",
            f"{best.shared_classes}/{best.reference_classes} classes by name",
        ),
    ]
    ev += [Evidence("signer", s, "checked APK") for s in sorted(ctx.signers)]
    yield Observation(
        "repackage.content-shared",
        tuple(ev),
        f"{best_score:.0%} of registered app {ref.manifest.package}'s content, "
        "under another signer",
        best_score,
    )
    yield from _symptoms(ctx, ref, ref_id)


def _symptoms(ctx: Context, ref: ApkFacts, ref_id: str) -> Iterator[Observation]:
    f = ctx.facts
    mine = {(r.name, r.sha256) for r in f.resources}
    theirs = {(r.name, r.sha256) for r in ref.resources}
    if mine and mine == theirs:
        yield Observation(
            "repackage.identical-resources",
            (
                Evidence("resource", f"{len(mine)} files", f"identical to {ref_id}"),
                *(Evidence("signer", s, "checked APK") for s in sorted(ctx.signers)),
                *(Evidence("signer", s, "registered app") for s in ref.signing.signer_sha256),
            ),
            f"every resource file is identical to {ref.manifest.package}'s, the signer is not",
        )
    added = sorted(f.class_names() - ref.class_names())
    if added:
        yield Observation(
            "repackage.added-classes",
            tuple(Evidence("class", c, f"not in {ref_id}") for c in ctx.cap(added)),
            f"{len(added)} class(es) added to {ref.manifest.package}'s code",
        )
    perms = sorted(f.manifest.permission_names() - ref.manifest.permission_names())
    if perms:
        yield Observation(
            "repackage.added-permissions",
            tuple(Evidence("permission", p, f"not in {ref_id}") for p in ctx.cap(perms)),
            f"{len(perms)} permission(s) added: {', '.join(perms[:5])}",
        )
    if f.manifest.application.debuggable and not ref.manifest.application.debuggable:
        yield Observation(
            "repackage.debuggable",
            (
                Evidence("manifest", "application android:debuggable=true", "checked APK"),
                Evidence("manifest", "not debuggable", ref_id),
            ),
            f"debuggable, while {ref.manifest.package} is not",
        )
