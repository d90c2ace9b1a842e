"""The HTTP service: an ASGI app (Starlette) over the log, the trace index and tokens.

Routes (docs/service.md; the OpenAPI document at ``/openapi.json``):

* ``POST /v1/statements`` -- bearer token, rate limit, size limit, then
  :meth:`~provenance.service.submit.Submitter.submit`; ``201 {index, leaf_hash, ...}``
  once the entry is durable;
* ``GET /v1/trace?package=|sha256=|cert=|actor=|sdk=``, ``GET /v1/actors``,
  ``GET /v1/entries/{index}`` -- answers with tlog-proofs (:mod:`provenance.trace.answers`);
* ``GET /v1/status``, ``GET /openapi.json``;
* ``/checkpoint`` and ``/tile/...`` -- the log's C2SP read path, the app of
  :func:`provenance.log.server.log_app` mounted as is.

Reads are public (it is a transparency log); only submissions need a token. Errors
are JSON ``{"error": code, "message": text}`` with a stable ``code``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from provenance.errors import InputError, ProvenanceError
from provenance.log.log import NotInLogError
from provenance.log.server import log_app
from provenance.service.openapi import openapi_spec
from provenance.service.runtime import Service
from provenance.service.submit import ActorMismatch
from provenance.statements import (
    BuildProvenanceError,
    EnvelopeSignatureError,
    ReplayError,
    RoleError,
    StatementFormatError,
    StatementTooLarge,
    UnknownKeyError,
)
from provenance.trace.answers import (
    MAX_LIMIT,
    QUERY_KINDS,
    actors_answer,
    dumps,
    entry_answer,
    trace_answer,
)

__all__ = ["service_app"]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_VALUE = re.compile(r"[\x21-\x7e]{1,512}")
_INDEX = re.compile(r"[0-9]{1,18}")

# refusal class -> (HTTP status, error code); the first match wins
_REFUSALS: list[tuple[type[Exception], int, str]] = [
    (StatementTooLarge, 413, "too-large"),
    (StatementFormatError, 400, "malformed"),
    (ActorMismatch, 403, "wrong-actor"),
    (RoleError, 403, "wrong-role"),
    (UnknownKeyError, 403, "unknown-key"),
    (ReplayError, 409, "replay"),
    (EnvelopeSignatureError, 422, "bad-signature"),
    (BuildProvenanceError, 422, "build-provenance"),
    (InputError, 400, "malformed"),
]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else dumps(body)
    h = {"Cache-Control": "no-store"}
    h.update(headers or {})
    return Response(data, status, headers=h, media_type=_JSON)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": code, "message": message}, headers)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing before buffering more than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InputError(f"{name} must be in {low}..{high}")
    return value


def service_app(
    service: Service,
    *,
    close_on_shutdown: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ASGI app for ``service``; it closes the service when the server stops
    (integrating what was appended) unless ``close_on_shutdown`` is false.

    ``extra_routes`` are served ahead of the API's own (``apkprov serve`` adds the
    terminal verdict API there when a verdict key is configured).
    """
    settings = service.settings
    log = service.log
    spec = json.dumps(openapi_spec(settings.max_body), indent=1).encode()

    async def submit(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="apkprov"'}
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "unauthorized", "a bearer token is required", challenge)
        info = await run_in_threadpool(service.tokens.authenticate, token.strip())
        if info is None:
            return _error(401, "unauthorized", "unknown or revoked token", challenge)
        wait = service.limiter.take(info.token_id)
        if wait > 0:
            return _error(
                429,
                "rate-limited",
                f"too many submissions with token {info.token_id}",
                {"Retry-After": service.limiter.retry_after(wait)},
            )
        try:
            body = await _read_body(request, settings.max_body)
        except _TooLarge:
            return _error(413, "too-large", f"a submission is at most {settings.max_body} bytes")
        except ClientDisconnect:
            return _error(400, "malformed", "client disconnected")
        try:
            done = await run_in_threadpool(service.submitter.submit, body, info.actor)
        except ProvenanceError as e:
            for cls, status, code in _REFUSALS:
                if isinstance(e, cls):
                    return _error(status, code, str(e))
            logger.error("submission failed: %s", e)
            return _error(
                503, "unavailable", "the log cannot append right now", {"Retry-After": "1"}
            )
        logger.info("entry %d: %s by %s", done.index, done.predicate_type, done.signer)
        return _json(201, done.to_json(), {"Location": f"/v1/entries/{done.index}"})

    def _query(request: Request) -> tuple[str, str]:
        given = [(k, v) for k, v in request.query_params.multi_items() if k in QUERY_KINDS]
        if len(given) != 1:
            raise InputError(f"give exactly one of {', '.join(QUERY_KINDS)}")
        param, value = given[0]
        if param in ("sha256", "cert") and not _HEX64.fullmatch(value):
            raise InputError(f"{param} must be 64 hex digits")
        if not _VALUE.fullmatch(value):
            raise InputError(f"{param} must be 1..512 printable ASCII characters")
        return param, value

    def trace(request: Request) -> Response:
        try:
            param, value = _query(request)
            after = _int_param(request, "after", -1, -1, 2**62)
            limit = _int_param(request, "limit", 200, 1, MAX_LIMIT)
            return _json(
                200, trace_answer(log, service.index, param, value, after=after, limit=limit)
            )
        except InputError as e:
            return _error(400, "malformed", str(e))
        except ProvenanceError as e:
            logger.error("trace failed: %s", e)
            return _error(503, "unavailable", "cannot answer right now", {"Retry-After": "1"})

    def actors(request: Request) -> Response:
        try:
            after = _int_param(request, "after", -1, -1, 2**62)
            limit = _int_param(request, "limit", 200, 1, MAX_LIMIT)
            return _json(200, actors_answer(log, service.index, after=after, limit=limit))
        except InputError as e:
            return _error(400, "malformed", str(e))
        except ProvenanceError as e:
            logger.error("actors failed: %s", e)
            return _error(503, "unavailable", "cannot answer right now", {"Retry-After": "1"})

    def entry(request: Request) -> Response:
        raw = request.path_params["index"]
        if not _INDEX.fullmatch(raw):
            return _error(404, "not-found", "no such entry")
        try:
            return _json(200, entry_answer(log, int(raw)))
        except NotInLogError:
            return _error(404, "not-found", f"there is no entry {raw}")
        except ProvenanceError as e:
            logger.error("entry %s failed: %s", raw, e)
            return _error(503, "unavailable", "cannot answer right now", {"Retry-After": "1"})

    def status(request: Request) -> Response:
        tree = log.state.tree()
        return _json(
            200,
            {
                "origin": log.origin,
                "vkey": log.config.vkey,
                "tree_size": tree.size,
                "sequenced": log.state.sequenced_size(),
                "indexed": service.index.size(),
                "statements": service.index.count(),
            },
        )

    def openapi(request: Request) -> Response:
        return Response(spec, 200, media_type=_JSON)

    routes = [
        *extra_routes,
        Route("/v1/statements", submit, methods=["POST"]),
        Route("/v1/trace", trace, methods=["GET"]),
        Route("/v1/actors", actors, methods=["GET"]),
        Route("/v1/entries/{index}", entry, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Mount("", app=log_app(log.tiles)),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await run_in_threadpool(service.close)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False
    # The web view for access providers and platforms (provenance.web) under /ui: a
    # middleware rather than a route, because it is HTML, not part of the API above.
    from provenance.web.mount import WebMount

    app.add_middleware(WebMount, service=service)
    return app
