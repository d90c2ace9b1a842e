"""The web view of the chain, for access providers and platforms.

Server-rendered HTML, served by ``apkprov serve`` under ``/ui`` (:mod:`.mount`):
search an app by package, APK SHA-256 or signer certificate and see its chain --
every entry and proof verified on the server by the same trace client as
``apkprov trace``, with the checkpoint and keys it was checked against -- its
findings, takedowns and restores, and the takedown checklist; plus a log status
page (checkpoint, sizes, signatures and witnesses, actors).

No JavaScript and no external assets; every value from a statement is escaped
(:mod:`.html`), and a strict Content-Security-Policy admits only the inline
stylesheet (:mod:`.layout`, :mod:`.style`). See ``docs/access-provider.md``.
"""

from __future__ import annotations

from provenance.web.app import web_app
from provenance.web.html import Html, escape, html
from provenance.web.layout import CSP, security_headers
from provenance.web.mount import PREFIX, WebMount

__all__ = ["CSP", "PREFIX", "Html", "WebMount", "escape", "html", "security_headers", "web_app"]
