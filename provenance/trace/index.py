"""The trace index: log entries by package, APK digest, certificate, actor, SDK, type.

Answers "which statements are about X" without scanning the log. Schema (same on
SQLite and PostgreSQL; ``bytea``/``bigint`` there)::

    trace_meta    (key PRIMARY KEY, value)           -- schema, origin, size
    trace_entries (idx PRIMARY KEY, leaf_hash, predicate_type, signer,
                   statement_id, issued_at, entry)   -- one row per statement
    trace_keys    (kind, value, idx, PRIMARY KEY (kind, value, idx))

``size`` in ``trace_meta`` is the watermark: every log entry below it has been
looked at (statements got a row, other entries were skipped). Rows are added in the
same transaction that moves the watermark, by compare-and-swap on it, so two
indexers can never both add the same range, and the index never holds a row for an
index the log has not durably sequenced (rows are written after the log's commit).
A crash between the two commits leaves the index behind the log; the indexer
catches up from the log (:mod:`provenance.trace.indexer`). The index is derived
data: :meth:`TraceIndex.reset` and a catch-up rebuild it from the log.

The index is trusted by nobody: clients verify every entry it returns against the
log's checkpoint, so a damaged or lying index can only leave entries out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provenance.errors import InputError
from provenance.log.store.errors import StoreError
from provenance.trace.extract import KINDS, IndexRow
from provenance.trace.sql import Database

__all__ = ["SCHEMA_VERSION", "IndexedEntry", "SeenStatements", "TraceIndex"]

SCHEMA_VERSION = 1


def _schema(kind: str) -> list[str]:
    blob, big = ("BLOB", "INTEGER") if kind == "sqlite" else ("bytea", "bigint")
    return [
        "CREATE TABLE IF NOT EXISTS trace_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS trace_entries (
            idx {big} PRIMARY KEY,
            leaf_hash {blob} NOT NULL,
            predicate_type TEXT NOT NULL,
            signer TEXT NOT NULL,
            statement_id TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            entry {blob} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS trace_entries_sid ON trace_entries (statement_id)",
        f"""CREATE TABLE IF NOT EXISTS trace_keys (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            idx {big} NOT NULL,
            PRIMARY KEY (kind, value, idx))""",
    ]


@dataclass(frozen=True)
class IndexedEntry:
    """What a query returns: the entry's index, leaf hash and bytes."""

    index: int
    leaf_hash: bytes
    entry: bytes


class TraceIndex:
    """The index tables in ``db`` for the log ``origin``."""

    def __init__(self, db: Database, origin: str) -> None:
        self.db = db
        self.origin = origin
        db.create_schema(_schema(db.kind))
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO trace_meta (key, value) VALUES ('schema', ?) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            tx.execute(
                "INSERT INTO trace_meta (key, value) VALUES ('origin', ?) ON CONFLICT DO NOTHING",
                (origin,),
            )
            tx.execute(
                "INSERT INTO trace_meta (key, value) VALUES ('size', '0') ON CONFLICT DO NOTHING"
            )
            meta = dict(tx.execute("SELECT key, value FROM trace_meta"))
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise StoreError(f"{db.name}: trace index schema {meta.get('schema')}, expected 1")
        if meta.get("origin") != origin:
            raise StoreError(
                f"{db.name}: the trace index belongs to the log {meta.get('origin')!r}, "
                f"not {origin!r}"
            )

    # -------------------------------------------------------------------- writes

    def size(self) -> int:
        """The watermark: every log entry below it is indexed (or skipped)."""
        rows = self.db.query("SELECT value FROM trace_meta WHERE key = 'size'")
        return int(rows[0][0]) if rows else 0

    def add(self, start: int, rows: Sequence[IndexRow], new_size: int) -> bool:
        """Index ``rows`` (entries in ``[start, new_size)``) and move the watermark from
        ``start`` to ``new_size``, atomically; False (nothing written) if the
        watermark is no longer ``start`` (another indexer got there first)."""
        if new_size < start or any(not start <= r.index < new_size for r in rows):
            raise ValueError("rows must lie in [start, new_size)")
        with self.db.transaction() as tx:
            lock = " FOR UPDATE" if self.db.kind == "postgres" else ""
            current = tx.execute(f"SELECT value FROM trace_meta WHERE key = 'size'{lock}")
            if int(current[0][0]) != start:
                return False
            tx.executemany(
                "INSERT INTO trace_entries (idx, leaf_hash, predicate_type, signer,"
                " statement_id, issued_at, entry) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        r.index,
                        r.leaf_hash,
                        r.predicate_type,
                        r.signer,
                        r.statement_id,
                        r.issued_at,
                        r.entry,
                    )
                    for r in rows
                ],
            )
            tx.executemany(
                "INSERT INTO trace_keys (kind, value, idx) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(kind, value, r.index) for r in rows for kind, value in sorted(r.keys)],
            )
            tx.execute("UPDATE trace_meta SET value = ? WHERE key = 'size'", (str(new_size),))
        return True

    def reset(self) -> None:
        """Forget everything (the next catch-up rebuilds the index from the log)."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM trace_keys")
            tx.execute("DELETE FROM trace_entries")
            tx.execute("UPDATE trace_meta SET value = '0' WHERE key = 'size'")

    # --------------------------------------------------------------------- reads

    def query(
        self, kind: str, value: str, *, after: int = -1, limit: int = 1000
    ) -> list[IndexedEntry]:
        """Entries with key ``(kind, value)`` and index > ``after``, in log order."""
        if kind not in KINDS:
            raise InputError(f"unknown index key kind {kind!r}; kinds: {', '.join(KINDS)}")
        rows = self.db.query(
            "SELECT e.idx, e.leaf_hash, e.entry FROM trace_keys k"
            " JOIN trace_entries e ON e.idx = k.idx"
            " WHERE k.kind = ? AND k.value = ? AND k.idx > ? ORDER BY k.idx LIMIT ?",
            (kind, value, after, limit),
        )
        return [IndexedEntry(int(i), bytes(h), bytes(e)) for i, h, e in rows]

    def get(self, indices: Iterable[int]) -> dict[int, IndexedEntry]:
        """The indexed entries among ``indices`` (missing ones are absent)."""
        wanted = sorted(set(indices))
        out: dict[int, IndexedEntry] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            for idx, h, e in self.db.query(
                f"SELECT idx, leaf_hash, entry FROM trace_entries WHERE idx IN ({marks})", chunk
            ):
                out[int(idx)] = IndexedEntry(int(idx), bytes(h), bytes(e))
        return out

    def has_statement(self, statement_id: str) -> bool:
        """Whether a statement with this id is in the log (the replay rule's ``seen``)."""
        return bool(
            self.db.query(
                "SELECT 1 FROM trace_entries WHERE statement_id = ? LIMIT 1", (statement_id,)
            )
        )

    def count(self) -> int:
        """Statements indexed."""
        return int(self.db.query("SELECT COUNT(*) FROM trace_entries")[0][0])


class SeenStatements:
    """The index as the replay rule's ``seen`` container (``statement_id in seen``)."""

    def __init__(self, index: TraceIndex) -> None:
        self._index = index

    def __contains__(self, statement_id: object) -> bool:
        return isinstance(statement_id, str) and self._index.has_statement(statement_id)
