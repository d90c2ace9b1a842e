"""The page frame: landmarks, skip link, navigation, and the security headers.

Every page has one ``<h1>``, a skip link to ``<main>``, a labelled navigation and a
footer; the language is declared and the viewport set for small screens.
:func:`security_headers` is sent with every response: the CSP admits only the inline
stylesheet (by hash) and forms to this origin -- no scripts, frames, images or
other loads -- so nothing in a statement can become active content.
"""

from __future__ import annotations

from provenance.web.html import Html, html, join
from provenance.web.style import CSS, CSS_HASH

__all__ = ["CSP", "page", "security_headers"]

CSP = (
    f"default-src 'none'; style-src '{CSS_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

_NAV = (("/", "Search an app"), ("/log", "Log status"))


def security_headers() -> dict[str, str]:
    """Headers for every page of the web view."""
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def page(title: str, body: Html, *, base: str, current: str) -> bytes:
    """A complete HTML document; ``base`` is where the web view is mounted."""
    items = join(
        html(
            '<li><a href="{}"{}>{}</a></li>',
            base + path,
            Html(' aria-current="page"') if path == current else Html(""),
            label,
        )
        for path, label in _NAV
    )
    doc = html(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · apkprov</title>
<style>{css}</style>
</head>
<body>
<a class="skip" href="#main">Skip to main content</a>
<header class="site">
<a class="brand" href="{home}">apkprov · app provenance</a>
<nav aria-label="Main"><ul>{items}</ul></nav>
</header>
<main id="main" tabindex="-1">
{body}
</main>
<footer class="site">
<p>Everything on these pages is verified on the server with the same client code as
<code>apkprov trace</code>, against the log key and registry root key shown. To rely on
it, verify it yourself with the command given on each page.</p>
</footer>
</body>
</html>
""",
        title=title,
        css=Html(CSS),
        home=base + "/",
        items=items,
        body=body,
    )
    return doc.encode("utf-8")
