"""The search page: a form (package, APK SHA-256 or signer certificate) and its result.

A plain ``GET`` form, so it works without JavaScript, can be bookmarked and is
driven by keyboard alone. An invalid query is shown next to the field it concerns
(``aria-invalid`` and ``aria-describedby``), never echoed unescaped.
"""

from __future__ import annotations

from provenance.web.html import Html, html, join

__all__ = ["KINDS", "search_form", "search_page_body"]

KINDS = {
    "package": "Package name",
    "sha256": "APK SHA-256",
    "cert": "Signer certificate SHA-256",
}


def search_form(base: str, kind: str, query: str, error: str | None) -> Html:
    """The search form, filled with what was asked."""
    options = join(
        html(
            '<option value="{}"{}>{}</option>',
            value,
            Html(" selected") if value == kind else Html(""),
            label,
        )
        for value, label in KINDS.items()
    )
    invalid = (
        Html(' aria-invalid="true" aria-describedby="q-error q-hint"')
        if error
        else Html(' aria-describedby="q-hint"')
    )
    message = html('<p id="q-error" class="error">Error: {}</p>', error) if error else Html("")
    return html(
        '<form class="search" role="search" method="get" action="{action}" '
        'aria-label="Search the log">'
        '<div class="field"><label for="kind">Search by</label>'
        '<select id="kind" name="kind">{options}</select></div>'
        '<div class="field grow"><label for="q">Value</label>'
        '<input id="q" name="q" type="text" value="{query}" autocomplete="off" '
        'spellcheck="false" maxlength="255" required{invalid}>'
        '<p id="q-hint" class="hint">e.g. com.example.app, or 64 hex digits</p>{message}</div>'
        '<div class="field"><button type="submit">Search</button></div>'
        "</form>",
        action=base + "/",
        options=options,
        query=query,
        invalid=invalid,
        message=message,
    )


def search_page_body(form: Html, result: Html | None) -> Html:
    """The page body: heading, introduction, form and (if any) the result."""
    intro = html(
        "<p>Find an app's chain in the transparency log: its developer's registration, "
        "releases, shelving by platforms, inspections, takedowns and restores. Every entry "
        "is verified before it is shown, and the page says against which checkpoint and "
        "keys.</p>"
    )
    return html("<h1>App provenance</h1>{}{}{}", intro, form, result if result is not None else "")
