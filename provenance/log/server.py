"""The log's HTTP interface: the c2sp.org/tlog-tiles read path, plus ``POST /add``.

Read path, ``GET`` and ``HEAD``, over any
:class:`~provenance.log.store.tile_store.TileSource` (the data folder's ``public/``):

* ``/checkpoint`` — ``text/plain; charset=utf-8``, ``Cache-Control: no-cache``: it
  changes with every integration, and the spec asks for no caching beyond seconds;
* ``/tile/<L>/<N>[.p/<W>]`` and ``/tile/entries/<N>[.p/<W>]`` —
  ``application/octet-stream``. Full tiles and bundles never change: cached for a
  year as ``immutable``. Partial ones are cached for a minute only, since the log
  deletes them once the full tile exists (the store then cuts them from the full
  tile). Entry bundles are gzip-compressed for clients that accept it.

Paths are parsed strictly (:func:`~provenance.log.tiles.parse_tile_path`,
:func:`~provenance.log.tiles.parse_entries_path`) and storage is addressed by the
parsed tile, never by the request text, so no request reaches outside the tiles.
A malformed path is a 404, as from a static bucket holding the same files.

Write path: ``POST /add``, one entry (at most 65,535 bytes) as the body, with an
optional bearer token; the answer is the entry's index, once it is durably
sequenced (``text/plain``, the decimal index and a newline).
"""

from __future__ import annotations

import gzip
import hmac
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from provenance.errors import InputError, ProvenanceError
from provenance.log.log import Log
from provenance.log.store.errors import NotFoundError
from provenance.log.store.tile_store import TileSource
from provenance.log.tiles import (
    MAX_ENTRY_SIZE,
    TileError,
    parse_entries_path,
    parse_tile_path,
)

__all__ = [
    "CHECKPOINT_CACHE",
    "FULL_TILE_CACHE",
    "PARTIAL_TILE_CACHE",
    "EntryAppender",
    "data_folder_app",
    "log_app",
]

logger = logging.getLogger(__name__)

CHECKPOINT_CACHE = "no-cache"
FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"
_NOT_FOUND_CACHE = "no-cache"  # a missing tile appears once the tree grows
_OCTETS = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"
_GZIP_MIN = 512  # below this, gzip's header costs more than it saves

EntryAppender = Callable[[bytes], int | Awaitable[int]]
"""Appends one entry and returns its index once it is durable (sync or async), such
as ``Sequencer.append_async``; raises :class:`InputError` for a bad entry."""


def _accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*`` without ``q=0``)."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower().replace(" ", "")
        if not q.startswith("q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing before buffering more than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text + "\n", status, headers=headers, media_type=_TEXT)


def _not_found(what: str) -> Response:
    return _plain(404, f"{what} not found", {"Cache-Control": _NOT_FOUND_CACHE})


def log_app(
    tiles: TileSource,
    *,
    appender: EntryAppender | None = None,
    token: str | None = None,
    max_entry_size: int = MAX_ENTRY_SIZE,
    on_shutdown: Callable[[], object] | None = None,
) -> Starlette:
    """The log's ASGI app reading ``tiles``; ``POST /add`` exists only with an
    ``appender``, and then needs ``Authorization: Bearer <token>`` if ``token`` is set.
    ``on_shutdown`` runs (on a worker thread) when the server stops.
    """
    if not 0 < max_entry_size <= MAX_ENTRY_SIZE:
        raise InputError(f"max entry size must be in 1..{MAX_ENTRY_SIZE}")
    if token is not None and not token:
        raise InputError("the bearer token must not be empty")

    # Sync handlers: Starlette runs them on its thread pool, so file reads never
    # block the event loop.
    def checkpoint(request: Request) -> Response:
        try:
            data = tiles.read_checkpoint()
        except ProvenanceError as e:
            logger.error("cannot serve the checkpoint: %s", e)
            return _plain(500, "the log's storage is damaged")
        if data is None:
            return _not_found("checkpoint")
        return Response(data, 200, media_type=_TEXT, headers={"Cache-Control": CHECKPOINT_CACHE})

    def tile(request: Request) -> Response:
        path = "tile/" + request.path_params["rest"]
        entries = path.startswith("tile/entries/")
        try:
            t = parse_entries_path(path) if entries else parse_tile_path(path)
        except TileError:
            return _not_found("tile (malformed path)")
        try:
            data = tiles.read_entry_bundle(t) if entries else tiles.read_tile(t)
        except NotFoundError:
            return _not_found(path)
        except ProvenanceError as e:
            logger.error("cannot serve %s: %s", path, e)
            return _plain(500, "the log's storage is damaged")
        headers = {"Cache-Control": FULL_TILE_CACHE if t.is_full else PARTIAL_TILE_CACHE}
        if entries:
            headers["Vary"] = "Accept-Encoding"
            if len(data) >= _GZIP_MIN and _accepts_gzip(request.headers.get("accept-encoding", "")):
                data = gzip.compress(data, compresslevel=6, mtime=0)
                headers["Content-Encoding"] = "gzip"
        return Response(data, 200, media_type=_OCTETS, headers=headers)

    async def add(request: Request) -> Response:
        assert appender is not None
        if token is not None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), token.encode()
            ):
                return _plain(401, "bearer token required", {"WWW-Authenticate": "Bearer"})
        try:
            entry = await _read_body(request, max_entry_size)
        except _TooLarge:
            return _plain(413, f"an entry is at most {max_entry_size} bytes")
        except ClientDisconnect:
            return _plain(400, "client disconnected")
        try:
            if inspect.iscoroutinefunction(appender):
                index = await appender(entry)
            else:
                result = await run_in_threadpool(appender, entry)
                index = await result if inspect.isawaitable(result) else result
        except InputError as e:
            return _plain(400, str(e))
        except ProvenanceError as e:
            logger.error("append failed: %s", e)
            return _plain(503, "the log cannot append right now", {"Retry-After": "1"})
        return _plain(200, str(index), {"Cache-Control": "no-store"})

    routes = [
        Route("/checkpoint", checkpoint, methods=["GET", "HEAD"]),
        Route("/tile/{rest:path}", tile, methods=["GET", "HEAD"]),
    ]
    if appender is not None:
        routes.append(Route("/add", add, methods=["POST"]))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False  # exact paths only, as a static bucket
    return app


def data_folder_app(
    log: Log, *, token: str | None = None, writable: bool = True, close_log: bool = False
) -> Starlette:
    """The app for a data folder opened with :meth:`Log.open`: its ``public/`` files,
    and (if ``writable``) appends through its sequencer. Closing ``log`` integrates
    what was appended; with ``close_log`` the app does it when the server stops
    (uvicorn re-raises SIGTERM after its shutdown, so code after ``uvicorn.run``
    may never run)."""
    appender = log.sequencer.append_async if writable else None
    return log_app(
        log.tiles, appender=appender, token=token, on_shutdown=log.close if close_log else None
    )
