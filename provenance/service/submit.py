"""Submitting a statement: accept, append durably, index -- one at a time.

``accept`` needs the replay rule's ``seen`` set and the actor registry to be exactly
the log's, so deciding and appending must not interleave with another submission,
in this process or another one sharing the log. :meth:`Submitter.submit` therefore
runs under a lock held across processes (:meth:`~provenance.trace.sql.Database.
exclusive`: an ``flock`` next to ``service.db``, or a PostgreSQL advisory lock):

1. catch the index up with the log (entries another process appended, or that a
   crash left unindexed), applying any actor registrations among them;
2. ``accept`` the envelope against the registry, with the index as ``seen``;
3. check that the statement's signer is the actor the bearer token belongs to;
4. append to the log and wait until the entry is durably sequenced;
5. index it, and apply it to the registry if it registers an actor.

Nothing is appended unless every check passed; an index row exists only for an
entry the log has made durable. Submissions are serialized; each costs one durable
commit (a few milliseconds with SQLite or a local PostgreSQL), which is far above
the rate at which life-cycle statements are made.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from provenance.errors import InputError, ProvenanceError
from provenance.log.log import Log
from provenance.log.merkle import leaf_hash
from provenance.log.tiles import MAX_ENTRY_SIZE
from provenance.statements import (
    ACTOR_REGISTRATION,
    ActorKey,
    ActorRegistry,
    Envelope,
    Limits,
    ReplayWindow,
    RolePolicy,
    SigstorePolicy,
    Statement,
    StatementRefused,
    StatementTooLarge,
    accept,
    rebuild_registry,
)
from provenance.statements.predicates import issued_at_time
from provenance.trace.extract import IndexRow
from provenance.trace.index import SeenStatements, TraceIndex
from provenance.trace.indexer import Indexer

__all__ = ["ActorMismatch", "Submitted", "Submitter"]

logger = logging.getLogger(__name__)


class ActorMismatch(StatementRefused):
    """The bearer token belongs to another actor than the statement's signer."""

    reason = "wrong-actor"


@dataclass(frozen=True)
class Submitted:
    """Where an accepted statement went (the answer to ``POST /v1/statements``)."""

    index: int
    leaf_hash: bytes
    statement_id: str
    predicate_type: str
    signer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "statement_id": self.statement_id,
            "predicate_type": self.predicate_type,
            "signer": self.signer,
        }


class Submitter:
    """The write path of the service, over a log and its trace index."""

    def __init__(
        self,
        log: Log,
        index: TraceIndex,
        root_keys: Sequence[ActorKey],
        *,
        role_policy: RolePolicy | None = None,
        limits: Limits | None = None,
        window: ReplayWindow | None = None,
        sigstore: SigstorePolicy | None = None,
    ) -> None:
        self.log = log
        self.index = index
        self.indexer = Indexer(log, index)
        self.root_keys = tuple(root_keys)
        self.role_policy = role_policy or RolePolicy.default()
        self.limits = limits or Limits()
        self.window = window
        self.sigstore = sigstore
        self._lock = threading.Lock()
        self.registry = self._load_registry()

    def _load_registry(self) -> ActorRegistry:
        """Catch the index up, then rebuild the registry from the logged registrations."""
        with self.index.db.exclusive("submit"):
            self.indexer.catch_up()
        entries: list[bytes] = []
        after = -1
        while True:
            page = self.index.query("type", ACTOR_REGISTRATION, after=after, limit=1000)
            if not page:
                break
            entries += [e.entry for e in page]
            after = page[-1].index
        try:
            return rebuild_registry(self.root_keys, entries, policy=self.role_policy)
        except ProvenanceError as e:
            raise InputError(
                f"the log's actor registrations do not verify with the given registry root "
                f"keys: {e}"
            ) from None

    def _apply(self, rows: Sequence[IndexRow]) -> None:
        """Apply registrations that reached the log from elsewhere."""
        for row in rows:
            if row.predicate_type != ACTOR_REGISTRATION:
                continue
            try:
                env = Envelope.from_json(row.entry)
                at = issued_at_time(Statement.from_json(env.payload))
                accepted = accept(env, self.registry, (), policy=self.role_policy, now=at)
                self.registry.apply(accepted)
            except ProvenanceError as e:
                logger.error("log entry %d: registration does not apply: %s", row.index, e)

    def submit(
        self, body: bytes, actor: str | None = None, *, now: datetime | None = None
    ) -> Submitted:
        """Accept ``body`` (a DSSE envelope) from ``actor`` (the token's; None skips
        the check, for tools that submit as the operator) and append it.

        Raises the statements layer's errors (:class:`StatementRefused` and
        :class:`~provenance.statements.StatementFormatError` subclasses),
        :class:`ActorMismatch`, or a store error if the log cannot append.
        """
        with self._lock, self.index.db.exclusive("submit"):
            self._apply(self.indexer.catch_up())
            accepted = accept(
                body,
                self.registry,
                SeenStatements(self.index),
                policy=self.role_policy,
                now=now or datetime.now(UTC),
                window=self.window,
                sigstore=self.sigstore,
                limits=self.limits,
            )
            if actor is not None and accepted.signer.id != actor:
                raise ActorMismatch(
                    f"the token belongs to {actor}, but the statement is signed by "
                    f"{accepted.signer.id}: submit with that actor's token"
                )
            entry = accepted.entry
            if len(entry) > MAX_ENTRY_SIZE:
                raise StatementTooLarge(
                    f"the envelope is {len(entry)} bytes, over the log's {MAX_ENTRY_SIZE}"
                )
            index = self.log.sequencer.append(entry)
            row = self.indexer.record(index, entry)
            if row is None:
                logger.error("log entry %d was appended but not indexed", index)
            if accepted.predicate_type == ACTOR_REGISTRATION:
                self.registry.apply(accepted)
            return Submitted(
                index,
                leaf_hash(entry),
                accepted.statement_id,
                accepted.predicate_type,
                accepted.signer.id,
            )
