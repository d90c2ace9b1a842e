"""Sequencing state in PostgreSQL (psycopg 3): for logs served by several machines.

Same tables as SQLite (prefixed ``tlog_``, in the connection's current schema, so
one database can hold several logs in several schemas). Concurrency:

* appends lock the single ``tlog_tree`` row (``SELECT … FOR UPDATE``) before they
  read the next index and the dedup index, so concurrent appenders queue instead
  of handing out one index twice; rows go in with ``COPY`` (fast bulk insert);
* :meth:`swap_tree` is the compare-and-swap: it locks the same row, compares the
  size, and updates in one transaction;
* the integration lock is a session advisory lock, which the server releases when
  the holder's connection drops, even if the process was killed.

Durability is the server's: keep ``synchronous_commit = on`` (the default) and
``fsync = on``, for the reasons given in :mod:`provenance.log.store.sqlite`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

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

__all__ = ["PostgresState"]

SCHEMA_VERSION = 1
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tlog_meta (
        key text PRIMARY KEY,
        value text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tlog_tree (
        id integer PRIMARY KEY CHECK (id = 1),
        origin text NOT NULL,
        next_index bigint NOT NULL,
        size bigint NOT NULL,
        root bytea NOT NULL,
        checkpoint bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tlog_dedup (
        hash bytea PRIMARY KEY,
        idx bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tlog_pending (
        idx bigint PRIMARY KEY,
        data bytea NOT NULL)""",
]
_PAGE = 512  # pending rows fetched per query, so max_bytes bounds memory


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})


class PostgresState(StateStore):
    """:class:`StateStore` in PostgreSQL; ``dsn`` is a libpq connection string or URL.

    ``timeout`` bounds connecting and waiting for row locks (seconds).
    """

    def __init__(self, dsn: str, *, timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._name = _redact(dsn)
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        self._closed = False
        db = self._conn()
        try:
            with db.transaction():
                schema = db.execute("SELECT current_schema()").fetchone()
                if schema is None or schema[0] is None:
                    raise StoreError(f"{self._name}: no current schema (check search_path)")
                self._schema = str(schema[0])
                digest = hashlib.sha256(f"provenance.tlog/{self._schema}".encode()).digest()
                self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
                # Two processes creating the tables at once would collide in the catalog.
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key ^ 1,))
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO tlog_meta (key, value) VALUES ('schema', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
                row = db.execute("SELECT value FROM tlog_meta WHERE key = 'schema'").fetchone()
                if row is None or row[0] != str(SCHEMA_VERSION):
                    raise StoreError(f"{self._name}: state schema {row}, expected {SCHEMA_VERSION}")
        except psycopg.Error as e:
            raise StoreError(f"{self._name}: cannot set up the log tables: {e}") from None

    def __repr__(self) -> str:
        return f"PostgresState({self._name!r})"

    # ------------------------------------------------------------- connections

    def _conn(self) -> psycopg.Connection[Any]:
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is not None and not db.closed:
            return db
        if self._closed:
            raise StoreError(f"{self._name}: state store is closed")
        try:
            db = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, int(self._timeout)),
                application_name="apkprov-log",
            )
            db.execute(f"SET lock_timeout = '{int(self._timeout * 1000)}ms'")
        except psycopg.Error as e:
            raise StoreError(f"{self._name}: cannot connect: {e}") from None
        self._local.db = db
        with self._all_lock:
            self._all.append(db)
        return db

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for db in conns:
            with suppress(psycopg.Error):
                db.close()
        self._local = threading.local()

    def _fail(self, what: str, e: psycopg.Error) -> StoreError:
        return StoreError(f"{self._name}: {what}: {str(e).strip()}")

    # ------------------------------------------------------------------- state

    def initialize(self, origin: str, checkpoint: bytes, root_hash: bytes) -> None:
        db = self._conn()
        try:
            with db.transaction():
                db.execute("LOCK TABLE tlog_tree IN EXCLUSIVE MODE")
                if db.execute("SELECT 1 FROM tlog_tree").fetchone() is not None:
                    raise ConflictError(f"{self._name} already holds a log")
                db.execute(
                    "INSERT INTO tlog_tree (id, origin, next_index, size, root, checkpoint)"
                    " VALUES (1, %s, 0, 0, %s, %s)",
                    (origin, root_hash, checkpoint),
                )
        except psycopg.Error as e:
            raise self._fail("cannot initialize the log", e) from None

    def origin(self) -> str | None:
        try:
            row = self._conn().execute("SELECT origin FROM tlog_tree WHERE id = 1").fetchone()
        except psycopg.Error as e:
            raise self._fail("cannot read the log state", e) from None
        return None if row is None else str(row[0])

    def sequence(self, entries: Sequence[tuple[bytes, bytes]]) -> list[Sequenced]:
        check_sequence_input(entries)
        if not entries:
            return []
        db = self._conn()
        try:
            with db.transaction(), db.cursor() as cur:
                row = cur.execute("SELECT next_index FROM tlog_tree WHERE id = 1 FOR UPDATE")
                found = row.fetchone()
                if found is None:
                    raise StoreError(f"{self._name}: no log here (not initialized)")
                known = self._lookup(cur, [leaf for leaf, _ in entries])
                results, rows = plan_sequence(entries, known, int(found[0]))
                if rows:
                    with cur.copy("COPY tlog_dedup (hash, idx) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.set_types(["bytea", "int8"])
                        for leaf, index, _ in rows:
                            cp.write_row((leaf, index))
                    with cur.copy("COPY tlog_pending (idx, data) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.set_types(["int8", "bytea"])
                        for _, index, entry in rows:
                            cp.write_row((index, entry))
                    cur.execute(
                        "UPDATE tlog_tree SET next_index = %s WHERE id = 1", (rows[-1][1] + 1,)
                    )
        except psycopg.Error as e:
            raise self._fail("cannot sequence entries", e) from None
        return results

    @staticmethod
    def _lookup(cur: psycopg.Cursor[Any], hashes: Sequence[bytes]) -> dict[bytes, int]:
        unique = list(dict.fromkeys(hashes))
        cur.execute("SELECT hash, idx FROM tlog_dedup WHERE hash = ANY(%s)", (unique,))
        return {bytes(leaf): int(index) for leaf, index in cur.fetchall()}

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        if not leaf_hashes:
            return {}
        try:
            with self._conn().cursor() as cur:
                return self._lookup(cur, leaf_hashes)
        except psycopg.Error as e:
            raise self._fail("cannot look up entries", e) from None

    def sequenced_size(self) -> int:
        try:
            row = self._conn().execute("SELECT next_index FROM tlog_tree WHERE id = 1").fetchone()
        except psycopg.Error as e:
            raise self._fail("cannot read the log state", e) from None
        if row is None:
            raise StoreError(f"{self._name}: no log here (not initialized)")
        return int(row[0])

    def tree(self) -> TreeState:
        try:
            row = (
                self._conn()
                .execute("SELECT size, root, checkpoint FROM tlog_tree WHERE id = 1")
                .fetchone()
            )
        except psycopg.Error as e:
            raise self._fail("cannot read the log state", e) from None
        if row is None:
            raise StoreError(f"{self._name}: no log here (not initialized)")
        return TreeState(int(row[0]), bytes(row[1]), bytes(row[2]))

    def read_pending(self, start: int, max_entries: int, max_bytes: int) -> list[bytes]:
        out: list[bytes] = []
        total = 0
        db = self._conn()
        try:
            while len(out) < max_entries and total < max_bytes:
                want = min(_PAGE, max_entries - len(out))
                rows = db.execute(
                    "SELECT idx, data FROM tlog_pending WHERE idx >= %s ORDER BY idx LIMIT %s",
                    (start + len(out), want),
                ).fetchall()
                for index, data in rows:
                    if index != start + len(out):
                        raise StoreError(
                            f"{self._name}: pending entry {start + len(out)} is missing"
                            f" (found {index})"
                        )
                    out.append(bytes(data))
                    total += len(data)
                    if total >= max_bytes:
                        break
                if len(rows) < want:
                    break
        except psycopg.Error as e:
            raise self._fail("cannot read pending entries", e) from None
        return out

    def swap_tree(self, old_size: int, new: TreeState) -> None:
        db = self._conn()
        try:
            with db.transaction():
                row = db.execute(
                    "SELECT size, root, next_index FROM tlog_tree WHERE id = 1 FOR UPDATE"
                ).fetchone()
                if row is None:
                    raise StoreError(f"{self._name}: no log here (not initialized)")
                check_swap(int(row[0]), bytes(row[1]), int(row[2]), old_size, new)
                db.execute(
                    "UPDATE tlog_tree SET size = %s, root = %s, checkpoint = %s WHERE id = 1",
                    (new.size, new.root_hash, new.checkpoint),
                )
                db.execute(
                    "DELETE FROM tlog_pending WHERE idx >= %s AND idx < %s", (old_size, new.size)
                )
        except psycopg.Error as e:
            raise self._fail("cannot record the new tree", e) from None

    @contextmanager
    def integration_lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        db = self._conn()
        deadline = time.monotonic() + timeout
        delay = 0.001
        try:
            while True:
                row = db.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
                if row is not None and row[0]:
                    break
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"{self._name}: another integration held the lock for {timeout:g} s"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        except psycopg.Error as e:
            raise self._fail("cannot take the integration lock", e) from None
        try:
            yield
        finally:
            try:
                if not db.closed:
                    db.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            except psycopg.Error:
                pass  # the connection is gone, and the lock with it
