"""The private half of a log: the sequencing state, behind one interface.

What must survive a crash, and nothing more:

* the *sequence*: every accepted entry with its index, fixed when the append
  returns (pending entries keep their bytes until a checkpoint covers them; the
  dedup index, leaf hash to index, is kept forever so resubmissions return the
  original index);
* the *integrated tree*: its size, root hash and the latest signed checkpoint,
  replaced only by compare-and-swap (:meth:`StateStore.swap_tree`), so two
  integrators can never both move the tree, and it never moves backwards.

The tree's hashes are not kept here: they are the tiles, written durably before
the tree size that needs them is recorded. Because indices are fixed before any
tree is computed, the tree at every size is a pure function of the state, and
re-running an interrupted integration writes the same tiles again.

Implementations: :class:`~provenance.log.store.sqlite.SQLiteState` (embedded, a
file next to the tiles) and :class:`~provenance.log.store.postgres.PostgresState`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType

from provenance.log.merkle import HASH_SIZE
from provenance.log.store.errors import ConflictError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "Sequenced", "StateStore", "TreeState"]

DEFAULT_LOCK_TIMEOUT = 60.0
"""Seconds to wait for the integration lock (a whole integration may run under it)."""


@dataclass(frozen=True, slots=True)
class TreeState:
    """The integrated tree: what the latest signed checkpoint commits to."""

    size: int
    root_hash: bytes
    checkpoint: bytes
    """The signed checkpoint note (with any cosignatures), as published."""


@dataclass(frozen=True, slots=True)
class Sequenced:
    """Where an appended entry is: its index, and whether it was already in the log."""

    index: int
    duplicate: bool = False


class StateStore(ABC):
    """Sequencing state of one log; safe to share between threads and processes.

    Every method is one transaction. Implementations open one connection per
    thread, so callers need no locking of their own.
    """

    @abstractmethod
    def initialize(self, origin: str, checkpoint: bytes, root_hash: bytes) -> None:
        """Record a new, empty log (size 0) with its first signed checkpoint.

        Raises :class:`~provenance.log.store.errors.ConflictError` if the store
        already holds a log.
        """

    @abstractmethod
    def origin(self) -> str | None:
        """The origin of the log in this store, or None if not initialized."""

    @abstractmethod
    def sequence(self, entries: Sequence[tuple[bytes, bytes]]) -> list[Sequenced]:
        """Assign indices to ``(leaf hash, entry)`` pairs, durably, in one transaction.

        Entries whose leaf hash is already sequenced (or repeated in the batch) get
        the existing index with ``duplicate=True``; the others get consecutive new
        indices in the order given.
        """

    @abstractmethod
    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Indices of the leaf hashes that are sequenced (missing ones are absent)."""

    @abstractmethod
    def sequenced_size(self) -> int:
        """How many entries have an index (integrated or pending)."""

    @abstractmethod
    def tree(self) -> TreeState:
        """The integrated tree; :class:`StoreError` if the store is not initialized."""

    @abstractmethod
    def read_pending(self, start: int, max_entries: int, max_bytes: int) -> list[bytes]:
        """Pending entries from index ``start`` on, in order: at most ``max_entries``,
        stopping after the entry that reaches ``max_bytes`` (so at least one)."""

    @abstractmethod
    def swap_tree(self, old_size: int, new: TreeState) -> None:
        """Replace the integrated tree if it still has ``old_size`` leaves.

        The new tree must be larger (or the same size with the same root, to replace
        the checkpoint's cosignatures) and no larger than the sequence. Pending
        entries below the new size are dropped in the same transaction: from then
        on the entry bundles hold them. Raises ``ConflictError`` if the tree moved.
        """

    @abstractmethod
    def integration_lock(
        self, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[None]:
        """Exclusive right to integrate, across threads and processes; released
        when the holder exits or dies. ``StoreError`` after ``timeout`` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection this object opened."""

    def pending_count(self) -> int:
        """Sequenced entries that no checkpoint covers yet."""
        return self.sequenced_size() - self.tree().size

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_sequence_input(entries: Sequence[tuple[bytes, bytes]]) -> None:
    """Shared argument check for :meth:`StateStore.sequence` implementations."""
    for leaf, _ in entries:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")


def plan_sequence(
    entries: Sequence[tuple[bytes, bytes]], known: dict[bytes, int], next_index: int
) -> tuple[list[Sequenced], list[tuple[bytes, int, bytes]]]:
    """Results for a batch and the new rows ``(leaf hash, index, entry)`` to insert,
    given the indices of the hashes already stored (shared by the implementations)."""
    results: list[Sequenced] = []
    rows: list[tuple[bytes, int, bytes]] = []
    seen = dict(known)
    for leaf, entry in entries:
        index = seen.get(leaf)
        if index is not None:
            results.append(Sequenced(index, True))
            continue
        seen[leaf] = next_index
        rows.append((leaf, next_index, entry))
        results.append(Sequenced(next_index, False))
        next_index += 1
    return results, rows


def check_swap(size: int, root: bytes, next_index: int, old_size: int, new: TreeState) -> None:
    """The compare-and-swap rule of :meth:`StateStore.swap_tree`, given the stored row."""
    if size != old_size:
        raise ConflictError(f"the tree moved: expected size {old_size}, found {size}")
    if new.size < size or (new.size == size and new.root_hash != root):
        raise ConflictError(f"refusing to replace the tree of size {size} by size {new.size}")
    if new.size > next_index:
        raise ConflictError(f"tree size {new.size} is beyond the {next_index} sequenced entries")
