"""Sequencing state in SQLite: the embedded default, one file in the data folder.

Settings, and why:

* ``journal_mode=WAL``: readers (status, proofs) never block the sequencer, and a
  commit is one append to the log file instead of a rollback-journal dance.
* ``synchronous=FULL``: the WAL is fsynced at every commit. With ``NORMAL`` a commit
  survives a process crash but not a power cut or kernel panic, which would roll
  back appends that were already acknowledged *and* let the next start re-assign
  their indices to other entries, while tiles and a checkpoint signed over the old
  assignment are already public: two inconsistent checkpoints, a forked log. The
  price is one fsync per commit, which group commit (many entries per
  transaction) spreads thin.
* ``BEGIN IMMEDIATE`` for every write and a ``busy_timeout``: writers from several
  processes queue on the database lock instead of failing, and a transaction never
  has to upgrade a read lock (the classic SQLite deadlock).
* WAL checkpoints (copying the log back into the database, with an fsync) run in
  the integrator after each new tree, ``PASSIVE`` so they never block appends;
  ``wal_autocheckpoint`` is raised to 16,384 pages as a backstop. Run in the
  appender on every 1,000 pages (the default), they halved throughput at a million
  entries: the dedup index is keyed by hash, so every batch dirties pages all over.
* The integration lock is an ``flock`` on ``<db>.lock``: the kernel releases it
  when the holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from provenance.log.store.errors import ConflictError, StoreError
from provenance.log.store.state import (
    DEFAULT_LOCK_TIMEOUT,
    Sequenced,
    StateStore,
    TreeState,
    check_sequence_input,
    check_swap,
    plan_sequence,
)

__all__ = ["SQLiteState"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tlog_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_tree (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL,
    next_index INTEGER NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_dedup (
    hash BLOB PRIMARY KEY,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tlog_pending (
    idx INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"""
_LOOKUP_CHUNK = 500  # bound on SQL parameters per statement
_WAL_AUTOCHECKPOINT = 16384  # pages; the integrator checkpoints sooner (see swap_tree)


class SQLiteState(StateStore):
    """:class:`StateStore` in a SQLite database file.

    ``timeout`` bounds how long a write waits for other writers (seconds).
    ``cache_mib`` is SQLite's page cache per connection (one per thread): small,
    because the kernel's page cache serves the dedup index as well and the
    process's memory must not grow with the log. ``synchronous`` may be lowered to
    ``"NORMAL"`` for throwaway logs only (see the module documentation).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "FULL",
        cache_mib: int = 8,
    ) -> None:
        if synchronous.upper() not in ("FULL", "EXTRA", "NORMAL", "OFF"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._timeout = timeout
        self._synchronous = synchronous.upper()
        self._cache_kib = cache_mib * 1024
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO tlog_meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
            (version,) = db.execute("SELECT value FROM tlog_meta WHERE key = 'schema'").fetchone()
            if version != str(SCHEMA_VERSION):
                raise StoreError(f"{self.path}: state schema {version}, expected {SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"SQLiteState({str(self.path)!r})"

    # ------------------------------------------------------------- connections

    def _conn(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        if self._closed:
            raise StoreError(f"{self.path}: state store is closed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute(f"PRAGMA cache_size = -{self._cache_kib}")
            db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT}")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None
        self._local.db = db
        with self._all_lock:
            self._all.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from the start."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot start a write transaction: {e}") from None
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: commit failed: {e}") from None

    def _read_one(self, sql: str, params: Sequence[object] = ()) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = self._conn().execute(sql, params).fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None
        return row

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for db in conns:
            with suppress(sqlite3.Error):
                db.close()
        self._local = threading.local()

    # ------------------------------------------------------------------- state

    def initialize(self, origin: str, checkpoint: bytes, root_hash: bytes) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM tlog_tree").fetchone() is not None:
                raise ConflictError(f"{self.path} already holds a log")
            db.execute(
                "INSERT INTO tlog_tree (id, origin, next_index, size, root, checkpoint)"
                " VALUES (1, ?, 0, 0, ?, ?)",
                (origin, root_hash, checkpoint),
            )

    def origin(self) -> str | None:
        row = self._read_one("SELECT origin FROM tlog_tree WHERE id = 1")
        return None if row is None else str(row[0])

    def sequence(self, entries: Sequence[tuple[bytes, bytes]]) -> list[Sequenced]:
        check_sequence_input(entries)
        if not entries:
            return []
        try:
            with self._write() as db:
                row = db.execute("SELECT next_index FROM tlog_tree WHERE id = 1").fetchone()
                if row is None:
                    raise StoreError(f"{self.path}: no log here (not initialized)")
                known = self._lookup(db, [leaf for leaf, _ in entries])
                results, rows = plan_sequence(entries, known, int(row[0]))
                if rows:
                    db.executemany(
                        "INSERT INTO tlog_dedup (hash, idx) VALUES (?, ?)",
                        [(leaf, index) for leaf, index, _ in rows],
                    )
                    db.executemany(
                        "INSERT INTO tlog_pending (idx, data) VALUES (?, ?)",
                        [(index, entry) for _, index, entry in rows],
                    )
                    db.execute(
                        "UPDATE tlog_tree SET next_index = ? WHERE id = 1", (rows[-1][1] + 1,)
                    )
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot sequence entries: {e}") from None
        return results

    @staticmethod
    def _lookup(db: sqlite3.Connection, hashes: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for leaf, index in db.execute(
                f"SELECT hash, idx FROM tlog_dedup WHERE hash IN ({marks})", chunk
            ):
                found[bytes(leaf)] = int(index)
        return found

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        try:
            return self._lookup(self._conn(), leaf_hashes)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None

    def sequenced_size(self) -> int:
        row = self._read_one("SELECT next_index FROM tlog_tree WHERE id = 1")
        if row is None:
            raise StoreError(f"{self.path}: no log here (not initialized)")
        (size,) = row
        assert isinstance(size, int)
        return size

    def tree(self) -> TreeState:
        row = self._read_one("SELECT size, root, checkpoint FROM tlog_tree WHERE id = 1")
        if row is None:
            raise StoreError(f"{self.path}: no log here (not initialized)")
        size, root, checkpoint = row
        assert isinstance(size, int) and isinstance(root, bytes) and isinstance(checkpoint, bytes)
        return TreeState(size, root, checkpoint)

    def read_pending(self, start: int, max_entries: int, max_bytes: int) -> list[bytes]:
        out: list[bytes] = []
        total = 0
        try:
            cursor = self._conn().execute(
                "SELECT idx, data FROM tlog_pending WHERE idx >= ? ORDER BY idx LIMIT ?",
                (start, max_entries),
            )
            for index, data in cursor:
                if index != start + len(out):
                    raise StoreError(
                        f"{self.path}: pending entry {start + len(out)} is missing (found {index})"
                    )
                out.append(bytes(data))
                total += len(data)
                if total >= max_bytes:
                    break
            cursor.close()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None
        return out

    def swap_tree(self, old_size: int, new: TreeState) -> None:
        try:
            with self._write() as db:
                row = db.execute(
                    "SELECT size, root, next_index FROM tlog_tree WHERE id = 1"
                ).fetchone()
                if row is None:
                    raise StoreError(f"{self.path}: no log here (not initialized)")
                check_swap(int(row[0]), bytes(row[1]), int(row[2]), old_size, new)
                db.execute(
                    "UPDATE tlog_tree SET size = ?, root = ?, checkpoint = ? WHERE id = 1",
                    (new.size, new.root_hash, new.checkpoint),
                )
                db.execute(
                    "DELETE FROM tlog_pending WHERE idx >= ? AND idx < ?", (old_size, new.size)
                )
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot record the new tree: {e}") from None
        # Copy the WAL back into the database here, in the integrator's thread, so
        # appends rarely pay for it; PASSIVE never waits for (or blocks) them.
        with suppress(sqlite3.Error):
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @contextmanager
    def integration_lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        lock_path = Path(f"{self.path}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreError(f"cannot open {lock_path}: {e.strerror or e}") from None
        try:
            deadline = time.monotonic() + timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"{lock_path}: another integration held the lock for {timeout:g} s"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock
