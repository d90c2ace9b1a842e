"""HTML built from trusted templates and escaped values -- nothing else.

Statements are attacker-controlled text (an app name, a finding summary, a reason
can hold any characters the schema allows, ``<script>`` included), so the web view
never concatenates strings into markup. :func:`html` formats a *literal* template
with arguments that are escaped unless they are already :class:`Html` (built the
same way), and :func:`escape` escapes text for element content and quoted
attribute values alike (``& < > " '``). There is no way to mark arbitrary text as
safe short of building it through these functions.
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable
from typing import Any

__all__ = ["Html", "escape", "html", "join"]


class Html(str):
    """Markup that is safe to emit as is (built by :func:`html` or :func:`escape`)."""

    __slots__ = ()


def escape(value: Any) -> Html:
    """``value`` as text: markup characters and quotes escaped; Html kept as is."""
    if isinstance(value, Html):
        return value
    return Html(_html.escape(str(value), quote=True))


def html(template: str, *args: Any, **kwargs: Any) -> Html:
    """``template.format(...)`` with every argument escaped (unless it is Html).

    ``template`` must be a literal written in this package, never data.
    """
    return Html(
        template.format(*(escape(a) for a in args), **{k: escape(v) for k, v in kwargs.items()})
    )


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Escaped parts joined by a literal separator."""
    return Html(sep.join(escape(p) for p in parts))
