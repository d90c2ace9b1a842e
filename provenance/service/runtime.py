"""What a running service holds, opened from a log's data folder.

Storage follows the log: a log whose state is SQLite (the embedded default) gets
its trace index and token table in ``DATA/service.db`` (SQLite, WAL); a log whose
state is in PostgreSQL gets them in the same PostgreSQL database and schema
(tables ``trace_*`` and ``svc_*`` next to the log's ``tlog_*``). The CLI's ``serve``
and ``actor`` commands and the tests all open it the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import InputError
from provenance.log.log import POSTGRES_ENV, LogConfig
from provenance.log.log import Log as LogFolder
from provenance.statements import ActorKey, Limits, ReplayWindow, RolePolicy, SigstorePolicy
from provenance.trace.index import TraceIndex
from provenance.trace.sql import Database

__all__ = ["SERVICE_DB", "Service", "ServiceSettings", "open_service_db"]

SERVICE_DB = "service.db"


def open_service_db(directory: str | os.PathLike[str], postgres: str | None = None) -> Database:
    """The service database of the log in ``directory`` (SQLite or PostgreSQL, as the
    log's state)."""
    d = Path(directory)
    config = LogConfig.load(d)
    dsn = postgres or os.environ.get(POSTGRES_ENV) or None
    if config.state == "postgres":
        if dsn is None:
            raise InputError(
                f"this log keeps its state in PostgreSQL: pass --postgres or set {POSTGRES_ENV}"
            )
        return Database(dsn=dsn)
    if postgres:
        raise InputError("this log keeps its state in SQLite (state.db); --postgres does not apply")
    return Database(path=d / SERVICE_DB)


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and tuning of the HTTP service."""

    max_body: int = 64 * 1024
    """Largest request body accepted (413 above); a log entry is at most 65,535 bytes."""
    rate: float = 2.0
    """Submissions per second per token, on average."""
    burst: int = 20
    """Submissions a token may make at once."""
    role_policy: RolePolicy | None = None
    window: ReplayWindow | None = None
    sigstore: SigstorePolicy | None = None
    log_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options for the log's sequencer (e.g. ``checkpoint_interval``)."""

    def limits(self) -> Limits:
        return Limits(max_envelope=self.max_body, max_payload=min(self.max_body, 384 * 1024))


class Service:
    """The log, its trace index, the token store and the submitter of one service."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        root_keys: Sequence[ActorKey],
        *,
        postgres: str | None = None,
        settings: ServiceSettings | None = None,
        reindex: bool = False,
    ) -> None:
        from provenance.service.ratelimit import RateLimiter
        from provenance.service.submit import Submitter
        from provenance.service.tokens import TokenStore

        self.settings = settings or ServiceSettings()
        self.db = open_service_db(directory, postgres)
        self._closed = False
        try:
            self.log = LogFolder.open(directory, postgres=postgres, **self.settings.log_options)
        except BaseException:
            self.db.close()
            raise
        try:
            self.index = TraceIndex(self.db, self.log.origin)
            if reindex:
                self.index.reset()
            self.tokens = TokenStore(self.db)
            self.submitter = Submitter(
                self.log,
                self.index,
                root_keys,
                role_policy=self.settings.role_policy,
                limits=self.settings.limits(),
                window=self.settings.window,
                sigstore=self.settings.sigstore,
            )
            self.limiter = RateLimiter(self.settings.rate, self.settings.burst)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Integrate what was appended, close the log and the database (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.log.close()
        finally:
            self.db.close()
