"""The verdict API as an ASGI app: ``GET /v1/verdict`` answers with a signed verdict.

``verdict_app(index, signer)`` returns a Starlette app serving ``/v1/verdict`` and
``/v1/verdict-key``, for the HTTP service to mount, or to run on its own (the
benchmark does). Queries:

* ``?sha256=<hex>`` -- this very file;
* ``?package=<name>&cert=<hex>[&version_code=<n>]`` -- the app as installed.

The answer is the DSSE envelope (``application/json``) of a verdict record, also for
``unknown``: a terminal can always tell a signed "nothing known" from a network error.
Responses are cached per query for ``cache_seconds`` (default 5): a cached answer's
``issued_at`` is at most that old, and the cache is dropped as soon as the index
changes, so a takedown shows at once. Lookups are a few indexed SQLite reads and run
on the event loop; signing is one Ed25519 signature.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provenance.statements import Signer
from provenance.statements.keys import public_key_b64
from provenance.verdicts.index import DEFAULT_TTL, VerdictIndex
from provenance.verdicts.model import Query, VerdictFormatError
from provenance.verdicts.signing import VERDICT_PAYLOAD_TYPE, signed_verdict_json

__all__ = ["verdict_app"]

_CACHE_ENTRIES = 65536


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _query(request: Request) -> Query:
    params = request.query_params
    unknown = set(params) - {"sha256", "package", "cert", "version_code"}
    if unknown:
        raise VerdictFormatError(f"unknown parameters {sorted(unknown)}")
    vc_text = params.get("version_code")
    version_code = None
    if vc_text is not None:
        if not vc_text.isdigit() or len(vc_text) > 16:
            raise VerdictFormatError("version_code must be a non-negative integer")
        version_code = int(vc_text)
    cert = params.get("cert")
    if cert is not None and cert == "*":
        raise VerdictFormatError("cert must be a certificate SHA-256")
    return Query(params.get("sha256"), params.get("package"), cert, version_code)


def verdict_app(
    index: VerdictIndex,
    signer: Signer,
    *,
    ttl: timedelta = DEFAULT_TTL,
    cache_seconds: float = 5.0,
) -> Starlette:
    """A Starlette app answering verdict queries from ``index``, signed by ``signer``."""
    cache: OrderedDict[Query, tuple[float, bytes]] = OrderedDict()
    state = {"version": index.data_version()}
    key_doc = {
        "keyid": signer.key_id,
        "public_key": public_key_b64(signer.public_key),
        "payload_type": VERDICT_PAYLOAD_TYPE,
    }

    async def verdict(request: Request) -> Response:
        try:
            query = _query(request)
        except VerdictFormatError as e:
            return _error(400, str(e))
        now = time.monotonic()
        version = index.data_version()
        if version != state["version"]:
            cache.clear()
            state["version"] = version
        hit = cache.get(query)
        if hit is not None and now - hit[0] < cache_seconds:
            body = hit[1]
        else:
            body = signed_verdict_json(index.lookup(query, ttl=ttl), signer)
            if cache_seconds > 0:
                cache[query] = (now, body)
                cache.move_to_end(query)
                if len(cache) > _CACHE_ENTRIES:
                    cache.popitem(last=False)
        return Response(
            body,
            media_type="application/json",
            headers={"Cache-Control": f"max-age={int(cache_seconds)}"},
        )

    async def verdict_key(request: Request) -> Response:
        return JSONResponse(key_doc)

    return Starlette(
        routes=[
            Route("/v1/verdict", verdict, methods=["GET"]),
            Route("/v1/verdict-key", verdict_key, methods=["GET"]),
        ]
    )
