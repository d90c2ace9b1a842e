"""The web view's ASGI app: ``/`` (search and chain) and ``/log`` (log status).

Pages are rendered on the server from the service's own log and trace index,
through :class:`~provenance.trace.sources.LocalTraceSource` and the same verifier
``apkprov trace`` uses, trusting the log's verifier key and the registry root keys
the service was started with (and its witness policy, if it cosigns with one). The
work is blocking (database, signatures, proofs), so handlers are plain functions,
which Starlette runs on its thread pool.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from provenance.errors import InputError, ProvenanceError
from provenance.log.policy import Policy, PolicyCosigner
from provenance.takedown import Subject, prepare
from provenance.trace.sources import LocalTraceSource
from provenance.trace.verify import TraceVerifier, Trust
from provenance.web.chain_view import render_chain
from provenance.web.html import Html, html
from provenance.web.layout import page, security_headers
from provenance.web.search import KINDS, search_form, search_page_body
from provenance.web.status import LogFacts, render_status

if TYPE_CHECKING:
    from provenance.service.runtime import Service

__all__ = ["web_app"]

logger = logging.getLogger(__name__)

_MAX_QUERY = 255


def _witness_policy(service: Service) -> Policy | None:
    """The witness policy the service cosigns with (``apkprov serve --policy`` sets
    it on the sequencer before the app is built); read once, at start, so that no
    request races the service's own first use of the sequencer."""
    try:
        cosigner = service.log.sequencer.cosigner
    except ProvenanceError:
        return None
    return cosigner.policy if isinstance(cosigner, PolicyCosigner) else None


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _respond(body: bytes, status: int = 200) -> Response:
    return Response(body, status, headers=security_headers(), media_type="text/html")


def web_app(service: Service) -> Starlette:
    """The web view over ``service`` (mounted under ``/ui`` by the service)."""
    trust = Trust(
        log_verifier=service.log.verifier,
        root_keys=service.submitter.root_keys,
        witness_policy=_witness_policy(service),
        role_policy=service.settings.role_policy,
    )

    def search(request: Request) -> Response:
        base = _base(request)
        kind = request.query_params.get("kind", "package")
        query = request.query_params.get("q", "").strip()[: _MAX_QUERY + 1]
        error = None
        if kind not in KINDS:
            kind, error = "package", "choose what to search by"
        elif len(query) > _MAX_QUERY:
            error = f"at most {_MAX_QUERY} characters"
        subject = None
        if query and error is None:
            try:
                subject = Subject(**{kind: query})
            except InputError as e:
                error = str(e).replace("--sha256", "an APK SHA-256").replace("--cert", "a cert")
        result: Html | None = None
        status = 200 if error is None else 400
        title = "Search"
        if subject is not None:
            try:
                source = LocalTraceSource(service.log, service.index)
                prepared = prepare(source, trust, subject)
                url = f"{request.url.scheme}://{request.url.netloc}"
                result = render_chain(prepared, service_url=url, vkey=service.log.config.vkey)
                title = f"Chain of {subject.describe()}"
            except ProvenanceError as e:
                logger.error("web view: tracing %s failed: %s", subject.describe(), e)
                result = html('<p class="error">The log cannot be read right now.</p>')
                status = 503
        form = search_form(base, kind, query, error)
        return _respond(page(title, search_page_body(form, result), base=base, current="/"), status)

    def log_status(request: Request) -> Response:
        base = _base(request)
        try:
            tree = service.log.state.tree()
            facts = LogFacts(
                origin=service.log.origin,
                vkey=service.log.config.vkey,
                tree_size=tree.size,
                sequenced=service.log.state.sequenced_size(),
                indexed=service.index.size(),
                statements=service.index.count(),
                checkpoint=tree.checkpoint.decode("utf-8", "replace"),
            )
            actors = TraceVerifier(LocalTraceSource(service.log, service.index), trust).run([])
            body, status = render_status(facts, trust, actors), 200
        except ProvenanceError as e:
            logger.error("web view: log status failed: %s", e)
            body = html('<h1>Log status</h1><p class="error">The log cannot be read right now.</p>')
            status = 503
        return _respond(page("Log status", body, base=base, current="/log"), status)

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        title = "Not found" if code == 404 else "Not allowed"
        body = html(
            '<h1>{}</h1><p>There is no such page. <a href="{}/">Search an app</a>.</p>',
            title,
            _base(request),
        )
        return _respond(page(title, body, base=_base(request), current=""), code)

    routes = [
        Route("/", search, methods=["GET"]),
        Route("/log", log_status, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
