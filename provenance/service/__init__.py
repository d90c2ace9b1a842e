"""The HTTP service: submit signed statements to the log, trace apps with proofs.

:class:`~provenance.service.runtime.Service` opens a log's data folder with its trace
index and token table; :func:`~provenance.service.app.service_app` is the ASGI app
(Starlette, served by uvicorn: ``apkprov serve``). See ``docs/service.md``.
"""

from __future__ import annotations

from provenance.service.app import service_app
from provenance.service.ratelimit import RateLimiter
from provenance.service.runtime import SERVICE_DB, Service, ServiceSettings, open_service_db
from provenance.service.submit import ActorMismatch, Submitted, Submitter
from provenance.service.tokens import TOKEN_PREFIX, TokenInfo, TokenStore

__all__ = [
    "SERVICE_DB",
    "TOKEN_PREFIX",
    "ActorMismatch",
    "RateLimiter",
    "Service",
    "ServiceSettings",
    "Submitted",
    "Submitter",
    "TokenInfo",
    "TokenStore",
    "open_service_db",
    "service_app",
]
