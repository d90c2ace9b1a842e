"""The verdict record: what a terminal is told about one APK, and the question it answers.

A terminal asks either by the APK file's SHA-256 (exact: this very file) or by the
app's identity -- package name plus signer certificate SHA-256, optionally with the
versionCode -- when it only has what the package manager reports. The answer is one
word (:class:`VerdictKind`), a few sentences a person understands, and references to
the log entries behind it, so the answer can be checked instead of believed.

The JSON form is strict (unknown fields refused, sizes bounded) and canonical
(:func:`provenance.statements.canonical_json`), because it is what gets signed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from provenance.errors import InputError
from provenance.statements import LogRef
from provenance.statements.canonical import MAX_SAFE_INT, parse_json
from provenance.statements.errors import StatementFormatError
from provenance.statements.schema import format_time, parse_time

__all__ = [
    "MAX_REASONS",
    "MAX_REFS",
    "OTHER_CERT",
    "VERDICT_TYPE",
    "WARNINGS",
    "Query",
    "Verdict",
    "VerdictFormatError",
    "VerdictKind",
    "fast_canonical_json",
]

VERDICT_TYPE = "https://apk-provenance.dev/verdict/v1"
MAX_REASONS = 16
MAX_REFS = 64
_MAX_REASON = 512
_MAX_VERDICT = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
OTHER_CERT = "*"
"""Query certificate meaning "any certificate not vouched for" (package records only)."""


class VerdictFormatError(InputError):
    """A verdict record or query is malformed."""


class VerdictKind(StrEnum):
    """The one-word answer. Warnings are everything but trusted and unknown."""

    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    COUNTERFEIT = "counterfeit"
    REPACKAGED = "repackaged"
    HOT_SWAPPED = "hot_swapped"
    TAKEN_DOWN = "taken_down"

    @property
    def warning(self) -> bool:
        """Whether a terminal must warn (exit code 1)."""
        return self in WARNINGS

    @property
    def severity(self) -> int:
        """Order for combining several answers: the worst one wins."""
        return _SEVERITY[self]


WARNINGS = frozenset(
    {
        VerdictKind.COUNTERFEIT,
        VerdictKind.REPACKAGED,
        VerdictKind.HOT_SWAPPED,
        VerdictKind.TAKEN_DOWN,
    }
)
_SEVERITY = {
    VerdictKind.TRUSTED: 0,
    VerdictKind.UNKNOWN: 1,
    VerdictKind.HOT_SWAPPED: 2,
    VerdictKind.REPACKAGED: 3,
    VerdictKind.COUNTERFEIT: 4,
    VerdictKind.TAKEN_DOWN: 5,
}


def fast_canonical_json(value: dict[str, Any]) -> bytes:
    """:func:`canonical_json` for documents whose keys are ASCII, at C speed.

    For integers, strings, lists and objects with ASCII keys, RFC 8785 is compact
    JSON with sorted keys and UTF-8 strings -- exactly ``json.dumps`` with these
    options (tests compare both). Verdicts are signed per request, so this matters.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hex64(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
        raise VerdictFormatError(f"{what} must be a SHA-256 in hex (64 digits)")
    return value.lower()


@dataclass(frozen=True)
class Query:
    """What was asked: ``apk_sha256``, or ``package`` + ``cert_sha256`` [+ ``version_code``]."""

    apk_sha256: str | None = None
    package: str | None = None
    cert_sha256: str | None = None
    version_code: int | None = None

    def __post_init__(self) -> None:
        if self.apk_sha256 is not None:
            object.__setattr__(self, "apk_sha256", _hex64(self.apk_sha256, "sha256"))
            if self.package is not None or self.cert_sha256 is not None:
                raise VerdictFormatError("ask by sha256, or by package and cert, not both")
            if self.version_code is not None:
                raise VerdictFormatError("version_code goes with package and cert")
            return
        if self.package is None or self.cert_sha256 is None:
            raise VerdictFormatError("a query needs sha256, or package and cert")
        if len(self.package) > 255 or not _PACKAGE.fullmatch(self.package):
            raise VerdictFormatError(f"package {self.package[:80]!r} is not a package name")
        if self.cert_sha256 != OTHER_CERT:
            object.__setattr__(self, "cert_sha256", _hex64(self.cert_sha256, "cert"))
        if self.version_code is not None and (
            isinstance(self.version_code, bool)
            or not isinstance(self.version_code, int)
            or not 0 <= self.version_code <= MAX_SAFE_INT
        ):
            raise VerdictFormatError("version_code must be a non-negative integer")

    @property
    def by_file(self) -> bool:
        """Whether this asks about one file (by its digest)."""
        return self.apk_sha256 is not None

    def to_dict(self) -> dict[str, Any]:
        if self.apk_sha256 is not None:
            return {"apk_sha256": self.apk_sha256}
        out: dict[str, Any] = {"package": self.package, "cert_sha256": self.cert_sha256}
        if self.version_code is not None:
            out["version_code"] = self.version_code
        return out

    @classmethod
    def from_dict(cls, obj: object) -> Query:
        if not isinstance(obj, dict) or set(obj) - {
            "apk_sha256",
            "package",
            "cert_sha256",
            "version_code",
        }:
            raise VerdictFormatError("query: unknown or missing fields")
        return cls(
            obj.get("apk_sha256"),
            obj.get("package"),
            obj.get("cert_sha256"),
            obj.get("version_code"),
        )

    def describe(self) -> str:
        """One line for messages."""
        if self.apk_sha256 is not None:
            return f"APK {self.apk_sha256[:16]}…"
        cert = "another certificate" if self.cert_sha256 == OTHER_CERT else self.cert_sha256
        text = f"{self.package} signed by {str(cert)[:16]}"
        return text + (f" version {self.version_code}" if self.version_code is not None else "")


def _reason(value: object, i: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_REASON or _CONTROL.search(value):
        raise VerdictFormatError(f"reasons[{i}] must be one line of up to {_MAX_REASON} characters")
    return value


@dataclass(frozen=True)
class Verdict:
    """A verdict record; sign it with :func:`provenance.verdicts.sign_verdict`.

    ``subject`` holds what the log says about the app (package, version_code,
    signer certificates) so a terminal can show it next to what it has.
    ``log_size`` is how much of the log the answer considered; ``expires`` is when
    the answer must be asked again (never later than a known pending change).
    """

    query: Query
    verdict: VerdictKind
    reasons: tuple[str, ...]
    evidence: tuple[LogRef, ...]
    issued_at: datetime
    expires: datetime
    log_origin: str
    log_size: int
    subject: dict[str, Any]

    def __post_init__(self) -> None:
        if len(self.reasons) > MAX_REASONS:
            object.__setattr__(self, "reasons", self.reasons[:MAX_REASONS])
        if len(self.evidence) > MAX_REFS:
            object.__setattr__(self, "evidence", self.evidence[:MAX_REFS])
        for i, r in enumerate(self.reasons):
            _reason(r, i)
        if self.expires <= self.issued_at:
            raise VerdictFormatError("a verdict must expire after it is issued")

    @property
    def warning(self) -> bool:
        return self.verdict.warning

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": VERDICT_TYPE,
            "query": self.query.to_dict(),
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "evidence": [r.to_dict() for r in self.evidence],
            "issued_at": format_time(self.issued_at),
            "expires": format_time(self.expires),
            "log": {"origin": self.log_origin, "size": self.log_size},
            "subject": self.subject,
        }

    def to_json(self) -> bytes:
        """Canonical JSON: the bytes that are signed (see :func:`fast_canonical_json`)."""
        return fast_canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes) -> Verdict:
        try:
            obj = parse_json(data, max_size=_MAX_VERDICT, max_depth=8, what="verdict")
            return cls.from_dict(obj)
        except StatementFormatError as e:
            raise VerdictFormatError(str(e)) from None

    @classmethod
    def from_dict(cls, obj: object) -> Verdict:
        keys = {
            "_type",
            "query",
            "verdict",
            "reasons",
            "evidence",
            "issued_at",
            "expires",
            "log",
            "subject",
        }
        if not isinstance(obj, dict) or set(obj) != keys:
            raise VerdictFormatError(f"verdict must have exactly the fields {sorted(keys)}")
        if obj["_type"] != VERDICT_TYPE:
            raise VerdictFormatError(f"verdict _type must be {VERDICT_TYPE}")
        try:
            kind = VerdictKind(obj["verdict"])
        except ValueError:
            raise VerdictFormatError(f"unknown verdict {str(obj['verdict'])[:40]!r}") from None
        reasons, refs, log, subject = obj["reasons"], obj["evidence"], obj["log"], obj["subject"]
        if not isinstance(reasons, list) or len(reasons) > MAX_REASONS:
            raise VerdictFormatError(f"reasons must be a list of at most {MAX_REASONS}")
        if not isinstance(refs, list) or len(refs) > MAX_REFS:
            raise VerdictFormatError(f"evidence must be a list of at most {MAX_REFS} refs")
        if (
            not isinstance(log, dict)
            or set(log) != {"origin", "size"}
            or not isinstance(log["origin"], str)
            or isinstance(log["size"], bool)
            or not isinstance(log["size"], int)
        ):
            raise VerdictFormatError("log must be {origin, size}")
        if not isinstance(subject, dict):
            raise VerdictFormatError("subject must be an object")
        try:
            return cls(
                Query.from_dict(obj["query"]),
                kind,
                tuple(_reason(r, i) for i, r in enumerate(reasons)),
                tuple(LogRef.from_dict(r, f"evidence[{i}]") for i, r in enumerate(refs)),
                parse_time(obj["issued_at"], "issued_at"),
                parse_time(obj["expires"], "expires"),
                log["origin"],
                log["size"],
                subject,
            )
        except StatementFormatError as e:
            raise VerdictFormatError(str(e)) from None
