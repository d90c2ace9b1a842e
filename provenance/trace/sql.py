"""One small database layer for the service's own tables, on SQLite or PostgreSQL.

The trace index and the service's token table live next to the log's state: in the
data folder's ``service.db`` (SQLite, WAL) for the embedded log, in the log's
PostgreSQL database for production, so one backup covers both. The layer exists so
that the index and the token store are written once, not once per engine: SQL is
written with ``?`` placeholders (translated for psycopg), each thread gets its own
connection, and :meth:`Database.exclusive` gives a lock that works across
processes (an ``flock`` next to the SQLite file, a PostgreSQL advisory lock) and
is released by the kernel or the server when its holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from provenance.log.store.errors import StoreError

__all__ = ["Database", "Transaction"]

Params = Sequence[Any]


class Transaction(Protocol):
    """What a transaction body can do."""

    def execute(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, tuple(params)).fetchall())

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._db.executemany(sql, [tuple(r) for r in rows])


class _PgTx:
    def __init__(self, db: Any) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        cur = self._db.execute(sql.replace("?", "%s"), tuple(params))
        return list(cur.fetchall()) if cur.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            with self._db.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])


class Database:
    """SQLite (``path``) or PostgreSQL (``dsn``), one connection per thread.

    ``kind`` is ``"sqlite"`` or ``"postgres"``; schema code picks column types by it.
    """

    def __init__(
        self, *, path: str | os.PathLike[str] | None = None, dsn: str | None = None
    ) -> None:
        if (path is None) == (dsn is None):
            raise ValueError("give exactly one of path (SQLite) and dsn (PostgreSQL)")
        self.kind = "sqlite" if path is not None else "postgres"
        self.path = Path(path) if path is not None else None
        self._dsn = dsn or ""
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._schema: str | None = None
        if dsn is not None:
            import psycopg  # imported only for PostgreSQL deployments

            self._pg = psycopg
            self.name = _redact(dsn)
        else:
            self.name = str(self.path)

    def __repr__(self) -> str:
        return f"Database({self.kind}, {self.name!r})"

    # ------------------------------------------------------------- connections

    def _conn(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is not None:
            return db
        if self._closed:
            raise StoreError(f"{self.name}: database is closed")
        try:
            if self.kind == "sqlite":
                assert self.path is not None
                db = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA busy_timeout=30000")
            else:
                db = self._pg.connect(
                    self._dsn, autocommit=True, connect_timeout=30, application_name="apkprov"
                )
                db.execute("SET lock_timeout = '30s'")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{self.name}: cannot open: {e}") from None
        except Exception as e:
            if self.kind == "postgres" and isinstance(e, self._pg.Error):
                raise StoreError(f"{self.name}: cannot connect: {e}") from None
            raise
        self._local.db = db
        with self._all_lock:
            self._all.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One read-write transaction (``BEGIN IMMEDIATE`` on SQLite: writers queue)."""
        db = self._conn()
        try:
            if self.kind == "sqlite":
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield _SQLiteTx(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            else:
                with db.transaction():
                    yield _PgTx(db)
        except sqlite3.Error as e:
            raise StoreError(f"{self.name}: {e}") from None
        except StoreError:
            raise
        except Exception as e:
            if self.kind == "postgres" and isinstance(e, self._pg.Error):
                raise StoreError(f"{self.name}: {e}") from None
            raise

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """One read, outside any explicit transaction."""
        db = self._conn()
        try:
            if self.kind == "sqlite":
                return list(db.execute(sql, tuple(params)).fetchall())
            return _PgTx(db).execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"{self.name}: {e}") from None
        except Exception as e:
            if self.kind == "postgres" and isinstance(e, self._pg.Error):
                raise StoreError(f"{self.name}: {e}") from None
            raise

    def create_schema(self, statements: Sequence[str]) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements once, safe against a concurrent
        creator (PostgreSQL's catalog would otherwise collide)."""
        with self.transaction() as tx:
            if self.kind == "postgres":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key("schema"),))
            for statement in statements:
                tx.execute(statement)

    # -------------------------------------------------------------------- locks

    def _lock_key(self, name: str) -> int:
        schema = self._schema
        if schema is None:
            schema = ""
            if self.kind == "postgres":
                row = _PgTx(self._conn()).execute("SELECT current_schema()")
                schema = str(row[0][0]) if row and row[0][0] is not None else ""
            self._schema = schema
        digest = hashlib.sha256(f"apkprov.service/{schema}/{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @contextmanager
    def exclusive(self, name: str, timeout: float = 60.0) -> Iterator[None]:
        """A lock named ``name`` across threads and processes sharing this database."""
        if self.kind == "sqlite":
            assert self.path is not None
            lock_path = self.path.with_name(f"{self.path.name}.{name}.lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _flock(fd, timeout, str(lock_path))
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            return
        db = self._conn()
        key = self._lock_key(name)
        deadline = time.monotonic() + timeout
        try:
            while not _PgTx(db).execute("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.name}: lock {name!r} busy for {timeout:g} s")
                time.sleep(0.01)
        except self._pg.Error as e:
            raise StoreError(f"{self.name}: cannot take lock {name!r}: {e}") from None
        try:
            yield
        finally:
            with suppress(self._pg.Error):
                _PgTx(db).execute("SELECT pg_advisory_unlock(?)", (key,))

    def close(self) -> None:
        """Close every connection this object opened (from any thread)."""
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for db in conns:
            with suppress(Exception):
                db.close()


def _flock(fd: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreError(f"{what}: lock busy for {timeout:g} s") from None
            time.sleep(0.005)


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    import psycopg

    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})
