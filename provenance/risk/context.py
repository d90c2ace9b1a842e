"""What every detector looks at: the APK's facts and the published listing they match.

Matching is done once here so that all detectors agree on it. The release the APK
is held to is, in order: the release published with this very file (SHA-256), else
the one with its version code, else the newest one published below it (what users
were told the app does); ``how`` records which, and detectors lower their certainty
accordingly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from provenance.inspect.model import ApkFacts
from provenance.metadata.listing import Catalog, Listing, Release
from provenance.risk.policy import Policy
from provenance.risk.presentation import Presentation
from provenance.risk.reports import RuntimeReport

#: Certainty of a comparison with the matched release, by how it was matched.
MATCH_CERTAINTY = {"sha256": 1.0, "version_code": 1.0, "latest": 0.8}


@dataclass(frozen=True)
class ReleaseMatch:
    """The listing and release an APK is compared with."""

    listing: Listing
    release: Release | None
    how: str  # "sha256", "version_code", "latest" or "none"

    @property
    def certainty(self) -> float:
        """How sure a comparison with this release is (1.0 for the very file)."""
        return MATCH_CERTAINTY.get(self.how, 0.0)

    def to_json(self) -> dict[str, object]:
        """JSON form for reports."""
        return {
            "platform": self.listing.platform,
            "package": self.listing.package,
            "app_name": self.listing.app_name,
            "version_code": self.release.version_code if self.release else None,
            "apk_sha256": self.release.apk_sha256 if self.release else None,
            "matched_by": self.how,
        }


@dataclass(frozen=True)
class Context:
    """One APK under evaluation, with everything it is compared against."""

    facts: ApkFacts
    catalog: Catalog
    policy: Policy
    history: tuple[ApkFacts, ...] = ()
    reports: tuple[RuntimeReport, ...] = ()
    channel: str | None = None
    presentation: Presentation = field(default_factory=Presentation)
    app_name_override: str | None = None
    #: Values that depend only on the evaluator's inputs (catalog, policy, history),
    #: shared by every APK it evaluates.
    memo: dict[tuple[str, str], object] = field(default_factory=dict)

    @property
    def app_name(self) -> str | None:
        """The name the APK is shown under (given explicitly, else its label)."""
        return self.app_name_override or self.presentation.label

    @property
    def package(self) -> str | None:
        """The manifest's package name."""
        return self.facts.manifest.package

    @property
    def version_code(self) -> int | None:
        """The manifest's (long) version code."""
        return self.facts.manifest.version_code

    @property
    def sha256(self) -> str:
        """SHA-256 of the APK file."""
        return self.facts.file.sha256

    @property
    def signers(self) -> frozenset[str]:
        """Verified signer certificate SHA-256s (empty when the APK does not verify)."""
        s = self.facts.signing
        return frozenset(s.signer_sha256) if s.verified else frozenset()

    @cached_property
    def listings(self) -> tuple[Listing, ...]:
        """Listings registered under the APK's package."""
        return tuple(self.catalog.by_package(self.package)) if self.package else ()

    def allowed(self, listing: Listing) -> frozenset[str]:
        """Signers ``listing`` allows on the channel under check (all channels if none)."""
        return listing.allowed_signers(self.channel)

    @cached_property
    def match(self) -> ReleaseMatch | None:
        """The release the APK is held to (see module docstring), or None if unregistered."""
        if not self.listings:
            return None
        for listing in self.listings:
            r = listing.release(apk_sha256=self.sha256)
            if r is not None:
                return ReleaseMatch(listing, r, "sha256")
        if self.version_code is not None:
            for listing in self.listings:
                r = listing.release(version_code=self.version_code)
                if r is not None:
                    return ReleaseMatch(listing, r, "version_code")
            best: tuple[Listing, Release] | None = None
            for listing in self.listings:
                for r in listing.releases:
                    if r.version_code < self.version_code and (
                        best is None or r.version_code > best[1].version_code
                    ):
                        best = (listing, r)
            if best is not None:
                return ReleaseMatch(best[0], best[1], "latest")
        return ReleaseMatch(self.listings[0], None, "none")

    def same_package_history(self) -> Sequence[ApkFacts]:
        """Earlier facts of this package, other files than this one."""
        return [
            h
            for h in self.history
            if h.manifest.package == self.package and h.file.sha256 != self.sha256
        ]

    def cap(self, items: Sequence[str]) -> list[str]:
        """At most ``limits.max_evidence`` items."""
        return list(items[: self.policy.limits.max_evidence])
