"""Which verified takedowns still stand, and which ones concern a subject.

A takedown stands until a verified restore cites it (by index *and* leaf hash) --
the same rule the trace client checks when it links a restore to its takedown.
Only verified statements are considered: an entry that failed verification can
neither take an app down nor lift a takedown here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from provenance.statements import RESTORE, TAKEDOWN, LogRef
from provenance.trace.verify import TraceResult, VerifiedStatement

__all__ = ["active_takedowns", "affects", "lifted_by"]


def lifted_by(result: TraceResult) -> dict[int, VerifiedStatement]:
    """Takedown index -> the first verified restore that lifts it."""
    takedowns = {s.index: s for s in result.statements if s.predicate_type == TAKEDOWN}
    out: dict[int, VerifiedStatement] = {}
    for s in result.statements:
        if s.predicate_type != RESTORE:
            continue
        ref = LogRef.from_dict(s.predicate["takedown"])
        target = takedowns.get(ref.index)
        if ref.log is None and target is not None and target.leaf_hash == ref.leaf_hash:
            out.setdefault(ref.index, s)
    return out


def affects(
    s: VerifiedStatement,
    packages: Collection[str],
    apks: Collection[str],
    sdk: str | None = None,
) -> bool:
    """Whether a takedown or restore's scope covers one of ``packages`` (whole app),
    one of ``apks`` (a version), or ``sdk``."""
    scope = s.predicate["scope"]
    kind = scope["kind"]
    if kind == "app":
        return bool(scope["package"] in packages)
    if kind == "version":
        return bool(scope["apk_sha256"] in apks)
    return sdk is not None and scope["sdk_id"] == sdk


def active_takedowns(
    result: TraceResult,
    packages: Collection[str],
    apks: Collection[str],
    sdk: str | None = None,
) -> list[VerifiedStatement]:
    """Verified takedowns in scope that no verified restore has lifted, in log order."""
    lifted = lifted_by(result)
    return [
        s
        for s in _takedowns(result.statements)
        if s.index not in lifted and affects(s, packages, apks, sdk)
    ]


def _takedowns(statements: Iterable[VerifiedStatement]) -> list[VerifiedStatement]:
    return sorted((s for s in statements if s.predicate_type == TAKEDOWN), key=lambda s: s.index)
