"""Trace answers: indexed entries with tlog-proofs against one checkpoint.

The service's ``GET /v1/trace``, ``/v1/actors`` and ``/v1/entries/{index}`` and the
CLI's local mode (``apkprov trace --dir``) return the same JSON documents, built
here. Every answer is taken against one snapshot of the log -- one signed
checkpoint -- so all its proofs verify against the checkpoint it carries::

    {"checkpoint": "<signed note>", "tree_size": n,
     "query": {"package": "com.example"},
     "entries":    [{"index", "leaf_hash", "predicate_type", "envelope", "proof"}, ...],
     "references": [... entries the matched ones cite, same shape ...],
     "pending":    [{"index", "leaf_hash", "predicate_type", "envelope"}, ...],
     "next_after": null | index}

``envelope`` is the DSSE envelope as a JSON object (the log entry is its canonical
JSON encoding), ``proof`` a c2sp.org/tlog-proof@v1 text. Entries sequenced after
the checkpoint are listed under ``pending``, without a proof.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from provenance.errors import InputError, ProvenanceError
from provenance.log.log import Log, NotInLogError
from provenance.log.merkle import leaf_hash
from provenance.log.proof import build_tlog_proof
from provenance.log.store.errors import NotFoundError
from provenance.log.store.state import TreeState
from provenance.log.tiles import TileHashReader
from provenance.statements.predicates import ACTOR_REGISTRATION
from provenance.trace.extract import parse_entry, statement_refs
from provenance.trace.index import IndexedEntry, TraceIndex
from provenance.trace.indexer import read_log_entries

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "QUERY_KINDS",
    "actors_answer",
    "dumps",
    "entry_answer",
    "trace_answer",
]

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_REFERENCES = 2000
MAX_ANSWER_BYTES = 8 << 20
"""Entry bytes per answer, matched and referenced each (a page ends early past it)."""
QUERY_KINDS = {
    "package": "package",
    "sha256": "apk",
    "cert": "cert",
    "actor": "actor",
    "sdk": "sdk",
}
"""Query parameter -> index key kind."""


class _Snapshot:
    """One checkpoint and a hash reader over the tree it signs."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.tree: TreeState = log.state.tree()
        self.reader = TileHashReader(self.tree.size, None, log.tiles, cache_tiles=256)

    def proof(self, index: int) -> str:
        return build_tlog_proof(index, self.tree.checkpoint, self.reader).encode().decode("utf-8")


def _item(index: int, entry: bytes, proof: str | None) -> dict[str, Any]:
    """One entry of an answer."""
    out: dict[str, Any] = {"index": index, "leaf_hash": leaf_hash(entry).hex()}
    try:
        envelope, statement = parse_entry(entry)
        out["predicate_type"] = statement.predicate_type
        out["envelope"] = envelope.to_dict()
    except ProvenanceError:
        out["predicate_type"] = None
        out["entry"] = entry.decode("utf-8", "replace")  # not a statement: shown as is
    if proof is not None:
        out["proof"] = proof
    return out


def _cited(entries: Iterable[IndexedEntry]) -> set[int]:
    out: set[int] = set()
    for e in entries:
        try:
            _, statement = parse_entry(e.entry)
        except ProvenanceError:
            continue
        out.update(ref.index for _, ref in statement_refs(statement) if ref.log is None)
    return out


def _with_retry(log: Log, build: Any) -> dict[str, Any]:
    """Run ``build(snapshot)``; a partial tile deleted by a concurrent integration
    makes it start over on the newer checkpoint."""
    for attempt in range(5):
        snap = _Snapshot(log)
        try:
            result: dict[str, Any] = build(snap)
            return result
        except NotFoundError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _answer(
    snap: _Snapshot,
    index: TraceIndex,
    query: dict[str, Any],
    matched: list[IndexedEntry],
    next_after: int | None,
    references: bool,
) -> dict[str, Any]:
    size = snap.tree.size
    inside = [e for e in matched if e.index < size]
    refs: dict[int, bytes] = {}
    if references:
        have = {e.index for e in inside}
        frontier = {i for i in _cited(inside) if i < size and i not in have}
        total = 0
        while frontier and len(refs) < MAX_REFERENCES and total < MAX_ANSWER_BYTES:
            found = index.get(frontier)
            missing = sorted(frontier - set(found))
            for i in missing:  # not a statement the index knows: read it from the log
                for j, entry in read_log_entries(snap.log, i, i + 1):
                    found[j] = IndexedEntry(j, leaf_hash(entry), entry)
            for i, e in found.items():
                refs[i] = e.entry
                total += len(e.entry)
            have |= set(found)
            frontier = {i for i in _cited(found.values()) if i < size and i not in have}
    return {
        "checkpoint": snap.tree.checkpoint.decode("utf-8"),
        "tree_size": size,
        "query": query,
        "entries": [_item(e.index, e.entry, snap.proof(e.index)) for e in inside],
        "references": [_item(i, refs[i], snap.proof(i)) for i in sorted(refs)],
        "pending": [_item(e.index, e.entry, None) for e in matched if e.index >= size],
        "next_after": next_after,
    }


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be in 1..{MAX_LIMIT}")
    return limit


def _page(found: list[IndexedEntry], n: int) -> tuple[list[IndexedEntry], int | None]:
    """At most ``n`` entries and :data:`MAX_ANSWER_BYTES`; the cursor if more remain."""
    kept: list[IndexedEntry] = []
    total = 0
    for e in found[:n]:
        if kept and total + len(e.entry) > MAX_ANSWER_BYTES:
            break
        kept.append(e)
        total += len(e.entry)
    return kept, kept[-1].index if len(kept) < len(found) else None


def trace_answer(
    log: Log,
    index: TraceIndex,
    param: str,
    value: str,
    *,
    after: int = -1,
    limit: int | None = None,
    references: bool = True,
) -> dict[str, Any]:
    """Statements whose key matches ``param=value`` (``package``, ``sha256``, ``cert``,
    ``actor``, ``sdk``), after index ``after``, at most ``limit``, with the entries
    they cite (transitively) under ``references``."""
    kind = QUERY_KINDS.get(param)
    if kind is None:
        raise InputError(f"query by one of {', '.join(QUERY_KINDS)}")
    if kind in ("apk", "cert"):
        value = value.lower()
    n = _limit(limit)
    matched, next_after = _page(index.query(kind, value, after=after, limit=n + 1), n)
    return _with_retry(
        log,
        lambda snap: _answer(snap, index, {param: value}, matched, next_after, references),
    )


def actors_answer(
    log: Log, index: TraceIndex, *, after: int = -1, limit: int | None = None
) -> dict[str, Any]:
    """The actor registry: every actor-registration statement, in log order."""
    n = _limit(limit)
    matched, next_after = _page(
        index.query("type", ACTOR_REGISTRATION, after=after, limit=n + 1), n
    )
    return _with_retry(
        log,
        lambda snap: _answer(snap, index, {"actors": True}, matched, next_after, False),
    )


def entry_answer(log: Log, entry_index: int) -> dict[str, Any]:
    """One entry read from the log itself (not the index), with its proof if a
    checkpoint covers it. Raises :class:`NotInLogError` if there is no such entry."""
    if entry_index < 0:
        raise InputError("entry index must be non-negative")

    def build(snap: _Snapshot) -> dict[str, Any]:
        if entry_index >= log.state.sequenced_size():
            raise NotInLogError(f"there is no entry {entry_index}")
        ((_, entry),) = list(read_log_entries(log, entry_index, entry_index + 1))
        covered = entry_index < snap.tree.size
        return {
            "checkpoint": snap.tree.checkpoint.decode("utf-8"),
            "tree_size": snap.tree.size,
            "entry": _item(entry_index, entry, snap.proof(entry_index) if covered else None),
            "pending": not covered,
        }

    return _with_retry(log, build)


def dumps(answer: dict[str, Any]) -> bytes:
    """Compact JSON bytes of an answer."""
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
