"""Results of verifying an APK: per scheme, per signer, and overall.

The shape follows what the reference reports (``ApkVerifier.Result``): top-level
errors and warnings, and for each scheme its signers with their own errors and
warnings. ``verified`` is only ever set by the orchestrating verifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.apk.algorithms import ContentDigest, SignatureAlgorithm
from provenance.apk.certs import Certificate
from provenance.apk.issues import Issue, IssueList
from provenance.apk.lineage import Lineage

V1 = "v1"
V2 = "v2"
V3 = "v3"
V31 = "v3.1"
V4 = "v4"


@dataclass(eq=False)
class SignerResult(IssueList):
    """One signer of one scheme."""

    scheme: str
    index: int = 0
    name: str | None = None  # v1: signer name (the .SF base name)
    certs: list[Certificate] = field(default_factory=list)
    min_sdk: int = 0  # v3/v3.1 signer's declared range
    max_sdk: int = 0
    # Algorithm ids of the signatures record, in order (unknown ones included).
    signature_alg_ids: list[int] = field(default_factory=list)
    # Signature algorithm id -> digest bytes as listed in the signed data.
    content_digests: list[tuple[int, bytes]] = field(default_factory=list)
    # What was actually checked.
    verified_signatures: dict[SignatureAlgorithm, bytes] = field(default_factory=dict)
    verified_digests: dict[ContentDigest, bytes] = field(default_factory=dict)
    # (attribute id, value) pairs from the signed data.
    additional_attributes: list[tuple[int, bytes]] = field(default_factory=list)
    lineage: Lineage | None = None
    signature_file: str | None = None  # v1
    signature_block_file: str | None = None  # v1

    def __post_init__(self) -> None:
        IssueList.__init__(self)

    @property
    def cert(self) -> Certificate | None:
        """The signing certificate (first of the chain)."""
        return self.certs[0] if self.certs else None


@dataclass(eq=False)
class SchemeResult(IssueList):
    """The outcome of one scheme's verifier."""

    scheme: str
    verified: bool = False
    signers: list[SignerResult] = field(default_factory=list)
    ignored_signers: list[SignerResult] = field(default_factory=list)  # v1 only
    lineage: Lineage | None = None  # v3/v3.1 consolidated lineage

    def __post_init__(self) -> None:
        IssueList.__init__(self)

    @property
    def contains_errors(self) -> bool:
        """Errors at scheme level or in any signer (apksig ``containsErrors``)."""
        return bool(self.errors) or any(s.errors for s in self.signers)

    def all_errors(self) -> list[Issue]:
        """Scheme-level errors followed by every signer's."""
        out = list(self.errors)
        for s in self.signers:
            out.extend(s.errors)
        return out

    def all_warnings(self) -> list[Issue]:
        """Scheme-level warnings followed by every signer's."""
        out = list(self.warnings)
        for s in self.signers:
            out.extend(s.warnings)
        return out


@dataclass(eq=False)
class StampResult(IssueList):
    """The source stamp: verified apart from the APK's verdict."""

    verified: bool = False
    cert: Certificate | None = None
    lineage: Lineage | None = None
    timestamp: int | None = None

    def __post_init__(self) -> None:
        IssueList.__init__(self)

    @property
    def status(self) -> str:
        """'verified', 'failed' or 'missing' as the CLI reports it."""
        if self.verified:
            return "verified"
        if any(e.name == "SOURCE_STAMP_SIG_MISSING" for e in self.errors + self.warnings):
            return "missing"
        return "failed"

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``apkprov verify --json``."""
        return {
            "status": self.status,
            "cert_sha256": self.cert.sha256 if self.cert else None,
            "errors": [i.to_json() for i in self.errors],
            "warnings": [i.to_json() for i in self.warnings],
        }
