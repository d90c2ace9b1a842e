"""The terminal's own checks of what a feed says: proofs, signatures, and the records.

TUF proves that the feed is what the publisher's online key signed, recently. That
key should not be able to make things up, so the terminal also checks that every
fact rests on the log:

1. every checkpoint satisfies the witness policy from the (offline-signed) trust
   roots: the log's signature and the witness quorum;
2. every cited entry is in that checkpoint (inclusion proof of its RFC 6962 leaf
   hash) and is the entry the record cites (leaf hash equal to the reference);
3. every cited statement is signed by the actor its predicate names, with a key that
   actor held when it signed and a role allowed to sign that kind of statement --
   the actor registry being rebuilt from logged registrations rooted in the
   registry's root keys;
4. every cited statement is about the file or package asked for (its subjects);
5. a file's record is recomputed from the verified entries alone -- its own, and the
   developer registrations it cites for its package's allowed signers -- and the
   verdict must come out the same.

What remains is omission: a feed could leave out a takedown. The short expiry of the
feed role bounds how long that can last; a terminal that doubts can ask the
service, or trace the app in the log.
"""

from __future__ import annotations

import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from provenance.errors import CheckFailed, ProvenanceError
from provenance.feed.roots import TrustRoots
from provenance.log.checkpoint import Checkpoint
from provenance.log.merkle import leaf_hash, verify_inclusion
from provenance.statements import (
    ActorRegistry,
    Envelope,
    LogRef,
    RolePolicy,
    Statement,
    Subject,
    validate_statement,
)
from provenance.statements.accept import rebuild_registry
from provenance.statements.dsse import verify_envelope
from provenance.statements.predicates import issued_at_time
from provenance.verdicts.decide import decide_apk
from provenance.verdicts.index import VerdictIndex
from provenance.verdicts.records import ApkRecord, PackageRecord

__all__ = ["EvidenceError", "EvidenceVerifier"]

_MAX_DOC = 64 << 20


class EvidenceError(CheckFailed):
    """The feed's evidence does not check out: the feed cannot be trusted."""


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EvidenceError(f"{what} is not base64 text")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        raise EvidenceError(f"{what} is not base64") from None


def load_document(data: bytes, fmt: str) -> dict[str, Any]:
    """A feed JSON document of format ``fmt`` (bounded; EvidenceError otherwise)."""
    if len(data) > _MAX_DOC:
        raise EvidenceError("feed document is too large")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise EvidenceError(f"feed document is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise EvidenceError(f"feed document is not {fmt}")
    return doc


class EvidenceVerifier:
    """Checks feed evidence against the trust roots (see the module doc)."""

    def __init__(self, roots: TrustRoots) -> None:
        self.roots = roots
        self.policy = roots.witness_policy()
        self.origin = roots.origin
        self.role_policy = RolePolicy.default()
        self.registry: ActorRegistry | None = None
        self._checkpoints: dict[str, Checkpoint] = {}
        self.witnessed: tuple[str, ...] = ()

    def checkpoint(self, text: object) -> Checkpoint:
        """The checkpoint, once it satisfies the witness policy."""
        if not isinstance(text, str):
            raise EvidenceError("feed document has no checkpoint")
        got = self._checkpoints.get(text)
        if got is None:
            try:
                signed = self.policy.verify_checkpoint(text, origin=self.origin)
            except ProvenanceError as e:
                raise EvidenceError(
                    f"the log checkpoint does not satisfy the policy: {e}"
                ) from None
            got = signed.checkpoint
            self.witnessed = tuple(sorted(name for name, _ in signed.cosigners))
            self._checkpoints[text] = got
        return got

    def entry(self, item: object, checkpoint: Checkpoint, ref: LogRef | None = None) -> bytes:
        """The entry bytes of an evidence item, once proven in ``checkpoint``."""
        if not isinstance(item, dict) or set(item) != {"index", "entry", "hashes"}:
            raise EvidenceError("malformed evidence item")
        index, hashes = item["index"], item["hashes"]
        if isinstance(index, bool) or not isinstance(index, int) or not isinstance(hashes, list):
            raise EvidenceError("malformed evidence item")
        entry = _b64(item["entry"], "evidence entry")
        leaf = leaf_hash(entry)
        if ref is not None and (ref.index != index or ref.leaf_hash != leaf):
            raise EvidenceError(f"evidence for log entry {ref.index} is another entry")
        try:
            verify_inclusion(
                index,
                checkpoint.size,
                leaf,
                [_b64(h, "proof hash") for h in hashes[:64]],
                checkpoint.root_hash,
            )
        except ProvenanceError as e:
            raise EvidenceError(f"log entry {index} is not in the checkpoint: {e}") from None
        return entry

    def load_registry(self, data: bytes) -> ActorRegistry:
        """Rebuild the actor registry from the feed's proven registrations."""
        from provenance.feed.content import REGISTRY_FORMAT

        doc = load_document(data, REGISTRY_FORMAT)
        cp = self.checkpoint(doc.get("checkpoint"))
        items = doc.get("entries")
        if not isinstance(items, list):
            raise EvidenceError("registry document has no entries")
        entries = [(item.get("index"), self.entry(item, cp)) for item in items]
        if [i for i, _ in entries] != sorted({i for i, _ in entries}):
            raise EvidenceError("registry entries are not in log order")
        try:
            self.registry = rebuild_registry(
                self.roots.root_keys(), [e for _, e in entries], policy=self.role_policy
            )
        except ProvenanceError as e:
            raise EvidenceError(f"an actor registration in the feed does not verify: {e}") from None
        return self.registry

    def statement(self, entry: bytes) -> Statement:
        """The statement in a logged envelope, signed by the actor it names."""
        if self.registry is None:
            raise EvidenceError("the actor registry is not loaded")
        try:
            env = Envelope.from_json(entry)
            statement = Statement.from_json(env.payload)
            spec = validate_statement(statement)
            named = statement.predicate[spec.signer_field]
            actor = self.registry.actor(named)
            when = issued_at_time(statement)
            keys = {
                k.key_id: k.public_key for k in (actor.keys if actor else ()) if k.valid_at(when)
            }
            if not keys:
                raise EvidenceError(f"{named} had no registered key at {statement.issued_at}")
            verify_envelope(env, keys)
            if actor is None or not actor.roles & self.role_policy.allowed(spec.type):
                raise EvidenceError(f"{named} may not sign {spec.step} statements")
        except EvidenceError:
            raise
        except ProvenanceError as e:
            raise EvidenceError(f"a cited statement does not verify: {e}") from None
        return statement

    def _cited(
        self, shard: dict[str, Any], refs: list[LogRef], about: set[Subject], names: set[str]
    ) -> list[tuple[int, bytes]]:
        cp = self.checkpoint(shard.get("checkpoint"))
        evidence = shard.get("evidence")
        if not isinstance(evidence, dict):
            raise EvidenceError("shard has no evidence")
        out = []
        for ref in dict.fromkeys(refs):
            item = evidence.get(ref.leaf_hash.hex())
            if item is None:
                raise EvidenceError(f"the shard cites log entry {ref.index} without evidence")
            entry = self.entry(item, cp, ref)
            statement = self.statement(entry)
            if not (set(statement.subjects) & about) and not any(
                s.name in names for s in statement.subjects
            ):
                raise EvidenceError(f"log entry {ref.index} is about something else")
            out.append((ref.index, entry))
        return sorted(out)

    def apk_record(self, shard: dict[str, Any], record: ApkRecord, now: datetime) -> ApkRecord:
        """The record recomputed from its verified entries; must decide the same."""
        about = {Subject.named("package:" + record.package)} if record.package else set()
        refs = record.refs()
        cited = self._cited(shard, refs, about, {s.name for s in _sdk_subjects(record)})
        for index, entry in cited:  # an apk: subject must carry this very digest
            st = Statement.from_json(Envelope.from_json(entry).payload)
            if any(x.name.startswith("apk:") and x.sha256 != record.sha256 for x in st.subjects):
                raise EvidenceError(f"log entry {index} is about another file")
        # the registrations (and releases) that establish the package's allowed signers
        names = {"cert:" + s.cert for s in record.signers}
        signers = self._cited(shard, record.signer_refs(), about, names) if about else []
        with VerdictIndex(Path(":memory:")) as replay:
            replay.ingest_many(sorted(dict(cited + signers).items()), contiguous=False)
            recomputed = replay.apk_record(record.sha256)
        if recomputed is None:
            raise EvidenceError("the record's entries do not name the file")
        mine, theirs = decide_apk(recomputed, now), decide_apk(record, now)
        if mine.kind is not theirs.kind:
            raise EvidenceError(
                f"the feed says {theirs.kind.value}, but the log entries it cites say "
                f"{mine.kind.value}"
            )
        return recomputed

    def package_record(self, shard: dict[str, Any], record: PackageRecord) -> PackageRecord:
        """The record, once every entry it cites is proven, signed and about it."""
        about = {Subject.named("package:" + record.package)}
        names = {"cert:" + s.cert for s in record.signers}
        self._cited(shard, record.refs(), about, names)
        return record


def _sdk_subjects(record: ApkRecord) -> list[Subject]:
    return [
        Subject.named("sdk:" + t.target.split("@", 1)[0])
        for t in record.takedowns
        if t.scope == "sdk"
    ]
