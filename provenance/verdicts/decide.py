"""From records to a verdict: pure functions, shared by the service and the terminal.

The service (:class:`~provenance.verdicts.index.VerdictIndex`) and the offline
terminal (:mod:`provenance.feed.client`) call the same functions on the same records,
so an answer read from the feed and one asked of the service cannot disagree.

Per file, in order: a takedown in force (of the version, the app, or an SDK the
listing declares) → ``taken_down``; an inspector's latest inspection naming a
verdict → that verdict (the worst, when inspectors disagree); releases none of which
is signed by an allowed signer of the package (registered to the developer who
released it), on a package whose allowed signers are known → ``counterfeit``; a
failed inspection naming none → ``unknown`` (trust is withdrawn, the kind is not
guessed); a release by an allowed signer, or a shelving → ``trusted``; otherwise
``unknown`` (a file released only with a certificate nobody registered for the
package, on a package with no known signers, included).

Per package and signer: an app takedown → ``taken_down``; a certificate that is not
one of the package's allowed signers, on a package whose allowed signers are known →
``counterfeit``; an allowed signer → ``trusted`` (or, with a version, the worst
verdict of the files of that version).

The allowed signers are the certificates developer registrations register for the
package, as :meth:`~provenance.verdicts.index.VerdictIndex.package_record` (and, for
a file's record, ``apk_record``) collects them: a release by a developer the
certificate is not registered to (for that package) vouches for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provenance.statements import LogRef
from provenance.verdicts.model import MAX_REFS, OTHER_CERT, Query, VerdictKind
from provenance.verdicts.records import ApkRecord, PackageRecord, SignerNote, TakedownNote, Vouch

__all__ = ["Decision", "decide_apk", "decide_package", "worst"]

_MAX_TEXT = 300
_CODES = {
    "malware": "malware",
    "privacy": "a privacy violation",
    "unfiled": "missing filing",
    "fraud": "fraud",
    "illegal_content": "illegal content",
    "security": "a security problem",
    "policy": "a policy violation",
    "other": "another reason",
}


@dataclass(frozen=True)
class Decision:
    """A verdict without the envelope: kind, reasons, evidence, and when it may change."""

    kind: VerdictKind
    reasons: tuple[str, ...]
    evidence: tuple[LogRef, ...]
    changes_at: datetime | None = None
    subject: dict[str, Any] = field(default_factory=dict)


def _line(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= _MAX_TEXT else one[: _MAX_TEXT - 1] + "…"


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _short(cert: str) -> str:
    return cert[:16] + "…"


def _refs(refs: Iterable[LogRef]) -> tuple[LogRef, ...]:
    out: list[LogRef] = []
    for r in refs:
        if r not in out:
            out.append(r)
    return tuple(out[:MAX_REFS])


def _next_change(takedowns: Sequence[TakedownNote], now: datetime) -> datetime | None:
    times = [t for t in (td.next_change(now) for td in takedowns) if t is not None]
    return min(times) if times else None


def _takedown_reason(t: TakedownNote) -> str:
    what = {"app": "the app", "version": "this version", "sdk": f"the SDK {t.target}"}[t.scope]
    why = _CODES.get(t.code, t.code)
    return _line(
        f"{t.authority} took {what} down on {_day(t.effective_at)} for {why}: {t.text}".rstrip(": ")
    )


def _not_registered(signed: str, package: str, signers: Sequence[SignerNote]) -> list[str]:
    """Why a copy signed by ``signed`` is not the developer's (the allowed ``signers``)."""
    listed = ", ".join(_short(s.cert) for s in signers[:4])
    sources = sorted({src for s in signers for src in s.sources})
    developers = sorted({d for s in signers for d in s.developers})
    by = f" by {', '.join(developers[:4])}" if developers else ""
    reasons = [
        _line(
            f"Signed by {signed}, not by a key registered for {package}{by} "
            f"({listed}): this copy is signed with another certificate, so it does "
            "not come from the developer."
        )
    ]
    if sources:
        reasons.append(_line(f"Vouched for by: {', '.join(sources[:6])}."))
    return reasons


def _allowed(vouch: Vouch, signers: Mapping[str, SignerNote]) -> bool:
    """A release signed with a certificate registered for the package to its developer."""
    return any(c in signers and vouch.actor in signers[c].developers for c in vouch.certs)


def _unregistered_release(record: ApkRecord) -> tuple[list[str], list[LogRef]] | None:
    """Why no release of the file counts (reasons, evidence), or None if one does.

    Counterfeit when the package's allowed signers are known (the reasons then start
    with "Signed by …", or "Released by …" when the certificate is registered, but to
    another developer); empty reasons when no registration establishes a signer.
    """
    releases = [v for v in record.vouches if v.kind == "release"]
    signers = {s.cert: s for s in record.signers}
    if not releases or any(_allowed(v, signers) for v in releases):
        return None
    if not signers:
        return [], []
    package = record.package or "its package"
    last = releases[-1]
    theirs = [signers[c] for c in last.certs if c in signers]
    if theirs:  # a registered certificate, released by someone it is not registered to
        owners = sorted({d for s in theirs for d in s.developers})
        reasons = [
            _line(
                f"Released by {last.actor}, but certificate {_short(theirs[0].cert)} is "
                f"registered for {package} by {', '.join(owners[:4])}, not by {last.actor}: "
                "this copy does not come from the developer."
            )
        ]
    else:
        certs = last.certs or record.certs
        signed = _short(certs[0]) if certs else "an unnamed certificate"
        reasons = _not_registered(signed, package, record.signers)
    reasons.append(
        _line(f"Released by {last.actor} as {package} on {_day(last.at)}; nothing else vouches.")
    )
    refs = [v.ref for v in releases] + [r for s in record.signers for r in s.refs[:2]]
    return reasons, refs


def worst(decisions: Iterable[Decision]) -> Decision | None:
    """The most severe decision (the order of :attr:`VerdictKind.severity`)."""
    return max(decisions, key=lambda d: d.kind.severity, default=None)


def decide_apk(record: ApkRecord | None, now: datetime) -> Decision:
    """The verdict on one file at ``now``."""
    if record is None:
        return Decision(
            VerdictKind.UNKNOWN,
            ("Nothing in the log names this file: no release, shelving or inspection.",),
            (),
        )
    subject: dict[str, Any] = {
        "apk_sha256": record.sha256,
        "package": record.package,
        "version_code": record.version_code,
        "signer_certificates": list(record.certs),
    }
    changes = _next_change(record.takedowns, now)
    active = [t for t in record.takedowns if t.active(now)]
    warned = [i for i in record.inspections if i.result != "pass"]
    classified = [i for i in warned if i.kind is not None]
    inspection_reasons = [
        _line(
            f"Inspection by {i.inspector} on {_day(i.at)}"
            + (f" found it {i.kind.value.replace('_', '-')}" if i.kind else f" {i.result}ed it")
            + (": " + "; ".join(i.findings) if i.findings else ".")
        )
        for i in warned
    ]
    if active:
        reasons = [_takedown_reason(t) for t in active] + inspection_reasons
        refs = [t.ref for t in active] + [i.ref for i in warned]
        return Decision(VerdictKind.TAKEN_DOWN, tuple(reasons), _refs(refs), changes, subject)
    if classified:
        top = max(classified, key=lambda i: i.kind.severity if i.kind else -1)
        assert top.kind is not None
        return Decision(
            top.kind,
            tuple(inspection_reasons),
            _refs(i.ref for i in warned),
            changes,
            subject,
        )
    unregistered = _unregistered_release(record)
    if unregistered is not None and unregistered[0]:
        reasons, refs = unregistered
        return Decision(
            VerdictKind.COUNTERFEIT,
            tuple(reasons + inspection_reasons),
            _refs(refs + [i.ref for i in warned]),
            changes,
            subject,
        )
    failed = [i for i in warned if i.result == "fail"]
    if failed:
        return Decision(
            VerdictKind.UNKNOWN,
            ("An inspection failed this file; it is not vouched for.", *inspection_reasons),
            _refs(i.ref for i in warned),
            changes,
            subject,
        )
    signers = {s.cert: s for s in record.signers}
    vouches = [v for v in record.vouches if v.kind != "release" or _allowed(v, signers)]
    if vouches:
        reasons = []
        for v in vouches[:4]:
            if v.kind == "release":
                version = (
                    f" version {record.version_code}" if record.version_code is not None else ""
                )
                reasons.append(
                    _line(f"Released by {v.actor} as {record.package}{version} on {_day(v.at)}.")
                )
            else:
                listing = f" (listing {v.detail})" if v.detail else ""
                reasons.append(_line(f"Offered by {v.actor}{listing} since {_day(v.at)}."))
        reasons.extend(inspection_reasons)
        lifted = [t for t in record.takedowns if t.lifted_at is not None and t.lifted_at <= now]
        reasons.extend(
            _line(f"A takedown by {t.authority} was lifted on {_day(t.lifted_at)}.")
            for t in lifted
            if t.lifted_at is not None
        )
        used = [
            s
            for s in record.signers
            if any(s.cert in v.certs and set(s.developers) & {v.actor} for v in vouches)
        ]
        if used:
            registered = sorted({src for s in used for src in s.sources})
            reasons.insert(
                min(len(vouches), 4),
                _line(
                    f"Signed with {', '.join(_short(s.cert) for s in used[:2])}, a key "
                    f"registered for {record.package}: {', '.join(registered[:4])}."
                ),
            )
        refs = [v.ref for v in vouches] + [i.ref for i in warned]
        return Decision(VerdictKind.TRUSTED, tuple(reasons), _refs(refs), changes, subject)
    if unregistered is not None:  # released, but no registration names a signer
        package = record.package or "its package"
        actors = ", ".join(sorted({v.actor for v in record.vouches}))
        return Decision(
            VerdictKind.UNKNOWN,
            (
                _line(
                    f"Released by {actors} as {package}, but no developer registration "
                    f"registers a signing key for {package}: nothing vouches for its signer."
                ),
                *inspection_reasons,
            ),
            _refs(record.refs()),
            changes,
            subject,
        )
    return Decision(
        VerdictKind.UNKNOWN,
        ("No release or shelving in the log names this file.", *inspection_reasons),
        _refs(record.refs()),
        changes,
        subject,
    )


def decide_package(
    record: PackageRecord | None,
    query: Query,
    now: datetime,
    files: Mapping[str, Decision] | None = None,
) -> Decision:
    """The verdict on ``query.package`` signed by ``query.cert_sha256`` [at a version].

    ``files`` are the decisions on the APK files of that version (the service knows
    them); without them, a version the log knows as other files is ``unknown``: the
    file at hand is not one of them.
    """
    assert query.package is not None and query.cert_sha256 is not None
    package, cert = query.package, query.cert_sha256
    subject: dict[str, Any] = {"package": package}
    if record is None:
        return Decision(
            VerdictKind.UNKNOWN,
            (f"Nothing in the log names {package}.",),
            (),
            None,
            subject,
        )
    changes = _next_change(record.takedowns, now)
    active = [t for t in record.takedowns if t.active(now)]
    known = [s.cert for s in record.signers]
    subject["signer_certificates"] = known
    if active:
        return Decision(
            VerdictKind.TAKEN_DOWN,
            tuple(_takedown_reason(t) for t in active),
            _refs(t.ref for t in active),
            changes,
            subject,
        )
    signer = record.signer(cert) if cert != OTHER_CERT else None
    if signer is None:
        if not known:
            return Decision(
                VerdictKind.UNKNOWN,
                (f"The log names {package}, but no release or registration vouches for a signer.",),
                (),
                changes,
                subject,
            )
        signed = _short(cert) if cert != OTHER_CERT else "another certificate"
        reasons = _not_registered(signed, package, record.signers)
        return Decision(
            VerdictKind.COUNTERFEIT,
            tuple(reasons),
            _refs(r for s in record.signers for r in s.refs[:2]),
            changes,
            subject,
        )
    subject["signer_certificates"] = [cert]
    by = ", ".join(signer.sources[:4]) or "the log"
    if query.version_code is None:
        versions = sorted(signer.versions)
        listed = ", ".join(str(v) for v in versions[-5:])
        return Decision(
            VerdictKind.TRUSTED,
            (
                _line(
                    f"{package} signed with certificate {_short(cert)} is vouched for ({by})"
                    + (f"; versions {listed}." if versions else ".")
                ),
            ),
            _refs(signer.refs),
            changes,
            subject,
        )
    subject["version_code"] = query.version_code
    shas = signer.versions.get(query.version_code, ())
    if not shas:
        return Decision(
            VerdictKind.UNKNOWN,
            (
                _line(
                    f"Signed with the developer's certificate {_short(cert)}, but version "
                    f"{query.version_code} of {package} is not in the log."
                ),
            ),
            _refs(signer.refs),
            changes,
            subject,
        )
    found = [files[s] for s in shas if files is not None and s in files]
    if not found:
        return Decision(
            VerdictKind.UNKNOWN,
            (
                _line(
                    f"Version {query.version_code} of {package} is in the log as another file "
                    f"({', '.join(s[:12] + '…' for s in shas[:3])}); this file is not."
                ),
            ),
            _refs(signer.refs),
            changes,
            subject,
        )
    top = worst(found)
    assert top is not None
    refs = [r for d in found for r in d.evidence]
    return Decision(
        top.kind,
        top.reasons,
        _refs(refs),
        min((d.changes_at for d in found if d.changes_at), default=changes),
        {**subject, "apk_sha256": list(shas)},
    )
