"""The trace client's checks: trust the log's key and the registry's root, nothing else.

:class:`TraceVerifier` asks a :class:`~provenance.trace.sources.TraceSource` for the
actor registry and for the statements about an app, and accepts an entry only if

1. its answer's checkpoint is signed by the log (and, with a witness policy,
   cosigned by a quorum), and the checkpoints of all answers are consistent with
   the largest one (a consistency proof from the log's tiles);
2. its tlog-proof proves the entry -- the canonical JSON of the envelope it was
   given -- at its index in that checkpoint;
3. replayed in log order, every statement passes the same acceptance rules as at
   submission (``accept`` with the registry as of that point, at the statement's
   ``issued_at``): DSSE signatures by registered keys valid then, the role policy,
   the signer field; actor registrations rebuild the registry from the root keys.

So a lying index or service can *omit* entries but not invent or alter them. The
client narrows omission where it can:

* every statement an answer lists as matching must really match the query
  (its keys, recomputed by :func:`~provenance.trace.extract.statement_keys`);
* every log reference a statement makes must lead to an entry with that leaf hash,
  returned or fetched from ``/v1/entries/{index}`` (read from the log, not the
  index) and verified like the rest -- and if a fetched entry matches the query,
  the index left it out: that is reported;
* references must point backwards and to entries of the right kind (a release cites
  a developer registration of the same developer listing the release's signer
  certificates, a shelving cites a release of the same APK, ...).

Problems are collected, not raised: the CLI prints them all and exits 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import InputError, ProvenanceError
from provenance.log.checkpoint import Checkpoint, open_checkpoint
from provenance.log.merkle import consistency_proof, leaf_hash, verify_consistency
from provenance.log.note import Verifier
from provenance.log.policy import Policy, verify_tlog_proof_with_policy
from provenance.log.proof import parse_tlog_proof, verify_tlog_proof
from provenance.log.tiles import TileHashReader
from provenance.statements import (
    ACTOR_REGISTRATION,
    DEVELOPER_REGISTRATION,
    INSPECTION,
    RELEASE,
    RESTORE,
    SHELVING,
    TAKEDOWN,
    ActorKey,
    ActorRegistry,
    BuildProvenanceError,
    Envelope,
    RolePolicy,
    Statement,
    accept,
    canonical_json,
)
from provenance.statements.predicates import issued_at_time
from provenance.trace.answers import QUERY_KINDS
from provenance.trace.extract import parse_entry, statement_keys, statement_refs
from provenance.trace.sources import TraceSource

__all__ = ["TraceResult", "TraceVerifier", "Trust", "VerifiedStatement"]

_MAX_PAGES = 10_000
_MAX_FETCHES = 5_000
_QUERY_KIND = QUERY_KINDS


def _key(param: str, value: str) -> tuple[str, str]:
    """The index key a query asks for (digests are compared in lowercase)."""
    kind = _QUERY_KIND[param]
    return kind, value.lower() if kind in ("apk", "cert") else value


@dataclass(frozen=True)
class Trust:
    """What the client trusts: the log's key, the registry's root keys, optionally a
    witness policy, and the role policy (default: the repository's)."""

    log_verifier: Verifier
    root_keys: Sequence[ActorKey]
    witness_policy: Policy | None = None
    role_policy: RolePolicy | None = None


@dataclass
class VerifiedStatement:
    """A statement that passed every check (signature, role, inclusion proof)."""

    index: int
    leaf_hash: bytes
    statement: Statement
    step: str
    signer: str
    signer_roles: tuple[str, ...]
    cosigners: tuple[str, ...]
    matched: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement.predicate

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "step": self.step,
            "predicate_type": self.predicate_type,
            "signer": self.signer,
            "signer_roles": list(self.signer_roles),
            "cosigners": list(self.cosigners),
            "issued_at": self.statement.issued_at,
            "matched": self.matched,
            "statement": self.statement.to_dict(),
            "notes": self.notes,
        }


@dataclass
class TraceResult:
    """Everything verified, and everything that failed."""

    queries: list[tuple[str, str]]
    checkpoint: Checkpoint | None = None
    statements: list[VerifiedStatement] = field(default_factory=list)
    """Matched statements and the ones they cite, in log order."""
    actors: list[VerifiedStatement] = field(default_factory=list)
    registry: ActorRegistry | None = None
    pending: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "verified": self.ok,
            "queries": [{k: v} for k, v in self.queries],
            "checkpoint": (
                {"origin": cp.origin, "size": cp.size, "root_hash": cp.root_hash.hex()}
                if cp
                else None
            ),
            "statements": [s.to_json() for s in self.statements],
            "actors": [
                {
                    "index": s.index,
                    "actor": s.predicate["actor"]["id"],
                    "roles": s.predicate["actor"]["roles"],
                    "registrar": s.signer,
                }
                for s in self.actors
            ],
            "pending": self.pending,
            "problems": self.problems,
            "warnings": self.warnings,
        }


@dataclass
class _Item:
    """An entry some answer gave, before and after its proof is checked."""

    index: int
    entry: bytes
    origin: str  # "trace", "reference", "actors", "fetched"
    matched_query: tuple[str, str] | None = None


class TraceVerifier:
    """Runs queries against a source and verifies every answer (see module doc)."""

    def __init__(self, source: TraceSource, trust: Trust) -> None:
        self.source = source
        self.trust = trust
        self.role_policy = trust.role_policy or RolePolicy.default()
        self._checkpoints: dict[str, Checkpoint | None] = {}
        self._items: dict[int, _Item] = {}
        self._result = TraceResult([])

    # -------------------------------------------------------------- checkpoints

    def _problem(self, text: str) -> None:
        if text not in self._result.problems:
            self._result.problems.append(text)

    def _checkpoint(self, note: Any) -> Checkpoint | None:
        if not isinstance(note, str):
            self._problem("an answer carries no checkpoint")
            return None
        if note in self._checkpoints:
            return self._checkpoints[note]
        cp: Checkpoint | None = None
        try:
            policy = self.trust.witness_policy
            origin = self.trust.log_verifier.name
            if policy is not None:
                cp = policy.verify_checkpoint(note, origin=origin).checkpoint
            else:
                cp = open_checkpoint(note, [self.trust.log_verifier], origin=origin).checkpoint
        except ProvenanceError as e:
            self._problem(f"checkpoint does not verify: {e}")
        self._checkpoints[note] = cp
        return cp

    def _check_consistency(self) -> Checkpoint | None:
        """All verified checkpoints must be consistent with the largest one."""
        cps = {(c.size, c.root_hash): c for c in self._checkpoints.values() if c is not None}
        if not cps:
            return None
        newest = max(cps.values(), key=lambda c: c.size)
        reader = None
        for cp in cps.values():
            if cp.size == newest.size:
                if cp.root_hash != newest.root_hash:
                    self._problem(f"two checkpoints of size {cp.size} with different roots: a fork")
                continue
            if cp.size == 0:
                continue
            try:
                if reader is None:
                    reader = TileHashReader(newest.size, newest.root_hash, self.source.tiles())
                proof = consistency_proof(cp.size, newest.size, reader)
                verify_consistency(cp.size, newest.size, proof, cp.root_hash, newest.root_hash)
            except ProvenanceError as e:
                self._problem(
                    f"checkpoint of size {cp.size} is not consistent with size {newest.size}: {e}"
                )
        return newest

    # -------------------------------------------------------------------- items

    def _take(self, item: Any, note: str, origin: str, query: tuple[str, str] | None) -> None:
        """Check one answer item's proof against its answer's checkpoint and keep it."""
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            self._problem(f"malformed entry in an answer ({origin})")
            return
        index = item["index"]
        envelope = item.get("envelope")
        if not isinstance(envelope, dict):
            if query is not None:
                self._problem(f"entry {index} was returned for a query but is not a statement")
            return
        try:
            entry = canonical_json(envelope)
        except ProvenanceError as e:
            self._problem(f"entry {index}: envelope cannot be encoded: {e}")
            return
        if index in self._items:
            known = self._items[index]
            if known.entry != entry:
                self._problem(f"entry {index} was given with two different contents")
            elif query is not None and known.matched_query is None:
                known.matched_query = query
            return
        cp = self._checkpoint(note)
        if cp is None:
            return
        proof_text = item.get("proof")
        if not isinstance(proof_text, str):
            self._problem(f"entry {index} has no inclusion proof")
            return
        try:
            proof = parse_tlog_proof(proof_text)
            if proof.index != index:
                raise InputError(f"the proof is for entry {proof.index}")
            if proof.checkpoint != note:
                raise InputError("the proof is against another checkpoint than its answer's")
            leaf = leaf_hash(entry)
            origin_name = self.trust.log_verifier.name
            if self.trust.witness_policy is not None:
                verify_tlog_proof_with_policy(
                    proof, leaf, self.trust.witness_policy, origin=origin_name
                )
            else:
                verify_tlog_proof(proof, leaf, [self.trust.log_verifier], origin=origin_name)
        except ProvenanceError as e:
            self._problem(f"entry {index}: inclusion proof does not verify: {e}")
            return
        if item.get("leaf_hash") not in (None, leaf.hex()):
            self._problem(f"entry {index}: the answer states a wrong leaf hash")
        self._items[index] = _Item(index, entry, origin, query)

    def _take_answer(
        self, answer: dict[str, Any], origin: str, query: tuple[str, str] | None
    ) -> None:
        note = answer.get("checkpoint")
        if not isinstance(note, str):
            self._problem("an answer carries no checkpoint")
            return
        for item in answer.get("entries") or []:
            self._take(item, note, origin, query)
        for item in answer.get("references") or []:
            self._take(item, note, "reference", None)
        for item in answer.get("pending") or []:
            index = item.get("index") if isinstance(item, dict) else None
            if isinstance(index, int) and index not in self._result.pending:
                self._result.pending.append(index)

    def _pages(self, fetch: Any) -> list[dict[str, Any]]:
        pages = []
        after = -1
        for _ in range(_MAX_PAGES):
            page = fetch(after)
            pages.append(page)
            nxt = page.get("next_after")
            if nxt is None:
                break
            if not isinstance(nxt, int) or nxt <= after:
                self._problem("an answer's paging cursor goes backwards")
                break
            after = nxt
        return pages

    def _fetch(self, index: int) -> bool:
        """Fetch one entry from the log by index; True if it verified."""
        answer = self.source.entry(index)
        if answer is None:
            return False
        note = answer.get("checkpoint")
        item = answer.get("entry")
        if not isinstance(note, str) or not isinstance(item, dict):
            self._problem(f"malformed answer for entry {index}")
            return False
        if answer.get("pending"):
            return False
        self._take(item, note, "fetched", None)
        return index in self._items

    # ------------------------------------------------------------------ running

    def run(self, queries: Sequence[tuple[str, str]]) -> TraceResult:
        """Fetch and verify the registry and every query's chain."""
        result = self._result
        result.queries = list(queries)
        for page in self._pages(self.source.actors):
            self._take_answer(page, "actors", None)
        for param, value in queries:
            if param not in _QUERY_KIND:
                raise InputError(f"unknown query {param!r}")
            for page in self._pages(lambda after, p=param, v=value: self.source.trace(p, v, after)):
                self._take_answer(page, "trace", (param, value))
        self._close_references()
        result.checkpoint = self._check_consistency()
        self._replay()
        self._check_links()
        self._check_queries()
        result.pending = sorted(set(result.pending) - set(self._items))
        if result.pending:
            result.warnings.append(
                f"{len(result.pending)} matching entries are not in a checkpoint yet "
                f"(indices {', '.join(map(str, result.pending[:10]))}); not verified"
            )
        return result

    def _close_references(self) -> None:
        """Fetch every same-log entry a kept statement cites and the answers lacked."""
        fetches = 0
        done: set[int] = set()
        while True:
            wanted: set[int] = set()
            for item in list(self._items.values()):
                if item.index in done:
                    continue
                done.add(item.index)
                try:
                    _, statement = parse_entry(item.entry)
                except ProvenanceError:
                    continue
                for _, ref in statement_refs(statement):
                    if ref.log is None and ref.index < item.index and ref.index not in self._items:
                        wanted.add(ref.index)
            if not wanted:
                return
            for index in sorted(wanted):
                fetches += 1
                if fetches > _MAX_FETCHES:
                    self._problem("too many referenced entries to fetch")
                    return
                if not self._fetch(index):
                    self._problem(f"entry {index} is cited but the log does not give it")

    def _replay(self) -> None:
        """Re-run acceptance in log order with the registry rebuilt as it goes."""
        result = self._result
        registry = ActorRegistry(self.trust.root_keys)
        result.registry = registry
        for index in sorted(self._items):
            item = self._items[index]
            try:
                envelope = Envelope.from_json(item.entry)
                statement = Statement.from_json(envelope.payload)
                at = issued_at_time(statement)
                try:
                    accepted = accept(envelope, registry, (), policy=self.role_policy, now=at)
                    notes: list[str] = []
                except BuildProvenanceError:
                    if statement.predicate_type != RELEASE:
                        raise
                    notes = ["build provenance (Sigstore bundle) not re-verified here"]
                    accepted = None
            except ProvenanceError as e:
                self._problem(f"entry {index} does not verify: {e}")
                continue
            if accepted is not None:
                signer, cosigners = accepted.signer, accepted.cosigners
                step = accepted.spec.step
            else:  # a release whose every other check passed
                actor = registry.actor(statement.predicate["developer"])
                if actor is None:
                    self._problem(f"entry {index}: unknown developer")
                    continue
                signer, cosigners, step = actor, (), "release"
            verified = VerifiedStatement(
                index=index,
                leaf_hash=leaf_hash(item.entry),
                statement=statement,
                step=step,
                signer=signer.id,
                signer_roles=tuple(sorted(signer.roles)),
                cosigners=tuple(a.id for a in cosigners),
                matched=item.matched_query is not None,
                notes=notes,
            )
            if statement.predicate_type == ACTOR_REGISTRATION:
                assert accepted is not None
                registry.apply(accepted)
                result.actors.append(verified)
                if item.origin == "actors" and item.matched_query is None:
                    continue
            result.statements.append(verified)

    # ------------------------------------------------------------ completeness

    def _check_queries(self) -> None:
        """Returned-as-matching entries must match; fetched ones that match were
        left out by the index."""
        by_index = {s.index: s for s in (*self._result.statements, *self._result.actors)}
        for item in self._items.values():
            s = by_index.get(item.index)
            if s is None:
                continue
            keys = statement_keys(s.statement)
            if item.matched_query is not None:
                param, value = item.matched_query
                if _key(param, value) not in keys:
                    self._problem(
                        f"entry {item.index} ({s.step}) was returned for {param}={value} "
                        "but does not match it"
                    )
                    s.matched = False
            else:
                for param, value in self._result.queries:
                    if _key(param, value) in keys:
                        self._problem(
                            f"entry {item.index} ({s.step}) matches {param}={value} but the "
                            "index left it out of the answer (found through a reference)"
                        )
                        s.matched = True

    def _check_links(self) -> None:
        """References lead backwards, to the right entry and the right kind of entry."""
        by_index = {s.index: s for s in (*self._result.statements, *self._result.actors)}
        for s in list(by_index.values()):
            for path, ref in statement_refs(s.statement):
                if ref.log is not None:
                    s.notes.append(f"{path} cites entry {ref.index} of another log ({ref.log})")
                    continue
                if ref.index >= s.index:
                    self._problem(f"entry {s.index}: {path} cites entry {ref.index}, not earlier")
                    continue
                item = self._items.get(ref.index)
                if item is None:
                    continue  # reported by _close_references
                if leaf_hash(item.entry) != ref.leaf_hash:
                    self._problem(
                        f"entry {s.index}: {path} names entry {ref.index} with leaf hash "
                        f"{ref.leaf_hash.hex()[:16]}..., but the log has "
                        f"{leaf_hash(item.entry).hex()[:16]}..."
                    )
                    continue
                target = by_index.get(ref.index)
                if target is not None:
                    self._check_kind(s, path, target)

    def _check_kind(self, s: VerifiedStatement, path: str, target: VerifiedStatement) -> None:
        p, t = s.predicate, target.predicate
        problem = None
        if s.predicate_type == RELEASE and path == "developer_registration":
            if target.predicate_type != DEVELOPER_REGISTRATION:
                problem = "is not a developer registration"
            elif t["developer"] != p["developer"]:
                problem = f"registers {t['developer']}, not {p['developer']}"
            else:
                certs = {c["sha256"] for c in t["signer_certificates"]}
                missing = [c for c in p["signer_certificates"] if c not in certs]
                if missing:
                    problem = f"does not list the signer certificate {missing[0][:16]}..."
        elif s.predicate_type == SHELVING and path == "release":
            if target.predicate_type != RELEASE:
                problem = "is not a release"
            elif (t["apk"]["sha256"], t["package"]) != (p["apk"]["sha256"], p["package"]):
                problem = "releases another APK"
        elif s.predicate_type == INSPECTION and path == "target":
            if target.predicate_type not in (RELEASE, SHELVING):
                problem = "is neither a release nor a shelving"
            elif t["apk"]["sha256"] != p["apk"]["sha256"]:
                problem = "is about another APK"
        elif s.predicate_type == RESTORE and path == "takedown":
            if target.predicate_type != TAKEDOWN:
                problem = "is not a takedown"
            elif t["scope"] != p["scope"]:
                problem = "has another scope"
        if problem:
            self._problem(f"entry {s.index}: {path} (entry {target.index}) {problem}")
