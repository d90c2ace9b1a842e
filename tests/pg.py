"""A throwaway PostgreSQL cluster for tests (Debian's ``postgresql`` package).

:func:`shared_server` starts one cluster per test process on first use, in a temp
directory: ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``, run as
the ``postgres`` OS user when we are root (PostgreSQL refuses to run as root), a
unix socket in the temp directory and a free TCP port on 127.0.0.1. It is stopped
and deleted when the process exits. Tests get an isolated schema each from
:meth:`PostgresServer.new_dsn`, which is much faster than a database each, and
:class:`StateBackend` runs one test against SQLite or PostgreSQL alike.

Without PostgreSQL installed, :func:`shared_server` skips the calling test with the
reason (``apt-get install postgresql``).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from provenance.log.store.state import StateStore

__all__ = ["PostgresServer", "StateBackend", "find_bin_dir", "open_state", "shared_server"]

INSTALL_HINT = "PostgreSQL is not installed (apt-get install postgresql)"


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl."""
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        try:
            version = int(initdb.parent.parent.name.split(".")[0])
        except ValueError:
            continue
        if (initdb.parent / "pg_ctl").exists():
            candidates.append((version, initdb.parent))
    if not candidates:
        on_path = shutil.which("initdb")
        return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One running cluster; :meth:`stop` removes it. Tests run it without fsync;
    ``durable=True`` keeps PostgreSQL's defaults (for benchmarks)."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="apkprov-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = 0
        self._as_user: list[str] = []
        self._schemas = itertools.count(1)
        self._lock = threading.Lock()
        self._running = False
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise RuntimeError("running as root but there is no postgres user") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = [*self._as_user, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{log}"
            )

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1"
                " -c max_connections=200"
            )
            if not self.durable:  # tests check semantics, not the server's own fsyncs
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.logfile),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self._running = True

    def dsn(self, dbname: str = "postgres", **options: str) -> str:
        """A libpq DSN over the unix socket."""
        parts = [f"host={self.root}", f"port={self.port}", "user=postgres", f"dbname={dbname}"]
        parts += [f"{k}='{v}'" for k, v in options.items()]
        return " ".join(parts)

    def new_dsn(self) -> str:
        """A DSN whose ``search_path`` is a fresh, empty schema (isolates one test)."""
        import psycopg

        with self._lock:
            name = f"t{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.dsn(options=f"-c search_path={name}")

    def stop(self) -> None:
        if self._running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)


_server: PostgresServer | None = None
_failure: str | None = None
_server_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The process's cluster, started on first use; skips the test if impossible."""
    global _server, _failure
    with _server_lock:
        if _server is None and _failure is None:
            bin_dir = find_bin_dir()
            if bin_dir is None:
                _failure = INSTALL_HINT
            else:
                try:
                    import psycopg  # noqa: F401
                except ImportError:
                    _failure = "psycopg is not installed (pip install 'psycopg[binary]')"
                else:
                    server = None
                    try:
                        server = PostgresServer(bin_dir)
                        server.start()
                    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                        _failure = f"cannot start PostgreSQL: {e}"
                        if server is not None:
                            server.stop()
                    else:
                        _server = server
                        atexit.register(server.stop)
        if _server is None:
            pytest.skip(_failure or INSTALL_HINT)
        return _server


class StateBackend:
    """Where a test's :class:`~provenance.log.store.state.StateStore` lives: ``kind``
    is ``sqlite`` or ``postgres``; :meth:`open` makes a new store object (new
    connections) on the same data, ``location`` lets a subprocess do the same."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.location = str(tmp_path / "state.db")
        elif kind == "postgres":
            self.location = shared_server().new_dsn()
        else:
            raise ValueError(kind)
        self._opened: list[StateStore] = []

    def open(self) -> StateStore:
        store = open_state(self.kind, self.location)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()


def open_state(kind: str, location: str) -> StateStore:
    """Open a state store by kind and location (also for test subprocesses)."""
    if kind == "sqlite":
        from provenance.log.store.sqlite import SQLiteState

        return SQLiteState(location)
    from provenance.log.store.postgres import PostgresState

    return PostgresState(location)
