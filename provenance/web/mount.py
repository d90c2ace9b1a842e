"""Putting the web view under ``/ui`` of the service, outside its API routes.

The service's routes are its HTTP API, which its OpenAPI document describes route
for route; the web view is not API. So instead of adding routes, the service wraps
itself in :class:`WebMount`, an ASGI middleware that sends ``/ui/...`` to the web
app (with ``root_path`` set, so its links are right) and everything else on,
untouched. ``/ui`` redirects to ``/ui/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from provenance.web.app import web_app

if TYPE_CHECKING:
    from provenance.service.runtime import Service

__all__ = ["PREFIX", "WebMount"]

PREFIX = "/ui"


class WebMount:
    """ASGI middleware: ``PREFIX/...`` to the web view, the rest to ``app``."""

    def __init__(self, app: ASGIApp, service: Service, prefix: str = PREFIX) -> None:
        self.app = app
        self.web = web_app(service)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = str(scope.get("root_path", ""))
            path = str(scope["path"])
            local = path[len(root) :] if root and path.startswith(root) else path
            if local == self.prefix:
                query = scope.get("query_string", b"").decode("latin-1")
                target = root + self.prefix + "/" + (f"?{query}" if query else "")
                await RedirectResponse(target, 308)(scope, receive, send)
                return
            if local.startswith(self.prefix + "/"):
                child = dict(scope)
                child["root_path"] = root + self.prefix
                child.setdefault("app_root_path", root)
                await self.web(child, receive, send)
                return
        await self.app(scope, receive, send)
