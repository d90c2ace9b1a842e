"""What the log says about one APK file, or one package: the inputs of a verdict.

The verdict index keeps these facts (not finished verdicts) because a verdict depends
on the time it is asked -- a takedown takes effect at its ``effective_at``, a restore
lifts it at its own -- and because the offline feed ships the same records to
terminals, which then decide with the same code (:mod:`provenance.verdicts.decide`)
and their own clock. Every fact carries the :class:`LogRef` of the statement it
comes from, so a terminal can prove it is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from provenance.statements import LogRef
from provenance.statements.errors import StatementFormatError
from provenance.statements.schema import format_time, parse_time
from provenance.verdicts.model import VerdictFormatError, VerdictKind

__all__ = [
    "ApkRecord",
    "InspectionNote",
    "PackageRecord",
    "SignerNote",
    "TakedownNote",
    "Vouch",
]


def _ref(obj: Any) -> LogRef:
    return LogRef.from_dict(obj)


def _str(obj: Any, key: str, limit: int = 4096) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or len(value) > limit:
        raise VerdictFormatError(f"record field {key!r} must be a string")
    return value


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise VerdictFormatError("record field must be an integer")
    return int(value)


@dataclass(frozen=True)
class Vouch:
    """A release (by the developer) or a shelving (by a platform) of the file."""

    kind: str  # release | shelving
    actor: str
    at: datetime
    ref: LogRef
    detail: str = ""  # version name, or listing id
    certs: tuple[str, ...] = ()  # a release's signer certificates (a shelving names none)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "actor": self.actor,
            "at": format_time(self.at),
            "ref": self.ref.to_dict(),
            "detail": self.detail,
            "certs": list(self.certs),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> Vouch:
        kind = _str(obj, "kind")
        if kind not in ("release", "shelving"):
            raise VerdictFormatError(f"unknown vouch kind {kind[:20]!r}")
        return cls(
            kind,
            _str(obj, "actor"),
            parse_time(_str(obj, "at")),
            _ref(obj["ref"]),
            _str(obj, "detail"),
            tuple(_str({"c": c}, "c", 64) for c in _list(obj, "certs", 16))
            if "certs" in obj
            else (),
        )


@dataclass(frozen=True)
class InspectionNote:
    """An inspector's latest inspection of the file."""

    inspector: str
    result: str  # pass | warn | fail
    kind: VerdictKind | None
    findings: tuple[str, ...]
    at: datetime
    ref: LogRef

    def to_dict(self) -> dict[str, Any]:
        return {
            "inspector": self.inspector,
            "result": self.result,
            "kind": self.kind.value if self.kind else None,
            "findings": list(self.findings),
            "at": format_time(self.at),
            "ref": self.ref.to_dict(),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> InspectionNote:
        result = _str(obj, "result")
        if result not in ("pass", "warn", "fail"):
            raise VerdictFormatError(f"unknown inspection result {result[:20]!r}")
        kind = obj.get("kind")
        findings = obj.get("findings")
        if not isinstance(findings, list) or len(findings) > 8:
            raise VerdictFormatError("inspection findings must be a short list")
        return cls(
            _str(obj, "inspector"),
            result,
            VerdictKind(kind) if kind is not None else None,
            tuple(_str({"f": f}, "f") for f in findings),
            parse_time(_str(obj, "at")),
            _ref(obj["ref"]),
        )


@dataclass(frozen=True)
class TakedownNote:
    """A takedown that covers the file or package, and its restore if one followed."""

    scope: str  # app | version | sdk
    target: str  # package, APK SHA-256, or SDK id[@version]
    authority: str
    code: str
    text: str
    effective_at: datetime
    ref: LogRef
    lifted_at: datetime | None = None
    lift_ref: LogRef | None = None

    def active(self, now: datetime) -> bool:
        """In force at ``now``: effective, and not (yet) lifted."""
        return self.effective_at <= now and (self.lifted_at is None or now < self.lifted_at)

    def next_change(self, now: datetime) -> datetime | None:
        """When this takedown next starts or stops applying, if that is after ``now``."""
        times = [t for t in (self.effective_at, self.lifted_at) if t is not None and t > now]
        return min(times) if times else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "target": self.target,
            "authority": self.authority,
            "code": self.code,
            "text": self.text,
            "effective_at": format_time(self.effective_at),
            "ref": self.ref.to_dict(),
            "lifted_at": format_time(self.lifted_at) if self.lifted_at else None,
            "lift_ref": self.lift_ref.to_dict() if self.lift_ref else None,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> TakedownNote:
        scope = _str(obj, "scope")
        if scope not in ("app", "version", "sdk"):
            raise VerdictFormatError(f"unknown takedown scope {scope[:20]!r}")
        lifted = obj.get("lifted_at")
        lift_ref = obj.get("lift_ref")
        return cls(
            scope,
            _str(obj, "target"),
            _str(obj, "authority"),
            _str(obj, "code"),
            _str(obj, "text"),
            parse_time(_str(obj, "effective_at")),
            _ref(obj["ref"]),
            parse_time(lifted) if lifted is not None else None,
            _ref(lift_ref) if lift_ref is not None else None,
        )


@dataclass(frozen=True)
class ApkRecord:
    """Everything the log says about one APK file.

    ``signers`` are the allowed signers of the file's package, as the developer
    registrations establish them (see
    :meth:`provenance.verdicts.index.VerdictIndex.apk_record`): a release makes the
    file trusted only if one of its certificates is registered for the package to
    the developer who released it. Their ``refs`` are the registrations (and, for a
    registration naming no packages, a release of the package by that developer).
    """

    sha256: str
    package: str | None
    version_code: int | None
    certs: tuple[str, ...]
    vouches: tuple[Vouch, ...] = ()
    inspections: tuple[InspectionNote, ...] = ()
    takedowns: tuple[TakedownNote, ...] = ()
    signers: tuple[SignerNote, ...] = ()

    def refs(self) -> list[LogRef]:
        """Every log entry about this file this record rests on."""
        out = [v.ref for v in self.vouches] + [i.ref for i in self.inspections]
        for t in self.takedowns:
            out.append(t.ref)
            if t.lift_ref is not None:
                out.append(t.lift_ref)
        return out

    def signer_refs(self) -> list[LogRef]:
        """The entries behind ``signers``: about the package or its certificates."""
        return [r for s in self.signers for r in s.refs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "package": self.package,
            "version_code": self.version_code,
            "certs": list(self.certs),
            "vouches": [v.to_dict() for v in self.vouches],
            "inspections": [i.to_dict() for i in self.inspections],
            "takedowns": [t.to_dict() for t in self.takedowns],
            "signers": [s.to_dict() for s in self.signers],
        }

    @classmethod
    def from_dict(cls, obj: Any) -> ApkRecord:
        try:
            if not isinstance(obj, dict):
                raise VerdictFormatError("APK record must be an object")
            package = obj.get("package")
            certs = obj.get("certs")
            if not isinstance(certs, list) or len(certs) > 16:
                raise VerdictFormatError("APK record certs must be a short list")
            return cls(
                _str(obj, "sha256", 64),
                _str(obj, "package", 255) if package is not None else None,
                _opt_int(obj.get("version_code")),
                tuple(_str({"c": c}, "c", 64) for c in certs),
                tuple(Vouch.from_dict(v) for v in _list(obj, "vouches")),
                tuple(InspectionNote.from_dict(v) for v in _list(obj, "inspections")),
                tuple(TakedownNote.from_dict(v) for v in _list(obj, "takedowns")),
                tuple(SignerNote.from_dict(v) for v in _list(obj, "signers", 64))
                if "signers" in obj
                else (),
            )
        except (StatementFormatError, ValueError, KeyError, TypeError) as e:
            raise VerdictFormatError(f"malformed APK record: {e}") from None


@dataclass(frozen=True)
class SignerNote:
    """A certificate vouched for as the package's signer, and the versions it signed.

    Only a certificate some developer registered for the package counts (see
    :meth:`provenance.verdicts.index.VerdictIndex.package_record`); ``developers``
    are the developers it is registered to.
    """

    cert: str
    versions: dict[int, tuple[str, ...]]  # version_code -> APK SHA-256s
    refs: tuple[LogRef, ...]
    sources: tuple[str, ...]  # who vouches: "release by acme", "registered by store"
    developers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "cert": self.cert,
            "versions": {str(vc): list(shas) for vc, shas in sorted(self.versions.items())},
            "refs": [r.to_dict() for r in self.refs],
            "sources": list(self.sources),
            "developers": list(self.developers),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> SignerNote:
        versions = obj.get("versions")
        if not isinstance(versions, dict):
            raise VerdictFormatError("signer versions must be an object")
        return cls(
            _str(obj, "cert", 64),
            {int(k): tuple(_str({"s": s}, "s", 64) for s in v) for k, v in versions.items()},
            tuple(_ref(r) for r in _list(obj, "refs")),
            tuple(_str({"s": s}, "s") for s in _list(obj, "sources")),
            tuple(_str({"d": d}, "d") for d in _list(obj, "developers", 64))
            if "developers" in obj
            else (),
        )


@dataclass(frozen=True)
class PackageRecord:
    """Everything the log says about one package: its signers and app-wide takedowns."""

    package: str
    signers: tuple[SignerNote, ...] = ()
    takedowns: tuple[TakedownNote, ...] = ()

    def signer(self, cert: str) -> SignerNote | None:
        return next((s for s in self.signers if s.cert == cert), None)

    def refs(self) -> list[LogRef]:
        out = [r for s in self.signers for r in s.refs]
        for t in self.takedowns:
            out.append(t.ref)
            if t.lift_ref is not None:
                out.append(t.lift_ref)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "signers": [s.to_dict() for s in self.signers],
            "takedowns": [t.to_dict() for t in self.takedowns],
        }

    @classmethod
    def from_dict(cls, obj: Any) -> PackageRecord:
        try:
            if not isinstance(obj, dict):
                raise VerdictFormatError("package record must be an object")
            return cls(
                _str(obj, "package", 255),
                tuple(SignerNote.from_dict(s) for s in _list(obj, "signers")),
                tuple(TakedownNote.from_dict(t) for t in _list(obj, "takedowns")),
            )
        except (StatementFormatError, ValueError, KeyError, TypeError) as e:
            raise VerdictFormatError(f"malformed package record: {e}") from None


def _list(obj: Any, key: str, limit: int = 4096) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise VerdictFormatError(f"record field {key!r} must be a list")
    return value
